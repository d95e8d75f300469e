"""The classical baseline: open3d FPFH features + RANSAC on feature matches, and point-to-plane ICP refinement.

Parameters follow open3d's global-registration tutorial, in multiples of the voxel size: normals within 2
voxels, FPFH within 5 voxels (max 100 neighbours), RANSAC distance 1.5 voxels with the edge-length (0.9) and
distance checkers, ICP within 1.5 voxels (point-to-plane).
"""

from __future__ import annotations

import time

import numpy as np

from perception3d.registration.pipeline import RegistrationResult, auto_voxel_size, check_points


def _cloud(points: np.ndarray, voxel: float):
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    pcd = pcd.voxel_down_sample(voxel)
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * voxel, max_nn=30))
    return pcd


def fpfh_ransac(source: np.ndarray, target: np.ndarray, *, voxel_size: float | None = None,
                num_points: int = 2048, max_iterations: int = 100000, confidence: float = 0.999,
                mutual_filter: bool = False, seed: int = 0) -> RegistrationResult:
    """FPFH + RANSAC (open3d): the source -> target transform of two raw clouds [N, 3], [M, 3].

    Args:
        voxel_size: in the clouds' unit; default: the size that leaves about `num_points` target points.
    """
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    start = time.perf_counter()
    source, target = check_points(source, "SOURCE"), check_points(target, "TARGET")
    voxel = voxel_size if voxel_size is not None else auto_voxel_size(target, num_points)
    reg = o3d.pipelines.registration
    o3d.utility.random.seed(seed)
    src, tgt = _cloud(source, voxel), _cloud(target, voxel)
    param = o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100)
    src_f, tgt_f = reg.compute_fpfh_feature(src, param), reg.compute_fpfh_feature(tgt, param)
    distance = 1.5 * voxel
    result = reg.registration_ransac_based_on_feature_matching(
        src, tgt, src_f, tgt_f, mutual_filter, distance, reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(distance)],
        reg.RANSACConvergenceCriteria(max_iterations, confidence))
    corr = np.asarray(result.correspondence_set)
    src_pts, tgt_pts = np.asarray(src.points), np.asarray(tgt.points)
    src_c = src_pts[corr[:, 0]] if len(corr) else np.zeros((0, 3))
    tgt_c = tgt_pts[corr[:, 1]] if len(corr) else np.zeros((0, 3))
    return RegistrationResult(np.asarray(result.transformation).copy(), tgt_c, src_c, np.ones(len(corr)),
                              "fpfh", time.perf_counter() - start, float(voxel))


def icp_refine(source: np.ndarray, target: np.ndarray, init: np.ndarray, voxel_size: float,
               max_iterations: int = 50, fine: float = 0.25) -> np.ndarray:
    """Point-to-plane ICP from `init` [4, 4]; returns the refined source -> target transform.

    ICP runs on the registration's voxel grid (within 1.5 voxels), then, where the clouds are denser than that grid
    (a lidar sweep registered at 1-2 m voxels), once more on a grid `fine` times as fine, but not finer than twice the
    target's point spacing: a 2 m grid leaves 0.2-0.5 m of translation error on sweeps whose points are 0.1 m apart.
    """
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    from perception3d.registration.pipeline import point_spacing

    reg = o3d.pipelines.registration
    transform = np.asarray(init, np.float64)
    fine_voxel = max(fine * voxel_size, 2 * point_spacing(np.asarray(target, np.float64)))
    for voxel in (voxel_size, fine_voxel) if fine_voxel < 0.75 * voxel_size else (voxel_size,):
        src, tgt = _cloud(source, voxel), _cloud(target, voxel)
        result = reg.registration_icp(src, tgt, 1.5 * voxel, transform, reg.TransformationEstimationPointToPlane(),
                                      reg.ICPConvergenceCriteria(max_iteration=max_iterations))
        transform = np.asarray(result.transformation).copy()
    return transform


def evaluate_alignment(source: np.ndarray, target: np.ndarray, transform: np.ndarray,
                       distance: float) -> tuple[float, float]:
    """open3d's fitness (share of source points with a target point within `distance`) and inlier RMSE."""
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(source, np.float64)))
    tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(target, np.float64)))
    ev = o3d.pipelines.registration.evaluate_registration(src, tgt, distance, np.asarray(transform, np.float64))
    return float(ev.fitness), float(ev.inlier_rmse)
