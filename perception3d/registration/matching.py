"""Coarse-to-fine matching of RoITr (shared with GeoTransformer): patches, node matching, Sinkhorn, extraction.

Conventions follow the official code: rows are the TARGET (reference) cloud, columns the SOURCE cloud, and
the ground-truth transform maps SOURCE into TARGET's frame. Distances are in the network's canonical unit
(metres at the 3DMatch scale, see `perception3d.registration.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def pairwise_sq_distance(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances [..., N, M] between x [..., N, C] and y [..., M, C], clamped at 0."""
    d2 = (x * x).sum(-1, keepdim=True) - 2.0 * x @ y.transpose(-1, -2) + (y * y).sum(-1).unsqueeze(-2)
    return d2.clamp_min(0.0)


@dataclass(frozen=True)
class Patches:
    """Point-to-node partition: each point belongs to its nearest node, at most `point_limit` per node.

    Attributes:
        node_masks: [M] True where a node owns at least one point.
        knn_indices: [M, K] point indices of each node's patch, padded with N (one past the last point).
        knn_masks: [M, K] True on real (not padded) slots.
    """

    node_masks: Tensor
    knn_indices: Tensor
    knn_masks: Tensor

    def gather(self, values: Tensor) -> Tensor:
        """values [N, C] -> [M, K, C], zeros on padded slots."""
        padded = torch.cat([values, values.new_zeros(1, values.shape[1])], 0)
        return padded[self.knn_indices]


def point_to_node_partition(points: Tensor, nodes: Tensor, point_limit: int) -> Patches:
    """Assign every point [N, 3] to its nearest node [M, 3] and keep the `point_limit` closest per node."""
    n, m = points.shape[0], nodes.shape[0]
    sq = pairwise_sq_distance(nodes, points)  # [M, N]
    point_to_node = sq.argmin(0)  # [N]
    node_masks = torch.zeros(m, dtype=torch.bool, device=points.device)
    node_masks[point_to_node] = True
    owned = torch.zeros_like(sq, dtype=torch.bool)
    owned[point_to_node, torch.arange(n, device=points.device)] = True
    sq = sq.masked_fill(~owned, 1e12)
    k = min(point_limit, n)
    knn_indices = sq.topk(k, dim=1, largest=False).indices  # [M, K]
    knn_masks = point_to_node[knn_indices] == torch.arange(m, device=points.device).unsqueeze(1)
    knn_indices = knn_indices.masked_fill(~knn_masks, n)
    return Patches(node_masks, knn_indices, knn_masks)


@torch.no_grad()
def node_correspondences(tgt_nodes: Tensor, src_nodes: Tensor, tgt_patches: Patches, src_patches: Patches,
                         tgt_points: Tensor, src_points: Tensor, transform: Tensor,
                         radius: float) -> tuple[Tensor, Tensor]:
    """Ground-truth node pairs whose patches overlap, and their overlap ratio (GeoTransformer's definition).

    The overlap of a patch pair is the mean of the share of target patch points with a source patch point
    closer than `radius` (after `transform` [4, 4] maps the source) and the same share the other way.

    Returns:
        corr: [C, 2] (target node, source node) index pairs with a non-zero overlap.
        overlaps: [C] their overlap ratios in (0, 1].
    """
    rot, trans = transform[:3, :3], transform[:3, 3]
    src_nodes = src_nodes @ rot.T + trans
    tgt_knn = tgt_patches.gather(tgt_points)  # [M, K, 3]
    src_knn = src_patches.gather(src_points) @ rot.T + trans  # [S, K, 3]
    tgt_r = (torch.linalg.norm(tgt_knn - tgt_nodes.unsqueeze(1), dim=-1) * tgt_patches.knn_masks).amax(1)
    src_r = (torch.linalg.norm(src_knn - src_nodes.unsqueeze(1), dim=-1) * src_patches.knn_masks).amax(1)
    node_dist = pairwise_sq_distance(tgt_nodes, src_nodes).sqrt()
    candidate = (tgt_r.unsqueeze(1) + src_r.unsqueeze(0) + radius - node_dist) > 0
    candidate &= tgt_patches.node_masks.unsqueeze(1) & src_patches.node_masks.unsqueeze(0)
    ti, si = torch.nonzero(candidate, as_tuple=True)
    tm, sm = tgt_patches.knn_masks[ti], src_patches.knn_masks[si]  # [C, K]
    d2 = pairwise_sq_distance(tgt_knn[ti], src_knn[si])  # [C, K, K]
    close = (d2 < radius**2) & tm.unsqueeze(2) & sm.unsqueeze(1)
    tgt_share = close.any(2).sum(1).float() / tm.sum(1).clamp_min(1).float()
    src_share = close.any(1).sum(1).float() / sm.sum(1).clamp_min(1).float()
    overlaps = (tgt_share + src_share) / 2
    keep = overlaps > 0
    return torch.stack([ti[keep], si[keep]], 1), overlaps[keep]


