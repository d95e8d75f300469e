"""How much to trust a registration: the same three measures for every method, and a calibrated decision.

A registration always returns a transform, also for two clouds that share nothing. These measures are taken on
both clouds on the registration's voxel grid, under the estimated transform:

- `overlap`: the share of the source's voxels with a target voxel within 1.5 voxels (open3d's fitness on the
  grid). A 90-degree sector of a sweep against the full next sweep keeps most of it; unrelated clouds keep little.
- `descriptor_fitness`: how much more the FPFH histograms of those close pairs agree (cosine) than those of the
  same source voxels with random target voxels, summed over all source voxels (one without a partner adds 0) and
  divided by what a perfect partner for every voxel would add (1 minus the mean random cosine): 1 when every voxel
  lands on its own shape, about 0 for a random placement. Two flat grounds or two walls put voxels on voxels; the
  local shapes around them agree only where the alignment is right. The division makes clouds comparable whose
  FPFH are more or less alike everywhere (a noisy scan's random cosine is 0.85, a street sweep's 0.72).
- `inlier_ratio`: the share of the method's own correspondences within 2 voxels under the transform (RoITr's
  matches; FPFH + RANSAC's are its inlier set, near 1 by construction, so the decision does not use it).

`registered` is `overlap >= MIN_OVERLAP and descriptor_fitness >= MIN_DESCRIPTOR_FITNESS`, thresholds calibrated
on benchmark pairs (object scans, real and simulated lidar sweeps, RoITr and FPFH, with and without ICP) and on
unrelated pairs (`tools/calibrate_registration.py`; the separation is in docs/registration_confidence.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Calibrated by tools/calibrate_registration.py (docs/registration_confidence.md).
MIN_OVERLAP = 0.40
MIN_DESCRIPTOR_FITNESS = 0.30


@dataclass(frozen=True)
class Confidence:
    """The measures above (shares in [0, 1]; descriptor_fitness a normalised cosine contrast, at most 1) and the
    decision."""

    overlap: float
    descriptor_fitness: float
    inlier_ratio: float
    registered: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _fpfh(points: np.ndarray, voxel: float):
    """Voxelised points [M, 3] and their L2-normalised FPFH [M, 33] (normals within 2 voxels, FPFH within 5)."""
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    from perception3d.registration.classical import _cloud

    pcd = _cloud(points, voxel)
    feat = o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100))
    f = np.asarray(feat.data).T
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return np.asarray(pcd.points), f


def measure(source: np.ndarray, target: np.ndarray, transform: np.ndarray, voxel: float, *,
            src_corr: np.ndarray | None = None, tgt_corr: np.ndarray | None = None, seed: int = 0) -> Confidence:
    """The confidence of `transform` [4, 4] (source -> target) for clouds [N, 3], [M, 3] at voxel size `voxel`."""
    from perception3d.registration._kdtree import knn_within
    from perception3d.registration.metrics import transform_points

    src, fs = _fpfh(transform_points(source, transform), voxel)
    tgt, ft = _fpfh(target, voxel)
    dist, idx = (a[:, 0] for a in knn_within(tgt, src, 1, 1.5 * voxel))
    close = np.isfinite(dist)
    overlap = float(close.mean()) if len(src) else 0.0
    fitness = 0.0
    if close.any():
        rng = np.random.default_rng(seed)
        random = (fs * ft[rng.integers(0, len(tgt), len(src))]).sum(1)  # [S]: each voxel against a random one
        matched = (fs[close] * ft[idx[close]]).sum(1)
        # Over all source voxels (a voxel without a partner adds 0): few close pairs cannot score high.
        fitness = float((matched - random[close]).sum() / len(src) / max(1.0 - random.mean(), 1e-6))
    ratio = 0.0
    if src_corr is not None and tgt_corr is not None and len(src_corr):
        res = np.linalg.norm(transform_points(src_corr, transform) - np.asarray(tgt_corr, np.float64), axis=1)
        ratio = float((res < 2 * voxel).mean())
    return Confidence(overlap=overlap, descriptor_fitness=fitness, inlier_ratio=ratio,
                      registered=bool(overlap >= MIN_OVERLAP and fitness >= MIN_DESCRIPTOR_FITNESS))
