"""RoITr: Rotation-Invariant Transformer for point cloud matching.

Paper: Hao Yu, Zheng Qin, Ji Hou, Mahdi Saleh, Dongsheng Li, Benjamin Busam, Slobodan Ilic,
"Rotation-Invariant Transformer for Point Cloud Matching", CVPR 2023, arXiv:2303.08231.
Official code: https://github.com/haoyu94/RoITr (MIT). Its 3DMatch checkpoint (`weights/model_3dmatch.pth`)
loads through `convert_official`, which turns on the official neighbourhoods (`exclude_self`, see RoITr); no
official weights are shipped here.

Pipeline (one pair at a time, as in the official code whose batch size is 1):
1. PPF-based local attention encoder (Point Transformer v1 layout, attention-based down-sampling) on both clouds.
2. A global transformer on the coarsest nodes: GeoTransformer's rotation-invariant geometric structure
   embedding in self-attention, which also yields a rotation-invariant "position state" per node, used by
   the cross-frame attention (the paper's cross-frame spatial awareness).
3. A decoder back to full resolution (on the encoder's pre-global features, as the official code does).
4. Coarse node descriptors (global output, L2-normalised) and fine point descriptors.
Matching (`RoITr.match`): point-to-node patches, dual-normalised coarse matching (or ground-truth node pairs
while training), per-patch learnable log-domain Sinkhorn with a dustbin, mutual top-k extraction.

Every input feature is rotation invariant (PPFs from positions and normals, pairwise distances and angles),
so the descriptors are invariant to any rotation of the input, by construction.

Units: positions in the network's canonical unit, metres at the 3DMatch scale (2.5 cm voxels); see
`perception3d.registration.pipeline`, which rescales any input cloud to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from perception3d.ops import farthest_point_sample, knn, three_nn_interpolate
from perception3d.ops.geometry import point_pair_features
from perception3d.registration.matching import (
    LearnableLogOptimalTransport,
    Patches,
    coarse_matching,
    fine_matching,
    node_correspondences,
    point_to_node_partition,
)


def _ppf(center: Tensor, center_normal: Tensor, nb: Tensor, nb_normal: Tensor) -> Tensor:
    """RoITr's PPF [..., 4]: (||d||, angle(n_i, d)/pi, angle(n_j, d)/pi, angle(n_i, n_j)/pi)."""
    return point_pair_features(center, center_normal, nb, nb_normal)


class SinusoidalEmbedding(nn.Module):
    """Transformer sinusoids of a scalar index [*] -> [*, d], sin and cos interleaved per frequency."""

    def __init__(self, d: int):
        super().__init__()
        if d % 2:
            raise ValueError(f"sinusoidal embedding needs an even width, got {d}")
        self.d = d
        self.register_buffer("div_term", torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d)),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        omegas = x.detach().unsqueeze(-1) * self.div_term.to(x.dtype)  # [*, d/2]; no gradient (as before)
        # sin and cos written straight into their interleaved slots: the values of stack([sin, cos], -1), without
        # the copy (the angle embedding is [n, n, k, d], 6M values per 8192-point cloud)
        out = omegas.new_empty(*omegas.shape, 2)  # [*, d/2, 2]
        torch.sin(omegas, out=out[..., 0])
        torch.cos(omegas, out=out[..., 1])
        return out.flatten(-2)  # [*, d]


# ---------------------------------------------------------------------------------------------------------------
# Local PPF attention


class _PPFEmbedding(nn.Module):
    """The local PPF coordinate embedding: a linear map of the 4 PPF values."""

    def __init__(self, hidden: int):
        super().__init__()
        self.proj = nn.Linear(4, hidden)

    def forward(self, ppf: Tensor) -> Tensor:
        return self.proj(ppf)


def _rows(x: Tensor, idx: Tensor | None) -> Tensor:
    """x[idx] for rows x [N, C] and indices idx [*] -> [*, C]; None: every row in order (x itself, no copy).

    Without autograd the gather is `F.embedding`, the same copy 2-4x faster than advanced indexing at 64-128
    channels on CPU (RoITr's local attention gathers [M, K, C] keys and values at every level).
    """
    if idx is None:
        return x
    return x[idx] if torch.is_grad_enabled() else F.embedding(idx, x)


def _compose(outer: nn.Linear, inner: nn.Linear) -> tuple[Tensor, Tensor]:
    """The affine map outer(inner(x)) as one (weight, bias)."""
    return outer.weight @ inner.weight, outer.weight @ inner.bias + outer.bias


