import argparse

import numpy as np

from perception3d.detection.simulator import LidarConfig, simulate_frame


def test_bench_detect_reports_stages(tmp_path):
    from omnisense.bench import detect

    f = simulate_frame(np.random.default_rng(1), LidarConfig(beams=32, azimuth_steps=360))
    scan = tmp_path / "s.bin"
    f.points.tofile(scan)
    args = argparse.Namespace(input=scan, variants=["flatformer_tiny", "dsvt_pillar_tiny"], repeat=1, warmup=0,
                              device="cpu")
    report = detect.run(args)
    assert [r["variant"] for r in report.rows] == ["flatformer_tiny", "dsvt_pillar_tiny"]
    for row in report.rows:
        assert row["fps"] > 0 and row["points_used"] <= row["points_in"] == len(f.points)
        for stage in ("voxelise", "backbone", "bev", "head", "nms"):
            assert row[f"{stage}_ms"] >= 0
