from __future__ import annotations

import pytest
import torch

from video.models.uniformer import (UniFormer, convert_official, inflate_2d_state_dict, inflate_kernel,
                                    match_classes_by_name, uniformer_base_k400, uniformer_small_k400, uniformer_tiny)


@pytest.mark.parametrize("factory,params", [(uniformer_small_k400, 21.4e6), (uniformer_base_k400, 49.8e6)])
def test_parameter_counts_match_the_paper(factory, params):
    # mmaction2's README: UniFormer-S 21.4 M, B 49.8 M with a K400 head
    with torch.device("meta"):
        model = factory()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.005)


def test_paper_layout_of_small():
    with torch.device("meta"):
        m = uniformer_small_k400()
    assert [len(m.blocks1), len(m.blocks2), len(m.blocks3), len(m.blocks4)] == [3, 4, 8, 3]
    assert [m.blocks3[0].attn.num_heads, m.blocks4[0].attn.num_heads] == [5, 8]
    assert m.blocks1[0].attn.weight.shape == (64, 1, 5, 5, 5)  # depthwise 5x5x5 affinity
    assert m.blocks3[0].pos_embed.weight.shape == (320, 1, 3, 3, 3)  # DPE
    assert m.patch_embed1.proj.stride == (2, 4, 4)


def test_token_grid():
    m = uniformer_tiny(num_classes=3).eval()
    with torch.no_grad():
        assert m.forward_tokens(torch.randn(1, 3, 8, 64, 96)).shape == (1, 4, 2 * 3, 256)


def test_local_mhra_is_local():
    # a change at one corner must not reach the far corner through the stage-1 local blocks alone
    m = uniformer_tiny(num_classes=3).eval()
    x = torch.zeros(1, 32, 8, 16, 16)
    y0 = m.blocks1[0](x)
    x[..., 0, 0, 0] = 5.0
    y1 = m.blocks1[0](x)
    diff = (y1 - y0).abs().sum(1)[0]
    assert diff[0, 0, 0] > 0 and diff[7, 15, 15] == 0 and diff[:5, :5, :5].sum() > 0


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = uniformer_tiny(num_classes=3).train()
    b = uniformer_tiny(num_classes=3).train()
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing()
    x = torch.randn(2, 3, 4, 32, 32)
    a(x).square().sum().backward()
    b(x).square().sum().backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("center", [False, True])
def test_inflation_keeps_the_2d_response_on_a_static_video(center):
    w2d = torch.randn(4, 3, 5, 5)
    w3d = inflate_kernel(w2d, 3, center=center)
    img = torch.randn(1, 3, 9, 9)
    video = img[:, :, None].repeat(1, 1, 5, 1, 1)
    out2d = torch.nn.functional.conv2d(img, w2d)
    out3d = torch.nn.functional.conv3d(video, w3d, padding=(1, 0, 0))
    torch.testing.assert_close(out3d[:, :, 2], out2d, rtol=1e-4, atol=1e-5)
    if center:
        assert w3d[:, :, 0].abs().sum() == 0


def test_inflate_a_2d_state_dict():
    m = uniformer_tiny(num_classes=5)
    state_3d = m.state_dict()
    state_2d = {k: (v[:, :, v.shape[2] // 2] if v.ndim == 5 else v) for k, v in state_3d.items()}
    state_2d["head.weight"] = torch.zeros(1000, 256)  # ImageNet head: dropped
    out = inflate_2d_state_dict(state_2d, m)
    assert "head.weight" not in out
    missing, unexpected = m.load_state_dict(out, strict=False)
    assert set(missing) == {"head.weight"} and not unexpected
    assert out["patch_embed1.proj.weight"].shape == (32, 3, 3, 4, 4)


def test_convert_official_pyslowfast_and_mmaction2():
    m = uniformer_tiny(num_classes=4)
    ours = m.state_dict()
    slowfast = {"model_state": {f"module.{k}": v for k, v in ours.items()}, "epoch": 3}
    mmaction = {"state_dict": {("cls_head.fc_cls." + k[5:] if k.startswith("head.") else "backbone." + k): v
                               for k, v in ours.items()}, "meta": {}}
    for ckpt in (slowfast, mmaction):
        converted = convert_official(ckpt)
        assert converted.keys() == ours.keys()
        m.load_state_dict(converted)


def test_match_classes_by_name():
    state = {"head.weight": torch.arange(3.0)[:, None].repeat(1, 2), "head.bias": torch.arange(3.0)}
    out = match_classes_by_name(state, ["abseiling", "air drumming", "answering questions"],
                                ["Answering_Questions", "abseiling"])
    assert out["head.bias"].tolist() == [2.0, 0.0]
    with pytest.raises(KeyError, match="juggling"):
        match_classes_by_name(state, ["a", "b", "c"], ["juggling"])


def test_rejects_bad_layout():
    with pytest.raises(ValueError):
        UniFormer(depth=(1, 1, 1), embed_dim=(8, 16, 32, 64))