class _LocalAttention(nn.Module):
    """Multi-head attention from each centre to its K neighbours with PPF relative positions.

    logits_ij = q_i . (k_j + W_p e_ij) / sqrt(d_h), output_i = sum_j a_ij (v_j + W_vp e_ij), with e_ij = W_e f_ij + b_e
    the embedding of the 4 PPF values f_ij. Computed in factored form, exactly the same function: W_p e_ij is
    affine in f_ij, so q_i . W_p e_ij = (A^T q_i) . f_ij + q_i . a with (A, a) = W_p o embedding, and
    sum_j a_ij W_vp e_ij = B (sum_j a_ij f_ij) + b as the weights sum to 1. No [M, K, d] position tensor is
    built or projected (the paper-size model's largest products; 2x faster on CPU at the same output).
    """

    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"width {d} is not a multiple of {heads} heads")
        self.heads = heads
        self.proj_q, self.proj_k, self.proj_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.proj_p, self.proj_vp = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: Tensor, center_idx: Tensor | None, group_idx: Tensor, ppf: Tensor,
                embedding: nn.Linear) -> Tensor:
        """x [N, d], center_idx [M] (None: every point, M = N), group_idx [M, K], ppf [M, K, 4],
        embedding: Linear(4, d) -> [M, d]."""
        h = self.heads
        c = x.shape[1] // h
        pos_w, pos_b = _compose(self.proj_p, embedding)  # [d, 4], [d]
        val_w, val_b = _compose(self.proj_vp, embedding)
        q = _rows(self.proj_q(x), center_idx).view(-1, h, c)  # [M, h, c]
        k = _rows(self.proj_k(x), group_idx).unflatten(-1, (h, c))  # [M, K, h, c]; gathered, never transposed
        v = _rows(self.proj_v(x), group_idx).unflatten(-1, (h, c))
        q_pos = torch.einsum("mhc,hcf->mfh", q, pos_w.view(h, c, 4))  # [M, 4, h]
        logits = (k * q.unsqueeze(1)).sum(-1) + ppf @ q_pos  # [M, K, h]
        logits = logits + (q * pos_b.view(h, c)).sum(-1).unsqueeze(1)
        attn = torch.softmax(logits / math.sqrt(c), dim=1)  # over the K neighbours
        out = (attn.unsqueeze(-1) * v).sum(1)  # [M, h, c]
        out = out + torch.einsum("mhf,hcf->mhc", attn.transpose(1, 2) @ ppf, val_w.view(h, c, 4)) + val_b.view(h, c)
        return rearrange(out, "m h c -> m (h c)")


class _LocalAttentionLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = _LocalAttention(d, heads)
        self.linear = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, center_idx: Tensor | None, group_idx: Tensor, ppf: Tensor,
                embedding: nn.Linear) -> Tensor:
        return self.norm(self.linear(self.attention(x, center_idx, group_idx, ppf, embedding)) + _rows(x, center_idx))


