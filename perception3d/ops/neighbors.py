"""Neighbour ops of point networks: kNN, ball query, farthest point sampling, 3-NN interpolation, gather.

Each op has a pure-torch reference (brute force over chunks of queries, so memory stays bounded, any device)
and fast paths for the index-only work, chosen by `backend=` or the OMNISENSE_OPS_BACKEND variable
(perception3d.ops._backend):

| op | reference | fast paths (auto picks the first that can run) |
|---|---|---|
| knn, knn_ragged | exact differences, topk | CPU: `open3d` KD-tree (core.nns), then `scipy` cKDTree; CUDA: `torch` (matmul distances, exact re-rank) |
| ball_query | exact differences, first in index order | CPU: `scipy` cKDTree.query_ball_point; CUDA: reference |
| farthest_point_sample | a loop of n steps, batched | CPU: `open3d` farthest_point_down_sample (its set, put back in FPS order); CUDA: `triton` on request only (unverified on a GPU) |

The fast paths are `torch.library` custom ops (perception3d.ops._library), so every op traces under
`torch.compile(fullgraph=True)`. They only choose indices; distances are always recomputed in torch from the chosen indices with
the reference's formula, so they carry gradients and agree bit for bit with the reference wherever the
indices agree. Indices agree with the reference up to ties (equal distances, in the input's precision).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError
from perception3d.ops import _library
from perception3d.ops._backend import choose
from perception3d.ops.batch import check_offsets

# query-reference pairs held at once by the brute-force paths: [chunk, N, 3] floats, ~50 MB in float32
_PAIR_BUDGET = 1 << 22


def _check_cloud(x: Tensor, name: str, batched: bool) -> None:
    want = 3 if batched else 2
    if x.dim() != want or x.shape[-1] != 3:
        shape = "[B, N, 3]" if batched else "[N, 3]"
        raise PointCloudValueError(f"{name}: expected a tensor {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise PointCloudValueError(f"{name}: expected floating-point coordinates, got {x.dtype}")


def _work_dtype(x: Tensor) -> Tensor:
    # half-precision coordinates are ranked in float32: fp16 distances tie far too often
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _chunk(batch: int, n_ref: int, budget: int = _PAIR_BUDGET) -> int:
    return max(1, budget // max(1, batch * n_ref))


def _sq_dist(q: Tensor, r: Tensor) -> Tensor:
    """Exact squared distances `[..., M, N]` between `q [..., M, 3]` and `r [..., N, 3]` (the reference formula)."""
    return ((q.unsqueeze(-2) - r.unsqueeze(-3)) ** 2).sum(-1)


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """Gather rows of each sample: `x: Tensor[B, N, C]`, `idx: LongTensor[B, ...]` -> `Tensor[B, ..., C]`.

    Differentiable in `x` (the gradient is scattered back and summed over repeated indices).
    """
    if x.dim() != 3 or idx.dim() < 1 or idx.shape[0] != x.shape[0]:
        raise PointCloudValueError(f"gather_points: expected x [B, N, C] and idx [B, ...], got "
                                   f"{tuple(x.shape)} and {tuple(idx.shape)}")
    b, _, c = x.shape
    flat = idx.reshape(b, -1, 1).expand(-1, -1, c)
    return x.gather(1, flat).reshape(*idx.shape, c)


def _sorted_gather_d2(query: Tensor, ref: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Distances of the chosen neighbours, recomputed in torch and sorted ascending (stable)."""
    nbr = gather_points(ref, idx)  # [B, M, k, 3]
    dist2 = ((query.unsqueeze(2) - nbr) ** 2).sum(-1)  # [B, M, k]
    dist2, order = dist2.sort(dim=-1, stable=True)
    return dist2, idx.gather(-1, order)


def _pad_repeat_last(idx: Tensor, k: int) -> Tensor:
    # a sample with fewer than k points repeats its farthest neighbour: indices stay in the sample, order ascending
    if idx.shape[-1] >= k:
        return idx
    return torch.cat([idx, idx[..., -1:].expand(*idx.shape[:-1], k - idx.shape[-1])], dim=-1)


# ---------------------------------------------------------------- kNN

def _knn_reference(query: Tensor, ref: Tensor, k: int) -> Tensor:
    b, m, _ = query.shape
    step = _chunk(b, ref.shape[1])
    out = [_sq_dist(query[:, s:s + step], ref).topk(k, dim=-1, largest=False, sorted=True).indices
           for s in range(0, m, step)]
    return torch.cat(out, dim=1)


