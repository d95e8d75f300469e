from __future__ import annotations

import pytest
import torch

from omnisense.models import VARIANTS
from video.models.uniformer import convert_official
from video.models.uniformer_light import EvoBlock, UniFormerLight, uniformer_xxs_k400


def test_xxs_has_the_official_light_layout():
    with torch.device("meta"):
        model = VARIANTS["uniformer_xxs_k400"]()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # conv stem (no LayerNorm), class token entering at stage 3, class-token head
    assert shapes["patch_embed1.proj.0.weight"] == (28, 3, 3, 3, 3)
    assert shapes["patch_embed1.proj.1.running_mean"] == (28,)
    assert shapes["patch_embed1.proj.3.weight"] == (56, 28, 3, 3, 3)
    assert not any(k.startswith("patch_embed1.norm") for k in shapes)
    assert shapes["cls_token"] == (1, 1, 224) and shapes["cls_upsample.weight"] == (448, 224)
    assert shapes["blocks3.1.attn.qkv.weight"] == (672, 224) and shapes["blocks1.0.mlp.fc1.weight"] == (168, 56, 1, 1, 1)
    assert shapes["head_cls.weight"] == (400, 448) and shapes["norm_cls.weight"] == (448,)
    assert [b.prune_ratio for b in model.blocks3] == [1] + [0.5] * 7 and [b.prune_ratio for b in model.blocks4] == [0.5] * 2
    assert model.blocks3[-1].downsample and not any(b.downsample for b in model.blocks3[:-1])
    # an official checkpoint's keys map one to one (PySlowFast wrapper)
    fake = {"model_state": {k: torch.zeros(1) for k in shapes}}
    assert set(convert_official(fake)) == set(shapes)


def test_light_forward_train_and_contract():
    torch.manual_seed(0)
    model = uniformer_xxs_k400(num_classes=5)
    video = torch.randn(2, 3, 8, 64, 64)
    model.train()
    main, aux = model.forward_train(video)
    assert main.shape == aux.shape == (2, 5)
    loss = model.official_loss(video, torch.tensor([1, 3]))
    loss.backward()
    assert model.cls_token.grad is not None and model.head_cls.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(video).shape == (2, 5)
        assert model.forward_tokens(video).shape == (2, 4, 4, 448)


def test_pruned_block_gives_dropped_tokens_one_shared_update():
    torch.manual_seed(0)
    block = EvoBlock(16, 2, prune_ratio=0.5, trade_off=0.5).eval()
    cls, x = torch.randn(1, 1, 16), torch.randn(1, 16, 2, 2, 2)  # 8 tokens, 4 kept
    score = torch.tensor([[8.0, 1, 7, 2, 6, 3, 5, 4]]) / 36
    with torch.no_grad():
        _, out, new_score = block(cls, x, score)
        after_dpe = x + block.pos_embed(x)
    delta = (out - after_dpe).flatten(2)[0].T  # [8 tokens, C], in the original order
    dropped, kept = [1, 3, 5, 7], [0, 2, 4, 6]  # the lowest four scores
    for i in dropped[1:]:
        torch.testing.assert_close(delta[i], delta[dropped[0]])
    assert not torch.allclose(delta[kept[0]], delta[kept[1]])
    # only the kept tokens' scores move; the order is restored
    torch.testing.assert_close(new_score[0, dropped], score[0, dropped])
    assert not torch.allclose(new_score[0, kept], score[0, kept])


def test_score_downsampling_keeps_the_sum():
    torch.manual_seed(0)
    block = EvoBlock(16, 2, prune_ratio=1.0, trade_off=0.5, downsample=True).eval()
    score, cls, x = torch.rand(2, 2 * 4 * 4), torch.randn(2, 1, 16), torch.randn(2, 16, 2, 4, 4)
    with torch.no_grad():
        _, _, pooled = block(cls, x, score)
        block.downsample = False
        _, _, full = block(cls, x, score)
    assert pooled.shape == (2, 2 * 2 * 2)
    torch.testing.assert_close(pooled.sum(1), full.sum(1))
    # each pooled score is proportional to the mean of its 1x2x2 cell
    cell = full.view(2, 2, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(1)
    torch.testing.assert_close(pooled / pooled.sum(1, keepdim=True), cell / cell.sum(1, keepdim=True))


@pytest.mark.parametrize("variant", ["uniformer_xxs_k400", "uniformer_xs_k400"])
def test_light_variants_are_light_models(variant):
    with torch.device("meta"):
        model = VARIANTS[variant]()
    assert isinstance(model, UniFormerLight)