class LocalPPFTransformer(nn.Module):
    """in_proj -> PPF attention (+ residual, LayerNorm) -> out_proj. No FFN, as in the paper."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, heads: int):
        super().__init__()
        self.embedding = _PPFEmbedding(hidden)
        self.in_proj = nn.Linear(in_dim, hidden)
        self.transformer = _LocalAttentionLayer(hidden, heads)
        self.out_proj = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor, center_idx: Tensor | None, group_idx: Tensor, ppf: Tensor) -> Tensor:
        """x [N, in] features of the neighbour level; centres index into it (None: every point); ppf [M, K, 4]
        -> [M, out]."""
        return self.out_proj(self.transformer(self.in_proj(x), center_idx, group_idx, ppf, self.embedding.proj))


@dataclass
class Level:
    """One resolution of a cloud: positions [n, 3], normals [n, 3], features [n, C], its own kNN and PPFs."""

    points: Tensor
    normals: Tensor
    feats: Tensor
    group_idx: Tensor  # [n, k] within-level neighbours
    ppf: Tensor  # [n, k, 4]
    sample_idx: Tensor  # [n] indices into the previous (finer) level


def _knn_idx(query: Tensor, ref: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """The k nearest points of `ref` [n, 3] to each `query` point [m, 3] -> [m, k], nearest first.

    `exclude_self`: the official `pointops.queryandgroup`, which finds k + 1 and drops the nearest (the query
    point itself when the queries are reference points).
    """
    if exclude_self:
        return knn(query.unsqueeze(0), ref.unsqueeze(0), min(k + 1, ref.shape[0]))[1][0, :, 1:]
    return knn(query.unsqueeze(0), ref.unsqueeze(0), min(k, ref.shape[0]))[1][0]


def well_conditioned_cov(cov: Tensor) -> Tensor:
    """Covariances [..., 3, 3] scaled by their trace, the non-finite or zero ones replaced by the identity / 3.

    Eigenvalue ratios and eigenvectors are unchanged by the scale, and the solver then never sees an entry of
    1e60 or a NaN: LAPACK's eigh fails to converge on those ("ill-conditioned") rather than returning anything.
    """
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    ok = torch.isfinite(cov).all(-1).all(-1)[..., None, None] & torch.isfinite(trace) & (trace > 0)
    eye = torch.eye(3, dtype=cov.dtype, device=cov.device) / 3
    return torch.where(ok, cov / torch.where(ok, trace, torch.ones_like(trace)), eye)


def local_shape_features(points: Tensor, k: int = 16, group_idx: Tensor | None = None) -> Tensor:
    """The shape of each point's k-neighbourhood [N, 3]: covariance eigenvalues / their sum, ascending.

    Invariant to rotation, to the point order and to the sign of any normal; (~0, ~0.5, ~0.5) on a plane,
    (~0, ~0, ~1) on an edge, (1/3, 1/3, 1/3) in a blob. `group_idx` [N, >= k]: the points' kNN if known.
    """
    group_idx = _knn_idx(points, points, k) if group_idx is None else group_idx[:, :k]
    group = points[group_idx]  # [N, k, 3]
    centred = group - group.mean(1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / group.shape[1]  # [N, 3, 3]
    eig = torch.linalg.eigvalsh(well_conditioned_cov(cov.double())).clamp_min(0).to(points.dtype)  # ascending
    return eig / eig.sum(-1, keepdim=True).clamp_min(1e-12)


def _neighbourhood(points: Tensor, normals: Tensor, k: int, centres: Tensor | None = None,
                   exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """The k nearest points of the level [m, k] (itself first, or without itself when `exclude_self`) of each
    centre (indices [m] into the level's points; None: every point) and their PPFs [m, k, 4]."""
    c_pts, c_nrm = (points, normals) if centres is None else (points[centres], normals[centres])
    group = _knn_idx(c_pts, points, k, exclude_self)
    return group, _ppf(c_pts.unsqueeze(1), c_nrm.unsqueeze(1), points[group], normals[group])


class TransitionDown(nn.Module):
    """Attention down-sampling: FPS centres, kNN in the finer level, PPF attention neighbours -> centre."""

    def __init__(self, in_dim: int, out_dim: int, heads: int, stride: int, nsample: int, hidden_cap: int,
                 exclude_self: bool = False):
        super().__init__()
        self.stride, self.nsample, self.exclude_self = stride, nsample, exclude_self
        self.transformer = LocalPPFTransformer(in_dim, out_dim, min(out_dim, hidden_cap), heads)

    def forward(self, points: Tensor, normals: Tensor, feats: Tensor, group: Tensor | None = None,
                ppf: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """points, normals [n, 3], feats [n, C] of the finer level; `group` [n, >= nsample] and `ppf` its own kNN
        and PPFs if known. The centres are finer points, so their kNN in the finer level are rows of it."""
        n = points.shape[0]
        centres = None  # stride 1: every point is a centre, in order (no gather)
        if self.stride > 1:
            m = max(n // self.stride, 1)
            centres = farthest_point_sample(points.unsqueeze(0), m)[0]  # [m]
        if group is None or ppf is None or group.shape[1] < min(self.nsample, n):
            group, ppf = _neighbourhood(points, normals, self.nsample, centres, self.exclude_self)  # [m, k], [m, k, 4]
        elif centres is None:
            group, ppf = group[:, :self.nsample], ppf[:, :self.nsample]
        else:
            group, ppf = group[centres, :self.nsample], ppf[centres, :self.nsample]
        feats = self.transformer(feats, centres, group, ppf)
        if centres is None:
            return points, normals, feats, torch.arange(n, device=points.device)
        return points[centres], normals[centres], feats, centres


class RIPointTransformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden_cap: int):
        super().__init__()
        self.transformer = LocalPPFTransformer(dim, dim, min(dim, hidden_cap), heads)

    def forward(self, level: Level, feats: Tensor) -> Tensor:
        return self.transformer(feats, None, level.group_idx, level.ppf)  # every point a centre


class RIPointTransformerBlock(nn.Module):
    """Local PPF layer -> LayerNorm -> + identity -> ReLU."""

    def __init__(self, dim: int, heads: int, hidden_cap: int):
        super().__init__()
        self.transformer = RIPointTransformerLayer(dim, heads, hidden_cap)
        self.bn2 = nn.LayerNorm(dim)

    def forward(self, level: Level, feats: Tensor) -> Tensor:
        return F.relu(self.bn2(self.transformer(level, feats)) + feats)


class TransitionUp(nn.Module):
    """Point Transformer v1 up-sampling: linear skip + 3-NN interpolation; the head level mixes in the mean."""

    def __init__(self, in_dim: int, out_dim: int | None = None):
        super().__init__()
        self.head = out_dim is None
        if self.head:
            self.linear1 = nn.Sequential(nn.Linear(2 * in_dim, in_dim), nn.LayerNorm(in_dim), nn.ReLU())
            self.linear2 = nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU())
        else:
            self.linear1 = nn.Sequential(nn.Linear(out_dim, out_dim), nn.LayerNorm(out_dim), nn.ReLU())
            self.linear2 = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.ReLU())

    def forward(self, fine: Level, fine_feats: Tensor, coarse: Level | None = None,
                coarse_feats: Tensor | None = None) -> Tensor:
        if self.head:
            mean = self.linear2(fine_feats.mean(0, keepdim=True)).expand_as(fine_feats)
            return self.linear1(torch.cat([fine_feats, mean], 1))
        up = three_nn_interpolate(fine.points.unsqueeze(0), coarse.points.unsqueeze(0),
                                  self.linear2(coarse_feats).unsqueeze(0))[0]
        return self.linear1(fine_feats) + up


# ---------------------------------------------------------------------------------------------------------------
# Global transformer (GeoTransformer's geometric structure embedding, RoITr's position states)


class GeometricStructureEmbedding(nn.Module):
    """Pairwise-distance and triplet-angle sinusoids of the nodes [n, 3] -> [n, n, d] (rotation invariant)."""

    block_rows = 16  # nodes whose embedding rows are computed at once (see forward)

    def __init__(self, d: int, sigma_d: float, sigma_a: float, angle_k: int):
        super().__init__()
        self.sigma_d, self.angle_k = sigma_d, angle_k
        self.factor_a = 180.0 / (sigma_a * math.pi)
        self.embedding = SinusoidalEmbedding(d)
        self.proj_d, self.proj_a = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, points: Tensor) -> Tensor:
        with torch.no_grad():
            n = points.shape[0]
            dist = torch.cdist(points, points)  # [n, n]
            k = min(self.angle_k, n - 1)
            if k > 0:
                nn_idx = dist.topk(k + 1, dim=1, largest=False).indices[:, 1:]  # [n, k]
                ref = points[nn_idx] - points.unsqueeze(1)  # [n, k, 3]
                anc = points.unsqueeze(0) - points.unsqueeze(1)  # [n, n, 3]: x_j - x_i
                ref = ref.unsqueeze(1).expand(n, n, k, 3)
                anc = anc.unsqueeze(2).expand(n, n, k, 3)
                angles = torch.atan2(torch.linalg.norm(torch.cross(ref, anc, dim=-1), dim=-1),
                                     (ref * anc).sum(-1))  # [n, n, k]
            else:
                angles = points.new_zeros(n, n, 1)
        dist, angles = dist / self.sigma_d, angles * self.factor_a
        # By blocks of rows: the [rows, n, k, d] sinusoids and their projection stay a few MB, where the whole
        # [n, n, k, d] tensors are 25 MB each at 128 nodes (an 8192-point cloud) and their fresh pages cost about as
        # much again in page faults. Each row is computed as in one block (tests: bit for bit).
        return torch.cat([self.proj_d(self.embedding(dist[a:a + self.block_rows]))
                          + self.proj_a(self.embedding(angles[a:a + self.block_rows])).amax(2)
                          for a in range(0, n, self.block_rows)])  # [n, n, d]


