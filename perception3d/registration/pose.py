"""Transform estimation from correspondences: weighted Procrustes, LGR, and RANSAC (open3d).

Every function returns a 4x4 transform that maps SOURCE points into TARGET's frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def weighted_procrustes(src: Tensor, tgt: Tensor, weights: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Least-squares rigid transform(s) src -> tgt (Kabsch with weights).

    Args:
        src, tgt: [..., N, 3] corresponding points; weights: [..., N] non-negative (None: all ones).

    Returns:
        [..., 4, 4] transforms (proper rotations, det = +1).
    """
    if weights is None:
        weights = src.new_ones(src.shape[:-1])
    w = weights / (weights.sum(-1, keepdim=True) + eps)  # [..., N]
    w3 = w.unsqueeze(-1)
    src_c = (src * w3).sum(-2)
    tgt_c = (tgt * w3).sum(-2)
    h = ((src - src_c.unsqueeze(-2)) * w3).transpose(-1, -2) @ (tgt - tgt_c.unsqueeze(-2))  # [..., 3, 3]
    return _rigid_from_moments(src_c, tgt_c, h, src.dtype)


def _rigid_from_moments(src_c: Tensor, tgt_c: Tensor, h: Tensor, dtype: torch.dtype) -> Tensor:
    """Kabsch from weighted centroids [..., 3] and the cross-covariance [..., 3, 3] -> [..., 4, 4] in `dtype`."""
    u, _, vh = torch.linalg.svd(h.double())
    v = vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(-1, -2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rot = (v @ fix @ u.transpose(-1, -2)).to(dtype)
    trans = tgt_c.to(dtype) - (rot @ src_c.to(dtype).unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(*rot.shape[:-2], 4, 4, dtype=dtype, device=rot.device)
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out


def local_to_global_registration(tgt_corr: Tensor, src_corr: Tensor, scores: Tensor, patch: Tensor, *,
                                 acceptance_radius: float, min_per_patch: int = 3,
                                 refine_iterations: int = 5, final_radius: float | None = None,
                                 global_samples: int = 0, edge_ratio: float = 0.8, consensus_seeds: int = 0,
                                 seed: int = 0) -> Tensor:
    """GeoTransformer's LGR: one weighted-Procrustes hypothesis per patch pair, the one with the most
    global inliers wins, then `refine_iterations` of weighted Procrustes on its inliers.

    Args:
        tgt_corr, src_corr: [C, 3] correspondences; scores: [C] confidences; patch: [C] patch-pair index.
        acceptance_radius: inlier distance in the points' unit (GeoTransformer: 0.1 m at 3DMatch scale).
        min_per_patch: patches with fewer correspondences make no hypothesis (3).
        final_radius: if given (an extension, not in GeoTransformer), `refine_iterations` more steps with this
            tighter inlier radius after the paper's: the loose radius lets near-inliers bias the pose by a few
            degrees on small clouds (docs/registration.md).
        global_samples: an extension (0 in GeoTransformer): this many random triplets of correspondences from
            anywhere in the cloud, those whose three edge lengths agree between the clouds to `edge_ratio` (RANSAC's
            edge-length check), join the per-patch hypotheses and are scored the same way. With few nodes per
            cloud, the right pose may need correspondences of several patches (docs/registration.md).
        consensus_seeds: an extension (0 in GeoTransformer): this many hypotheses more, each fitted to the consensus
            set of one seed correspondence by second-order spatial compatibility (SC2-PCR, Chen et al., CVPR 2022;
            `consensus_hypotheses`). They find the pose when inliers are too few for random triplets.
        seed: the triplets' random generator.

    Returns:
        [4, 4] source -> target; the identity when there are fewer than 3 correspondences.
    """
    if src_corr.shape[0] < 3:
        return torch.eye(4, dtype=src_corr.dtype, device=src_corr.device)
    hyps, inliers = lgr_hypotheses(tgt_corr, src_corr, scores, patch, acceptance_radius=acceptance_radius,
                                   min_per_patch=min_per_patch, global_samples=global_samples, edge_ratio=edge_ratio,
                                   consensus_seeds=consensus_seeds, seed=seed)
    return refine_on_inliers(hyps[inliers.argmax()], tgt_corr, src_corr, scores,
                             radii=(acceptance_radius,) if final_radius is None else (acceptance_radius, final_radius),
                             iterations=refine_iterations)


def lgr_hypotheses(tgt_corr: Tensor, src_corr: Tensor, scores: Tensor, patch: Tensor, *, acceptance_radius: float,
                   min_per_patch: int = 3, global_samples: int = 0, edge_ratio: float = 0.8, consensus_seeds: int = 0,
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    """LGR's hypotheses [H, 4, 4] (one per patch pair, then the optional triplet and consensus-set ones) and their
    inlier counts [H] over all correspondences; arguments as for `local_to_global_registration`. With fewer than 3
    correspondences: the identity, with 0 inliers.
    """
    if src_corr.shape[0] < 3:
        eye = torch.eye(4, dtype=src_corr.dtype, device=src_corr.device).unsqueeze(0)
        return eye, torch.zeros(1, dtype=torch.long, device=src_corr.device)
    ids, inverse, counts = torch.unique(patch, return_inverse=True, return_counts=True)
    good = counts >= min_per_patch
    if good.any():
        # Pack each good patch's correspondences into a padded batch [H, L, 3] with zero weights on padding.
        keep = good[inverse]
        slot_patch = torch.cumsum(good.long(), 0) - 1  # patch id -> hypothesis row
        rows = slot_patch[inverse[keep]]
        order = torch.argsort(rows, stable=True)
        rows = rows[order]
        starts = torch.cumsum(torch.bincount(rows), 0) - torch.bincount(rows)
        cols = torch.arange(rows.numel(), device=rows.device) - starts[rows]
        h, length = int(good.sum()), int(counts[good].max())
        src_b = src_corr.new_zeros(h, length, 3)
        tgt_b = tgt_corr.new_zeros(h, length, 3)
        w_b = scores.new_zeros(h, length)
        src_b[rows, cols] = src_corr[keep][order]
        tgt_b[rows, cols] = tgt_corr[keep][order]
        w_b[rows, cols] = scores[keep][order]
        hyps = weighted_procrustes(src_b, tgt_b, w_b)  # [H, 4, 4]
    else:
        hyps = weighted_procrustes(src_corr, tgt_corr, scores).unsqueeze(0)
    if global_samples > 0:
        hyps = torch.cat([hyps, _triplet_hypotheses(tgt_corr, src_corr, global_samples, edge_ratio, seed)])
    if consensus_seeds > 0:
        hyps = torch.cat([hyps, consensus_hypotheses(tgt_corr, src_corr, scores, tau=acceptance_radius,
                                                     num_seeds=consensus_seeds)])
    return hyps, inlier_counts(hyps, src_corr, tgt_corr, acceptance_radius)


def inlier_counts(transforms: Tensor, src: Tensor, tgt: Tensor, radius: float) -> Tensor:
    """For each transform [H, 4, 4], how many correspondences (src, tgt [C, 3]) it maps within `radius`.

    By blocks of 256 transforms: LGR's ~3400 hypotheses against ~3000 correspondences would be an 80 MB [H, C]
    float64 matrix, freshly paged in at every call; each block's rows are the same products.
    """
    terms = _residual_terms(src, tgt)
    blocks = [transforms[a:a + 256] for a in range(0, transforms.shape[0], 256)] or [transforms]
    return torch.cat([(_squared_residuals(b, terms) < radius * radius).sum(1) for b in blocks])


def _residual_terms(src: Tensor, tgt: Tensor) -> Tensor:
    """Per-correspondence terms [C, 16] (float64) of `_squared_residuals`."""
    s, d = src.double(), tgt.double()
    return torch.cat([(s * s).sum(1, keepdim=True) + (d * d).sum(1, keepdim=True), d, s,
                      (d.unsqueeze(2) * s.unsqueeze(1)).flatten(1), torch.ones_like(s[:, :1])], 1)


def _squared_residuals(transforms: Tensor, terms: Tensor) -> Tensor:
    """||R s + t - d||^2 of every correspondence under every transform [H, 4, 4] -> [H, C] (float64).

    ||R s + t - d||^2 = |s|^2 + |d|^2 + |t|^2 - 2 t.d + 2 (R^T t).s - 2 <R, d s^T> for a rotation R: one
    [C, 16] x [16, H] product instead of an [H, C, 3] residual tensor (5x faster on CPU).
    """
    rot, trans = transforms[:, :3, :3].double(), transforms[:, :3, 3].double()
    rt_t = (rot.transpose(1, 2) @ trans.unsqueeze(2))[..., 0]  # R^T t
    per_hyp = torch.cat([torch.ones_like(trans[:, :1]), -2 * trans, 2 * rt_t, -2 * rot.flatten(1),
                         (trans * trans).sum(1, keepdim=True)], 1)  # [H, 16]
    return per_hyp @ terms.T


def _triplet_hypotheses(tgt_corr: Tensor, src_corr: Tensor, samples: int, edge_ratio: float, seed: int) -> Tensor:
    """Procrustes transforms [H, 4, 4] of the random correspondence triplets that pass the edge-length check."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, src_corr.shape[0], (samples, 3), generator=g).to(src_corr.device)
    s3, t3 = src_corr[idx], tgt_corr[idx]  # [S, 3, 3]
    roll = [1, 2, 0]
    ds = torch.linalg.norm(s3 - s3[:, roll], dim=-1)
    dt = torch.linalg.norm(t3 - t3[:, roll], dim=-1)
    keep = (torch.minimum(ds, dt) > edge_ratio * torch.maximum(ds, dt)).all(1)
    return weighted_procrustes(s3[keep], t3[keep])


def consensus_hypotheses(tgt_corr: Tensor, src_corr: Tensor, scores: Tensor, *, tau: float, num_seeds: int = 100,
                         set_size: int = 30, max_corr: int = 1000) -> Tensor:
    """SC2-PCR's seed-and-consensus hypotheses: weighted-Procrustes transforms [S, 4, 4].

    Two correspondences are compatible when they preserve their distance to within `tau` (|d_src - d_tgt| < tau).
    Second-order compatibility counts, for a compatible pair, the correspondences compatible with both: inliers
    share many, chance agreements of outliers few. The `num_seeds` correspondences compatible with the most others
    are the seeds; each seed's consensus set is its `set_size` correspondences of highest second-order
    compatibility, fitted with those counts as weights. Only the `max_corr` most confident correspondences take
    part (the [C, C] matrices stay small).
    """
    if scores.shape[0] > max_corr:
        keep = scores.topk(max_corr).indices
        tgt_corr, src_corr = tgt_corr[keep], src_corr[keep]
    c = src_corr.shape[0]
    if c < 3:
        return torch.eye(4, dtype=src_corr.dtype, device=src_corr.device).unsqueeze(0)
    compat = ((torch.cdist(src_corr, src_corr) - torch.cdist(tgt_corr, tgt_corr)).abs() < tau).to(src_corr.dtype)
    seeds = compat.sum(1).topk(min(num_seeds, c)).indices
    rows = compat[seeds]  # [S, C]
    second = rows * (rows @ compat)  # compatible with the seed, weighted by the correspondences shared with it
    top = second.topk(min(set_size, c), dim=1)
    return weighted_procrustes(src_corr[top.indices], tgt_corr[top.indices], top.values)


def refine_on_inliers(transform: Tensor, tgt_corr: Tensor, src_corr: Tensor, scores: Tensor, *,
                      radii: tuple[float, ...], iterations: int = 5) -> Tensor:
    """For each radius in turn, `iterations` of weighted Procrustes (weights `scores`) on the correspondences within
    it of the current transform [4, 4] (or of each of a batch [H, 4, 4], refined independently); LGR's refinement,
    also used to polish a RANSAC model. A transform with fewer than 3 correspondences within the radius stays.

    The correspondences are shared, so each step is two products with per-correspondence terms: the squared
    residuals (`_squared_residuals`) and the weighted moments sum w [s, d, s d^T] of the Procrustes fit.
    """
    batch = transform.reshape(-1, 4, 4)
    terms = _residual_terms(src_corr, tgt_corr)
    s, d = src_corr.double(), tgt_corr.double()
    moments = torch.cat([s, d, (s.unsqueeze(2) * d.unsqueeze(1)).flatten(1)], 1)  # [C, 15]
    for radius in radii:
        for _ in range(iterations):
            mask = _squared_residuals(batch, terms) < radius * radius  # [H, C]
            enough = mask.sum(1) >= 3
            if not enough.any():
                break
            w = scores.double() * mask  # [H, C]
            m = (w @ moments) / w.sum(1, keepdim=True).clamp(min=1e-12)  # weighted means [H, 15]
            src_c, tgt_c = m[:, :3], m[:, 3:6]
            h = m[:, 6:].reshape(-1, 3, 3) - src_c.unsqueeze(2) * tgt_c.unsqueeze(1)  # cross-covariance
            new = _rigid_from_moments(src_c, tgt_c, h, batch.dtype)
            batch = torch.where(enough[:, None, None], new, batch)
    return batch.reshape(transform.shape)


def ransac_on_correspondences(tgt_corr: np.ndarray, src_corr: np.ndarray, *, distance: float,
                              max_iterations: int = 50000, confidence: float = 0.999,
                              seed: int | None = None) -> np.ndarray:
    """open3d RANSAC on given correspondences (RoITr's official evaluation: ransac_n 3, edge-length checker
    0.9 and distance checker at `distance`). Returns a [4, 4] float64 source -> target transform."""
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    if seed is not None:
        o3d.utility.random.seed(seed)
    n = len(src_corr)
    if n < 3:
        return np.eye(4)
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(src_corr, np.float64)))
    tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(tgt_corr, np.float64)))
    corr = o3d.utility.Vector2iVector(np.stack([np.arange(n), np.arange(n)], 1).astype(np.int32))
    reg = o3d.pipelines.registration
    result = reg.registration_ransac_based_on_correspondence(
        src, tgt, corr, distance, reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(distance)],
        reg.RANSACConvergenceCriteria(max_iterations, confidence))
    return np.asarray(result.transformation)
