"""The pair generator and the readers (generic CSV pair list, 3DMatch gt.log), on tiny files written here."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d import PointCloudFileError
from perception3d.registration.metrics import rotation_error, transform_points
from perception3d.registration.pairs import (
    PairConfig,
    PairEntry,
    make_pair,
    read_3dmatch_benchmark,
    read_gt_log,
    read_pair_list,
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