class AttentionOutput(nn.Module):
    """Feed-forward: Linear(d, 2d) -> ReLU -> Linear(2d, d) -> + residual -> LayerNorm."""

    def __init__(self, d: int):
        super().__init__()
        self.expand, self.squeeze, self.norm = nn.Linear(d, 2 * d), nn.Linear(2 * d, d), nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.squeeze(F.relu(self.expand(x))))


class _RPEAttention(nn.Module):
    """Self-attention with relative geometric embeddings; also returns the position state of each node.

    logits = q_i . (k_j + W_p e_ij); features = sum_j a_ij v_j; position state = sum_{j != i} a'_ij W_vp e_ij
    with a' the softmax with the diagonal masked, so a node's position is described by the others only.
    Computed in factored form, the same function: q_i . W_p e_ij = (W_p^T q_i) . e_ij + q_i . b_p per head, and
    sum_j a'_ij W_vp e_ij = W_vp (sum_j a'_ij e_ij) + b_vp sum_j a'_ij, so the [n, n, d] embedding is never
    projected (n^2 d^2 multiply-adds per projection; 125 nodes: 2x faster).
    """

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.proj_q, self.proj_k, self.proj_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.proj_p, self.proj_vp = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        """x [n, d] node features, emb [n, n, d] geometric embedding -> features [n, d], position states [n, d]."""
        h = self.heads
        q = rearrange(self.proj_q(x), "n (h c) -> h n c", h=h)
        k = rearrange(self.proj_k(x), "n (h c) -> h n c", h=h)
        v = rearrange(self.proj_v(x), "n (h c) -> h n c", h=h)
        c = q.shape[-1]
        w_p = self.proj_p.weight.view(h, c, -1)  # [h, c, d]: head h's rows of W_p
        q_emb = q @ w_p  # [h, n, d] = W_p^T q per head
        pos_logits = torch.einsum("hnd,nmd->hnm", q_emb, emb)
        pos_logits = pos_logits + (q * self.proj_p.bias.view(h, 1, c)).sum(-1, keepdim=True)
        logits = (q @ k.transpose(-1, -2) + pos_logits) / math.sqrt(c)  # [h, n, n]
        feats = rearrange(torch.softmax(logits, -1) @ v, "h n c -> n (h c)")
        n = x.shape[0]
        if n > 1:
            eye = torch.eye(n, dtype=torch.bool, device=x.device)
            pos_attn = torch.softmax(logits.masked_fill(eye, float("-inf")), -1)
        else:  # a single node has no other node to describe its position
            pos_attn = torch.zeros_like(logits)
        pooled = torch.einsum("hnm,nmd->hnd", pos_attn, emb)  # [h, n, d]
        pos = pooled @ self.proj_vp.weight.view(h, c, -1).transpose(1, 2)  # [h, n, c]
        pos = pos + self.proj_vp.bias.view(h, 1, c) * pos_attn.sum(-1, keepdim=True)
        return feats, rearrange(pos, "h n c -> n (h c)")


class _RPEAttentionLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = _RPEAttention(d, heads)
        self.linear, self.norm = nn.Linear(d, d), nn.LayerNorm(d)
        self.pos_linear, self.pos_norm = nn.Linear(d, d), nn.LayerNorm(d)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        feats, pos = self.attention(x, emb)
        return self.norm(self.linear(feats) + x), self.pos_norm(self.pos_linear(pos))


class SelfLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = _RPEAttentionLayer(d, heads)
        self.output = AttentionOutput(d)
        self.pos_proj = AttentionOutput(d)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        feats, pos = self.attention(x, emb)
        return self.output(feats), self.pos_proj(pos)


