"""The circle loss falls as positives get closer; the NLL falls as the transport puts mass on the truth."""

from __future__ import annotations

import torch

from perception3d.registration.losses import coarse_circle_loss, fine_nll_loss


def test_circle_loss_prefers_matching_descriptors():
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
    corr = torch.stack([torch.arange(6), torch.arange(6)], 1)
    ov = torch.full((6,), 0.8)
    good = coarse_circle_loss(f, f, corr, ov)
    bad = coarse_circle_loss(f, f.roll(1, 0), corr, ov)
    assert good < bad


def test_fine_nll():
    pts = torch.rand(1, 4, 3)
    masks = torch.ones(1, 4, dtype=torch.bool)
    right = torch.full((1, 5, 5), -10.0)
    right[0, torch.arange(4), torch.arange(4)] = 0.0
    wrong = torch.full((1, 5, 5), -10.0)
    wrong[0, torch.arange(4), torch.arange(4).roll(1)] = 0.0
    args = (pts, pts, masks, masks, torch.eye(4))
    assert fine_nll_loss(right, *args, positive_radius=1e-3) < fine_nll_loss(wrong, *args, positive_radius=1e-3)
    assert fine_nll_loss(torch.zeros(0, 5, 5), *args) == 0
