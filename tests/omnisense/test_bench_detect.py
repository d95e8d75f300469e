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
    assert report.context["frames"] == [str(scan)] and {r["frame"] for r in report.rows} == {str(scan)}


def test_bench_detect_without_ouster_sdk_skips_the_real_sweeps_in_one_line(monkeypatch, capsys):
    import importlib.util

    from omnisense.bench import detect

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ouster") else real(name, *a))
    monkeypatch.setattr(detect, "_simulated", lambda: simulate_frame(np.random.default_rng(1),
                                                                      LidarConfig(beams=16, azimuth_steps=180)).points)
    args = argparse.Namespace(input=None, variants=["flatformer_tiny"], repeat=1, warmup=0, device="cpu",
                              thread_rows="1")
    report = detect.run(args)
    assert report.context["frames"] == [detect.SIMULATED]
    lines = [line for line in capsys.readouterr().out.splitlines() if "Ouster" in line]
    assert lines == ["real Ouster sweeps skipped: ouster-sdk is not installed (pip install -e '.[ouster]')"]
    assert lines[0] in report.notes


def test_bench_detect_measures_the_real_ouster_sweeps(monkeypatch):
    import pytest

    pytest.importorskip("ouster.sdk")
    from omnisense.bench import detect

    pcaps, why = detect.ouster_samples()
    if why:
        pytest.skip(why)
    monkeypatch.setattr(detect, "_simulated", lambda: simulate_frame(np.random.default_rng(1),
                                                                      LidarConfig(beams=16, azimuth_steps=180)).points)
    args = argparse.Namespace(input=None, variants=["flatformer_tiny"], repeat=1, warmup=0, device="cpu",
                              thread_rows="1")
    report = detect.run(args)
    real = [f for f in report.context["frames"] if "real Ouster" in f]
    assert len(real) == len(pcaps) >= 1
    for name in real:
        rows = [r for r in report.rows if r["frame"] == name]
        assert [r["job"] for r in rows][0] == "flatformer_tiny whole frame"
        assert {r["peer"] for r in rows} == {"10 Hz budget", "spconv PointToVoxel", "torchvision nms (axis-aligned)"}
    assert all(d["points_in"] > 1000 for d in report.details if d["frame"] in real)


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