@torch.no_grad()
def coarse_matching(tgt_feats: Tensor, src_feats: Tensor, tgt_masks: Tensor, src_masks: Tensor,
                    num_correspondences: int, dual_normalization: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k node pairs by the (dual-normalised) Gaussian similarity exp(-||f_t - f_s||^2).

    Args:
        tgt_feats: [M, C] L2-normalised node descriptors; src_feats [S, C] likewise.
        tgt_masks, src_masks: [M], [S] nodes that own points.

    Returns:
        tgt_idx, src_idx: [P] node indices; scores: [P].
    """
    ti_all = torch.nonzero(tgt_masks, as_tuple=True)[0]
    si_all = torch.nonzero(src_masks, as_tuple=True)[0]
    scores = torch.exp(-pairwise_sq_distance(tgt_feats[ti_all], src_feats[si_all]))
    if dual_normalization:
        scores = (scores / (scores.sum(1, keepdim=True) + 1e-8)) * (scores / (scores.sum(0, keepdim=True) + 1e-8))
    k = min(num_correspondences, scores.numel())
    top, flat = scores.flatten().topk(k)
    return ti_all[flat // scores.shape[1]], si_all[flat % scores.shape[1]], top


class LearnableLogOptimalTransport(nn.Module):
    """Log-domain Sinkhorn with one learnable dustbin score `alpha` (SuperGlue, GeoTransformer, RoITr).

    Each patch pair's score matrix [K, K] is padded with a dustbin row and column of value alpha; masked slots
    get -inf (here -1e6). Marginals are normalised by -log(M + N), the dustbins carry log(N) and log(M).
    """

    def __init__(self, num_iterations: int = 100, inf: float = 1e6):
        super().__init__()
        self.num_iterations = num_iterations
        self.inf = inf
        self.alpha = nn.Parameter(torch.tensor(1.0))

    def forward(self, scores: Tensor, row_masks: Tensor, col_masks: Tensor) -> Tensor:
        """scores [B, M, N], row_masks [B, M], col_masks [B, N] (True = real) -> log assignment [B, M+1, N+1]."""
        b, m, n = scores.shape
        pad_rows = torch.cat([~row_masks, row_masks.new_zeros(b, 1)], 1)  # [B, M+1] True = masked
        pad_cols = torch.cat([~col_masks, col_masks.new_zeros(b, 1)], 1)  # [B, N+1]
        padded = torch.cat([torch.cat([scores, self.alpha.expand(b, m, 1)], -1),
                            self.alpha.expand(b, 1, n + 1)], 1)  # [B, M+1, N+1]
        padded = padded.masked_fill(pad_rows.unsqueeze(2) | pad_cols.unsqueeze(1), -self.inf)
        rows_valid, cols_valid = row_masks.sum(1).float(), col_masks.sum(1).float()
        norm = -torch.log(rows_valid + cols_valid)  # [B]
        log_mu = torch.cat([norm.unsqueeze(1).expand(b, m), (torch.log(cols_valid) + norm).unsqueeze(1)], 1)
        log_nu = torch.cat([norm.unsqueeze(1).expand(b, n), (torch.log(rows_valid) + norm).unsqueeze(1)], 1)
        log_mu = log_mu.masked_fill(pad_rows, -self.inf)
        log_nu = log_nu.masked_fill(pad_cols, -self.inf)
        if not (torch.is_grad_enabled() and padded.requires_grad):
            return self._exp_domain(padded, log_mu, log_nu, norm)
        u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
        for _ in range(self.num_iterations):
            u = log_mu - torch.logsumexp(padded + v.unsqueeze(1), dim=2)
            v = log_nu - torch.logsumexp(padded + u.unsqueeze(2), dim=1)
        return padded + u.unsqueeze(2) + v.unsqueeze(1) - norm.view(b, 1, 1)

    def _exp_domain(self, padded: Tensor, log_mu: Tensor, log_nu: Tensor, norm: Tensor) -> Tensor:
        """The same iterations as scaling vectors (u = mu / K v, v = nu / K^T u) in float64, for inference.

        One exp instead of two log-sum-exps per iteration (3-4x faster on CPU). K = exp(scores - max) per patch
        pair, in float64 so that no real entry underflows at the scores' range; masked slots are exact zeros.
        Agrees with the log-domain iterations to float32 precision (tests/perception3d/registration).
        """
        b = padded.shape[0]
        valid = padded > -self.inf / 2
        z = padded.double()
        shift = z.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True).clamp_min(-self.inf / 2)
        k = torch.exp(z - shift).masked_fill(~valid, 0.0)  # [B, M+1, N+1]
        mu, nu = log_mu.double().exp(), log_nu.double().exp()  # masked slots: exp(-1e6) = 0
        u, v = torch.ones_like(mu), torch.ones_like(nu)
        for _ in range(self.num_iterations):
            kv = (k * v.unsqueeze(1)).sum(2)  # K v (a multiply-sum: 2x faster than bmm for one vector)
            u = torch.where(kv > 0, mu / kv.clamp_min(1e-300), 0.0)
            ku = (k * u.unsqueeze(2)).sum(1)  # K^T u
            v = torch.where(ku > 0, nu / ku.clamp_min(1e-300), 0.0)
        out = z - shift + torch.log(u).unsqueeze(2) + torch.log(v).unsqueeze(1) - norm.double().view(b, 1, 1)
        return out.masked_fill(~valid | ~torch.isfinite(out), -self.inf).to(padded.dtype)


@torch.no_grad()
def fine_matching(log_scores: Tensor, tgt_knn_points: Tensor, src_knn_points: Tensor, tgt_knn_masks: Tensor,
                  src_knn_masks: Tensor, *, k: int = 3, confidence: float = 0.05, mutual: bool = True,
                  min_per_patch: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mutual top-k point correspondences inside each patch pair, the dustbin ignored.

    Args:
        log_scores: [P, K+1, K+1] Sinkhorn output (log-probabilities), dustbins last.
        tgt_knn_points, src_knn_points: [P, K, 3]; tgt_knn_masks, src_knn_masks: [P, K].
        min_per_patch: patch pairs with fewer correspondences are dropped (0 keeps all).

    Returns:
        tgt_points [C, 3], src_points [C, 3], confidences [C] (probabilities), patch index [C].
    """
    probs = log_scores[:, :-1, :-1].exp()  # [P, K, K]
    kk = min(k, probs.shape[1], probs.shape[2])
    row_top = probs.topk(kk, dim=2)
    row_sel = torch.zeros_like(probs, dtype=torch.bool).scatter_(2, row_top.indices, True)
    col_top = probs.topk(kk, dim=1)
    col_sel = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, col_top.indices, True)
    sel = (row_sel & col_sel) if mutual else (row_sel | col_sel)
    sel &= probs > confidence
    sel &= tgt_knn_masks.unsqueeze(2) & src_knn_masks.unsqueeze(1)
    if min_per_patch > 0:
        sel &= (sel.flatten(1).sum(1) >= min_per_patch).view(-1, 1, 1)
    p, i, j = torch.nonzero(sel, as_tuple=True)
    return tgt_knn_points[p, i], src_knn_points[p, j], probs[p, i, j], p
