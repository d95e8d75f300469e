"""A tiny GPSFormer must beat chance by a wide margin on a small generated task (slow: about a minute)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception3d.classification import CLASSES, Degradation, make_shape
from perception3d.models.gpsformer import gpsformer_tiny


@pytest.mark.slow
def test_tiny_gpsformer_learns_four_shapes():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    names = ("box", "torus", "table", "bowl")
    how = Degradation(max_noise=0.01, partial_prob=0.0, occlusion_prob=0.0, outlier_prob=0.0)

    def batch(n):
        labels = rng.integers(0, len(names), n)
        pts = np.stack([make_shape(rng, CLASSES.index(names[i]), 128, how) for i in labels])
        return torch.from_numpy(pts), torch.from_numpy(labels)

    model = gpsformer_tiny(num_classes=len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        x, y = batch(16)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(96)
    with torch.no_grad():
        acc = (model.eval()(x).argmax(-1) == y).float().mean().item()
    assert acc > 0.7, acc  # chance is 0.25
