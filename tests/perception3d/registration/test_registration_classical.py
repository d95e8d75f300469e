"""FPFH + RANSAC and ICP on a synthetic shape under a large rotation; input checks."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d import PointCloudValueError
from perception3d.registration.classical import evaluate_alignment, fpfh_ransac, icp_refine
from perception3d.registration.metrics import rotation_error, transform_points, translation_error
from perception3d.registration.pairs import uniform_rotation


def _shape(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * (1 + 0.2 * np.sin(4 * u[:, :1]) * np.cos(3 * u[:, 1:2])) * [1.0, 0.7, 0.5]


def test_fpfh_ransac_and_icp_recover_a_rotation():
    tgt = _shape()
    gt = np.eye(4)
    gt[:3, :3], gt[:3, 3] = uniform_rotation(np.random.default_rng(3)), [0.2, 0.1, -0.3]
    src = transform_points(tgt, np.linalg.inv(gt))
    result = fpfh_ransac(src, tgt, voxel_size=0.05)
    assert rotation_error(result.transform, gt) < 10 and translation_error(result.transform, gt) < 0.1
    refined = icp_refine(src, tgt, result.transform, 0.05)
    assert rotation_error(refined, gt) < 2.0
    fitness, rmse = evaluate_alignment(src, tgt, refined, 0.05)
    assert fitness > 0.9 and rmse < 0.03


@pytest.mark.parametrize("points", [np.zeros((0, 3)), np.full((100, 3), np.nan), np.random.rand(3, 3)])
def test_bad_clouds(points):
    with pytest.raises(PointCloudValueError):
        fpfh_ransac(points, _shape())