def _knn_torch_mm(query: Tensor, ref: Tensor, k: int) -> Tensor:
    # |q|^2 + |r|^2 - 2 q.r with a matmul; centring keeps the cancellation error small, and a few extra
    # candidates re-ranked by exact distance make the result match the reference up to ties
    b, m, _ = query.shape
    n = ref.shape[1]
    centre = ref.mean(dim=1, keepdim=True)
    q, r = query - centre, ref - centre
    r_sq = (r * r).sum(-1)  # [B, N]
    cand = min(n, k + 4)
    # no [.., 3] difference tensor here: 8x the pairs of the reference per chunk (~128 MB in float32)
    step = _chunk(b, n, 8 * _PAIR_BUDGET)
    out = []
    for s in range(0, m, step):
        qc = q[:, s:s + step]  # [B, mc, 3]
        approx = torch.baddbmm(r_sq.unsqueeze(1), qc, r.transpose(1, 2), alpha=-2.0)  # [B, mc, N] minus |q|^2
        top = approx.topk(cand, dim=-1, largest=False, sorted=False).indices  # [B, mc, cand]
        exact = ((qc.unsqueeze(2) - gather_points(r, top)) ** 2).sum(-1)
        order = exact.topk(k, dim=-1, largest=False, sorted=True).indices
        out.append(top.gather(-1, order))
    return torch.cat(out, dim=1)


def _knn_scipy(query: Tensor, ref: Tensor, k: int) -> Tensor:
    from scipy.spatial import cKDTree

    workers = max(1, torch.get_num_threads())
    out = []
    for qb, rb in zip(query.double().numpy(), ref.double().numpy()):
        _, idx = cKDTree(rb).query(qb, k=k, workers=workers)
        out.append(torch.from_numpy(idx.reshape(len(qb), k).astype("int64")))
    return torch.stack(out)


def _knn_open3d(query: Tensor, ref: Tensor, k: int) -> Tensor:
    # open3d before scipy on CPU: the registration call needs open3d anyway (normals, FPFH), and importing
    # scipy.spatial costs 0.2-0.4 s of a process's first call (scipy 1.17's array-API layer walks numpy's
    # namespace, importing numpy.f2py); the same float64 search, 1-2x faster here on RoITr's 32-2048-point levels
    from perception3d._open3d import knn_search

    out = [torch.from_numpy(knn_search(rb, qb, k)[0]) for qb, rb in zip(query.double().numpy(), ref.double().numpy())]
    return torch.stack(out)


def _knn_indices(query: Tensor, ref: Tensor, k: int, name: str) -> Tensor:
    with torch.no_grad():
        q, r = _work_dtype(query.detach()), _work_dtype(ref.detach())
        if name == "reference":
            return _knn_reference(q, r, k)
        return _library.call("knn_index", q, r, k, name)


def _knn_backend(backend: str | None, device: torch.device) -> str:
    return choose("knn", backend, device, cpu=("open3d", "scipy"), gpu=("torch",),
                  available=("reference", "torch", "open3d", "scipy"))


