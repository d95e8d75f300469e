"""The pair generator, the rotated variant and the readers (generic CSV pair list, 3DMatch gt.log and info
pickles, KITTI odometry), on tiny files written here."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d import PointCloudFileError
from perception3d.registration.metrics import rotation_error, transform_points
from perception3d.registration.pairs import (
    PairConfig,
    PairEntry,
    kitti_pairs,
    make_pair,
    overlapping_crops,
    read_3dmatch_benchmark,
    read_3dmatch_info,
    read_gt_log,
    read_pair_list,
    rotate_pair,
    uniform_rotation,
    write_pair_list,
)


def test_uniform_rotation_is_a_rotation():
    r = uniform_rotation(np.random.default_rng(0))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert abs(np.linalg.det(r) - 1) < 1e-12


def test_uniform_rotation_angles_spread_over_so3():
    # Uniform SO(3): the rotation angle has density (1 - cos a) / pi, mean pi/2 + 2/pi (about 126.5 degrees).
    rng = np.random.default_rng(0)
    angles = [rotation_error(uniform_rotation(rng), np.eye(3)) for _ in range(4000)]
    assert abs(np.mean(angles) - np.degrees(np.pi / 2 + 2 / np.pi)) < 2.0


def test_make_pair_transform_maps_source_onto_the_cloud():
    rng = np.random.default_rng(1)
    cloud = rng.normal(size=(3000, 3))
    src, tgt, t = make_pair(cloud, rng, PairConfig(noise=0.0))
    moved = transform_points(src, t)
    d = np.min(np.linalg.norm(moved[:200, None] - cloud[None], axis=2), axis=1)
    assert d.max() < 1e-9  # every source point is a cloud point once moved by the transform
    assert 0.3 * len(cloud) < len(src) < len(cloud) and 0.3 * len(cloud) < len(tgt) < len(cloud)
    assert rotation_error(t, np.eye(4)) > 1.0


def test_pair_list_round_trip(tmp_path):
    t = np.eye(4)
    t[:3, 3] = [1, 2, 3]
    entries = [PairEntry(tmp_path / "a.npy", tmp_path / "b.npy", t)]
    write_pair_list(tmp_path / "pairs.csv", entries)
    back = read_pair_list(tmp_path / "pairs.csv")
    assert back[0].source == tmp_path / "a.npy" and back[0].target == tmp_path / "b.npy"
    np.testing.assert_array_equal(back[0].transform, t)


@pytest.mark.parametrize("text", ["", "a,b\n", "source,target," + ",".join(["t"] * 16) + "\nx.npy,y.npy,1,2\n",
                                  "source,target," + ",".join(["t"] * 16) + "\nx.npy,y.npy,"
                                  + ",".join(["1"] * 16) + "\n"])
def test_bad_pair_lists(tmp_path, text):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(PointCloudFileError):
        read_pair_list(tmp_path / "p.csv")


GT_LOG = """0\t 1\t 60
 1 0 0 0.5
 0 1 0 0
 0 0 1 0
 0 0 0 1
3 7 60
 0 -1 0 0
 1 0 0 0
 0 0 1 2
 0 0 0 1
