"""UniFormer (video) against the official PySlowFast model (Sense-X/UniFormer): the fixture's weights through
`convert_official`, in eval mode, features and logits at atol = rtol = 1e-4, and an eps probe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.parity._fixtures import ATOL, RTOL, load, max_error
from video.models.uniformer import UniFormer, convert_official


def _ours() -> tuple[UniFormer, dict, dict]:
    fx, meta = load("uniformer")
    size = eval(meta["size"], {})  # a dict literal written by the script
    model = UniFormer(depth=size["depth"], embed_dim=size["embed_dim"], head_dim=size["head_dim"],
                      num_classes=size["num_classes"]).eval()
    report = model.load_state_dict(convert_official({"model_state": fx["official"]}), strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    return model, fx, meta


def test_uniformer_matches_the_official_features_and_logits():
    model, fx, _ = _ours()
    with torch.no_grad():
        features = model.forward_features(fx["input"]["video"])
        logits = model(fx["input"]["video"])
    torch.testing.assert_close(features, fx["output"]["features"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(logits, fx["output"]["logits"], atol=ATOL, rtol=RTOL)


def _probe(model: UniFormer, scale: float, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        pe, pos = model.patch_embed3, model.blocks3[0].pos_embed
        for p in (pe.proj.weight, pe.proj.bias, pe.norm.weight, pe.norm.bias, pos.weight, pos.bias):
            p.mul_(scale)
        return model(video)


def test_uniformer_probe_matches_with_the_official_eps():
    model, fx, meta = _ours()
    out = _probe(model, float(meta["probe_scale"]), fx["input"]["video"])
    torch.testing.assert_close(out, fx["output"]["logits_probe"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("which", ["patch_embed_norm", "block_norm"])
def test_a_wrong_layernorm_eps_fails_the_probe(which):
    model, fx, meta = _ours()
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            if which == "patch_embed_norm" and name == "patch_embed3.norm":
                m.eps = 1e-6  # official: PyTorch's default 1e-5
            elif which == "block_norm" and name.startswith("blocks3.") and name.endswith("norm1"):
                m.eps = 1e-5  # official: 1e-6
    err = max_error(_probe(model, float(meta["probe_scale"]), fx["input"]["video"]), fx["output"]["logits_probe"])
    assert err > 100 * ATOL, f"the probe does not see the {which} eps (max error {err:.2e})"
