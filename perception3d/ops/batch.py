"""Ragged point batches: variable-size samples concatenated along the point axis, with per-sample offsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError


def offsets_from_sizes(sizes: Sequence[int] | Tensor, device: torch.device | str | None = None) -> Tensor:
    """Cumulative offsets `LongTensor[B+1]` (offsets[0] = 0) of samples with these point counts."""
    sizes = torch.as_tensor(sizes, dtype=torch.long, device=device)
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])


def batch_index_from_offsets(offsets: Tensor) -> Tensor:
    """The sample of each point, `LongTensor[N]`, from offsets `LongTensor[B+1]`."""
    sizes = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(len(sizes), device=offsets.device), sizes)


def check_offsets(offsets: Tensor, n: int, what: str = "offsets") -> None:
    """Raise PointCloudValueError unless `offsets` is a 1-D integer tensor, 0 first, non-decreasing, n last."""
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype not in (torch.long, torch.int32):
        raise PointCloudValueError(f"{what}: expected a 1-D integer tensor [B+1], got {tuple(offsets.shape)} "
                                   f"{offsets.dtype}")
    if int(offsets[0]) != 0:
        raise PointCloudValueError(f"{what}: offsets[0] must be 0, got {int(offsets[0])}")
    if bool((offsets[1:] < offsets[:-1]).any()):
        raise PointCloudValueError(f"{what}: offsets must be non-decreasing, got {offsets.tolist()}")
    if int(offsets[-1]) != n:
        raise PointCloudValueError(f"{what}: offsets[-1] = {int(offsets[-1])} but there are {n} points")


@dataclass(frozen=True)
class PointBatch:
    """B point clouds of different sizes in one batch, validated on creation.

    Attributes:
        coord: `Tensor[N, 3]` coordinates of all samples, concatenated (finite).
        feat: `Tensor[N, C]` per-point features, in the same order.
        offsets: `LongTensor[B+1]`, cumulative sizes; sample b is rows offsets[b]:offsets[b+1].
    """

    coord: Tensor
    feat: Tensor
    offsets: Tensor

    def __post_init__(self) -> None:
        if self.coord.dim() != 2 or self.coord.shape[1] != 3 or not self.coord.is_floating_point():
            raise PointCloudValueError(f"PointBatch.coord: expected a float tensor [N, 3], got "
                                       f"{tuple(self.coord.shape)} {self.coord.dtype}")
        if self.feat.dim() != 2 or self.feat.shape[0] != self.coord.shape[0]:
            raise PointCloudValueError(f"PointBatch.feat: expected [N={self.coord.shape[0]}, C], got "
                                       f"{tuple(self.feat.shape)}")
        if self.feat.device != self.coord.device or self.offsets.device != self.coord.device:
            raise PointCloudValueError("PointBatch: coord, feat and offsets must be on one device")
        check_offsets(self.offsets, self.coord.shape[0], "PointBatch.offsets")
        if not bool(torch.isfinite(self.coord).all()):
            bad = int((~torch.isfinite(self.coord).all(dim=1)).sum())
            raise PointCloudValueError(f"PointBatch.coord: {bad} point(s) with NaN or infinite coordinates")

    @classmethod
    def from_list(cls, coords: Sequence[Tensor], feats: Sequence[Tensor] | None = None) -> "PointBatch":
        """Concatenate samples `coords[b]: Tensor[N_b, 3]` (and `feats[b]: Tensor[N_b, C]`; default: ones [N_b, 1])."""
        if len(coords) == 0:
            raise PointCloudValueError("PointBatch.from_list: no samples")
        if feats is None:
            feats = [c.new_ones(c.shape[0], 1) for c in coords]
        if len(feats) != len(coords):
            raise PointCloudValueError(f"PointBatch.from_list: {len(coords)} coords but {len(feats)} feats")
        offsets = offsets_from_sizes([c.shape[0] for c in coords], device=coords[0].device)
        return cls(torch.cat(list(coords)), torch.cat(list(feats)), offsets)

    @property
    def batch_size(self) -> int:
        return self.offsets.numel() - 1

    @property
    def sizes(self) -> Tensor:
        """`LongTensor[B]`: the number of points of each sample."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def batch_index(self) -> Tensor:
        """`LongTensor[N]`: the sample each point belongs to."""
        return batch_index_from_offsets(self.offsets)

    def split(self) -> list[tuple[Tensor, Tensor]]:
        """One `(coord [N_b, 3], feat [N_b, C])` pair per sample (views, no copy)."""
        bounds = self.offsets.tolist()
        return [(self.coord[a:b], self.feat[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def replace(self, *, coord: Tensor | None = None, feat: Tensor | None = None) -> "PointBatch":
        """A new batch with the same offsets and new coordinates and/or features (validated again)."""
        return PointBatch(self.coord if coord is None else coord, self.feat if feat is None else feat, self.offsets)

    def to(self, *args, **kwargs) -> "PointBatch":
        """Move/cast coord and feat like `Tensor.to`; offsets follow the device and stay long."""
        coord = self.coord.to(*args, **kwargs)
        return PointBatch(coord, self.feat.to(*args, **kwargs), self.offsets.to(coord.device))
