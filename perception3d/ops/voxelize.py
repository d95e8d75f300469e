"""Voxelisation of batched point clouds: 3D voxels and pillars, dynamic (every point kept) or hard (capped).

The torch path is floor + unique (as OpenPCDet's DynPillarVFE); `method="spconv"` runs spconv's
`PointToVoxel` per sample instead (hard voxelisation only) and returns the same `Voxels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError


@dataclass(frozen=True)
class Voxels:
    """The occupied voxels of a batch and the point-to-voxel map.

    Attributes:
        coords: `LongTensor[M, 4]` (batch, z, y, x) grid indices, sorted lexicographically.
        point_to_voxel: `LongTensor[N]` row of coords for each input point; -1 for points dropped (outside
            the range, over max_points_per_voxel, or in a voxel over max_voxels).
        num_points: `LongTensor[M]` points kept per voxel (>= 1).
        grid_size: (nx, ny, nz) voxels along x, y, z.
        voxel_size: (vx, vy, vz) in metres; point_range: (x0, y0, z0, x1, y1, z1) in metres.
    """

    coords: Tensor
    point_to_voxel: Tensor
    num_points: Tensor
    grid_size: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    point_range: tuple[float, float, float, float, float, float]

    def __len__(self) -> int:
        return self.coords.shape[0]

    def centers(self) -> Tensor:
        """`Tensor[M, 3]` voxel centres (x, y, z) in metres."""
        xyz = self.coords[:, [3, 2, 1]].float()
        size = torch.tensor(self.voxel_size, device=xyz.device)
        low = torch.tensor(self.point_range[:3], device=xyz.device)
        return low + (xyz + 0.5) * size

    def padded(self, values: Tensor, max_points: int | None = None) -> Tensor:
        """Per-voxel lists of point values, zero-padded: `values [N, C]` -> `Tensor[M, P, C]` (PointPillars' layout).

        P is `max_points`, or the largest voxel. Points keep their input order within a voxel.
        """
        keep = self.point_to_voxel >= 0
        vox = self.point_to_voxel[keep]
        order = torch.sort(vox, stable=True).indices
        vox_sorted = vox[order]
        starts = torch.cumsum(self.num_points, 0) - self.num_points
        rank = torch.arange(vox_sorted.numel(), device=vox.device) - starts[vox_sorted]
        p = int(self.num_points.max()) if max_points is None and len(self) else (max_points or 0)
        out = values.new_zeros(len(self), p, values.shape[1])
        sel = rank < p
        out[vox_sorted[sel], rank[sel]] = values[keep][order][sel]
        return out


def grid_size_of(voxel_size: Sequence[float], point_range: Sequence[float]) -> tuple[int, int, int]:
    """(nx, ny, nz): round((x1 - x0) / vx) etc., as spconv and OpenPCDet compute it."""
    if len(voxel_size) != 3 or len(point_range) != 6:
        raise ValueError(f"voxel_size needs 3 values and point_range 6, got {voxel_size} and {point_range}")
    sizes = []
    for axis in range(3):
        extent = point_range[axis + 3] - point_range[axis]
        if not (voxel_size[axis] > 0 and extent > 0):
            raise ValueError(f"voxel_size {voxel_size} and point_range {point_range}: sizes and extents must be > 0")
        sizes.append(max(1, round(extent / voxel_size[axis])))
    return sizes[0], sizes[1], sizes[2]


def _rank_in_group(group: Tensor) -> Tensor:
    """Rank of each element among the elements of its group, in input order (stable sort + cumsum)."""
    order = torch.sort(group, stable=True).indices
    sorted_group = group[order]
    counts = torch.unique_consecutive(sorted_group, return_counts=True)[1]
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(group)
    rank[order] = torch.arange(group.numel(), device=group.device) - starts
    return rank


def voxelize(points: Tensor, batch_index: Tensor, *, voxel_size: Sequence[float], point_range: Sequence[float],
             max_points_per_voxel: int | None = None, max_voxels: int | None = None,
             method: str = "torch") -> Voxels:
    """Assign points to voxels of a regular grid.

    A point at p falls in voxel floor((p - low) / voxel_size) and is kept when that lies inside the grid.
    Pillars are voxels whose vz spans the whole z range (grid nz = 1).

    Args:
        points: `Tensor[N, 3+C]`, x y z in metres first.
        batch_index: `LongTensor[N]` sample of each point.
        voxel_size: (vx, vy, vz) in metres.
        point_range: (x0, y0, z0, x1, y1, z1) in metres.
        max_points_per_voxel: None keeps every point (dynamic voxelisation); else the first this many points
            of each voxel, in input order, are kept and the rest get point_to_voxel -1 (hard voxelisation).
        max_voxels: None keeps every voxel; else per sample the voxels of the first this many distinct voxels
            in the order their first point appears (as spconv and mmcv's hard voxelisation) are kept.
        method: 'torch' (any device) or 'spconv' (spconv's PointToVoxel per sample; needs max_points_per_voxel).

    Returns:
        Voxels with coords (batch, z, y, x), sorted.
    """
    if points.dim() != 2 or points.shape[1] < 3 or not points.is_floating_point():
        raise PointCloudValueError(f"voxelize: expected float points [N, 3+C], got {tuple(points.shape)} {points.dtype}")
    if batch_index.shape != points.shape[:1]:
        raise PointCloudValueError(f"voxelize: batch_index {tuple(batch_index.shape)} does not match {points.shape[0]} points")
    if not bool(torch.isfinite(points[:, :3]).all()):
        raise PointCloudValueError("voxelize: NaN or infinite coordinates")
    for name, value in (("max_points_per_voxel", max_points_per_voxel), ("max_voxels", max_voxels)):
        if value is not None and value < 1:
            raise ValueError(f"voxelize: {name} must be >= 1 or None, got {value}")
    voxel_size = tuple(float(v) for v in voxel_size)
    point_range = tuple(float(v) for v in point_range)
    grid = grid_size_of(voxel_size, point_range)
    if method == "spconv":
        return _voxelize_spconv(points, batch_index, voxel_size, point_range, grid, max_points_per_voxel, max_voxels)
    if method != "torch":
        raise ValueError(f"voxelize: unknown method {method!r}; expected 'torch' or 'spconv'")

    device = points.device
    nx, ny, nz = grid
    low = torch.tensor(point_range[:3], dtype=points.dtype, device=device)
    size = torch.tensor(voxel_size, dtype=points.dtype, device=device)
    cell = torch.floor((points[:, :3].detach() - low) / size).long()  # [N, 3] x, y, z
    inside = ((cell >= 0) & (cell < torch.tensor(grid, device=device))).all(dim=1)
    # one integer key per (batch, z, y, x): sorting keys sorts voxels lexicographically
    key = ((batch_index.long() * nz + cell[:, 2]) * ny + cell[:, 1]) * nx + cell[:, 0]
    key = torch.where(inside, key, -1)
    kept = inside.clone()
    if max_points_per_voxel is not None:
        kept &= _rank_in_group(key) < max_points_per_voxel
    if max_voxels is not None and bool(inside.any()):
        kept &= _voxel_rank_in_sample(key, batch_index.long(), inside) < max_voxels
    uniq, inverse, counts = torch.unique(key[kept], return_inverse=True, return_counts=True)
    point_to_voxel = torch.full_like(key, -1)
    point_to_voxel[kept] = inverse
    x = uniq % nx
    y = uniq // nx % ny
    z = uniq // (nx * ny) % nz
    b = uniq // (nx * ny * nz)
    coords = torch.stack([b, z, y, x], dim=1)
    return Voxels(coords, point_to_voxel, counts, grid, voxel_size, point_range)


def _voxel_rank_in_sample(key: Tensor, batch: Tensor, inside: Tensor) -> Tensor:
    """For each point, the rank of its voxel among its sample's voxels by first appearance (-1 outside: max)."""
    n = key.numel()
    pos = torch.arange(n, device=key.device)
    uniq, inverse = torch.unique(key[inside], return_inverse=True)
    first = torch.full((uniq.numel(),), n, dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, pos[inside], reduce="amin")  # first point of each voxel
    voxel_batch = batch[first]
    order = torch.argsort(voxel_batch * (n + 1) + first)  # voxels by sample, then by first appearance
    rank_sorted = _rank_in_group(voxel_batch[order])
    rank = torch.empty_like(rank_sorted)
    rank[order] = rank_sorted
    out = torch.full((n,), torch.iinfo(torch.long).max, dtype=torch.long, device=key.device)
    out[inside] = rank[inverse]
    return out


def _voxelize_spconv(points: Tensor, batch_index: Tensor, voxel_size, point_range, grid, max_points, max_voxels) -> Voxels:
    from spconv.pytorch.utils import PointToVoxel  # optional: import only when asked for

    if max_points is None:
        raise ValueError("voxelize(method='spconv') is hard voxelisation: give max_points_per_voxel")
    n = points.shape[0]
    point_to_voxel = torch.full((n,), -1, dtype=torch.long, device=points.device)
    coords, counts = [], []
    total = 0
    batches = torch.unique(batch_index).tolist() if n else []
    for b in batches:
        rows = torch.nonzero(batch_index == b)[:, 0]
        gen = PointToVoxel(vsize_xyz=list(voxel_size), coors_range_xyz=list(point_range),
                           num_point_features=points.shape[1], max_num_voxels=max_voxels or max(1, rows.numel()),
                           max_num_points_per_voxel=max_points, device=points.device)
        _, zyx, num, pid = gen.generate_voxel_with_id(points[rows].detach().contiguous(), empty_mean=False)
        pid = pid.long()
        # spconv also maps points over the per-voxel cap to their voxel; our contract marks them dropped
        valid = pid >= 0
        over = torch.zeros_like(valid)
        over[valid] = _rank_in_group(pid[valid]) >= max_points
        pid = torch.where(over, -1, pid)
        point_to_voxel[rows] = torch.where(pid >= 0, pid + total, -1)
        coords.append(torch.cat([torch.full_like(zyx[:, :1], b), zyx], dim=1).long())
        counts.append(num.long())
        total += zyx.shape[0]
    if not coords:
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        return Voxels(empty.reshape(0, 4), point_to_voxel, empty, grid, voxel_size, point_range)
    coords_t, counts_t = torch.cat(coords), torch.cat(counts)
    # spconv lists voxels by first appearance; sort them as the torch path does
    nx, ny, nz = grid
    key = ((coords_t[:, 0] * nz + coords_t[:, 1]) * ny + coords_t[:, 2]) * nx + coords_t[:, 3]
    order = torch.argsort(key)
    new_row = torch.empty_like(order)
    new_row[order] = torch.arange(order.numel(), device=order.device)
    point_to_voxel = torch.where(point_to_voxel >= 0, new_row[point_to_voxel.clamp(min=0)], -1)
    return Voxels(coords_t[order], point_to_voxel, counts_t[order], grid, voxel_size, point_range)
