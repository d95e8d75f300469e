"""`detect` and `register` on sweeps of a native lidar capture (the real Ouster sample), through the CLI.

(The cli branch's version of main's test: the commands write JSON Lines records and keep going past a bad input.
It needs `fusion.logs`, which main has; on a checkout without it the tests skip.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnisense.cli import main

OS1 = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"


@pytest.fixture(scope="module")
def root(sample_data):
    from omnisense.data import SOURCES

    pytest.importorskip("fusion.logs")
    pytest.importorskip("ouster.sdk")
    if "ouster-samples" not in SOURCES:
        pytest.skip("this checkout has no ouster-samples source (main has)")
    return sample_data("ouster-samples")


def test_a_missing_sweep_is_a_one_line_error(root, tmp_path, capsys):
    out = tmp_path / "b.jsonl"
    assert main(["detect", str(root / OS1), "--frame", "5", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "has 3 sweeps; there is no sweep 5" in err
    assert not out.exists()  # one input that fails writes nothing


@pytest.mark.slow
def test_detect_reads_a_real_sweep(root, tmp_path, capsys):
    out = tmp_path / "boxes.jsonl"
    assert main(["detect", str(root / OS1), "--frame", "1", "--output", str(out)]) == 0
    assert "107357 points" in capsys.readouterr().err
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["sweep"] == 1 and all(np.isfinite(b["center"]).all() for b in record["boxes"])


@pytest.mark.slow
def test_demo_real_sweep_counts_the_boxes_detect_reports(root, tmp_path, capsys):
    from omnisense.demo import DemoContext
    from omnisense.demo.detection import OUSTER_SWEEP, _real_sweep

    line, png = _real_sweep(DemoContext(out=tmp_path))
    out = tmp_path / "boxes.jsonl"
    assert main(["detect", str(root / OUSTER_SWEEP), "--frame", "1", "--output", str(out)]) == 0
    (record,) = [json.loads(row) for row in out.read_text().splitlines()]
    assert f"({len(record['boxes'])} at or above the command's default threshold {record['score_threshold']}," in line
    assert png.exists()


@pytest.mark.slow
def test_register_consecutive_osf_sweeps_against_the_poses(root, tmp_path):
    from perception3d.registration.metrics import translation_error
    from perception3d.sensors import read_kitti_poses, relative_pose

    osf = str(root / "osfs" / "OS-1-128_v2.3.0_1024x10_lb_n3.osf")
    out = tmp_path / "result.jsonl"
    assert main(["register", osf, osf, "--frames", "2", "1", "--method", "fpfh", "--voxel-size", "0.5",
                 "--refine", "icp", "--output", str(out)]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    truth = relative_pose(read_kitti_poses(root / "pcaps" / "OS-1-128_v2.3.0_1024x10_lb_n3_poses_kitti.txt"), 2, 1)
    assert record["frames"] == [2, 1]
    assert translation_error(np.array(record["transform"]).reshape(4, 4), truth) < 0.05
