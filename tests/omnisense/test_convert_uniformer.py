"""`omnisense convert uniformer`: official PySlowFast / mmaction2 UniFormer checkpoints, read without unpickling code."""

from __future__ import annotations

import pytest
import torch

from omnisense import WeightsError
from omnisense.convert import convert
from omnisense.weights import read_weights
from video.models.uniformer import uniformer_tiny


@pytest.mark.parametrize("layout", ["pyslowfast", "mmaction2"])
def test_convert_official_uniformer(tmp_path, layout):
    torch.manual_seed(0)
    # the converter's own variant is uniformer_small_k400; the tiny one has the same key layout
    model = uniformer_tiny(num_classes=400)
    state = model.state_dict()
    if layout == "pyslowfast":
        ckpt = {"epoch": 10, "model_state": state, "optimizer_state": {}}
    else:
        ckpt = {"meta": {"epoch": 10}, "state_dict": {
            ("cls_head.fc_cls." + k[5:] if k.startswith("head.") else "backbone." + k): v for k, v in state.items()}}
    torch.save(ckpt, tmp_path / "official.pth")
    report = convert("uniformer", tmp_path / "official.pth", tmp_path / "ours.safetensors", variant="uniformer_tiny")
    assert report.ok
    ours, meta = read_weights(tmp_path / "ours.safetensors")
    torch.testing.assert_close(ours["blocks3.0.attn.qkv.weight"], state["blocks3.0.attn.qkv.weight"])
    assert meta.model["variant"] == "uniformer_tiny" and meta.task == "recognition"


def test_convert_names_missing_tensors(tmp_path):
    state = uniformer_tiny(num_classes=400).state_dict()
    del state["blocks1.0.attn.weight"]
    torch.save({"model_state": state}, tmp_path / "official.pth")
    with pytest.raises(WeightsError, match="blocks1.0.attn.weight"):
        convert("uniformer", tmp_path / "official.pth", tmp_path / "ours.safetensors", variant="uniformer_tiny")
