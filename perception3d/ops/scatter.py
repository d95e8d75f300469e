"""Scatter reductions over a point-to-segment index (voxels, pillars, sets), with `scatter_reduce` only.

Rows whose index is negative (points that `voxelize` dropped: outside the range or over a cap) are ignored,
so `scatter_mean(feats, voxels.point_to_voxel, len(voxels))` works as is. Empty segments give zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError


def _check(src: Tensor, index: Tensor, size: int, op: str) -> tuple[Tensor, Tensor]:
    if src.dim() != 2 or index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise PointCloudValueError(f"{op}: expected src [N, C] and index [N], got {tuple(src.shape)} and "
                                   f"{tuple(index.shape)}")
    if index.numel() and int(index.max()) >= size:
        raise PointCloudValueError(f"{op}: index {int(index.max())} out of range for size {size}")
    keep = index >= 0
    if bool(keep.all()):
        return src, index
    return src[keep], index[keep]


def scatter_mean(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of the rows of `src: Tensor[N, C]` per segment `index: LongTensor[N]` -> `Tensor[size, C]`.

    Differentiable in src; empty segments are zero.
    """
    src, index = _check(src, index, size, "scatter_mean")
    out = src.new_zeros(size, src.shape[1])
    return out.scatter_reduce(0, index.unsqueeze(1).expand_as(src), src, reduce="mean", include_self=False)


def scatter_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Sum of the rows of `src: Tensor[N, C]` per segment -> `Tensor[size, C]`."""
    src, index = _check(src, index, size, "scatter_sum")
    return src.new_zeros(size, src.shape[1]).index_add(0, index, src)


def scatter_count(index: Tensor, size: int) -> Tensor:
    """`LongTensor[size]`: rows per segment (negative indices ignored)."""
    index = index[index >= 0]
    return torch.bincount(index, minlength=size)[:size] if index.numel() else index.new_zeros(size)


def scatter_max(src: Tensor, index: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Per-channel maximum of the rows of `src: Tensor[N, C]` per segment.

    Returns:
        values: `Tensor[size, C]` (zero for empty segments). Its gradient goes to the arg-max row only
            (the first on ties), as torch_scatter's.
        argmax: `LongTensor[size, C]` rows of the original src (-1 for empty segments).
    """
    n, c = src.shape if src.dim() == 2 else (0, 0)
    rows_all = torch.arange(n, device=src.device)
    src_kept, index_kept = _check(src, index, size, "scatter_max")
    rows = rows_all[index >= 0] if src_kept.shape[0] != n else rows_all
    expanded = index_kept.unsqueeze(1).expand_as(src_kept)
    with torch.no_grad():
        best = src_kept.new_full((size, c), -torch.inf).scatter_reduce(
            0, expanded, src_kept.detach(), reduce="amax", include_self=False)
        is_best = src_kept.detach() == best.gather(0, expanded)
        cand = torch.where(is_best, rows.unsqueeze(1).expand_as(src_kept), n)
        argmax = torch.full((size, c), n, dtype=torch.long, device=src.device).scatter_reduce(
            0, expanded, cand, reduce="amin", include_self=True)
        empty = argmax == n
        argmax = argmax.masked_fill(empty, -1)
    values = src.gather(0, argmax.clamp(min=0)) if n else src.new_zeros(size, c)
    return values.masked_fill(empty, 0), argmax
