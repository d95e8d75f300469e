"""Patches, Sinkhorn marginals, coarse and fine matching."""

from __future__ import annotations

import pytest
import torch

from perception3d.registration.matching import (
    LearnableLogOptimalTransport,
    coarse_matching,
    fine_matching,
    node_correspondences,
    point_to_node_partition,
)


def test_partition_assigns_each_point_to_its_nearest_node():
    g = torch.Generator().manual_seed(0)
    pts, nodes = torch.rand(200, 3, generator=g), torch.rand(10, 3, generator=g)
    p = point_to_node_partition(pts, nodes, point_limit=64)
    nearest = torch.cdist(pts, nodes).argmin(1)
    for m in range(10):
        owned = set(p.knn_indices[m][p.knn_masks[m]].tolist())
        assert owned == set(torch.nonzero(nearest == m).flatten().tolist())
    assert (p.knn_indices[~p.knn_masks] == 200).all()


def test_partition_limits_points_per_node():
    pts = torch.rand(300, 3)
    p = point_to_node_partition(pts, pts[:2], point_limit=8)
    assert p.knn_indices.shape == (2, 8) and p.knn_masks.all()


@pytest.mark.parametrize("grad", [True, False], ids=["log-domain", "exp-domain"])
def test_sinkhorn_marginals(grad):
    ot = LearnableLogOptimalTransport(num_iterations=200)
    scores = torch.randn(3, 5, 6)
    rows = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    cols = torch.ones(3, 6, dtype=torch.bool)
    cols[1, 4:] = False
    with torch.set_grad_enabled(grad):
        p = ot(scores, rows, cols).exp()
    # Each real row and column carries mass 1 (dustbins carry the other side's count); masked slots carry none.
    torch.testing.assert_close(p[:, :-1, :].sum(2)[rows], torch.ones(int(rows.sum())), atol=1e-4, rtol=0)
    torch.testing.assert_close(p[:, :, :-1].sum(1)[cols], torch.ones(int(cols.sum())), atol=1e-4, rtol=0)
    assert p[1, 3:5, :].abs().max() < 1e-6


def test_sinkhorn_inference_path_matches_log_domain():
    """Without gradients the iterations run as float64 scaling vectors; they must give the log-domain result."""
    g = torch.Generator().manual_seed(0)
    ot = LearnableLogOptimalTransport(num_iterations=50)
    scores = torch.randn(64, 33, 33, generator=g) * 4
    rows, cols = torch.rand(64, 33, generator=g) > 0.3, torch.rand(64, 33, generator=g) > 0.3
    rows[:, 0] = cols[:, 0] = True
    log_path = ot(scores, rows, cols).detach()  # alpha requires grad: the log-domain iterations
    with torch.no_grad():
        exp_path = ot(scores, rows, cols)
    real = log_path > -1e5
    assert torch.equal(real, exp_path > -1e5)
    torch.testing.assert_close(exp_path[real], log_path[real], atol=1e-4, rtol=0)


def test_coarse_matching_finds_identical_descriptors():
    f = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    perm = torch.randperm(8)
    ti, si, s = coarse_matching(f, f[perm], torch.ones(8, dtype=torch.bool), torch.ones(8, dtype=torch.bool), 8)
    assert torch.equal(perm[si], ti)


def test_fine_matching_mutual_topk():
    log_scores = torch.full((1, 4, 4), -20.0)
    for i in range(3):
        log_scores[0, i, i] = 0.0
    pts = torch.arange(9.0).view(1, 3, 3)
    masks = torch.ones(1, 3, dtype=torch.bool)
    t, s, c, p = fine_matching(log_scores, pts, pts + 1, masks, masks, k=1)
    assert torch.equal(t + 1, s) and t.shape == (3, 3) and (c > 0.9).all() and (p == 0).all()


def test_node_correspondences_of_identical_clouds():
    pts = torch.rand(256, 3)
    nodes = pts[:8]
    p = point_to_node_partition(pts, nodes, 64)
    corr, overlaps = node_correspondences(nodes, nodes, p, p, pts, pts, torch.eye(4), radius=0.01)
    diag = corr[overlaps == 1.0]
    assert {(int(a), int(b)) for a, b in diag} >= {(i, i) for i in range(8)}