def knn(query: Tensor, ref: Tensor, k: int, *, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """The k nearest reference points of each query point, per sample.

    Args:
        query: `Tensor[B, M, 3]` query points.
        ref: `Tensor[B, N, 3]` reference points (same B).
        k: neighbours per query. When N < k the last N..k-1 slots repeat the farthest found neighbour.
        backend: None (environment), 'auto', 'reference', 'torch', 'open3d' or 'scipy' (CPU).

    Returns:
        dist2: `Tensor[B, M, k]` squared Euclidean distances, ascending; differentiable in query and ref.
        idx: `LongTensor[B, M, k]` indices into ref's N axis.
    """
    _check_cloud(query, "knn query", batched=True)
    _check_cloud(ref, "knn ref", batched=True)
    if query.shape[0] != ref.shape[0]:
        raise PointCloudValueError(f"knn: query has B={query.shape[0]} samples but ref has B={ref.shape[0]}")
    if k < 1:
        raise ValueError(f"knn: k must be >= 1, got {k}")
    b, m, _ = query.shape
    n = ref.shape[1]
    if m == 0 or b == 0:
        return query.new_zeros(b, m, k), torch.zeros(b, m, k, dtype=torch.long, device=query.device)
    if n == 0:
        raise PointCloudValueError(f"knn: {m} queries per sample but no reference points")
    idx = _knn_indices(query, ref, min(k, n), _knn_backend(backend, query.device))
    idx = _pad_repeat_last(idx.to(query.device), k)
    return _sorted_gather_d2(query, ref, idx)


def knn_ragged(query: Tensor, query_offsets: Tensor, ref: Tensor, ref_offsets: Tensor, k: int, *,
               backend: str | None = None) -> tuple[Tensor, Tensor]:
    """kNN over a ragged batch: each query sample searches only its own reference sample.

    Args:
        query: `Tensor[M, 3]`, samples concatenated; `query_offsets: LongTensor[B+1]`.
        ref: `Tensor[N, 3]`, samples concatenated; `ref_offsets: LongTensor[B+1]` (same B).
        k: neighbours per query. A sample with fewer than k reference points repeats its farthest
            neighbour in the remaining slots: an index never points into another sample.
        backend: as for `knn`.

    Returns:
        dist2: `Tensor[M, k]` ascending squared distances (differentiable); idx: `LongTensor[M, k]` into ref.
    """
    _check_cloud(query, "knn_ragged query", batched=False)
    _check_cloud(ref, "knn_ragged ref", batched=False)
    check_offsets(query_offsets, query.shape[0], "knn_ragged query_offsets")
    check_offsets(ref_offsets, ref.shape[0], "knn_ragged ref_offsets")
    if query_offsets.numel() != ref_offsets.numel():
        raise PointCloudValueError(f"knn_ragged: {query_offsets.numel() - 1} query samples but "
                                   f"{ref_offsets.numel() - 1} reference samples")
    if k < 1:
        raise ValueError(f"knn_ragged: k must be >= 1, got {k}")
    name = _knn_backend(backend, query.device)
    idx = torch.zeros(query.shape[0], k, dtype=torch.long, device=query.device)
    qo, ro = query_offsets.tolist(), ref_offsets.tolist()
    for b in range(len(qo) - 1):
        (qa, qb), (ra, rb) = (qo[b], qo[b + 1]), (ro[b], ro[b + 1])
        if qb == qa:
            continue
        if rb == ra:
            raise PointCloudValueError(f"knn_ragged: sample {b} has {qb - qa} queries but no reference points")
        found = _knn_indices(query[None, qa:qb], ref[None, ra:rb], min(k, rb - ra), name)[0]
        idx[qa:qb] = _pad_repeat_last(found.to(query.device), k) + ra
    dist2, idx = _sorted_gather_d2(query[None], ref[None], idx[None])
    return dist2[0], idx[0]


# ---------------------------------------------------------------- ball query

def _ball_reference(query: Tensor, ref: Tensor, r2: float, count: int) -> Tensor:
    b, m, _ = query.shape
    n = ref.shape[1]
    arange = torch.arange(n, device=query.device)
    step = _chunk(b, n)
    out = []
    for s in range(0, m, step):
        d2 = _sq_dist(query[:, s:s + step], ref)  # [B, mc, N]
        cand = torch.where(d2 < r2, arange, n)  # index if inside, else the sentinel n
        first = cand.topk(min(count, n), dim=-1, largest=False, sorted=True).values  # [B, mc, c]
        fill = torch.where(first[..., 0] < n, first[..., 0], d2.argmin(dim=-1))  # nobody inside: nearest
        out.append(torch.where(first < n, first, fill.unsqueeze(-1)))
    return torch.cat(out, dim=1)


def _ball_scipy(query: Tensor, ref: Tensor, radius: float, count: int) -> Tensor:
    import itertools

    import numpy as np
    from scipy.spatial import cKDTree

    workers = max(1, torch.get_num_threads())
    r2 = radius * radius
    # a radius a hair larger, then the reference's strict `d2 < r2` test in the input precision
    loose = radius * (1 + 1e-5) + 1e-12
    keep = count + 8
    out = []
    for qt, rt in zip(query, ref):
        m, n = qt.shape[0], rt.shape[0]
        tree = cKDTree(rt.double().numpy())
        lists = tree.query_ball_point(qt.double().numpy(), loose, return_sorted=True, workers=workers)
        lists = [lst[:keep] for lst in lists]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=m)
        cols = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64,
                                            count=int(lengths.sum())))
        rows = torch.repeat_interleave(torch.arange(m), torch.from_numpy(lengths))
        inside = ((qt[rows] - rt[cols]) ** 2).sum(-1) < r2
        rows, cols = rows[inside], cols[inside]
        # rank of each hit within its query (hits are grouped by query, in index order)
        starts = torch.searchsorted(rows, torch.arange(m))
        rank = torch.arange(rows.numel()) - starts[rows]
        sel = rank < count
        res = torch.full((m, count), n, dtype=torch.long)
        res[rows[sel], rank[sel]] = cols[sel]
        empty = res[:, 0] == n
        if bool(empty.any()):
            _, nearest = tree.query(qt[empty].double().numpy(), k=1, workers=workers)
            res[empty, 0] = torch.from_numpy(np.asarray(nearest, dtype=np.int64).reshape(-1))
        out.append(torch.where(res < n, res, res[:, :1]))
    return torch.stack(out)


