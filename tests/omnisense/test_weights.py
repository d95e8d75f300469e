"""Weights: safetensors + JSON round trip, checksum, foreign checkpoints without unpickling, key reports."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from omnisense import WeightsError
from omnisense.weights import export_checkpoint, load_model_weights, load_weights, read_foreign_checkpoint, save_weights
from omnisense.train.debug import TinyMLP


class _NotATensor:
    """Anything a pickle could smuggle in."""


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    model = TinyMLP()
    path = save_weights(tmp_path / "tiny", model.state_dict(), {"variant": "tiny", "categories": ["a", "b"]})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    state, meta = load_weights(path)
    assert meta["variant"] == "tiny" and meta["categories"] == ["a", "b"] and len(meta["sha256"]) == 64
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)


def test_existing_weights_are_never_overwritten(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict())
    before = path.read_bytes()
    with pytest.raises(WeightsError, match="exists already"):
        save_weights(path, TinyMLP(hidden=8).state_dict())
    assert path.read_bytes() == before


def test_corrupt_file_is_caught_by_its_checksum(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 does not match"):
        load_weights(path)


def test_truncated_file_without_metadata_is_a_clear_error(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict())
    path.with_suffix(".json").unlink()
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights(path)


def test_foreign_checkpoint_is_unwrapped(tmp_path):
    state = TinyMLP().state_dict()
    path = tmp_path / "official.pth"
    torch.save({"epoch": 3, "model_state": {"state_dict": state}}, path)
    got = read_foreign_checkpoint(path)
    assert set(got) == set(state)


def test_foreign_checkpoint_with_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": torch.zeros(2)}, "payload": _NotATensor()}, f)
    with pytest.raises(WeightsError, match="refused"):
        read_foreign_checkpoint(path)


def test_key_report_names_every_problem():
    model = TinyMLP(in_dim=4, hidden=8, num_classes=3)
    state = dict(model.state_dict())
    state.pop("net.0.bias")
    state["net.3.weight"] = torch.zeros(5, 8)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_model_weights(model, state)
    text = str(info.value)
    assert "net.0.bias" in text and "extra.weight" in text and "net.3.weight" in text
    report = load_model_weights(model, state, strict=False)
    assert report.missing == ["net.0.bias"] and report.unexpected == ["extra.weight"]
    assert report.mis_shaped == [("net.3.weight", (5, 8), (3, 8))]


def test_export_checkpoint_takes_the_model_and_the_config(tmp_path, repo):
    from omnisense.engine import run_lightning_cli

    run_lightning_cli(["fit", "--config", str(repo / "configs/debug/tiny.yaml"), "--trainer.max_steps", "3",
                       "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
                       "--trainer.enable_progress_bar", "false"])
    ckpt = tmp_path / "debug-tiny/version_0/checkpoints/last.ckpt"
    out = export_checkpoint(ckpt, tmp_path / "exported", meta={"variant": "tiny", "metrics": {"acc1": 0.5}})
    state, meta = load_weights(out)
    model = TinyMLP()
    assert load_model_weights(model, out).ok
    assert meta["trained_steps"] == 3 and meta["config"]["model"]["init_args"]["model"]["class_path"].endswith("TinyMLP")
    assert json.loads(out.with_suffix(".json").read_text())["metrics"] == {"acc1": 0.5}


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="convert foreign checkpoints"):
        bad = tmp_path / "x.pth"
        bad.write_bytes(b"x")
        load_weights(bad)


def test_every_shipped_weights_file_verifies_and_builds():
    from omnisense.models import build_from_meta
    from omnisense.weights import SHIPPED_DIR

    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        state, meta = load_weights(path)  # checks the sha256
        model = build_from_meta(meta)
        assert isinstance(model, nn.Module)
        assert load_model_weights(model, state).ok, path.name


def test_weights_metadata_cannot_name_arbitrary_callables():
    from omnisense import OmnisenseError
    from omnisense.models import build_from_meta

    with pytest.raises(OmnisenseError, match="refusing to build"):
        build_from_meta({"model": {"class_path": "os.system", "init_args": {"command": "true"}}})
    with pytest.raises(OmnisenseError, match="not a model class"):
        build_from_meta({"model": {"class_path": "fusion._io.write_text_atomic", "init_args": {}}})
    model = build_from_meta({"model": {"class_path": "omnisense.train.debug.TinyMLP", "init_args": {"hidden": 8}}})
    assert model.net[0].out_features == 8
