"""The converter framework: an official checkpoint's keys mapped to ours, every problem named."""

from __future__ import annotations

import pytest
import torch

from omnisense import WeightsError, _registry
from omnisense.convert import convert
from omnisense.models import load_model
from video.models.audio_cnn import audio_cnn_tiny


def _official_to_ours(official: dict) -> dict:
    """A converter as a model file would write one: the 'official' layout prefixes every key with 'net.'."""
    out = {}
    for key, value in official.items():
        if not key.startswith("net."):
            raise KeyError(f"unknown official key {key}")
        out[key[len("net."):]] = value
    return out


@pytest.fixture
def debug_converter(monkeypatch):
    monkeypatch.setitem(_registry.CONVERTERS, "debug",
                        (f"{__name__}:_official_to_ours", "audio_cnn_tiny", "audio_classification"))


def _official_state(model) -> dict:
    return {"net." + k: v for k, v in model.state_dict().items()}


def test_convert_maps_every_key_and_the_weights_load(debug_converter, tmp_path):
    torch.manual_seed(0)
    source = audio_cnn_tiny().eval()
    torch.save({"model": _official_state(source), "epoch": 7}, tmp_path / "official.pth")
    report = convert("debug", tmp_path / "official.pth", tmp_path / "ours")
    assert report.ok and report.matched == len(source.state_dict())
    target, meta = load_model(tmp_path / "ours.safetensors")
    assert meta.model == {"variant": "audio_cnn_tiny", "kwargs": {}} and meta.task == "audio_classification"
    assert meta.source["checkpoint"] == "official.pth" and len(meta.source["sha256"]) == 64
    x = torch.randn(2, 100, 128)
    assert torch.equal(source(x), target(x))


def test_convert_names_missing_and_mis_shaped_tensors(debug_converter, tmp_path):
    official = _official_state(audio_cnn_tiny())
    first, last = sorted(official)[0], sorted(k for k in official if k.endswith("weight"))[-1]
    official.pop(first)
    official[last] = torch.zeros(7, 3)
    torch.save(official, tmp_path / "official.pth")
    with pytest.raises(WeightsError) as info:
        convert("debug", tmp_path / "official.pth", tmp_path / "ours")
    assert first[len("net."):] in str(info.value) and last[len("net."):] in str(info.value)
    assert not (tmp_path / "ours.safetensors").exists()
    partial = convert("debug", tmp_path / "official.pth", tmp_path / "ours", allow_partial=True)
    assert partial.missing == [first[len("net."):]] and partial.mis_shaped[0][0] == last[len("net."):]


def test_convert_rejects_a_checkpoint_of_another_model(debug_converter, tmp_path):
    torch.save({"backbone.layer1.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="does not look like an official debug checkpoint"):
        convert("debug", tmp_path / "other.pth", tmp_path / "ours")
