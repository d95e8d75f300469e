"""`omnisense bench kernels`: the frame, the scan reader, the padded-window baseline, one small run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from omnisense.bench import _kernels as bench
from perception3d import PointCloudFileError


def test_synthetic_sweep_is_a_lidar_frame():
    points = bench.synthetic_sweep(4000, seed=1)
    assert points.shape == (4000, 4) and points.dtype == np.float32 and np.isfinite(points).all()
    ground = np.abs(points[:, 2] + 1.8) < 0.1
    assert 0.3 < ground.mean() < 0.99  # mostly ground, some boxes
    rng = np.linalg.norm(points[:, :2], axis=1)
    assert rng.max() < 75.0 and rng.min() > 2.0


def test_read_scan(tmp_path):
    good = tmp_path / "scan.bin"
    np.arange(40, dtype=np.float32).tofile(good)
    assert bench.read_scan(good).shape == (10, 3)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 18)
    with pytest.raises(PointCloudFileError):
        bench.read_scan(bad)
    with pytest.raises(PointCloudFileError):
        bench.read_scan(tmp_path / "missing.bin")


def test_pillarise_matches_floor_and_unique():
    points = bench.synthetic_sweep(3000, seed=4)
    coords = bench.pillarise(points)
    cell = np.floor((points[:, :2] + 74.88) / 0.32).astype(np.int64)
    inside = (cell >= 0).all(1) & (cell < 468).all(1) & (points[:, 2] >= -2) & (points[:, 2] < 4)
    expect = {(int(y), int(x)) for x, y in cell[inside]}
    assert {(int(y), int(x)) for y, x in coords[:, 2:].tolist()} == expect
    assert (coords[:, :2] == 0).all()


def test_padded_windows_cover_every_token_once():
    coords = bench.pillarise(bench.synthetic_sweep(3000, seed=2))
    index, mask, slot = bench.padded_windows(coords, 12)
    assert index.shape[1] == int((~mask).sum(1).max())  # padded to the largest window
    real = index[~mask]
    assert sorted(real.tolist()) == list(range(coords.shape[0]))
    assert (index.flatten()[slot] == torch.arange(coords.shape[0])).all()
    win = (coords[:, 2] // 12) * 1000 + coords[:, 3] // 12
    for row in range(index.shape[0]):
        assert len(torch.unique(win[index[row][~mask[row]]])) == 1


@pytest.mark.slow
def test_small_run(tmp_path):
    np.save(tmp_path / "scan.npy", bench.synthetic_sweep(3000, seed=3))
    args = argparse.Namespace(device="cpu", input=tmp_path / "scan.npy", points=0, seed=0, repeat=1, threads=None, dtype="float32",
                              thread_rows="1")
    from omnisense.bench import kernels

    report = kernels.run(args)
    names = [row.get("layer") or row["job"] for row in report.rows]
    assert any(n.startswith("ours: flattened-window") for n in names)
    assert any(n.startswith("baseline: padded windows 12") for n in names)
    assert all(row["ms"] is None or row["ms"] > 0 for row in report.rows)
    assert report.context["points"] == 3000
    assert report.context["flattened-window speed-up over padded windows (target >= 3)"] > 0
    jobs = {row["job"]: row for row in report.rows if "job" in row}
    assert set(jobs) == {"attention core, flattened windows (FlatFormer)", "attention core, DSVT sets",
                         "voxel assignment (dynamic_voxelize)"}
    assert all(row["ratio"] > 0 and row["threads"] == 1 for row in jobs.values())


def test_kernels_input_reads_the_first_sweep_of_a_capture():
    import numpy as np
    import pytest

    pytest.importorskip("ouster.sdk")
    from omnisense.bench import detect
    from omnisense.bench._kernels import read_scan

    pcaps, why = detect.ouster_samples()
    if why:
        pytest.skip(why)
    from fusion.logs import read_scan as read_log_scan

    xyz = read_scan(pcaps[0])
    assert xyz.dtype == np.float32 and xyz.ndim == 2 and xyz.shape[1] == 3
    np.testing.assert_array_equal(xyz, read_log_scan(pcaps[0], frame=0)[:, :3])
