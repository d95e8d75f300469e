"""The converter framework: an official checkpoint's keys mapped to ours, every problem named."""

from __future__ import annotations

import pytest
import torch

from omnisense import WeightsError, _registry
from omnisense.convert import convert
from omnisense.weights import load_model_weights, load_weights
from omnisense.train.debug import TinyMLP


def _official_to_ours(official: dict) -> dict:
    """A converter as a model file would write one: the 'official' layout names layers fc1/fc2."""
    renames = {"fc1.": "net.0.", "fc2.": "net.3."}
    out = {}
    for key, value in official.items():
        for old, new in renames.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f"unknown official key {key}")
    return out


def _variants():
    return {"debug_mlp": lambda **kw: TinyMLP(**kw)}


@pytest.fixture
def debug_converter(monkeypatch):
    import fusion.models

    monkeypatch.setitem(_registry.CONVERTERS, "debug", (f"{__name__}:_official_to_ours", "debug_mlp"))
    monkeypatch.setattr(fusion.models, "VARIANTS", {**fusion.models.VARIANTS, **_variants()})


def _official_state(model: TinyMLP) -> dict:
    ours = model.state_dict()
    return {"fc1.weight": ours["net.0.weight"], "fc1.bias": ours["net.0.bias"],
            "fc2.weight": ours["net.3.weight"], "fc2.bias": ours["net.3.bias"]}


def test_convert_maps_every_key_and_the_weights_load(debug_converter, tmp_path):
    source = TinyMLP()
    torch.save({"model": _official_state(source), "epoch": 7}, tmp_path / "official.pth")
    report = convert("debug", tmp_path / "official.pth", tmp_path / "ours")
    assert report.ok and report.matched == 4
    state, meta = load_weights(tmp_path / "ours.safetensors")
    assert meta["variant"] == "debug_mlp" and meta["converted_from"] == "official.pth"
    target = TinyMLP()
    load_model_weights(target, state)
    x = torch.randn(3, 16)
    assert torch.equal(source(x), target(x))


def test_convert_names_missing_and_mis_shaped_tensors(debug_converter, tmp_path):
    official = _official_state(TinyMLP())
    official.pop("fc1.bias")
    official["fc2.weight"] = torch.zeros(7, 64)
    torch.save(official, tmp_path / "official.pth")
    with pytest.raises(WeightsError) as info:
        convert("debug", tmp_path / "official.pth", tmp_path / "ours")
    assert "net.0.bias" in str(info.value) and "net.3.weight" in str(info.value)
    assert not (tmp_path / "ours.safetensors").exists()
    partial = convert("debug", tmp_path / "official.pth", tmp_path / "ours", allow_partial=True)
    assert partial.missing == ["net.0.bias"] and partial.mis_shaped[0][0] == "net.3.weight"


def test_convert_rejects_a_checkpoint_of_another_model(debug_converter, tmp_path):
    torch.save({"backbone.layer1.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="does not look like an official debug checkpoint"):
        convert("debug", tmp_path / "other.pth", tmp_path / "ours")
