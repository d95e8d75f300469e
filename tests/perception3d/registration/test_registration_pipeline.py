"""The voxel size chosen for a cloud: about the asked number of points, never below the cloud's own spacing."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d.registration.pipeline import auto_voxel_size, point_spacing, voxel_downsample


def _grid(step: float, n: int = 40) -> np.ndarray:
    """A flat n x n grid of points `step` apart, slightly jittered."""
    u, v = np.meshgrid(np.arange(n) * step, np.arange(n) * step)
    pts = np.stack([u.ravel(), v.ravel(), np.zeros(n * n)], 1)
    return pts + np.random.default_rng(0).normal(scale=0.01 * step, size=pts.shape)


def test_point_spacing():
    assert abs(point_spacing(_grid(0.5)) - 0.5) < 0.02


def test_auto_voxel_leaves_about_the_asked_points():
    pts = _grid(0.01, 100)  # 10000 points
    voxel = auto_voxel_size(pts, 2048)
    assert 1500 < len(voxel_downsample(pts, voxel)) <= 2048


def test_auto_voxel_of_a_sparse_cloud_is_its_spacing():
    """1600 points asked to give 2048: the voxel stays at the spacing (it used to fall to extent / 4000)."""
    pts = _grid(0.5)
    voxel = auto_voxel_size(pts, 2048)
    assert abs(voxel - point_spacing(pts)) < 1e-9 and voxel > 0.4


def test_voxel_downsample_means_per_voxel_in_row_order():
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(5000, 3)) * [3.0, 1.0, 0.2] + [100.0, -50.0, 7.0]
    got = voxel_downsample(pts, 0.25)
    cells = np.floor(pts / 0.25).astype(np.int64)
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    want = np.stack([np.bincount(inverse.reshape(-1), weights=pts[:, i]) for i in range(3)], 1)
    want /= np.bincount(inverse.reshape(-1))[:, None]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_voxel_downsample_is_bit_for_bit_the_add_at_sums():
    # The registration results must not move with the faster sums: the same float64 additions in point order.
    from perception3d.registration.pipeline import _voxel_keys

    rng = np.random.default_rng(5)
    pts = rng.normal(size=(20000, 3)) * [40.0, 40.0, 3.0] + [0.3, -0.7, 1.1]
    got = voxel_downsample(pts, 0.8)
    _, inverse, counts = np.unique(_voxel_keys(pts, 0.8), return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse.reshape(-1), pts)
    assert np.array_equal(got, sums / counts[:, None])


def test_voxel_too_small_for_the_extent_is_a_clear_error():
    from perception3d._errors import PointCloudValueError

    pts = np.array([[0.0, 0.0, 0.0], [1e6, 1e6, 1e6]])
    with pytest.raises(PointCloudValueError, match="too small"):
        voxel_downsample(pts, 1e-9)


def test_auto_voxel_counts_equal_unique_and_keys_take_bounds():
    from perception3d.registration.pipeline import _count_occupied, _voxel_keys

    rng = np.random.default_rng(7)
    pts = rng.normal(size=(20000, 3)) * [30.0, 10.0, 2.0] + [500.0, -20.0, 3.0]
    for voxel in (0.05, 0.5, 3.0, 40.0):  # wide key ranges (np.unique) and narrow ones (marking)
        keys = _voxel_keys(pts, voxel)
        assert _count_occupied(keys) == len(np.unique(keys))
        assert np.array_equal(_voxel_keys(pts, voxel, (pts.min(0), pts.max(0))), keys)
        cells = np.floor(pts / voxel).astype(np.int64)
        assert _count_occupied(keys) == len(np.unique(cells, axis=0))
