"""The voxel size chosen for a cloud: about the asked number of points, never below the cloud's own spacing."""

from __future__ import annotations

import numpy as np

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
