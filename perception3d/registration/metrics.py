"""Registration metrics, the Predator / GeoTransformer protocol.

- RRE: relative rotation error, degrees: arccos((trace(R_gt^T R_est) - 1) / 2).
- RTE: relative translation error, in the clouds' unit: ||t_est - t_gt||.
- IR (inlier ratio): share of correspondences whose residual under the ground truth is below tau_1
  (0.1 m on 3DMatch).
- FMR (feature-match recall): share of pairs whose IR exceeds tau_2 (5%).
- RR (registration recall): 3DMatch: share of pairs whose RMSE over the ground-truth correspondences, under
  the estimated transform, is below 0.2 m; KITTI / GeoTransformer style: RRE and RTE below thresholds.
"""

from __future__ import annotations

import numpy as np


def _rt(transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(transform, dtype=np.float64)
    return t[:3, :3], t[:3, 3]


def rotation_error(est: np.ndarray, gt: np.ndarray) -> float:
    """RRE in degrees between two 4x4 (or 3x3) transforms."""
    r_e, r_g = np.asarray(est, np.float64)[:3, :3], np.asarray(gt, np.float64)[:3, :3]
    cos = np.clip((np.trace(r_g.T @ r_e) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def translation_error(est: np.ndarray, gt: np.ndarray) -> float:
    """RTE: Euclidean distance between the translations, in the clouds' unit."""
    return float(np.linalg.norm(_rt(est)[1] - _rt(gt)[1]))


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    r, t = _rt(transform)
    return np.asarray(points, np.float64) @ r.T + t


def inlier_ratio(src_corr: np.ndarray, tgt_corr: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """IR: share of correspondences (source [C, 3] -> target [C, 3]) closer than `threshold` under `gt`."""
    if len(src_corr) == 0:
        return 0.0
    res = np.linalg.norm(transform_points(src_corr, gt) - np.asarray(tgt_corr, np.float64), axis=1)
    return float((res < threshold).mean())


def feature_match_recall(inlier_ratios: list[float] | np.ndarray, threshold: float = 0.05) -> float:
    """FMR: share of pairs whose inlier ratio exceeds `threshold` (5%)."""
    ir = np.asarray(inlier_ratios, dtype=np.float64)
    return float((ir > threshold).mean()) if ir.size else 0.0


def correspondence_rmse(est: np.ndarray, gt: np.ndarray, src_points: np.ndarray) -> float:
    """RMSE of the source points moved by `est` against the same points moved by `gt` (3DMatch RR uses the
    ground-truth correspondences' source points; 0.2 m is the acceptance threshold)."""
    diff = transform_points(src_points, est) - transform_points(src_points, gt)
    return float(np.sqrt((diff**2).sum(1).mean()))


def registration_recall(rre: np.ndarray, rte: np.ndarray, *, max_rre: float, max_rte: float | np.ndarray) -> float:
    """RR by pose errors: share of pairs with RRE < max_rre (degrees) and RTE < max_rte (per pair allowed)."""
    rre, rte = np.asarray(rre, np.float64), np.asarray(rte, np.float64)
    if rre.size == 0:
        return 0.0
    return float(((rre < max_rre) & (rte < np.asarray(max_rte))).mean())


def extent(points: np.ndarray) -> float:
    """The largest side of the axis-aligned bounding box (the unit of the benchmark's RTE threshold)."""
    return float(np.ptp(np.asarray(points)[:, :3], axis=0).max())
