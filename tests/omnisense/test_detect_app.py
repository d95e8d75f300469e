import json

import numpy as np
import pytest
import torch

from omnisense.weights import WeightsMeta, save_weights
from perception3d import PointCloudValueError
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


def _detect(*argv, **flags):
    """`omnisense detect ARGV --flag value ...` on the CPU; returns the exit status."""
    from omnisense.cli import main

    extra = [x for k, v in flags.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    return main(["detect", *map(str, argv), "--device", "cpu", *extra])


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detect_writes_boxes_and_plot(scan, weights, tmp_path, capsys):
    out = tmp_path / "boxes.jsonl"
    assert _detect(scan[0], weights=weights, output=out, plot=tmp_path / "bev.png", score_threshold=0.0) == 0
    (record,) = _records(out)
    assert record["schema"] == "omnisense.detection/1" and record["input"] == str(scan[0])
    assert record["frame"] == "sensor" and record["score_threshold"] == 0.0 and record["model"] == str(weights)
    assert record["boxes"], "a random tiny detector still proposes boxes at threshold 0"
    for b in record["boxes"]:
        assert set(b) == {"label", "score", "center", "size", "heading"}
        assert b["label"] in ("Car", "Pedestrian", "Cyclist") and len(b["center"]) == 3 and len(b["size"]) == 3
        assert all(np.isfinite(b["center"])) and min(b["size"]) > 0
    assert [b["score"] for b in record["boxes"]] == sorted((b["score"] for b in record["boxes"]), reverse=True)
    assert (tmp_path / "bev.png").stat().st_size > 1000
    assert record["counts"]["out_of_range"] > 0  # the sweep reaches past the tiny model's 12.8 m
    assert "out_of_range" in capsys.readouterr().err


def test_score_threshold_drops_low_boxes(scan, weights, tmp_path):
    assert _detect(scan[0], weights=weights, output=tmp_path / "all.jsonl", score_threshold=0.0) == 0
    (everything,) = _records(tmp_path / "all.jsonl")
    cut = float(np.median([b["score"] for b in everything["boxes"]]))
    assert _detect(scan[0], weights=weights, output=tmp_path / "cut.jsonl", score_threshold=cut) == 0
    (kept,) = _records(tmp_path / "cut.jsonl")
    assert kept["boxes"] == [b for b in everything["boxes"] if b["score"] >= cut]
    assert kept["counts"]["below_threshold"] == len(everything["boxes"]) - len(kept["boxes"]) > 0
    assert _detect(scan[0], weights=weights, score_threshold=1.5) == 2
    from omnisense.commands.detect import DEFAULT_SCORE_THRESHOLD, SHIPPED, SHIPPED_SCORE_THRESHOLDS

    assert _detect(scan[0], weights=weights, output=tmp_path / "default.jsonl") == 0
    assert _records(tmp_path / "default.jsonl")[0]["score_threshold"] == DEFAULT_SCORE_THRESHOLD  # not shipped
    assert set(SHIPPED_SCORE_THRESHOLDS) == set(SHIPPED.values())  # every shipped detector has its measured one


def test_kitti_label_files_round_trip_through_the_kitti_reader(scan, weights, tmp_path):
    """--kitti-dir writes label_2 lines that the KITTI reader maps back to the same lidar boxes."""
    from perception3d.detection.data import read_kitti_calib, read_kitti_label
    from perception3d.detection.simulator import calib_text

    assert _detect(scan[0], weights=weights, output=tmp_path / "b.jsonl", kitti_dir=tmp_path / "kitti",
                   score_threshold=0.0) == 0
    (record,) = _records(tmp_path / "b.jsonl")
    label = tmp_path / "kitti" / f"{scan[0].stem}.txt"
    lines = label.read_text().splitlines()
    assert len(lines) == len(record["boxes"]) and all(len(line.split()) == 16 for line in lines)
    (tmp_path / "calib.txt").write_text(calib_text())  # the simulated set's calib: the default camera
    boxes, names, _, _ = read_kitti_label(label, read_kitti_calib(tmp_path / "calib.txt"))
    want = np.array([[*b["center"], *b["size"], b["heading"]] for b in record["boxes"]])
    assert names == [b["label"] for b in record["boxes"]]
    np.testing.assert_allclose(boxes[:, :6], want[:, :6], atol=2e-3)
    np.testing.assert_allclose(np.cos(boxes[:, 6] - want[:, 6]), 1.0, atol=1e-5)
    assert [float(line.split()[-1]) for line in lines] == pytest.approx([b["score"] for b in record["boxes"]],
                                                                        abs=1e-4)


@pytest.mark.parametrize("ext", [".xyz", ".pcd", ".ply", ".npy", ".txt"])
def test_reads_every_point_format_of_register_and_classify(scan, weights, tmp_path, ext):
    from perception3d.io import write_points

    xyz = np.fromfile(scan[0], np.float32).reshape(-1, 4)[:, :3]
    path = write_points(tmp_path / f"sweep{ext}", xyz) if ext != ".txt" else tmp_path / "sweep.txt"
    if ext == ".txt":
        np.savetxt(path, xyz)
    assert _detect(path, weights=weights, output=tmp_path / "o.jsonl") == 0
    (record,) = _records(tmp_path / "o.jsonl")
    assert record["counts"]["input"] == len(xyz)


def test_bad_inputs_are_reported_and_skipped(scan, weights, tmp_path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 33)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    far = tmp_path / "far.bin"
    np.full((10, 4), 1000.0, np.float32).tofile(far)
    out = tmp_path / "o.jsonl"
    assert _detect(bad, empty, far, scan[0], weights=weights, output=out) == 2
    records = _records(out)
    assert [r["schema"] for r in records] == ["omnisense.error/1"] * 3 + ["omnisense.detection/1"]
    for record, reason in zip(records, ("multiple of 16", "empty", "range")):
        assert reason in record["error"]
    err = capsys.readouterr().err
    assert "1 ok, 3 failed" in err and all(f.name in err for f in (bad, empty, far))
    assert _detect(scan[0], weights="roitr_small_cgal") == 2
    assert "holds registration weights" in capsys.readouterr().err


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
    raw = np.loadtxt(sample_data("octomap-corridor") / "scan.dat", dtype=np.float32)
    np.save(tmp_path / "corridor.npy", raw[:, :3])
    out = tmp_path / "boxes.jsonl"
    assert _detect(tmp_path / "corridor.npy", model=model_name, output=out, score_threshold=0.0) == 0
    boxes = _records(out)[0]["boxes"]
    pts = raw[np.isfinite(raw).all(1)]
    for b in boxes:
        assert all(np.isfinite(b["center"])) and all(np.isfinite(b["size"])) and np.isfinite(b["heading"])
        near = pts[np.hypot(pts[:, 0] - b["center"][0], pts[:, 1] - b["center"][1]) < 0.5 * np.hypot(*b["size"][:2]) + 1]
        if len(near) >= 3:
            assert b["center"][2] - b["size"][2] / 2 >= np.percentile(near[:, 2], 2) - 0.31
