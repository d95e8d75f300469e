"""RoITr's training losses (identical to GeoTransformer's): overlap-aware circle loss and the OT NLL.

Rows are the target cloud, columns the source cloud; the ground-truth transform maps source into target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from perception3d.registration.matching import pairwise_sq_distance


def weighted_circle_loss(pos_masks: Tensor, neg_masks: Tensor, feat_dists: Tensor, *, pos_margin: float = 0.1,
                         neg_margin: float = 1.4, pos_optimal: float = 0.1, neg_optimal: float = 1.4,
                         log_scale: float = 24.0, pos_scales: Tensor | None = None) -> Tensor:
    """Circle loss on a descriptor distance matrix [M, S], rows and columns averaged.

    Positives farther than `pos_optimal` and negatives closer than `neg_optimal` are weighted by how far they
    are from optimal (detached), positives further by `pos_scales` (the square root of the patch overlap).
    Rows (columns) with no positive or no negative do not count.
    """
    row_ok = (pos_masks.sum(-1) > 0) & (neg_masks.sum(-1) > 0)
    col_ok = (pos_masks.sum(-2) > 0) & (neg_masks.sum(-2) > 0)
    if not row_ok.any() and not col_ok.any():
        return feat_dists.sum() * 0.0
    pos_w = (feat_dists - 1e5 * (~pos_masks).float() - pos_optimal).clamp_min(0.0)
    if pos_scales is not None:
        pos_w = pos_w * pos_scales
    pos_w = pos_w.detach()
    neg_w = (neg_optimal - (feat_dists + 1e5 * (~neg_masks).float())).clamp_min(0.0).detach()
    pos_logits = log_scale * (feat_dists - pos_margin) * pos_w
    neg_logits = log_scale * (neg_margin - feat_dists) * neg_w
    loss_row = F.softplus(torch.logsumexp(pos_logits, -1) + torch.logsumexp(neg_logits, -1)) / log_scale
    loss_col = F.softplus(torch.logsumexp(pos_logits, -2) + torch.logsumexp(neg_logits, -2)) / log_scale
    terms = [t for t in (loss_row[row_ok], loss_col[col_ok]) if t.numel()]
    return sum(t.mean() for t in terms) / len(terms)


def coarse_circle_loss(tgt_node_feats: Tensor, src_node_feats: Tensor, gt_corr: Tensor, gt_overlaps: Tensor, *,
                       positive_overlap: float = 0.1, **circle) -> Tensor:
    """The overlap-aware circle loss on node descriptors: positives where the patch overlap > `positive_overlap`
    (weighted by sqrt(overlap)), negatives where patches do not overlap at all.

    Args:
        tgt_node_feats: [M, C], src_node_feats: [S, C] L2-normalised.
        gt_corr: [G, 2] (target node, source node) with overlaps [G] > 0.
    """
    dists = pairwise_sq_distance(tgt_node_feats, src_node_feats).add(1e-12).sqrt()
    overlaps = torch.zeros_like(dists)
    overlaps[gt_corr[:, 0], gt_corr[:, 1]] = gt_overlaps.to(dists.dtype)
    pos = overlaps > positive_overlap
    neg = overlaps == 0
    return weighted_circle_loss(pos, neg, dists, pos_scales=torch.sqrt(overlaps * pos.float()), **circle)


def fine_nll_loss(log_scores: Tensor, tgt_knn_points: Tensor, src_knn_points: Tensor, tgt_knn_masks: Tensor,
                  src_knn_masks: Tensor, transform: Tensor, *, positive_radius: float = 0.05) -> Tensor:
    """Negative log-likelihood of the Sinkhorn matrix [P, K+1, K+1] on the ground-truth assignment.

    Point pairs closer than `positive_radius` after `transform` maps the source are positives; real points
    with no positive are labelled to the dustbin of their side.
    """
    if log_scores.shape[0] == 0:
        return log_scores.sum() * 0.0
    src = src_knn_points @ transform[:3, :3].T + transform[:3, 3]
    valid = tgt_knn_masks.unsqueeze(2) & src_knn_masks.unsqueeze(1)
    gt = (pairwise_sq_distance(tgt_knn_points, src) < positive_radius**2) & valid  # [P, K, K]
    labels = torch.zeros_like(log_scores, dtype=torch.bool)
    labels[:, :-1, :-1] = gt
    labels[:, :-1, -1] = (gt.sum(2) == 0) & tgt_knn_masks
    labels[:, -1, :-1] = (gt.sum(1) == 0) & src_knn_masks
    return -log_scores[labels].mean()
