"""Hypothesis verification and dense refinement with RoITr's point descriptors (test-time extensions).

LGR (GeoTransformer, RoITr) ranks its pose hypotheses by how many correspondences they carry within the
acceptance radius, and refines the winner on those correspondences. Both steps see only the correspondences that
the coarse matching let through. Where the coarse matching fails, the right pose may still be among the hypotheses
and lose the count to a wrong one. This happened on 10 of 40 corridor pairs, where the correspondences are 1-7%
right. Where the correspondences are biased, the refinement converges to the bias; these are the object pairs
4-6 degrees off. The descriptors of every point are still there, and they agree with the truth (docs/registration.md):

- `DescriptorField.fitness`: the descriptor agreement of a transform. Each source point is mapped, the target's
  descriptors in the cell where it lands are read, and the cosine similarities are summed. A wrong pose that
  slides a corridor along its walls overlaps as much geometry as the truth, but it puts points on other points
  whose descriptors differ.
- `dense_refine`: the pose refined on dense correspondences. Each mapped source point takes, among its k
  nearest target points within a shrinking radius, the one whose descriptor agrees best, and weighted
  Procrustes fits them (weights: the similarities). It is ICP with the partner chosen by the descriptors, not
  only by distance.
- `verify`: candidates (LGR's best by inliers and by fitness) are refined on the correspondences, the fittest few
  are refined densely, and the fittest result wins.

All coordinates are RoITr's canonical metres; descriptors are any [N, C] features (L2-normalised here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from perception3d.registration.pose import weighted_procrustes


def _mapped(transforms: Tensor, points: Tensor) -> Tensor:
    """points [S, 3] under transforms [H, 4, 4] -> [H, S, 3] (one [S, 3] x [3, 3H] product)."""
    h = transforms.shape[0]
    rot_t = transforms[:, :3, :3].transpose(1, 2).permute(1, 0, 2).reshape(3, 3 * h)  # [3, H*3]: R_h^T side by side
    return (points @ rot_t).view(-1, h, 3).transpose(0, 1) + transforms[:, None, :3, 3]


class DescriptorField:
    """The target's unit descriptors averaged over cubic cells of side `cell` (canonical metres).

    Args:
        points: `Tensor[M, 3]` target points; feats: `Tensor[M, C]` their descriptors.
        cell: cell side (two canonical voxels in the pipeline).
    """

    def __init__(self, points: Tensor, feats: Tensor, cell: float, max_table: int = 1 << 22):
        if points.shape[0] == 0 or points.shape[0] != feats.shape[0]:
            raise ValueError(f"DescriptorField: {points.shape[0]} points with {feats.shape[0]} descriptors")
        self.cell = float(cell)
        cells = torch.floor(points / self.cell)  # [M, 3]
        # The occupied box with one empty cell of margin on each side: points beyond it are clamped onto the margin.
        # Its keys fit in int64 whenever the pipeline's voxel grid (cells of half this side) did.
        self.origin = cells.min(0).values - 1
        self.dims = cells.max(0).values - self.origin + 2  # [3], float
        keys, inverse = torch.unique(self._keys(cells - self.origin), return_inverse=True)  # occupied, sorted [K]
        sums = feats.new_zeros(keys.shape[0], feats.shape[1]).index_add_(0, inverse, F.normalize(feats, dim=1))
        self.feats = F.normalize(sums, dim=1)  # [K, C]
        self.keys, self.table = keys, None
        if float(self.dims.prod()) <= max_table:  # a dense key -> row table: a lookup instead of a binary search
            self.table = torch.full((int(self.dims.prod()),), -1, dtype=torch.long, device=points.device)
            self.table[keys] = torch.arange(keys.shape[0], device=points.device)

    def _keys(self, rel: Tensor) -> Tensor:
        """Row-major int64 keys of integral cell coordinates [..., 3] within the box."""
        rel, dims = rel.long(), self.dims.long()
        return (rel[..., 0] * dims[1] + rel[..., 1]) * dims[2] + rel[..., 2]

    def lookup(self, points: Tensor) -> Tensor:
        """The occupied cell of each point [..., 3] as an index into `self.feats`, -1 where the cell is empty."""
        rel = torch.floor(points / self.cell) - self.origin  # as the cells were made (exact integers in float)
        keys = self._keys(torch.minimum(rel.clamp_(min=0), self.dims - 1))  # outside the box: onto its empty margin
        if self.table is not None:
            return self.table[keys]
        idx = torch.searchsorted(self.keys, keys.contiguous()).clamp_(max=self.keys.shape[0] - 1)
        return torch.where(self.keys[idx] == keys, idx, -1)

    def fitness(self, transforms: Tensor, points: Tensor, feats: Tensor) -> Tensor:
        """Sum over the source points [S, 3] (descriptors [S, C]) of the cosine similarity with the target's
        cell where each lands, under each of transforms [H, 4, 4] -> [H] (an empty cell adds 0)."""
        idx = self.lookup(_mapped(transforms, points))  # [H, S]
        feats = F.normalize(feats, dim=1)
        if 16 * transforms.shape[0] < self.feats.shape[0]:  # few transforms: gather the cells' descriptors
            got = (self.feats[idx.clamp(min=0)] * feats).sum(-1)  # [H, S]
        else:  # every point against every cell once, then gather the similarities
            got = (feats @ self.feats.T).gather(1, idx.clamp(min=0).T).T
        return torch.where(idx >= 0, got, torch.zeros_like(got)).sum(1)


def dense_refine(transform: Tensor, src_points: Tensor, src_feats: Tensor, tgt_points: Tensor, tgt_feats: Tensor, *,
                 radii: tuple[float, ...], iterations: int = 3, k: int = 8) -> Tensor:
    """Refine a source -> target transform [4, 4] on dense, descriptor-chosen correspondences.

    For each radius in turn, `iterations` times: every mapped source point takes, among its `k` nearest target
    points within the radius, the one of highest descriptor cosine similarity; points whose best similarity is not
    positive drop out; weighted Procrustes (weights: the similarities) gives the next transform. Stops early
    when fewer than 3 pairs remain. The k nearest are searched once per radius, within 1.5 radii of the pose the
    radius starts from; its later iterations re-measure the distances to those k (the pose moves little).
    """
    from perception3d.registration._kdtree import knn_within

    fs, ft = F.normalize(src_feats, dim=1), F.normalize(tgt_feats, dim=1)
    k = min(k, tgt_points.shape[0])
    tgt_np = tgt_points.detach().cpu().double().numpy()
    padded = torch.cat([tgt_points, tgt_points.new_full((1, 3), float("inf"))])  # row M: "none found"
    for radius in radii:
        mapped = _mapped(transform.unsqueeze(0), src_points)[0]  # [S, 3]
        _, idx = knn_within(tgt_np, mapped.detach().cpu().double().numpy(), k, 1.5 * radius)
        idx = torch.as_tensor(idx, device=src_points.device).reshape(-1, k)  # [S, k]; M where none
        near_pts = padded[idx]  # [S, k, 3]
        sim = (fs.unsqueeze(1) * ft[idx.clamp(max=tgt_points.shape[0] - 1)]).sum(-1)  # [S, k]
        for _ in range(iterations):
            mapped = _mapped(transform.unsqueeze(0), src_points)[0]
            near = ((near_pts - mapped.unsqueeze(1)) ** 2).sum(-1) < radius * radius  # [S, k]
            best, col = torch.where(near, sim, torch.full_like(sim, -2.0)).max(1)
            keep = best > 0
            if int(keep.sum()) < 3:
                return transform
            partner = near_pts.gather(1, col.view(-1, 1, 1).expand(-1, 1, 3))[:, 0]  # [S, 3]
            transform = weighted_procrustes(src_points[keep], partner[keep], best[keep])
    return transform


def verify(hyps: Tensor, inliers: Tensor, refine, src_points: Tensor, src_feats: Tensor, tgt_points: Tensor,
           tgt_feats: Tensor, *, cell: float, radii: tuple[float, ...], iterations: int = 3, top_k: int = 8,
           dense_top: int = 3, sample: int = 512, seed: int = 0) -> Tensor:
    """Pick and refine one of LGR's hypotheses by descriptor agreement -> [4, 4].

    Args:
        hyps: [H, 4, 4] hypotheses with their inlier counts [H] (`lgr_hypotheses`).
        refine: transform -> transform on the correspondences (LGR's `refine_on_inliers`).
        src_points, src_feats, tgt_points, tgt_feats: the clouds and their point descriptors.
        cell: `DescriptorField`'s cell; radii, iterations: `dense_refine`'s.
        top_k: candidates by inlier count and, as many again, by the fitness of the raw hypotheses.
        dense_top: the fittest candidates after `refine` that are refined densely; with more than one, the fittest
            result over all source points wins.
        sample: seeded random source points for ranking the candidates and for the dense refinement.
    """
    field = DescriptorField(tgt_points, tgt_feats, cell)
    pick = torch.randperm(src_points.shape[0], generator=torch.Generator().manual_seed(seed))[:sample]
    pick = pick.to(src_points.device)
    sub_points, sub_feats = src_points[pick], src_feats[pick]
    raw = field.fitness(hyps, sub_points, sub_feats)
    k = min(top_k, hyps.shape[0])
    cand = torch.unique(torch.cat([inliers.topk(k).indices, raw.topk(k).indices]))
    refined = refine(hyps[cand])  # [K, 4, 4]
    best = field.fitness(refined, sub_points, sub_feats).topk(min(dense_top, refined.shape[0])).indices
    dense = torch.stack([dense_refine(refined[b], sub_points, sub_feats, tgt_points, tgt_feats, radii=radii,
                                      iterations=iterations)
                         for b in best])
    if dense.shape[0] == 1:
        return dense[0]
    return dense[field.fitness(dense, src_points, src_feats).argmax()]
