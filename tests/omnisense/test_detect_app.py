import argparse
import json

import numpy as np
import pytest
import torch

from omnisense._errors import WeightsError
from omnisense.weights import WeightsMeta, save_weights
from perception3d import PointCloudFileError, PointCloudValueError
from perception3d.detection.inference import prepare_points
from perception3d.detection.simulator import LidarConfig, simulate_frame
from omnisense.models import VARIANTS


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = VARIANTS["flatformer_tiny"]()
    meta = WeightsMeta(task="detection", model={"variant": "flatformer_tiny"}, classes=list(model.class_names),
                       input={"point_range": list(model.geometry.point_range)})
    return save_weights(tmp_path_factory.mktemp("w") / "ff_tiny", model.state_dict(), meta)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    f = simulate_frame(np.random.default_rng(2), LidarConfig(beams=32, azimuth_steps=360))
    path = tmp_path_factory.mktemp("s") / "scan.bin"
    f.points.tofile(path)
    return path, f


def _args(scan, weights, tmp_path, **kw):
    ns = argparse.Namespace(scan=scan, model="flatformer", weights=weights, output=tmp_path / "boxes.json",
                            plot=tmp_path / "bev.png", device="cpu")
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_detect_writes_boxes_and_plot(scan, weights, tmp_path, capsys):
    from omnisense.commands import detect

    assert detect.run(_args(scan[0], weights, tmp_path)) == 0
    boxes = json.loads((tmp_path / "boxes.json").read_text())
    assert isinstance(boxes, list)
    for b in boxes:
        assert set(b) == {"label", "score", "center", "size", "heading"}
        assert b["label"] in ("Car", "Pedestrian", "Cyclist") and len(b["center"]) == 3 and len(b["size"]) == 3
        assert all(np.isfinite(b["center"])) and min(b["size"]) > 0
    assert (tmp_path / "bev.png").stat().st_size > 1000
    assert "out_of_range" in capsys.readouterr().out  # the sweep reaches past the tiny model's 12.8 m


def test_bad_inputs(scan, weights, tmp_path):
    from omnisense.commands import detect

    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 33)
    with pytest.raises(PointCloudFileError, match="multiple of 16"):
        detect.run(_args(bad, weights, tmp_path))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(PointCloudFileError, match="empty.bin: empty"):  # the reader names the file
        detect.run(_args(empty, weights, tmp_path))
    far = tmp_path / "far.bin"
    np.full((10, 4), 1000.0, np.float32).tofile(far)
    with pytest.raises(PointCloudValueError, match="range"):
        detect.run(_args(far, weights, tmp_path))
    with pytest.raises(WeightsError, match="holds registration weights"):
        detect.run(_args(scan[0], "roitr_small_cgal", tmp_path))


def test_prepare_points_counts_what_it_filters():
    pts = np.array([[1, 2, -1, 0.5], [np.nan, 0, 0, 0.1], [1, 1, -1, np.inf], [200, 0, 0, 0.2], [2, 2, -1, 40]],
                   np.float32)
    out, counts = prepare_points(pts, (-10, -10, -5, 10, 10, 3))
    assert counts == {"input": 5, "non_finite": 1, "bad_intensity": 1, "intensity_rescaled": 4, "out_of_range": 1,
                      "used": 3}
    assert np.isfinite(out).all() and out[:, 3].max() <= 1
    with pytest.raises(PointCloudValueError):
        prepare_points(np.full((3, 4), np.nan, np.float32), (-10, -10, -5, 10, 10, 3))


@pytest.mark.parametrize("model_name", ["flatformer", "dsvt-pillar"])
def test_real_corridor_sweep_runs_clean(model_name, sample_data, tmp_path):
    """A real 3D laser scan (octomap's corridor, a sensor the detectors never saw) through the shipped models."""
    from omnisense.commands import detect

    raw = np.loadtxt(sample_data("octomap-corridor") / "scan.dat", dtype=np.float32)
    np.save(tmp_path / "corridor.npy", raw[:, :3])
    args = _args(tmp_path / "corridor.npy", None, tmp_path, model=model_name)
    assert detect.run(args) == 0
    boxes = json.loads(args.output.read_text())
    pts = raw[np.isfinite(raw).all(1)]
    for b in boxes:
        assert all(np.isfinite(b["center"])) and all(np.isfinite(b["size"])) and np.isfinite(b["heading"])
        near = pts[np.hypot(pts[:, 0] - b["center"][0], pts[:, 1] - b["center"][1]) < 0.5 * np.hypot(*b["size"][:2]) + 1]
        if len(near) >= 3:
            assert b["center"][2] - b["size"][2] / 2 >= np.percentile(near[:, 2], 2) - 0.31
