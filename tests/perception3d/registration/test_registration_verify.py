"""Descriptor-based verification of LGR's hypotheses: the cell field, its fitness, the dense refinement, the pick."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from perception3d.registration.metrics import rotation_error, translation_error
from perception3d.registration.pose import refine_on_inliers, weighted_procrustes
from perception3d.registration.verify import DescriptorField, dense_refine, verify


def _transform(angle_deg: float, axis: tuple[float, float, float], shift: tuple[float, float, float]) -> torch.Tensor:
    """[4, 4] float64: a rotation of `angle_deg` about `axis`, then `shift`."""
    a = torch.tensor(axis, dtype=torch.float64)
    a = a / a.norm()
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=torch.float64)
    th = math.radians(angle_deg)
    t = torch.eye(4, dtype=torch.float64)
    t[:3, :3] = torch.eye(3, dtype=torch.float64) + math.sin(th) * k + (1 - math.cos(th)) * k @ k
    t[:3, 3] = torch.tensor(shift, dtype=torch.float64)
    return t


def _apply(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p @ t[:3, :3].T + t[:3, 3]


def _grid_plane(n: int = 24, spacing: float = 0.025) -> torch.Tensor:
    """A regular n x n grid on the plane z = 0 [n*n, 3] (float64): geometry that cannot tell in-plane slides apart."""
    i, j = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    return torch.stack([i.flatten() * spacing, j.flatten() * spacing, torch.zeros(n * n, dtype=torch.float64)], 1)


def _brute_cell_means(points, feats, cell):
    """{cell tuple: mean unit descriptor, normalised} written out."""
    groups: dict = {}
    for p, f in zip(points.tolist(), F.normalize(feats, dim=1)):
        groups.setdefault(tuple(math.floor(x / cell) for x in p), []).append(f)
    return {c: F.normalize(torch.stack(fs).sum(0), dim=0) for c, fs in groups.items()}


def test_field_lookup_and_fitness_match_a_written_out_sum():
    g = torch.Generator().manual_seed(0)
    tgt = torch.rand(300, 3, generator=g, dtype=torch.float64)
    feats = torch.randn(300, 8, generator=g, dtype=torch.float64)
    field = DescriptorField(tgt, feats, cell=0.2)
    means = _brute_cell_means(tgt, feats, 0.2)
    src = torch.rand(50, 3, generator=g, dtype=torch.float64) * 1.6 - 0.3  # some land outside the target's box
    src_feats = torch.randn(50, 8, generator=g, dtype=torch.float64)
    transforms = torch.stack([_transform(a, (0, 0, 1), (0.05 * a, 0, 0)) for a in range(40)])
    expected = []
    for t in transforms:
        total = 0.0
        for p, f in zip(_apply(t, src).tolist(), F.normalize(src_feats, dim=1)):
            mean = means.get(tuple(math.floor(x / 0.2) for x in p))
            total += 0.0 if mean is None else float(f @ mean)
        expected.append(total)
    expected = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(field.fitness(transforms, src, src_feats), expected)  # one product, then gathers
    torch.testing.assert_close(field.fitness(transforms[:2], src, src_feats), expected[:2])  # gathers of cells
    miss = field.lookup(torch.tensor([[50.0, 50.0, 50.0], [-9.0, 0.5, 0.5]], dtype=torch.float64))
    assert miss.tolist() == [-1, -1]


def test_field_without_a_dense_table_looks_up_the_same_cells():
    """A box too large for the dense table (far outliers) falls back to a binary search over the occupied keys."""
    g = torch.Generator().manual_seed(5)
    tgt = torch.cat([torch.rand(200, 3, generator=g), torch.tensor([[5e3, -4e3, 3e3]])])
    feats = torch.randn(201, 8, generator=g)
    dense, sparse = DescriptorField(tgt, feats, cell=0.1), DescriptorField(tgt, feats, cell=0.1, max_table=1000)
    assert dense.table is None and sparse.table is None  # 1e15 cells
    small_dense = DescriptorField(tgt[:200], feats[:200], cell=0.1)
    small_sparse = DescriptorField(tgt[:200], feats[:200], cell=0.1, max_table=10)
    assert small_dense.table is not None and small_sparse.table is None
    query = torch.cat([torch.rand(500, 3, generator=g) * 1.4 - 0.2, tgt[:100]])  # misses, and 100 sure hits
    assert torch.equal(small_dense.lookup(query), small_sparse.lookup(query))
    hit, small_hit = dense.lookup(torch.cat([query, tgt[-1:]])), small_dense.lookup(query)
    assert torch.equal(hit[:-1] >= 0, small_hit >= 0) and (small_hit >= 0).sum() >= 100 and hit[-1] >= 0
    torch.testing.assert_close(dense.feats[hit[:-1][hit[:-1] >= 0]], small_dense.feats[small_hit[small_hit >= 0]])


@pytest.mark.parametrize("radii", [(0.1,), (0.1, 0.03)])
def test_refine_on_inliers_batch_equals_one_by_one(radii):
    g = torch.Generator().manual_seed(1)
    src = torch.rand(200, 3, generator=g, dtype=torch.float64)
    gt = _transform(30, (1, 2, 3), (0.2, -0.1, 0.4))
    tgt = _apply(gt, src)
    tgt[150:] = torch.rand(50, 3, generator=g, dtype=torch.float64)
    scores = torch.rand(200, generator=g, dtype=torch.float64)
    starts = torch.stack([gt @ _transform(a, (0, 1, 0), (0.01 * a, 0, 0)) for a in (0.0, 2.0, 5.0, 40.0)])
    batch = refine_on_inliers(starts, tgt, src, scores, radii=radii)
    one = torch.stack([refine_on_inliers(s, tgt, src, scores, radii=radii) for s in starts])
    torch.testing.assert_close(batch, one)
    assert rotation_error(batch[0].numpy(), gt.numpy()) < 1e-6


def test_refine_on_inliers_equals_weighted_procrustes_on_the_inliers():
    """One step at one radius is the written-out weighted Procrustes of the correspondences within it."""
    g = torch.Generator().manual_seed(2)
    src = torch.rand(100, 3, generator=g, dtype=torch.float64)
    tgt = _apply(_transform(10, (1, 0, 0), (0.1, 0, 0)), src) + 0.01 * torch.randn(100, 3, generator=g,
                                                                                  dtype=torch.float64)
    scores = torch.rand(100, generator=g, dtype=torch.float64)
    start = _transform(12, (1, 0, 0), (0.1, 0.01, 0))
    inside = (_apply(start, src) - tgt).norm(dim=1) < 0.05
    expected = weighted_procrustes(src, tgt, scores * inside)
    torch.testing.assert_close(refine_on_inliers(start, tgt, src, scores, radii=(0.05,), iterations=1), expected,
                               atol=1e-6, rtol=0)


def test_dense_refine_uses_descriptors_where_geometry_is_ambiguous():
    """On a regular planar grid every in-plane slide by whole cells fits the geometry exactly, so nearest-point
    ICP stays wherever it starts; with distinct descriptors the refinement finds the one right slide."""
    tgt = _grid_plane()
    g = torch.Generator().manual_seed(3)
    tgt_feats = torch.randn(tgt.shape[0], 16, generator=g, dtype=torch.float64)
    gt = _transform(1.0, (0, 0, 1), (0.31, -0.2, 0.05))
    src = _apply(torch.linalg.inv(gt), tgt)  # the same points, in the source frame
    src_feats = tgt_feats + 0.1 * torch.randn(tgt_feats.shape, generator=g, dtype=torch.float64)
    start = _transform(2.0, (0, 0, 1), (0.04, 0.02, 0.0)) @ gt  # off by one to two grid cells
    est = dense_refine(start, src, src_feats, tgt, tgt_feats, radii=(0.075, 0.05, 0.025))
    assert rotation_error(est.numpy(), gt.numpy()) < 1e-4
    assert translation_error(est.numpy(), gt.numpy()) < 1e-6
    ones = torch.ones_like(tgt_feats)  # every partner equally good: the nearest one wins, plain ICP
    icp = dense_refine(start, src, ones, tgt, ones, radii=(0.075, 0.05, 0.025))
    assert translation_error(icp.numpy(), gt.numpy()) > 0.01
    shuffled = dense_refine(start, src, src_feats[torch.randperm(src.shape[0], generator=g)], tgt, tgt_feats,
                            radii=(0.075, 0.05, 0.025))
    assert translation_error(shuffled.numpy(), gt.numpy()) > 0.01  # descriptors that do not match: no fix


def test_verify_prefers_the_pose_the_descriptors_support_over_the_inlier_count():
    g = torch.Generator().manual_seed(4)
    tgt = torch.rand(400, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    tgt_feats = torch.randn(400, 16, generator=g, dtype=torch.float64)
    gt = _transform(70, (1, 1, 0), (0.5, 0.2, -0.3))
    src = _apply(torch.linalg.inv(gt), tgt)
    wrong = gt @ _transform(180, (0, 0, 1), (0.0, 0.0, 0.0))  # the flip that a symmetric scene allows
    near_truth = gt @ _transform(3, (0, 1, 0), (0.02, 0, 0))
    hyps = torch.stack([wrong, near_truth])
    inliers = torch.tensor([300, 20])  # the count favours the wrong pose
    est = verify(hyps, inliers, lambda t: t, src, tgt_feats, tgt, tgt_feats, cell=0.1, radii=(0.15, 0.1, 0.05),
                 top_k=1, dense_top=2, sample=256)
    assert rotation_error(est.numpy(), gt.numpy()) < 0.5