def ball_query(query: Tensor, ref: Tensor, radius: float, max_count: int, *,
               backend: str | None = None) -> Tensor:
    """Neighbours within a radius, PointNet++ style.

    The first `max_count` reference points with squared distance < radius^2, in index order; the remaining
    slots repeat the first one found. A query with nobody inside the radius gets its nearest neighbour in
    every slot.

    Args:
        query: `Tensor[B, M, 3]`; ref: `Tensor[B, N, 3]` (same B, N >= 1 when M >= 1).
        radius: in the coordinates' unit (metres).
        max_count: slots per query.
        backend: None (environment), 'auto', 'reference' or 'scipy' (CPU).

    Returns:
        `LongTensor[B, M, max_count]` indices into ref's N axis.
    """
    _check_cloud(query, "ball_query query", batched=True)
    _check_cloud(ref, "ball_query ref", batched=True)
    if query.shape[0] != ref.shape[0]:
        raise PointCloudValueError(f"ball_query: query has B={query.shape[0]} samples but ref has B={ref.shape[0]}")
    if max_count < 1 or not radius > 0:
        raise ValueError(f"ball_query: need radius > 0 and max_count >= 1, got {radius}, {max_count}")
    b, m, _ = query.shape
    n = ref.shape[1]
    if m == 0 or b == 0:
        return torch.zeros(b, m, max_count, dtype=torch.long, device=query.device)
    if n == 0:
        raise PointCloudValueError(f"ball_query: {m} queries per sample but no reference points")
    name = choose("ball_query", backend, query.device, cpu=("scipy",), gpu=(),
                  available=("reference", "scipy"))
    with torch.no_grad():
        q, r = _work_dtype(query.detach()), _work_dtype(ref.detach())
        if name == "scipy":
            idx = _library.call("ball_index", q, r, float(radius), max_count, name)
        else:
            idx = _ball_reference(q, r, float(radius) ** 2, max_count)
    return _pad_repeat_first(idx.to(query.device), max_count)


def _pad_repeat_first(idx: Tensor, count: int) -> Tensor:
    if idx.shape[-1] >= count:
        return idx
    return torch.cat([idx, idx[..., :1].expand(*idx.shape[:-1], count - idx.shape[-1])], dim=-1)


# ---------------------------------------------------------------- farthest point sampling

