"""ViViT against scenic (google-research/scenic at 4a38d47), from a committed fixture.

tests/fixtures/parity/vivit/checkpoint_0 is a Flax checkpoint of scenic's `SpaceTimeViViT` (K400
factorised-encoder configuration at a tiny size, seeded random parameters), written as
`flax.training.checkpoints` writes a train state; vivit.safetensors holds two input clips and scenic's logits and
temporal-encoder output. tools/parity/vivit.py regenerates both from a scenic checkout (in a throwaway JAX
environment). Here the checkpoint is read without JAX, converted with `convert_scenic`, and must give the same
outputs.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from omnisense.convert import read_flax_checkpoint
from video.models.vivit import ViViTFactorised, convert_scenic, vivit_base_fe_k400

FIXTURE = Path(__file__).parents[2] / "fixtures" / "parity" / "vivit"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture():
    return load_file(str(FIXTURE / "vivit.safetensors"))


def _model(**overrides) -> ViViTFactorised:
    state, info = convert_scenic(read_flax_checkpoint(FIXTURE / "checkpoint_0"))
    kwargs = dict(num_classes=400, img_size=16, num_frames=4, patch_size=4, tubelet=2, dim=32, spatial_depth=2,
                  temporal_depth=2, num_heads=2, mlp_ratio=2.0, **info["kwargs"])
    kwargs.update(overrides)
    model = ViViTFactorised(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _run(model, fixture):
    video = fixture["input.clips"].permute(0, 4, 1, 2, 3)  # flax [B, T, H, W, C] -> [B, C, T, H, W]
    with torch.no_grad():
        spatial = model.extract_spatial(video)
        return model.forward_cached(spatial), model._temporal(spatial)


def test_logits_match(fixture):
    logits, temporal = _run(_model(), fixture)
    torch.testing.assert_close(temporal, fixture["output.temporal"], **TOL)
    torch.testing.assert_close(logits, fixture["output.logits"], **TOL)


def test_probe_exact_gelu_fails(fixture):
    """Our default exact GELU does not reproduce flax's tanh-approximated `nn.gelu`."""
    logits, _ = _run(_model(gelu="exact"), fixture)
    assert not torch.allclose(logits, fixture["output.logits"], **TOL)


def test_probe_wrong_eps_fails(fixture):
    """The fixture's temporal CLS token has a variance of ~1e-6 after its position embedding, so the LayerNorm
    eps matters: flax's 1e-6 passes (above), PyTorch's default 1e-5 does not."""
    model = _model()
    model.temporal_blocks[0].norm1.eps = 1e-5
    logits, _ = _run(model, fixture)
    assert not torch.allclose(logits, fixture["output.logits"], **TOL)


def test_converter_info():
    state, info = convert_scenic(read_flax_checkpoint(FIXTURE / "checkpoint_0"))
    assert info["kwargs"] == {"gelu": "tanh"}
    assert len(info["classes"]) == 400 and info["classes"][:2] == ["abseiling", "air drumming"]
    assert info["input"]["clip_len"] == 4 and info["input"]["crop_size"] == 16  # the fixture's tiny input
    assert info["input"]["mean"] == [0.5, 0.5, 0.5]


@pytest.mark.slow
def test_converter_fills_the_released_layout():
    """Scenic's B/16x2 FE names and shapes (built here from our model's shapes, flax layouts) fill
    `vivit_base_fe_k400`, under the "params/" tree, optimiser moments beside it ignored."""
    ours = vivit_base_fe_k400().state_dict()
    d, h = 768, 12
    flat = {"params/embedding/kernel": torch.zeros(2, 16, 16, 3, d).numpy(), "params/embedding/bias": torch.zeros(d).numpy(),
            "params/cls_SpatialTransformer": torch.zeros(1, 1, d).numpy(),
            "params/cls_TemporalTransformer": torch.zeros(1, 1, d).numpy(),
            "params/output_projection/kernel": torch.zeros(d, 400).numpy(),
            "params/output_projection/bias": torch.zeros(400).numpy(),
            "opt_state/1/0/mu/output_projection/kernel": torch.zeros(d, 400).numpy()}
    for side, depth, tokens in (("SpatialTransformer", 12, 197), ("TemporalTransformer", 4, 17)):
        p = f"params/{side}/"
        flat[p + "posembed_input/pos_embedding"] = torch.zeros(1, tokens, d).numpy()
        flat[p + "encoder_norm/scale"] = flat[p + "encoder_norm/bias"] = torch.zeros(d).numpy()
        for i in range(depth):
            b = f"{p}encoderblock_{i}/"
            for n in ("LayerNorm_0", "LayerNorm_1"):
                flat[f"{b}{n}/scale"] = flat[f"{b}{n}/bias"] = torch.zeros(d).numpy()
            for n in ("query", "key", "value"):
                flat[f"{b}MultiHeadDotProductAttention_0/{n}/kernel"] = torch.zeros(d, h, d // h).numpy()
                flat[f"{b}MultiHeadDotProductAttention_0/{n}/bias"] = torch.zeros(h, d // h).numpy()
            flat[f"{b}MultiHeadDotProductAttention_0/out/kernel"] = torch.zeros(h, d // h, d).numpy()
            flat[f"{b}MultiHeadDotProductAttention_0/out/bias"] = torch.zeros(d).numpy()
            flat[f"{b}MlpBlock_0/Dense_0/kernel"] = torch.zeros(d, 4 * d).numpy()
            flat[f"{b}MlpBlock_0/Dense_0/bias"] = torch.zeros(4 * d).numpy()
            flat[f"{b}MlpBlock_0/Dense_1/kernel"] = torch.zeros(4 * d, d).numpy()
            flat[f"{b}MlpBlock_0/Dense_1/bias"] = torch.zeros(d).numpy()
    state, info = convert_scenic(flat)
    assert info["input"]["clip_len"] == 32 and info["input"]["crop_size"] == 224 and info["input"]["short_side"] == 256
    assert set(state) == set(ours)
    assert all(state[k].shape == ours[k].shape for k in ours)