"""


def test_gt_log(tmp_path):
    scene = tmp_path / "7-scenes-redkitchen"
    scene.mkdir()
    (scene / "gt.log").write_text(GT_LOG)
    pairs = read_gt_log(scene / "gt.log")
    assert [(p.source_index, p.target_index) for p in pairs] == [(1, 0), (7, 3)]
    assert pairs[1].transform[2, 3] == 2 and pairs[0].scene == "7-scenes-redkitchen"
    np.save(scene / "cloud_bin_7.npy", np.zeros((1, 3)))
    src, tgt = pairs[1].fragment_paths(tmp_path)
    assert src.name == "cloud_bin_7.npy" and tgt.name.startswith("cloud_bin_3")
    assert len(read_3dmatch_benchmark(tmp_path)) == 2


def test_truncated_gt_log(tmp_path):
    (tmp_path / "gt.log").write_text(GT_LOG[: GT_LOG.index("3 7")] + "3 7 60\n 1 0 0 0\n")
    with pytest.raises(PointCloudFileError, match="multiple of 5"):
        read_gt_log(tmp_path / "gt.log")
    with pytest.raises(PointCloudFileError):
        read_3dmatch_benchmark(tmp_path / "nothing")


def test_rotated_variant_keeps_the_pair_consistent():
    rng = np.random.default_rng(0)
    src, tgt, gt = make_pair(rng.normal(size=(500, 3)), rng, PairConfig(keep=(1.0, 1.0), density=(1.0, 1.0), noise=0.0))
    src_r, tgt_r, gt_r = rotate_pair(src, tgt, gt, rng)
    assert rotation_error(gt_r, gt) > 1.0  # the clouds really moved
    # every source point still lands where the target's copy of it went
    np.testing.assert_allclose(np.sort(transform_points(src_r, gt_r), 0), np.sort(tgt_r, 0), atol=1e-9)


def test_3dmatch_info_pickle(tmp_path):
    import pickle

    rot = np.stack([uniform_rotation(np.random.default_rng(i)) for i in range(2)])
    info = {"src": ["7-scenes-chess/cloud_bin_1.pth", "sun3d-home/cloud_bin_5.pth"],
            "tgt": ["7-scenes-chess/cloud_bin_0.pth", "sun3d-home/cloud_bin_2.pth"],
            "rot": rot, "trans": np.arange(6.0).reshape(2, 3, 1), "overlap": np.array([0.5, 0.2])}
    (tmp_path / "3DMatch.pkl").write_bytes(pickle.dumps(info))
    entries = read_3dmatch_info(tmp_path / "3DMatch.pkl", root=tmp_path / "data")
    assert [e.source.name for e in entries] == ["cloud_bin_1.pth", "cloud_bin_5.pth"]
    assert entries[1].target == tmp_path / "data" / "sun3d-home" / "cloud_bin_2.pth"
    np.testing.assert_allclose(entries[1].transform[:3, :3], rot[1])
    np.testing.assert_allclose(entries[1].transform[:3, 3], [3, 4, 5])


class _RunsCode:
    def __reduce__(self):
        return (print, ("a pickle ran code",))


@pytest.mark.parametrize("payload", ["code", "truncated", "not a dict"])
def test_3dmatch_info_pickle_refuses_code_and_bad_files(tmp_path, capsys, payload):
    import pickle

    data = {"code": pickle.dumps({"src": [_RunsCode()], "tgt": [], "rot": [], "trans": []}),
            "truncated": pickle.dumps({"src": ["a"], "tgt": ["b"], "rot": [np.eye(3)], "trans": [np.zeros(3)]})[:-9],
            "not a dict": pickle.dumps([1, 2, 3])}[payload]
    (tmp_path / "x.pkl").write_bytes(data)
    with pytest.raises(PointCloudFileError):
        read_3dmatch_info(tmp_path / "x.pkl")
    assert "ran code" not in capsys.readouterr().out


def _kitti_sequence(root, n=40, step=1.5):
    """A fake sequence 08: the car drives along z (camera forward) and turns slowly; a non-trivial Tr."""
    seq = root / "sequences" / "08"
    (seq / "velodyne").mkdir(parents=True)
    (root / "poses").mkdir()
    rows = []
    for k in range(n):
        yaw = 0.02 * k
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
        pose[:3, 3] = [0.1 * k, 0.0, step * k]
        rows.append(pose[:3].reshape(-1))
    np.savetxt(root / "poses" / "08.txt", np.array(rows))
    tr = np.eye(4)
    tr[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]  # velodyne (x forward, z up) -> camera (z forward, y down)
    tr[:3, 3] = [0.0, -0.08, -0.27]
    tr_text = " ".join(map(str, tr[:3].reshape(-1)))
    (seq / "calib.txt").write_text("P0: " + " ".join(["0"] * 12) + f"\nTr: {tr_text}\n")
    return np.array([np.vstack([r.reshape(3, 4), [0, 0, 0, 1]]) for r in rows]), tr


def test_kitti_pairs_follow_fcgf_selection_and_frames(tmp_path):
    poses, tr = _kitti_sequence(tmp_path)
    pairs = kitti_pairs(tmp_path, 8)
    frames = [(int(e.target.stem), int(e.source.stem)) for e in pairs]
    # 1.5 m per frame: frame i + 7 is the first more than 10 m away, so j = i + 6; the next pair starts at j + 1
    assert frames[:3] == [(0, 6), (7, 13), (14, 20)]
    assert pairs[0].source == tmp_path / "sequences" / "08" / "velodyne" / "000006.bin"
    # a point seen by the lidar at frame j lands, through the pair's transform, where frame i's lidar sees it
    x_j = np.array([5.0, -2.0, 1.0, 1.0])
    world = poses[6] @ tr @ x_j
    np.testing.assert_allclose(poses[0] @ tr @ pairs[0].transform @ x_j, world, atol=1e-9)


def test_kitti_missing_or_bad_files(tmp_path):
    with pytest.raises(PointCloudFileError, match="poses"):
        kitti_pairs(tmp_path, 8)
    _kitti_sequence(tmp_path)
    (tmp_path / "sequences" / "08" / "calib.txt").write_text("P0: 1 2 3\n")
    with pytest.raises(PointCloudFileError, match="Tr"):
        kitti_pairs(tmp_path, 8)


def test_overlapping_crops_of_a_scene():
    rng = np.random.default_rng(0)
    scene = np.c_[rng.uniform(0, 1000, 20000), rng.uniform(0, 400, 20000), rng.normal(0, 5, 20000)] + [6e5, 8e5, 100]
    src, tgt, gt = overlapping_crops(scene, rng, window=0.75)
    assert abs(len(src) / len(scene) - 0.75) < 0.02 and abs(len(tgt) / len(scene) - 0.75) < 0.02
    src_in_tgt = transform_points(src, gt)
    assert abs(src_in_tgt[:, 0].min() + 500) < 5 and abs(tgt[:, 0].max() - 500) < 5  # centred, split along x
    shared = (src_in_tgt[:, 0] >= tgt[:, 0].min()).mean()  # half of each window is shared with the other
    assert abs(shared - 2 / 3) < 0.02
    assert rotation_error(gt, np.eye(4)) > 1.0