class _CrossAttention(nn.Module):
    """Vanilla multi-head attention with the position states added to queries and keys."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.proj_q, self.proj_k, self.proj_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: Tensor, y: Tensor, pos_x: Tensor, pos_y: Tensor) -> Tensor:
        h = self.heads
        q = rearrange(self.proj_q(x + pos_x), "n (h c) -> h n c", h=h)
        k = rearrange(self.proj_k(y + pos_y), "m (h c) -> h m c", h=h)
        v = rearrange(self.proj_v(y), "m (h c) -> h m c", h=h)
        return rearrange(F.scaled_dot_product_attention(q, k, v), "h n c -> n (h c)")


class _CrossAttentionLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = _CrossAttention(d, heads)
        self.linear, self.norm = nn.Linear(d, d), nn.LayerNorm(d)

    def forward(self, x: Tensor, y: Tensor, pos_x: Tensor, pos_y: Tensor) -> Tensor:
        return self.norm(self.linear(self.attention(x, y, pos_x, pos_y)) + x)


class CrossLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = _CrossAttentionLayer(d, heads)
        self.output = AttentionOutput(d)

    def forward(self, x: Tensor, y: Tensor, pos_x: Tensor, pos_y: Tensor) -> Tensor:
        return self.output(self.attention(x, y, pos_x, pos_y))


class _Layers(nn.Module):
    def __init__(self, blocks: tuple[str, ...], d: int, heads: int):
        super().__init__()
        if not blocks or blocks[0] != "self" or any(b not in ("self", "cross") for b in blocks):
            raise ValueError(f"global blocks must be 'self'/'cross' starting with 'self', got {blocks}")
        self.blocks = tuple(blocks)
        self.layers = nn.ModuleList(SelfLayer(d, heads) if b == "self" else CrossLayer(d, heads) for b in blocks)


class GeometricTransformer(nn.Module):
    """The global transformer on the coarsest nodes of both clouds: [self, cross] x 3 in the paper."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, heads: int, blocks: tuple[str, ...],
                 sigma_d: float, sigma_a: float, angle_k: int):
        super().__init__()
        self.embedding = GeometricStructureEmbedding(hidden, sigma_d, sigma_a, angle_k)
        self.in_proj = nn.Linear(in_dim, hidden)
        self.transformer = _Layers(blocks, hidden, heads)
        self.out_proj = nn.Linear(hidden, out_dim)

    def forward(self, src_points: Tensor, tgt_points: Tensor, src_feats: Tensor,
                tgt_feats: Tensor) -> tuple[Tensor, Tensor]:
        src_emb, tgt_emb = self.embedding(src_points), self.embedding(tgt_points)
        x, y = self.in_proj(src_feats), self.in_proj(tgt_feats)
        for kind, layer in zip(self.transformer.blocks, self.transformer.layers):
            if kind == "self":
                x, pos_x = layer(x, src_emb)
                y, pos_y = layer(y, tgt_emb)
            else:  # the source is updated first and the target attends to the updated source (official order)
                x = layer(x, y, pos_x, pos_y)
                y = layer(y, x, pos_y, pos_x)
        return self.out_proj(x), self.out_proj(y)


# ---------------------------------------------------------------------------------------------------------------
# Backbone and model


class RIPointTransformer(nn.Module):
    """The rotation-invariant encoder-decoder with the global transformer at the bottleneck."""

    def __init__(self, *, planes: tuple[int, ...], blocks: tuple[int, ...], strides: tuple[int, ...],
                 nsample: tuple[int, ...], heads: int, hidden_cap: int, global_blocks: tuple[str, ...],
                 global_dim: int, sigma_d: float, sigma_a: float, angle_k: int, shape_features: bool = False,
                 exclude_self: bool = False):
        super().__init__()
        self.shape_features, self.exclude_self = shape_features, exclude_self
        in_channels = 4 if shape_features else 1
        if not len(planes) == len(blocks) == len(strides) == len(nsample) == 4:
            raise ValueError("RoITr has four levels: planes, blocks, strides and nsample need 4 entries each")
        self.strides, self.nsample = tuple(strides), tuple(nsample)
        dims = (in_channels, *planes)
        for i in range(4):
            layers = [TransitionDown(dims[i], planes[i], heads, strides[i], nsample[i], hidden_cap, exclude_self)]
            layers += [RIPointTransformerBlock(planes[i], heads, hidden_cap) for _ in range(blocks[i] - 1)]
            setattr(self, f"enc{i + 1}", nn.ModuleList(layers))
        # The decoder: one TransitionUp + one block per level (official: `_make_dec(..., 2, ...)`).
        self.dec4 = nn.ModuleList([TransitionUp(planes[3]), RIPointTransformerBlock(planes[3], heads, hidden_cap)])
        for i in (2, 1, 0):
            setattr(self, f"dec{i + 1}", nn.ModuleList([TransitionUp(planes[i + 1], planes[i]),
                                                        RIPointTransformerBlock(planes[i], heads, hidden_cap)]))
        self.global_transformer = GeometricTransformer(planes[3], global_dim, global_dim, heads, global_blocks,
                                                       sigma_d, sigma_a, angle_k)

    def encode(self, points: Tensor, normals: Tensor, feats: Tensor | None = None) -> list[Level]:
        """The four levels of one cloud; `feats` default: `input_features`.

        One kNN per level: k = the larger of the level's own nsample and the next level's, whose down-sampling
        centres are points of this level (their neighbourhoods are rows of this level's kNN); at stride 1 the
        level's points are its input points, so the input's kNN serves the shape features, the down-sampling
        and the level.
        """
        group, ppf = _neighbourhood(points, normals, self._level_k(0), exclude_self=self.exclude_self)
        if feats is None:
            feats = self.input_features(points, group)
        levels = []
        for i in range(4):
            enc = getattr(self, f"enc{i + 1}")
            points, normals, feats, sample_idx = enc[0](points, normals, feats, group, ppf)
            if self.strides[i] > 1 or group.shape[1] < min(self._level_k(i), points.shape[0]):
                group, ppf = _neighbourhood(points, normals, self._level_k(i), exclude_self=self.exclude_self)
            k = self.nsample[i]
            level = Level(points, normals, feats, group[:, :k], ppf[:, :k], sample_idx)
            for block in enc[1:]:
                feats = block(level, feats)
            level.feats = feats
            levels.append(level)
        return levels

    def _level_k(self, i: int) -> int:
        """Neighbours to find among level i's points: its own nsample and the next level's down-sampling's
        (and the shape features' nsample[1] on the input points)."""
        ks = self.nsample[i:i + 2]
        if i == 0 and self.shape_features:
            ks += (self.nsample[1],)
        return max(ks)

    def input_features(self, points: Tensor, group_idx: Tensor | None = None) -> Tensor:
        """[N, 1] ones (the paper), or [N, 4]: ones and `local_shape_features` (k = the second level's kNN)."""
        ones = points.new_ones(points.shape[0], 1)
        if not self.shape_features:
            return ones
        return torch.cat([ones, local_shape_features(points, self.nsample[1], group_idx)], 1)

    def decode(self, levels: list[Level]) -> Tensor:
        l4 = levels[3]
        x = self.dec4[1](l4, self.dec4[0](l4, l4.feats))
        for i in (2, 1, 0):
            dec = getattr(self, f"dec{i + 1}")
            fine, coarse = levels[i], levels[i + 1]
            x = dec[1](fine, dec[0](fine, fine.feats, coarse, x))
        return x

    def forward(self, src_points: Tensor, src_normals: Tensor, tgt_points: Tensor,
                tgt_normals: Tensor) -> tuple[list[Level], Tensor, Tensor, list[Level], Tensor, Tensor]:
        src = self.encode(src_points, src_normals)
        tgt = self.encode(tgt_points, tgt_normals)
        src_g, tgt_g = self.global_transformer(src[3].points, tgt[3].points, src[3].feats, tgt[3].feats)
        return src, src_g, self.decode(src), tgt, tgt_g, self.decode(tgt)


