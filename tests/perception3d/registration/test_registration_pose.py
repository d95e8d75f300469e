"""Weighted Procrustes, LGR and RANSAC recover known transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d.ops.geometry import random_rotation
from perception3d.registration.metrics import rotation_error, translation_error
from perception3d.registration.pose import (
    consensus_hypotheses,
    inlier_counts,
    local_to_global_registration,
    ransac_on_correspondences,
    weighted_procrustes,
)


def _gt(seed):
    t = torch.eye(4, dtype=torch.float64)
    t[:3, :3] = random_rotation(1, torch.Generator().manual_seed(seed))[0].double()
    t[:3, 3] = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    return t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_procrustes_exact(seed):
    gt = _gt(seed)
    src = torch.randn(50, 3, dtype=torch.float64)
    tgt = src @ gt[:3, :3].T + gt[:3, 3]
    torch.testing.assert_close(weighted_procrustes(src, tgt), gt, atol=1e-6, rtol=0)


def test_weighted_procrustes_ignores_zero_weights():
    gt = _gt(3)
    src = torch.randn(40, 3, dtype=torch.float64)
    tgt = src @ gt[:3, :3].T + gt[:3, 3]
    tgt[30:] += 5.0
    w = torch.ones(40, dtype=torch.float64)
    w[30:] = 0
    torch.testing.assert_close(weighted_procrustes(src, tgt, w), gt, atol=1e-6, rtol=0)


def _exact_pair(n: int, seed: int, rotation_seed: int):
    """n source points, their images under a known transform, and the generator for the corruptions."""
    g = torch.Generator().manual_seed(seed)
    gt = _gt(rotation_seed)
    src = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return g, gt, src, src @ gt[:3, :3].T + gt[:3, 3]


def test_lgr_with_outliers():
    g, gt, src, tgt = _exact_pair(300, 0, 4)
    patch = torch.arange(300) // 10
    bad = (patch % 5 < 3) | (torch.rand(300, generator=g) < 0.1)  # 3 patches in 5 wrong, 10% outliers elsewhere
    tgt[bad] = torch.rand(int(bad.sum()), 3, generator=g, dtype=torch.float64) * 3
    est = local_to_global_registration(tgt, src, torch.ones(300, dtype=torch.float64), patch,
                                       acceptance_radius=0.05, min_per_patch=3)
    assert rotation_error(est.numpy(), gt.numpy()) < 1e-3
    assert translation_error(est.numpy(), gt.numpy()) < 1e-4


def test_lgr_final_radius_drops_biased_near_inliers():
    # 40% of the correspondences are off by 0.07 in one direction: inside the 0.1 acceptance radius, so the
    # paper's refinement averages them in; a final radius of 0.03 leaves only the exact ones.
    _, gt, src, tgt = _exact_pair(400, 1, 6)
    tgt[:160] += torch.tensor([0.07, 0.0, 0.0], dtype=torch.float64)
    patch = torch.arange(400) // 20
    kw = dict(acceptance_radius=0.1, min_per_patch=3)
    loose = local_to_global_registration(tgt, src, torch.ones(400, dtype=torch.float64), patch, **kw)
    tight = local_to_global_registration(tgt, src, torch.ones(400, dtype=torch.float64), patch, final_radius=0.03, **kw)
    assert translation_error(loose.numpy(), gt.numpy()) > 0.02
    assert translation_error(tight.numpy(), gt.numpy()) < 1e-6


def test_lgr_global_samples_find_a_pose_no_single_patch_holds():
    # Patches of 3 correspondences with one right and two wrong in each: every per-patch hypothesis is wrong, but
    # a third of all correspondences agree, and random triplets across patches find them.
    g, gt, src, tgt = _exact_pair(300, 2, 7)
    wrong = torch.arange(300) % 3 != 0
    tgt[wrong] = torch.rand(int(wrong.sum()), 3, generator=g, dtype=torch.float64) * 2
    patch = torch.arange(300) // 3
    kw = dict(acceptance_radius=0.02, min_per_patch=3)
    ones = torch.ones(300, dtype=torch.float64)
    paper = local_to_global_registration(tgt, src, ones, patch, **kw)
    sampled = local_to_global_registration(tgt, src, ones, patch, global_samples=3000, seed=0, **kw)
    assert rotation_error(paper.numpy(), gt.numpy()) > 5
    assert rotation_error(sampled.numpy(), gt.numpy()) < 0.05


def test_lgr_consensus_seeds_find_a_pose_at_a_low_inlier_ratio():
    # 24 right correspondences among 800 (3%): random triplets are all-inlier with probability 3e-5, so 3000 of
    # them miss the pose; second-order compatibility singles the inliers out (SC2-PCR).
    g, gt, src, tgt = _exact_pair(800, 4, 11)
    wrong = torch.ones(800, dtype=torch.bool)
    wrong[torch.randperm(800, generator=g)[:24]] = False
    tgt[wrong] = torch.rand(int(wrong.sum()), 3, generator=g, dtype=torch.float64) * 2
    patch = torch.arange(800) // 4
    kw = dict(acceptance_radius=0.02, min_per_patch=3, global_samples=3000, seed=0)
    ones = torch.ones(800, dtype=torch.float64)
    sampled = local_to_global_registration(tgt, src, ones, patch, **kw)
    consensus = local_to_global_registration(tgt, src, ones, patch, consensus_seeds=50, **kw)
    assert rotation_error(sampled.numpy(), gt.numpy()) > 5
    assert rotation_error(consensus.numpy(), gt.numpy()) < 0.05


def test_consensus_hypotheses_shapes_and_small_inputs():
    g, gt, src, tgt = _exact_pair(40, 1, 2)
    hyps = consensus_hypotheses(tgt, src, torch.ones(40, dtype=torch.float64), tau=0.01, num_seeds=5, set_size=8)
    assert hyps.shape == (5, 4, 4)
    assert rotation_error(hyps[0].numpy(), gt.numpy()) < 0.05  # every correspondence is an inlier here
    two = consensus_hypotheses(tgt[:2], src[:2], torch.ones(2, dtype=torch.float64), tau=0.01)
    assert torch.equal(two, torch.eye(4, dtype=torch.float64).unsqueeze(0))


def test_inlier_counts_match_the_residuals():
    g = torch.Generator().manual_seed(3)
    hyps = torch.stack([_gt(i) for i in range(6)]).float()
    src = torch.rand(500, 3, generator=g) * 4
    tgt = src @ hyps[2, :3, :3].T + hyps[2, :3, 3] + torch.randn(500, 3, generator=g) * 0.05
    residuals = torch.linalg.norm(src.unsqueeze(0) @ hyps[:, :3, :3].transpose(1, 2) + hyps[:, None, :3, 3] - tgt, dim=-1)
    counts = inlier_counts(hyps, src, tgt, 0.08)
    assert torch.equal(counts, (residuals < 0.08).sum(1)) and counts.argmax() == 2


def test_lgr_too_few_correspondences_is_identity():
    est = local_to_global_registration(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), torch.zeros(2),
                                       acceptance_radius=0.1)
    assert torch.equal(est, torch.eye(4))


def test_ransac_on_correspondences():
    rng = np.random.default_rng(0)
    gt = _gt(5).numpy()
    src = rng.random((200, 3))
    tgt = src @ gt[:3, :3].T + gt[:3, 3]
    tgt[:80] = rng.random((80, 3)) * 3
    est = ransac_on_correspondences(tgt, src, distance=0.02, max_iterations=5000, seed=0)
    assert rotation_error(est, gt) < 0.5 and translation_error(est, gt) < 0.01


def test_inlier_counts_by_blocks_match_one_product():
    """Blocks of 256 hypotheses: the same counts as one [H, C] product (600 hypotheses, 3 blocks)."""
    from perception3d.registration.pose import _residual_terms, _squared_residuals

    g = torch.Generator().manual_seed(4)
    hyps = torch.eye(4).repeat(600, 1, 1)
    hyps[:, :3, 3] = torch.randn(600, 3, generator=g) * 0.1
    src = torch.rand(700, 3, generator=g)
    tgt = src + torch.randn(700, 3, generator=g) * 0.05
    whole = (_squared_residuals(hyps, _residual_terms(src, tgt)) < 0.08 ** 2).sum(1)
    assert torch.equal(inlier_counts(hyps, src, tgt, 0.08), whole)
    assert inlier_counts(hyps[:0], src, tgt, 0.08).shape == (0,)
