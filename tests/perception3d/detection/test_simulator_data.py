import numpy as np
import pytest
import torch

from perception3d import PointCloudFileError
from perception3d.detection import data as D
from perception3d.detection import simulator as S


@pytest.fixture(scope="module")
def frame():
    return S.simulate_frame(np.random.default_rng(3), S.LidarConfig(beams=32, azimuth_steps=512))


def test_frame_is_plausible(frame):
    assert frame.points.dtype == np.float32 and frame.points.shape[1] == 4
    assert np.isfinite(frame.points).all()
    assert (frame.points[:, 3] >= 0).all() and (frame.points[:, 3] <= 1).all()
    assert set(frame.names) == set(S.CLASS_NAMES)
    assert (frame.num_points > 0).sum() >= len(frame.names) // 2
    assert ((frame.occlusion >= 0) & (frame.occlusion <= 1)).all()
    # class sizes differ the way cars, people and bikes do
    size = {n: frame.boxes[[k for k, m in enumerate(frame.names) if m == n]] for n in S.CLASS_NAMES}
    assert size["Car"][:, 3].min() > 3.0 and size["Pedestrian"][:, 3].max() < 1.2
    assert 1.3 < size["Cyclist"][:, 3].mean() < 2.2


def test_kitti_round_trip_exact_labels(frame, tmp_path):
    S.write_kitti_frame(tmp_path, 0, frame)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "val.txt").write_text("000000\n")
    pts = D.read_kitti_bin(tmp_path / "training" / "velodyne" / "000000.bin")
    assert np.array_equal(pts, frame.points)
    calib = D.read_kitti_calib(tmp_path / "training" / "calib" / "000000.txt")
    boxes, names, trunc, occ = D.read_kitti_label(tmp_path / "training" / "label_2" / "000000.txt", calib)
    seen = frame.num_points > 0
    assert [n for n, s in zip(names, seen) if s] == [n for n, s in zip(frame.names, seen) if s]
    assert np.abs(boxes[:, :6] - frame.boxes[:, :6]).max() < 1e-3
    dh = (boxes[:, 6] - frame.boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(dh).max() < 1e-3
    # the labelled boxes hold the points the simulator says hit them (noise lets a few slip out)
    inside = D.points_in_boxes(torch.from_numpy(pts), torch.from_numpy(boxes).float()).sum(0).numpy()
    assert inside.sum() >= 0.8 * frame.num_points.sum()
    ds = D.KittiDetectionDataset(tmp_path, "val", S.CLASS_NAMES, (-40, -40, -5, 40, 40, 3))
    item = ds[0]
    assert item["boxes"].shape[0] == int(seen.sum()) and (item["difficulty"] >= -1).all()


def test_bad_bin_size(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\0" * 20)
    with pytest.raises(PointCloudFileError, match="multiple of 16"):
        D.read_kitti_bin(p)


def test_waymo_npy_and_unknown_suffix(tmp_path):
    arr = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    np.save(tmp_path / "f.npy", arr)
    out = D.read_scan(tmp_path / "f.npy")
    assert out.shape == (10, 4) and np.allclose(out[:, 3], np.tanh(arr[:, 3]))
    (tmp_path / "f.xyz").write_text("1 2 3\n")
    with pytest.raises(PointCloudFileError, match="unsupported"):
        D.read_scan(tmp_path / "f.xyz")


def test_difficulty_levels():
    d = D.kitti_difficulty(np.array([0, 1, 2, 0, 3]), np.array([0.0, 0.2, 0.4, 0.0, 0.0]), np.array([100, 30, 6, 3, 100]))
    assert d.tolist() == [0, 1, 2, -1, -1]


def test_augment_keeps_points_in_their_boxes(frame):
    pts, boxes = frame.points, frame.boxes
    before = D.points_in_boxes(torch.from_numpy(pts), torch.from_numpy(boxes)).sum(0)
    p2, b2 = D.augment(pts, boxes, D.AugmentConfig(), np.random.default_rng(1))
    after = D.points_in_boxes(torch.from_numpy(p2).double(), torch.from_numpy(b2)).sum(0)
    assert (before - after).abs().max() <= 2  # float32 rounding at box faces only


def test_generator_tiny(tmp_path):
    summary = S.make_lidar_scenes(tmp_path, seed=0, size="tiny")
    assert summary["train"] == 6 and summary["val"] == 2
    assert len(list((tmp_path / "training" / "velodyne").glob("*.bin"))) == 8


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".las"])
def test_generic_formats_through_perception3d_io(frame, tmp_path, suffix):
    from perception3d.io import write_points

    pts = frame.points[:500]
    path = write_points(tmp_path / f"scan{suffix}", pts[:, :3].astype(np.float64), intensity=pts[:, 3])
    out = D.read_scan(path)
    assert out.shape == (500, 4)
    assert np.allclose(out[:, :3], pts[:, :3], atol=1e-2)