def _standardise(x: Tensor) -> Tensor:
    """Per-channel zero mean, unit variance over the points [N, C] of one cloud."""
    if x.shape[0] < 2:
        return x - x.mean(0, keepdim=True)
    return (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + 1e-6)


@dataclass
class RoITrOutput:
    """Descriptors of one pair. Nodes are the coarsest level (about N/64 points), points the input points.

    src_points [N, 3], src_nodes [M, 3], src_node_feats [M, C] (L2-normalised), src_point_feats [N, Cf];
    tgt_* likewise.
    """

    src_points: Tensor
    src_nodes: Tensor
    src_node_feats: Tensor
    src_point_feats: Tensor
    tgt_points: Tensor
    tgt_nodes: Tensor
    tgt_node_feats: Tensor
    tgt_point_feats: Tensor


@dataclass
class RoITrMatches:
    """The matching of one pair: node pairs, their patches, the Sinkhorn matrices and the correspondences.

    tgt_node_idx, src_node_idx [P] and node_scores [P]; patches of each side; log_scores [P, K+1, K+1]
    (rows target, columns source, dustbins last); tgt_corr [C, 3], src_corr [C, 3], corr_scores [C],
    corr_patch [C] (index into the P node pairs). In training (ground truth given) also every overlapping
    node pair gt_node_corr [G, 2] (target, source) and gt_node_overlaps [G], for the coarse loss.
    """

    tgt_patches: Patches
    src_patches: Patches
    tgt_node_idx: Tensor
    src_node_idx: Tensor
    node_scores: Tensor
    log_scores: Tensor
    tgt_corr: Tensor
    src_corr: Tensor
    corr_scores: Tensor
    corr_patch: Tensor
    gt_node_corr: Tensor | None = None
    gt_node_overlaps: Tensor | None = None