def _fps_reference(xyz: Tensor, n: int, start: int) -> Tensor:
    b, num, _ = xyz.shape
    out = torch.empty(b, n, dtype=torch.long, device=xyz.device)
    dist = torch.full((b, num), math.inf, dtype=xyz.dtype, device=xyz.device)
    last = torch.full((b,), start, dtype=torch.long, device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(n):
        out[:, i] = last
        if i == n - 1:
            break
        d = ((xyz - xyz[rows, last].unsqueeze(1)) ** 2).sum(-1)  # [B, N]
        dist = torch.minimum(dist, d)
        last = dist.argmax(dim=-1)  # the first of equal maxima, as the official kernels
    return out


def _sq_dist_table(cloud, rows: int = 512):
    """All pairwise squared distances [N, N] of a float64 cloud [N, 3], summed x, y, z in that order: the values
    of scipy's `cdist(cloud, cloud, "sqeuclidean")` bit for bit (tested), without importing scipy.spatial
    (0.2-0.4 s of a process's first registration). Built in blocks of `rows` rows: one [rows, N] temporary."""
    import numpy as np

    n = len(cloud)
    table = np.empty((n, n))
    tmp = np.empty((min(rows, n), n))
    for a in range(0, n, rows):
        block, t = table[a:a + rows], tmp[:min(rows, n - a)]
        np.subtract.outer(cloud[a:a + rows, 0], cloud[:, 0], out=block)
        block *= block
        for j in (1, 2):
            np.subtract.outer(cloud[a:a + rows, j], cloud[:, j], out=t)
            t *= t
            block += t
    return table


def _fps_numpy(cloud, n: int, start: int):
    """The reference loop for one small float64 cloud in numpy (far less per-step overhead than torch on CPU)."""
    import numpy as np

    picks = np.empty(n, dtype=np.int64)
    dist = np.full(len(cloud), np.inf)
    # up to 4096 points, all pairwise distances at once (<= 128 MB) leave two cheap ops per step
    table = _sq_dist_table(cloud) if len(cloud) <= 4096 else None
    last = start
    for i in range(n):
        picks[i] = last
        if table is not None:
            row = table[last]
        else:
            diff = cloud - cloud[last]
            row = np.einsum("ij,ij->i", diff, diff)
        np.minimum(dist, row, out=dist)
        last = int(dist.argmax())
    return picks


def _fps_open3d(xyz: Tensor, n: int, start: int) -> Tensor:
    import numpy as np
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    out = []
    for cloud in xyz.double().numpy():
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
        # the index rides along in the colour channel: open3d returns the chosen points in index order
        tag = np.zeros_like(cloud)
        tag[:, 0] = np.arange(len(cloud))
        pc.colors = o3d.utility.Vector3dVector(tag)
        chosen = np.asarray(pc.farthest_point_down_sample(n, start).colors)[:, 0].astype(np.int64)
        # open3d picks the same set but loses the order; the FPS order is recovered exactly by rerunning FPS
        # on the chosen points alone (each pick is the global farthest, hence the farthest among the chosen)
        first = int(np.flatnonzero(chosen == start)[0])
        out.append(torch.from_numpy(chosen[_fps_numpy(cloud[chosen], n, first)]))
    return torch.stack(out)


def farthest_point_sample(xyz: Tensor, n: int, *, start: int = 0, backend: str | None = None) -> Tensor:
    """Farthest point sampling (PointNet++): n indices per sample, the first being `start`.

    Each next pick is the point whose squared distance to the picked set is largest (the first such index on
    ties), so the first k picks of an n-sample are a k-sample.

    Args:
        xyz: `Tensor[B, N, 3]` points.
        n: points to pick, 0 <= n <= N.
        start: the index picked first (0 as in the official CUDA kernels).
        backend: None (environment), 'auto', 'reference', 'open3d' (CPU) or 'triton' (CUDA; not yet
            verified on a GPU, so never picked by 'auto').

    Returns:
        `LongTensor[B, n]` indices into N, in picking order.
    """
    _check_cloud(xyz, "farthest_point_sample xyz", batched=True)
    b, num, _ = xyz.shape
    if not 0 <= n <= num:
        raise PointCloudValueError(f"farthest_point_sample: cannot pick {n} of {num} points")
    if n == 0 or b == 0:
        return torch.zeros(b, n, dtype=torch.long, device=xyz.device)
    if not 0 <= start < num:
        raise ValueError(f"farthest_point_sample: start {start} outside [0, {num})")
    # the Triton kernel is not in `auto` until it has passed the cuda tests on a GPU (see _triton_fps)
    name = choose("farthest_point_sample", backend, xyz.device, cpu=("open3d",), gpu=(),
                  available=("reference", "open3d", "triton"))
    with torch.no_grad():
        x = _work_dtype(xyz.detach())
        if name == "reference":
            return _fps_reference(x, n, start)
        return _library.call("fps_index", x, n, start, name)


def farthest_point_sample_ragged(coord: Tensor, offsets: Tensor, counts: Sequence[int] | Tensor, *,
                                 start: int = 0, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """FPS on a ragged batch (pointops style): `counts[b]` points of sample b.

    Args:
        coord: `Tensor[N, 3]`, samples concatenated; offsets: `LongTensor[B+1]`.
        counts: points to pick per sample (each <= that sample's size).
        start: the index, within each sample, picked first.

    Returns:
        idx: `LongTensor[sum(counts)]` indices into coord; new_offsets: `LongTensor[B+1]` of the picks.
    """
    _check_cloud(coord, "farthest_point_sample_ragged coord", batched=False)
    check_offsets(offsets, coord.shape[0], "farthest_point_sample_ragged offsets")
    counts = [int(c) for c in (counts.tolist() if isinstance(counts, Tensor) else counts)]
    bounds = offsets.tolist()
    if len(counts) != len(bounds) - 1:
        raise PointCloudValueError(f"farthest_point_sample_ragged: {len(bounds) - 1} samples but {len(counts)} counts")
    parts = []
    for (a, e), c in zip(zip(bounds[:-1], bounds[1:]), counts):
        if c == 0:
            continue
        parts.append(farthest_point_sample(coord[None, a:e], c, start=start, backend=backend)[0] + a)
    idx = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=coord.device)
    new_offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.long, device=coord.device)
    return idx, new_offsets


