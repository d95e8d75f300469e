"""`omnisense classify`: every input format, the documented handling of bad input, the JSON result,
the shapes DataModule, and (when shipped) the trained weights on real CGAL meshes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnisense import WeightsMeta, save_weights
from omnisense.commands import classify as app
from perception3d import PointCloudFileError, PointCloudValueError
from perception3d.classification.inference import prepare_cloud
from perception3d.io import write_points
from perception3d.models.gpsformer import GPSFormer

TINY = dict(num_classes=3, embed_dim=8, widths=[8, 16, 16], k=4, num_heads=2, radii=[0.4, 0.8], max_counts=[4, 8],
            head_hidden=[16], dropout=0.0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = GPSFormer(**TINY)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_weights(path, model.state_dict(), _meta(TINY, ["a", "b", "c"]))


def _meta(init_args: dict, classes: list[str]) -> WeightsMeta:
    return WeightsMeta(task="classification", classes=classes, input={"num_points": 64},
                       model={"class_path": "perception3d.models.gpsformer.GPSFormer", "init_args": init_args})


def _sphere(n=300, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cube_off(path, faces=True):
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    f = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)] if faces else []
    lines = ["OFF", f"{len(v)} {len(f)} 0", *(" ".join(map(str, p)) for p in v), *(f"4 {' '.join(map(str, q))}" for q in f)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _obj(path):
    v = _sphere(50)
    hull_faces = [(1, 2, 3), (1, 3, 4), (2, 3, 4), (1, 2, 4)]
    path.write_text("\n".join([*(f"v {a} {b} {c}" for a, b, c in v), *(f"f {a} {b} {c}" for a, b, c in hull_faces)]) + "\n")
    return path


@pytest.mark.parametrize("ext", [".ply", ".pcd", ".xyz", ".npy"])
def test_point_formats(tmp_path, weights, ext):
    path = write_points(tmp_path / f"cloud{ext}", _sphere())
    result = app.classify_file(path, weights=weights, topk=2)
    assert len(result["top"]) == 2 and result["top"][0]["class"] in "abc"
    assert result["points_in"] == 300 and not result["upsampled"] and not result["mesh_sampled"]
    assert result["top"][0]["probability"] >= result["top"][1]["probability"]


@pytest.mark.parametrize("maker", [_cube_off, _obj], ids=["off", "obj"])
def test_meshes_are_sampled(tmp_path, weights, maker):
    path = maker(tmp_path / ("m.off" if maker is _cube_off else "m.obj"))
    result = app.classify_file(path, weights=weights, mesh_samples=500)
    assert result["mesh_sampled"] and result["points_in"] == 500


def test_empty_mesh_is_a_clear_error(tmp_path, weights):
    with pytest.raises(PointCloudFileError, match="no faces"):
        app.classify_file(_cube_off(tmp_path / "e.off", faces=False), weights=weights)


def test_nan_points_are_a_clear_error(tmp_path, weights):
    pts = _sphere()
    path = tmp_path / "nan.xyz"
    path.write_text("\n".join(" ".join(str(v) for v in p) for p in pts) + "\nnan 0 0\n")
    with pytest.raises(PointCloudFileError, match="NaN"):
        app.classify_file(path, weights=weights)


def test_duplicates_removed_and_few_points_upsampled(tmp_path, weights):
    pts = np.concatenate([_sphere(40)] * 3)  # 120 points, 80 of them exact duplicates, 40 distinct < 64
    path = write_points(tmp_path / "dup.npy", pts)
    result = app.classify_file(path, weights=weights)
    assert result["duplicates_removed"] == 80 and result["upsampled"]


def test_too_few_or_coincident_points(tmp_path, weights):
    with pytest.raises(PointCloudFileError, match="at least 32"):
        app.classify_file(write_points(tmp_path / "few.npy", _sphere(10)), weights=weights)
    with pytest.raises(PointCloudValueError, match="coincide"):
        prepare_cloud(np.ones((50, 3)) + np.arange(50)[:, None] * 1e-12, 64)
    with pytest.raises(PointCloudFileError, match="unsupported extension"):
        app.classify_file(tmp_path / "x.las", weights=weights)


def test_prepare_cloud_normalises():
    prepared = prepare_cloud(_sphere(100) * 7 + 3, 64)
    assert prepared.xyz.shape == (100, 3)
    np.testing.assert_allclose(np.linalg.norm(prepared.xyz - prepared.xyz.mean(0), axis=1).max(), 1.0, rtol=1e-5)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    from omnisense import WeightsError

    state = GPSFormer(**TINY).state_dict()
    cloud = write_points(tmp_path / "c.ply", _sphere())
    path = save_weights(tmp_path / "bad.safetensors", state, _meta(dict(TINY, num_classes=5), list("abcde")))
    with pytest.raises(WeightsError, match="mis-shaped"):
        app.classify_file(cloud, weights=path)
    path = save_weights(tmp_path / "bad2.safetensors", state,
                        WeightsMeta(task="registration", model={"variant": "roitr_tiny"}))
    with pytest.raises(WeightsError, match="holds registration weights"):
        app.classify_file(cloud, weights=path)


def test_run_writes_a_versioned_record(tmp_path, weights, capsys):
    from omnisense.cli import main

    path = write_points(tmp_path / "c.ply", _sphere())
    out = tmp_path / "r.jsonl"
    assert main(["classify", str(path), "--weights", str(weights), "--topk", "3", "--output", str(out), "--votes", "2",
                 "--mesh-samples", "100", "--device", "cpu"]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["schema"] == "omnisense.classification/1" and record["input"] == str(path)
    assert [r["class"] for r in record["top"]] and record["votes"] == 2
    assert f"{path}: {record['top'][0]['class']}" in capsys.readouterr().err


def test_shapes_datamodule_tiny():
    from omnisense.train.shapes import ShapesDataModule

    dm = ShapesDataModule(tiny=True, num_points=128, batch_size=8)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 128, 3) and y.shape == (8,) and y.dtype == torch.int64
    assert len(dm.sets["val"]) + len(dm.sets["train"]) == 48 and len(dm.sets["test"]) == 24
    xt, _ = next(iter(dm.test_dataloader()))
    xt2, _ = next(iter(dm.test_dataloader()))
    assert torch.equal(xt, xt2)  # evaluation is deterministic; training draws new subsets


def test_shipped_weights_on_real_meshes(sample_data):
    from omnisense.weights import shipped_weights

    shipped_weights(app.DEFAULT_WEIGHTS)  # the shipped weights are part of the repo: missing ones fail here
    meshes = sample_data("cgal") / "meshes"
    result = app.classify_file(meshes / "torus_quad.off", votes=1, reject=False)  # the raw top-k
    assert len(result["top"]) == 5 and abs(sum(r["probability"] for r in result["top"])) <= 1.0 + 1e-6
    answer = app.classify_file(meshes / "torus_quad.off", votes=1)  # the rule's answer: a class, or none of them
    assert answer["vocabulary"] == "procedural shapes" and (len(answer["top"]) == 5) == answer["known"]


def test_classify_rejects_under_a_rule_and_no_reject_gives_the_top_k(weights):
    from perception3d.classification.inference import classify
    from omnisense.models import load_model
    from perception3d.classification.rejection import NONE_OF_THE_KNOWN, Rejection

    model, meta = load_model(weights, task="classification")
    xyz = _sphere()
    strict = Rejection(score="energy", threshold=1e6)
    stats = Rejection(score="max_softmax+input_stats", threshold=[0.0, -1e9], input_mean=[0.0] * 31,
                      input_var=[1.0] * 31)
    rejected = classify(model, xyz, spec=meta.transforms(), classes=meta.classes, topk=2, rejection=strict,
                        vocabulary="letters")
    assert rejected["label"] == NONE_OF_THE_KNOWN and rejected["top"] == [] and rejected["vocabulary"] == "letters"
    raw = classify(model, xyz, spec=meta.transforms(), classes=meta.classes, topk=2, rejection=strict, reject=False)
    assert raw["known"] and len(raw["top"]) == 2
    accepted = classify(model, xyz, spec=meta.transforms(), classes=meta.classes, topk=2, rejection=stats)
    assert accepted["known"] and len(accepted["rejection"]["value"]) == 2