class RoITr(nn.Module):
    """RoITr: descriptors (`forward`) and coarse-to-fine matching (`match`).

    Args:
        planes, blocks, strides, nsample: the four encoder levels (paper: 64/128/256/256, 2/3/3/3, 1/4/4/4,
            8/16/16/16).
        heads: attention heads everywhere (paper: 4).
        hidden_cap: the local attention width is min(level width, hidden_cap) (paper: 256).
        global_blocks: the global transformer's layers (paper: self, cross x 3).
        sigma_d: distance temperature of the geometric embedding, canonical metres (0.2); sigma_a degrees (15);
            angle_k neighbours for the angular embedding (3).
        fine_dim: width of the point descriptors (paper: 256).
        point_limit: at most this many points per node patch (64).
        num_coarse: node pairs kept at test time (256); num_gt_coarse: ground-truth pairs sampled in
            training (128) among those with overlap > coarse_overlap (0.1).
        matching_radius: canonical metres for ground-truth patch overlap (0.05).
        sinkhorn_iterations: 100. fine_topk: 3 (mutual); fine_confidence: 0.05.
        descriptor_norm: standardise each cloud's node and point features over its points (per channel,
            no parameters) before `coarse_proj` / `fine_proj`. Not in the paper (off in `roitr_3dmatch`).
            Why: with the constant input feature every descriptor starts out almost the same for all points
            (about 1% relative spread), and a short CPU run stays stuck in that collapsed state; the
            standardisation removes the shared component so the losses see the geometric differences from
            the first step. It is rotation invariant like everything it is applied to.
        shape_features: feed `local_shape_features` (3 covariance-eigenvalue ratios) with the constant input
            feature. Not in the paper (off in `roitr_3dmatch`). Why: with the constant input alone, the
            encoder's per-point features start almost equal (std over points ~2e-3 at level 1) and short CPU runs
            collapsed the global transformer's output (std over the nodes 1e-5 after 850 and 1500 steps), leaving
            the coarse node descriptors nothing but float noise to match; with it, 1200 steps keep that std at
            4e-3 and the benchmark recall doubles (docs/registration.md).
        exclude_self: every neighbourhood (local attention, down-sampling, decoder blocks) is the k nearest
            points other than the centre itself, as the official `pointops.queryandgroup` computes them (it finds
            k + 1 and drops the nearest). Off: the centre is its own first neighbour, the Point Transformer
            convention this project trained its own variants with. Official checkpoints need it on
            (`convert_official` records it in the weights metadata): the neighbourhoods change the level-1 PPFs,
            and so about a third of the coarse node pairs and half the fine correspondences. The centre's own
            PPF is (0, angle(n, 0), .., 0), a constant that says nothing about the shape, so neither convention is
            wrong; trained weights need the one they were trained with.
    """

    def __init__(self, *, planes: tuple[int, ...] = (64, 128, 256, 256), blocks: tuple[int, ...] = (2, 3, 3, 3),
                 strides: tuple[int, ...] = (1, 4, 4, 4), nsample: tuple[int, ...] = (8, 16, 16, 16),
                 heads: int = 4, hidden_cap: int = 256,
                 global_blocks: tuple[str, ...] = ("self", "cross", "self", "cross", "self", "cross"),
                 sigma_d: float = 0.2, sigma_a: float = 15.0, angle_k: int = 3, fine_dim: int = 256,
                 point_limit: int = 64, num_coarse: int = 256, num_gt_coarse: int = 128,
                 coarse_overlap: float = 0.1, matching_radius: float = 0.05, sinkhorn_iterations: int = 100,
                 fine_topk: int = 3, fine_confidence: float = 0.05, descriptor_norm: bool = False,
                 shape_features: bool = False, exclude_self: bool = False):
        super().__init__()
        self.descriptor_norm = descriptor_norm
        global_dim = planes[3]
        self.backbone = RIPointTransformer(planes=planes, blocks=blocks, strides=strides, nsample=nsample,
                                           heads=heads, hidden_cap=hidden_cap, global_blocks=global_blocks,
                                           global_dim=global_dim, sigma_d=sigma_d, sigma_a=sigma_a, angle_k=angle_k,
                                           shape_features=shape_features, exclude_self=exclude_self)
        self.coarse_proj = nn.Linear(global_dim, global_dim)
        self.fine_proj = nn.Linear(planes[0], fine_dim)
        self.optimal_transport = LearnableLogOptimalTransport(sinkhorn_iterations)
        self.point_limit, self.num_coarse, self.num_gt_coarse = point_limit, num_coarse, num_gt_coarse
        self.coarse_overlap, self.matching_radius = coarse_overlap, matching_radius
        self.fine_topk, self.fine_confidence = fine_topk, fine_confidence

    def forward(self, src_points: Tensor, src_normals: Tensor, tgt_points: Tensor, tgt_normals: Tensor) -> RoITrOutput:
        """Descriptors of a pair: points [N, 3] in canonical metres and unit normals [N, 3], each side."""
        for name, t in (("src_points", src_points), ("tgt_points", tgt_points)):
            if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] < 4:
                raise ValueError(f"{name} must be [N >= 4, 3], got {tuple(t.shape)}")
        src, src_g, src_x, tgt, tgt_g, tgt_x = self.backbone(src_points, src_normals, tgt_points, tgt_normals)
        if self.descriptor_norm:
            src_g, src_x, tgt_g, tgt_x = (_standardise(x) for x in (src_g, src_x, tgt_g, tgt_x))
        return RoITrOutput(
            src_points=src_points, src_nodes=src[3].points,
            src_node_feats=F.normalize(self.coarse_proj(src_g), dim=1), src_point_feats=self.fine_proj(src_x),
            tgt_points=tgt_points, tgt_nodes=tgt[3].points,
            tgt_node_feats=F.normalize(self.coarse_proj(tgt_g), dim=1), tgt_point_feats=self.fine_proj(tgt_x))

    def match(self, out: RoITrOutput, *, gt_transform: Tensor | None = None,
              generator: torch.Generator | None = None) -> RoITrMatches:
        """Coarse-to-fine matching of `forward`'s output.

        With `gt_transform` (training) the node pairs are `num_gt_coarse` ground-truth pairs drawn at random
        among those with overlap > coarse_overlap, as in the official training; otherwise the top
        `num_coarse` pairs of the dual-normalised coarse matching.
        """
        tgt_p = point_to_node_partition(out.tgt_points, out.tgt_nodes, self.point_limit)
        src_p = point_to_node_partition(out.src_points, out.src_nodes, self.point_limit)
        gt_corr = gt_overlaps = None
        if gt_transform is not None:
            corr, overlaps = node_correspondences(out.tgt_nodes, out.src_nodes, tgt_p, src_p, out.tgt_points,
                                                  out.src_points, gt_transform, self.matching_radius)
            gt_corr, gt_overlaps = corr, overlaps
            keep = overlaps > self.coarse_overlap
            corr, overlaps = corr[keep], overlaps[keep]
            if corr.shape[0] > self.num_gt_coarse:
                sel = torch.randperm(corr.shape[0], generator=generator)[: self.num_gt_coarse].to(corr.device)
                corr, overlaps = corr[sel], overlaps[sel]
            ti, si, node_scores = corr[:, 0], corr[:, 1], overlaps
        else:
            ti, si, node_scores = coarse_matching(out.tgt_node_feats, out.src_node_feats, tgt_p.node_masks,
                                                  src_p.node_masks, self.num_coarse)
        tgt_knn_feats = tgt_p.gather(out.tgt_point_feats)[ti]  # [P, K, C]
        src_knn_feats = src_p.gather(out.src_point_feats)[si]
        scores = tgt_knn_feats @ src_knn_feats.transpose(1, 2) / math.sqrt(tgt_knn_feats.shape[-1])  # [P, K, K]
        tm, sm = tgt_p.knn_masks[ti], src_p.knn_masks[si]
        if ti.numel() == 0:
            log_scores = scores.new_zeros(0, tm.shape[1] + 1, sm.shape[1] + 1)
        else:
            log_scores = self.optimal_transport(scores, tm, sm)
        tgt_knn_pts, src_knn_pts = tgt_p.gather(out.tgt_points)[ti], src_p.gather(out.src_points)[si]
        tc, sc, cs, cp = fine_matching(log_scores, tgt_knn_pts, src_knn_pts, tm, sm, k=self.fine_topk,
                                       confidence=self.fine_confidence)
        return RoITrMatches(tgt_p, src_p, ti, si, node_scores, log_scores, tc, sc, cs, cp, gt_corr, gt_overlaps)


