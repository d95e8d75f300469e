"""Native lidar captures: the Ouster sample data (pcap + JSON, OSF, a packet bag) decoded into sweeps, KITTI poses,
the Velodyne reader's refusals, and registration of consecutive real sweeps against the shipped poses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception3d._errors import PointCloudFileError
from perception3d.sensors import capture_info, read_kitti_poses, read_sweep, read_sweeps, relative_pose

OS1 = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"
OS1_META = "pcaps/OS-1-128_v2.3.0_1024x10.json"
OS1_OSF = "osfs/OS-1-128_v2.3.0_1024x10_lb_n3.osf"
POSES = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3_poses_kitti.txt"


@pytest.fixture(scope="module")
def root(sample_data):
    pytest.importorskip("ouster.sdk")
    return sample_data("ouster-samples")


@pytest.fixture(scope="module")
def os1(root):
    return list(read_sweeps(root / OS1))


def test_ouster_pcap_has_the_documented_beams_and_columns(root, os1):
    meta = json.loads((root / OS1_META).read_text())
    fmt = meta["data_format"]  # the sensor's own metadata, read without the SDK
    beams, columns = fmt["pixels_per_column"], fmt["columns_per_frame"]
    assert (beams, columns) == (128, 1024) and len(meta["beam_altitude_angles"]) == beams
    assert len(os1) == 3 and [s.index for s in os1] == [0, 1, 2]
    for s in os1:
        assert s.extra["beams"] == beams and s.extra["columns"] == columns
        assert 0.5 * beams * columns < len(s) <= beams * columns  # returns with no range are dropped
        assert s.ring.min() == 0 and s.ring.max() == beams - 1
        assert np.isfinite(s.xyz).all() and 0.3 < np.linalg.norm(s.xyz, axis=1).min()
        # 10 Hz: a sweep's points span one revolution, less one column's period
        assert 0.099 < s.duration < 0.1 and s.time.min() == 0
    assert [len(s) for s in os1] == [107647, 107357, 107532]
    # consecutive sweeps follow each other at the revolution period on the sensor clock
    np.testing.assert_allclose(np.diff([s.stamp for s in os1]), 0.1, atol=2e-3)


def test_pcap_and_osf_of_the_same_capture_agree(root, os1):
    osf = list(read_sweeps(root / OS1_OSF))
    assert len(osf) == len(os1)
    for a, b in zip(os1, osf):
        assert a.stamp == b.stamp
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.time, b.time)


def test_capture_info_and_explicit_metadata(root, os1):
    info = capture_info(root / OS1)
    assert info["sweeps"] == 3 and info["beams"] == 128 and info["points"] == [len(s) for s in os1]
    assert info["sensor"].startswith("Ouster OS-1-128")
    again = read_sweep(root / OS1, 2, meta=root / OS1_META)
    np.testing.assert_array_equal(again.xyz, os1[2].xyz)
    assert again.points().shape == (len(os1[2]), 4) and again.points().dtype == np.float32


def test_packet_bag_is_an_ouster_capture(root):
    info = capture_info(root / "bags" / "512x10_raw.bag")
    assert (info["beams"], info["columns"], info["sweeps"]) == (128, 512, 1)


def test_an_ouster_capture_is_no_velodyne_one(root):
    pytest.importorskip("velodyne_decoder")
    with pytest.raises(PointCloudFileError, match="holds no Velodyne sweep"):
        list(read_sweeps(root / OS1, vendor="velodyne"))  # Ouster packets are not Velodyne ones


def test_velodyne_without_its_decoder_says_what_to_install(root):
    try:
        import velodyne_decoder  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("velodyne-decoder is installed")
    with pytest.raises(PointCloudFileError, match="needs velodyne-decoder"):
        list(read_sweeps(root / OS1, vendor="velodyne"))


def test_bad_requests_are_one_line_errors(root, tmp_path):
    with pytest.raises(PointCloudFileError, match="has 3 sweeps; there is no sweep 3"):
        read_sweep(root / OS1, 3)
    with pytest.raises(PointCloudFileError, match="no such file"):
        read_sweep(tmp_path / "missing.pcap")
    bogus = tmp_path / "bogus.osf"
    bogus.write_bytes(b"\0" * 64)
    with pytest.raises(PointCloudFileError, match="bogus.osf"):
        list(read_sweeps(bogus))
    bad = tmp_path / "poses.txt"
    bad.write_text("1 0 0\n")
    with pytest.raises(PointCloudFileError, match="12 finite numbers"):
        read_kitti_poses(bad)


def test_kitti_poses(root):
    poses = read_kitti_poses(root / POSES)
    assert poses.shape == (3, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4))
    rel = relative_pose(poses, 2, 1)
    np.testing.assert_allclose(poses[1] @ rel, poses[2], atol=1e-12)
    assert 0.2 < np.linalg.norm(rel[:3, 3]) < 0.3  # about 2.5 m/s at 10 Hz


@pytest.mark.slow
@pytest.mark.parametrize("pair", [(1, 0), (2, 1)])
def test_consecutive_sweeps_register_to_the_shipped_poses(root, pair):
    from perception3d.registration import register
    from perception3d.registration.metrics import rotation_error, translation_error

    poses = read_kitti_poses(root / POSES)
    source, target = (read_sweep(root / OS1, k).xyz.astype(np.float64) for k in pair)
    result = register(source, target, method="fpfh", refine="icp", voxel_size=0.5)
    truth = relative_pose(poses, *pair)
    assert translation_error(result.transform, truth) < 0.05 < translation_error(np.eye(4), truth)
    assert rotation_error(result.transform, truth) < 0.3