# ---------------------------------------------------------------- interpolation

def three_nn_interpolate(unknown: Tensor, known: Tensor, feats: Tensor, *, backend: str | None = None) -> Tensor:
    """Inverse-distance interpolation from the 3 nearest known points (PointNet++ feature propagation).

    Weights are `1 / (d + 1e-8)` with d the Euclidean distance, normalised to sum to 1, as in pointops and
    pointnet2. With fewer than 3 known points, all of them are used.

    Args:
        unknown: `Tensor[B, n, 3]` points to interpolate at.
        known: `Tensor[B, m, 3]` points carrying features (m >= 1).
        feats: `Tensor[B, m, C]` their features.
        backend: the kNN backend.

    Returns:
        `Tensor[B, n, C]`, differentiable in feats, unknown and known.
    """
    if feats.dim() != 3 or feats.shape[:2] != known.shape[:2]:
        raise PointCloudValueError(f"three_nn_interpolate: feats {tuple(feats.shape)} does not match known "
                                   f"{tuple(known.shape)}")
    k = min(3, known.shape[1]) if known.shape[1] > 0 else 3
    dist2, idx = knn(unknown, known, k, backend=backend)
    positive = dist2 > 0
    dist = torch.where(positive, dist2, torch.ones_like(dist2)).sqrt() * positive  # sqrt with a finite gradient at 0
    recip = 1.0 / (dist + 1e-8)
    weight = recip / recip.sum(dim=-1, keepdim=True)  # [B, n, k]
    return (gather_points(feats, idx) * weight.unsqueeze(-1)).sum(dim=2)


def three_nn_interpolate_ragged(unknown: Tensor, unknown_offsets: Tensor, known: Tensor, known_offsets: Tensor,
                                feats: Tensor, *, backend: str | None = None) -> Tensor:
    """`three_nn_interpolate` on a ragged batch (pointops' interpolation): each sample uses its own known points.

    Args:
        unknown: `Tensor[n, 3]`, samples concatenated; unknown_offsets: `LongTensor[B+1]`.
        known: `Tensor[m, 3]`; known_offsets: `LongTensor[B+1]` (every sample with unknown points has >= 1).
        feats: `Tensor[m, C]` features of the known points.

    Returns:
        `Tensor[n, C]`, differentiable in feats, unknown and known.
    """
    if feats.dim() != 2 or feats.shape[0] != known.shape[0]:
        raise PointCloudValueError(f"three_nn_interpolate_ragged: feats {tuple(feats.shape)} does not match known "
                                   f"{tuple(known.shape)}")
    sizes = known_offsets[1:] - known_offsets[:-1]
    k = int(min(3, int(sizes.max()))) if sizes.numel() and int(sizes.max()) > 0 else 3
    dist2, idx = knn_ragged(unknown, unknown_offsets, known, known_offsets, k, backend=backend)
    # a sample with fewer than 3 known points repeats its farthest one: count each point once
    first = torch.ones_like(idx, dtype=torch.bool)
    first[:, 1:] = idx[:, 1:] != idx[:, :-1]
    positive = dist2 > 0
    dist = torch.where(positive, dist2, torch.ones_like(dist2)).sqrt() * positive
    recip = first / (dist + 1e-8)
    weight = recip / recip.sum(dim=-1, keepdim=True)  # [n, k]
    return (feats[idx] * weight.unsqueeze(-1)).sum(dim=1)

