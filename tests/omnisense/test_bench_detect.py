import argparse

import numpy as np

from perception3d.detection.simulator import LidarConfig, simulate_frame


def test_bench_detect_reports_stages(tmp_path):
    from omnisense.bench import detect

    f = simulate_frame(np.random.default_rng(1), LidarConfig(beams=32, azimuth_steps=360))
    scan = tmp_path / "s.bin"
    f.points.tofile(scan)
    args = argparse.Namespace(input=scan, variants=["flatformer_tiny", "dsvt_pillar_tiny"], repeat=1, warmup=0,
                              device="cpu", thread_rows="1")
    report = detect.run(args)
    frames = [r for r in report.rows if r["job"].endswith("whole frame")]
    assert [(r["job"], r["threads"]) for r in frames] == [("flatformer_tiny whole frame", 1),
                                                         ("dsvt_pillar_tiny whole frame", 1)]
    for row in frames:
        assert row["ms"] > 0 and row["peer_ms"] == 100.0 and row["ratio"] == round(row["ms"] / 100.0, 2)
    for d in report.details:
        assert d["points_used"] <= d["points_in"] == len(f.points)
        assert set(d["stages_ms"]) == {"voxelise", "backbone", "bev", "head", "nms"}
    peers = {r["peer"] for r in report.rows}
    assert {"spconv PointToVoxel", "torchvision nms (axis-aligned)"} <= peers
    for row in report.rows:  # every peer ran (spconv and torchvision are pinned dependencies)
        assert row["ms"] is not None and row["ratio"] is not None and row["cpu_ms"] >= 0, row
    assert report.context["thread_rows"] == [1] and "load_average_start" in report.context


def test_thread_rows():
    import os

    import pytest

    from omnisense._errors import OmnisenseError
    from omnisense.bench._common import thread_rows

    cores = len(os.sched_getaffinity(0))
    assert thread_rows("1,all") == ([1] if cores == 1 else [1, cores])
    assert thread_rows("2, 1, 2") == [2, 1]
    with pytest.raises(OmnisenseError, match="'0'"):
        thread_rows("1,0")
