"""Weights: the metadata record, safetensors + JSON round trip, checksum, foreign checkpoints without unpickling,
key reports, `load_model`, and the schema of every shipped file."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
import torch
from torch import nn

from omnisense import OmnisenseError, WeightsError
from omnisense.models import instantiate, list_models, load_model
from omnisense.train.debug import TinyMLP
from omnisense.weights import (FORMAT, SHIPPED_DIR, TASKS, WeightsMeta, export_checkpoint, load_model_weights,
                               read_foreign_checkpoint, read_meta, read_weights, save_weights, sha256_file)

SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))


class _NotATensor:
    """Anything a pickle could smuggle in."""


def _meta(**changes) -> WeightsMeta:
    base = WeightsMeta(task="classification", model={"variant": "gpsformer_tiny", "kwargs": {"num_classes": 2}},
                       classes=["a", "b"], input={"num_points": 64})
    return dataclasses.replace(base, **changes)


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    model = TinyMLP()
    path = save_weights(tmp_path / "tiny", model.state_dict(), _meta(metrics={"acc1": 0.5}))
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    state, meta = read_weights(path)
    assert meta.classes == ["a", "b"] and meta.metrics == {"acc1": 0.5} and meta.name == "tiny"
    assert meta.sha256 == sha256_file(path) and meta.format == FORMAT and meta.num_tensors == len(state)
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)


def test_existing_weights_are_never_overwritten(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict(), _meta())
    before = path.read_bytes()
    with pytest.raises(WeightsError, match="exists already"):
        save_weights(path, TinyMLP(hidden=8).state_dict(), _meta())
    assert path.read_bytes() == before


def test_corrupt_file_is_caught_by_its_checksum(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict(), _meta())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 does not match"):
        read_weights(path)


def test_weights_without_metadata_are_refused_by_name(tmp_path):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict(), _meta())
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="no metadata beside it"):
        read_weights(path)


@pytest.mark.parametrize("change, message", [
    ({"colour": "blue"}, "unknown metadata key"),
    ({"format": "omnisense-weights/1"}, "is not 'omnisense-weights/2'"),
    ({"task": "juggling"}, "unknown task"),
    ({"model": {"init_args": {}}}, "'model' must name a variant"),
], ids=["unknown-key", "old-format", "unknown-task", "no-model"])
def test_bad_metadata_is_an_error_naming_the_file(tmp_path, change, message):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict(), _meta())
    meta_file = path.with_suffix(".json")
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), **change}))
    with pytest.raises(WeightsError, match=message) as info:
        read_weights(path)
    assert str(meta_file) in str(info.value)


@pytest.mark.parametrize("task, bad_input", [("detection", {}), ("classification", {"num_points": 64, "colour": 1}),
                                              ("detection", {"point_range": [0, 1]})],
                         ids=["missing-field", "unknown-field", "wrong-length"])
def test_an_input_spec_that_does_not_fit_is_an_error_naming_the_file(tmp_path, task, bad_input):
    path = save_weights(tmp_path / "w", TinyMLP().state_dict(), _meta(task=task, input=bad_input))
    with pytest.raises(WeightsError, match="its input spec does not fit") as info:
        read_meta(path).transforms()
    assert str(path) in str(info.value)


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
    out = export_checkpoint(ckpt, tmp_path / "exported", _meta(metrics={"acc1": 0.5}))
    state, meta = read_weights(out)
    assert load_model_weights(TinyMLP(), state).ok
    assert meta.notes["trained_steps"] == 3 and meta.metrics == {"acc1": 0.5}
    assert meta.config["model"]["init_args"]["model"]["class_path"].endswith("TinyMLP")


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        read_weights(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="no shipped weights named 'nope'"):
        read_weights("nope")
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"x")
    with pytest.raises(WeightsError, match="convert foreign checkpoints"):
        read_weights(bad)


def test_weights_metadata_cannot_name_arbitrary_callables():
    with pytest.raises(OmnisenseError, match="refusing to build"):
        instantiate({"class_path": "os.system", "init_args": {"command": "true"}})
    with pytest.raises(OmnisenseError, match="not a model class"):
        instantiate({"class_path": "fusion._io.write_text_atomic", "init_args": {}})
    with pytest.raises(OmnisenseError, match="refusing to build"):
        instantiate({"class_path": "omnisense.train.debug.TinyMLP", "init_args": {}})
    model = instantiate({"class_path": "video.models.audio_cnn.AudioCNN", "init_args": {"num_classes": 3}})
    assert isinstance(model, nn.Module)


def test_load_model_refuses_weights_of_another_task():
    with pytest.raises(WeightsError, match="holds registration weights"):
        load_model("roitr_small_cgal", task="detection")


def test_list_models_names_every_shipped_file():
    assert list_models() == SHIPPED and len(SHIPPED) >= 11


# ---- the schema of every shipped file ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_metadata_follows_the_schema(name):
    path = SHIPPED_DIR / f"{name}.safetensors"
    record = json.loads(path.with_suffix(".json").read_text())
    meta = read_meta(path)  # strict: no unknown key, a known task, a model spec
    assert meta.to_dict() == record  # nothing dropped or added on the way in
    assert meta.name == name and meta.file == path.name and meta.format == FORMAT
    assert meta.sha256 == sha256_file(path)
    state, _ = read_weights(path)
    assert meta.num_tensors == len(state) and meta.num_parameters == sum(t.numel() for t in state.values())
    assert meta.task in TASKS and meta.licence and meta.source and meta.recipe and meta.metrics
    if meta.task != "registration":
        assert meta.classes and all(isinstance(c, str) and c for c in meta.classes)
        assert len(set(meta.classes)) == len(meta.classes)
    spec = meta.transforms()
    assert type(spec).__name__ == TASKS[meta.task].rpartition(":")[2]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_file_loads_through_load_model(name):
    model, meta = load_model(name)
    assert isinstance(model, nn.Module) and not model.training
    state, _ = read_weights(name)
    own = model.state_dict()
    assert set(own) == set(state) and all(torch.equal(own[k], state[k]) for k in state)
    if meta.task == "detection":  # the recorded input range is the detector's own
        assert tuple(meta.transforms().point_range) == tuple(model.geometry.point_range)
        assert tuple(model.class_names) == tuple(meta.classes)
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int) and meta.task != "part_segmentation":
        assert num_classes == len(meta.classes)


def test_update_meta_rewrites_the_record_and_keeps_the_file_facts(tmp_path):
    from omnisense.weights import update_meta

    path = save_weights(tmp_path / "w.safetensors", {"x": torch.zeros(3)},
                        WeightsMeta(task="classification", model={"variant": "gpsformer_tiny"}, classes=["a", "b"]))
    before = read_meta(path)
    after = update_meta(path, vocabulary="letters", rejection={"score": "energy", "threshold": 1.0})
    again = read_meta(path)
    assert again.vocabulary == "letters" and again.rejection["score"] == "energy" and after.to_dict() == again.to_dict()
    assert (again.sha256, again.created, again.num_tensors) == (before.sha256, before.created, before.num_tensors)
    with pytest.raises(OmnisenseError, match="cannot change sha256"):
        update_meta(path, sha256="0" * 64)
    with pytest.raises(OmnisenseError, match="cannot change colour"):
        update_meta(path, colour="red")
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(WeightsError, match="not updating it"):
        update_meta(path, vocabulary="digits")