# ---------------------------------------------------------------------------------------------------------------
# Named variants


def roitr_3dmatch(**overrides) -> RoITr:
    """The paper's 3DMatch / 3DLoMatch model (configs/train/tdmatch.yaml of the official code)."""
    return RoITr(**overrides)


def roitr_small(**overrides) -> RoITr:
    """A CPU-trainable RoITr: half the widths, fewer blocks, 32 points per patch, 50 Sinkhorn iterations,
    `descriptor_norm` and `shape_features` (see RoITr). The paper's 256 node pairs at test time: with only
    ~32 nodes per 2048-point cloud, 128 pairs left too few good patch pairs for LGR (bench recall 64% against
    76% with 256; docs/registration.md).

    Same architecture and strides as the paper; smaller so that it trains in minutes on two CPU cores.
    """
    cfg = dict(planes=(32, 64, 128, 128), blocks=(1, 2, 2, 2), nsample=(8, 16, 16, 16), hidden_cap=128,
               global_blocks=("self", "cross", "self", "cross"), fine_dim=64, point_limit=32, num_coarse=256,
               num_gt_coarse=64, sinkhorn_iterations=50, descriptor_norm=True, shape_features=True)
    cfg.update(overrides)
    return RoITr(**cfg)


def roitr_small_lidar(**overrides) -> RoITr:
    """`roitr_small` for spinning-lidar sweeps (tens of thousands of points over 50-200 m): the same network, so the
    object weights (`roitr_small_cgal`) fine-tune into it; what differs is the input spec of its weights
    (`RegistrationSpec`: more points per cloud, which at sweep scale sets a finer voxel, hence finer patches and
    radii in metres) and the training pairs (consecutive simulated sweeps, real Ouster sweeps of sensors outside the
    benchmark, airborne tiles, 20-100% overlap; `omnisense.train.registration.SweepPairs`). Rotation invariance is
    the architecture's (PPF features), unchanged.
    """
    return roitr_small(**overrides)


def roitr_tiny(**overrides) -> RoITr:
    """For tests: the smallest model that exercises every part."""
    cfg = dict(planes=(16, 16, 32, 32), blocks=(1, 2, 1, 1), nsample=(4, 8, 8, 8), heads=2, hidden_cap=32,
               global_blocks=("self", "cross"), fine_dim=16, point_limit=16, num_coarse=32, num_gt_coarse=16,
               sinkhorn_iterations=10, descriptor_norm=True)
    cfg.update(overrides)
    return RoITr(**cfg)


# ---------------------------------------------------------------------------------------------------------------
# Official checkpoint converter

# Official tensors with no counterpart here: the unused occlusion head, the unused second OT layer, and the
# constant sinusoid buffers (recomputed here, not stored).
_OFFICIAL_UNUSED = ("backbone.occ_proj.", "OT.")


OFFICIAL_KWARGS = {"exclude_self": True}  # the official neighbourhoods (see RoITr), which its weights need


def convert_official(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
    """Map the official RoITr state dict (`model_3dmatch.pth`'s 'state_dict') to `roitr_3dmatch`'s keys.

    The module tree here follows the official names, with two differences: encoder and decoder levels are
    ModuleLists (`enc2.1.` is the official `enc2.1.` too: Sequential indices), and the official
    `backbone.global_transformer.transformer.layers.*` nest is kept as is. `module.` prefixes (DDP) are stripped;
    unused tensors and sinusoid buffers are dropped. The same mapping fills the 4DMatch layout (factor 2:
    `RoITr(planes=(128, 256, 512, 512), hidden_cap=512, fine_dim=512)`), whose adaptive coarse matching is not
    implemented here.

    Returns:
        (state, info): `info["kwargs"]` the constructor options the official weights need (`exclude_self`),
        `info["input"]` the official input size; 3DMatch has no classes.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith(_OFFICIAL_UNUSED) or key.endswith(".div_term"):
            continue
        out[key] = value
    # The official 3DMatch loader keeps at most 30000 points of each 2.5 cm-voxelised fragment.
    return out, {"kwargs": dict(OFFICIAL_KWARGS), "input": {"num_points": 30000}}
