"""Contract tests of the audio encoders (AST, the small CNN), the AST paper config and the official-key converter."""

import pytest
import torch

from omnisense.models import VARIANTS
from video.models.ast import ASTModel, ast_base, convert_official_ast
from video.models.audio_cnn import AudioCNN

SMALL = {
    "ast_micro": lambda: VARIANTS["ast_micro"](num_classes=5, input_tdim=48, embed_dim=32, depth=2, num_heads=2),
    "audio_cnn_tiny": lambda: VARIANTS["audio_cnn_tiny"](num_classes=5),
    "audio_cnn_small": lambda: VARIANTS["audio_cnn_small"](num_classes=5, widths=(8, 16, 32), blocks_per_stage=1),
}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy 2-core machine: threads only add contention
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_encoder_contract(name):
    torch.manual_seed(0)
    model = SMALL[name]()
    x = torch.randn(3, 48, 128)
    logits = model(x)
    tokens = model.forward_tokens(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert tokens.ndim == 3 and tokens.shape[0] == 3 and tokens.shape[2] == model.embed_dim
    logits.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient for {missing}"
    model.eval()
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_ast_token_layout_and_lengths():
    model = ASTModel(num_classes=4, input_tdim=100, embed_dim=32, depth=1, num_heads=2)
    assert model.grid(100) == (12, 9)  # (128 - 16) // 10 + 1 = 12, (100 - 16) // 10 + 1 = 9
    assert model.forward_tokens(torch.randn(2, 100, 128)).shape == (2, 2 + 12 * 9, 32)
    # Other lengths resize the time axis of the position embedding; shorter than a patch is padded.
    assert model.forward_tokens(torch.randn(2, 250, 128)).shape == (2, 2 + 12 * 24, 32)
    assert model(torch.randn(1, 3, 128)).shape == (1, 4)
    with pytest.raises(ValueError):
        model(torch.randn(2, 100, 64))


def test_cnn_tokens_follow_time():
    model = AudioCNN(num_classes=3, widths=(8, 16, 32), blocks_per_stage=1)
    assert model.time_stride == 8
    assert model.forward_tokens(torch.randn(2, 100, 128)).shape == (2, 13, 32)  # ceil(100 / 8)


def test_ast_base_is_the_paper_config():
    with torch.device("meta"):
        model = ast_base()
    # 128 x 1024 fbank, 16 x 16 patches at stride 10 -> 12 x 101 = 1212 patches (+ CLS + distillation).
    assert (model.f_dim, model.t_dim) == (12, 101)
    assert model.pos_embed.shape == (1, 1214, 768)
    assert model.patch_embed.weight.shape == (768, 1, 16, 16) and model.patch_embed.stride == (10, 10)
    assert len(model.blocks) == 12 and model.blocks[0].attn.num_heads == 12
    assert model.head.out_features == 527
    params = sum(p.numel() for p in model.parameters())
    assert 86e6 < params < 88e6


def _as_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict renamed to the official key names (as read in YuanGongND/ast `ast_models.py`)."""
    out = {}
    for k, v in state.items():
        if k.startswith("patch_embed."):
            out["module.v.patch_embed.proj." + k[len("patch_embed.") :]] = v
        elif k.startswith("head_norm."):
            out["module.mlp_head.0." + k[len("head_norm.") :]] = v
        elif k.startswith("head."):
            out["module.mlp_head.1." + k[len("head.") :]] = v
        else:
            out["module.v." + k] = v
    dim = state["cls_token"].shape[-1]
    out["module.v.head.weight"] = torch.zeros(1000, dim)  # DeiT classifiers AST never uses
    out["module.v.head_dist.weight"] = torch.zeros(1000, dim)
    return out


def test_converter_round_trip():
    torch.manual_seed(0)
    source = ASTModel(num_classes=6, input_tdim=64, embed_dim=32, depth=2, num_heads=2).eval()
    official = _as_official(source.state_dict())
    converted = convert_official_ast(official)
    target = ASTModel(num_classes=6, input_tdim=64, embed_dim=32, depth=2, num_heads=2).eval()
    result = target.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        assert torch.allclose(source(x), target(x))


@pytest.mark.slow
def test_cnn_learns_generated_events(tmp_path):
    """Learning test: the tiny CNN beats chance (1/8) by a wide margin on the generated events in seconds."""
    from video.audio.datasets import AudioClipDataset, folder_items, make_audio_events

    make_audio_events(tmp_path, seed=0, size="tiny")
    train_items, names = folder_items(tmp_path / "train")
    test_items, _ = folder_items(tmp_path / "test")
    train = AudioClipDataset(train_items, names, train=True, samples_per_file=8, freq_mask=0, time_mask=0)
    test = AudioClipDataset(test_items, names, mean=train.mean, std=train.std)
    torch.manual_seed(0)
    model = VARIANTS["audio_cnn_tiny"](num_classes=len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True)
    for _ in range(12):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.5, acc


def test_stats_cnn_reads_the_file_statistics_rows_and_tokens_of_the_clip_only():
    """`StatsAudioCNN`: the last two input rows (the file's mean and std) move the logits but not the tokens; the
    head, the last `nn.Linear` (where rejection reads features), sees CNN features and statistics together."""
    from video.rejection import last_linear

    torch.manual_seed(0)
    model = VARIANTS["audio_cnn_tiny_stats"](num_classes=5).eval()
    x = torch.randn(2, 50, 128)
    y = x.clone()
    y[:, -2:] += 1.0
    torch.testing.assert_close(model.forward_tokens(x), model.forward_tokens(y))
    assert not torch.allclose(model(x), model(y))
    assert last_linear(model) is model.head and model.head.in_features == model.embed_dim + 2 * 128
    torch.testing.assert_close(model(x[:1]), model(x)[:1])  # eval: batch norm uses running statistics
