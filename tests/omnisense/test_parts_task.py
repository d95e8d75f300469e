"""Part segmentation in the engine: the category-restricted argmax, the per-shape IoU and the DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnisense.train.parts import PartsDataModule, category_argmax, shape_ious
from perception3d.classification import PARTS_OF, part_miou

CATEGORY_PARTS = [list(PARTS_OF[c]) for c in sorted(PARTS_OF)]


def test_category_argmax_only_picks_the_category_parts():
    logits = torch.zeros(2, 5, 16)
    logits[..., 15] = 10.0  # the best part overall belongs to the rocket (category 5)
    logits[..., 1] = 1.0
    pred = category_argmax(logits, torch.tensor([0, 5]), CATEGORY_PARTS)
    assert pred[0].tolist() == [1] * 5  # a mug can only be body 0 or handle 1
    assert pred[1].tolist() == [15] * 5


def test_shape_ious_agree_with_part_miou():
    rng = np.random.default_rng(0)
    categories = np.array([0, 2, 2, 4])
    target = np.stack([rng.choice(PARTS_OF[int(c)], 64) for c in categories])
    pred = target.copy()
    flip = rng.random(pred.shape) < 0.3
    pred[flip] = np.stack([rng.choice(PARTS_OF[int(c)], 64) for c in categories])[flip]
    pred[3] = PARTS_OF[4][0]  # one shape predicted as a single part: the other parts score 0
    ious = shape_ious(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(categories), CATEGORY_PARTS)
    expected = part_miou(pred, target, categories, PARTS_OF)
    assert float(ious.mean()) == pytest.approx(expected["instance_miou"])
    per_class = [float(ious[categories == c].mean()) for c in np.unique(categories)]
    assert np.mean(per_class) == pytest.approx(expected["class_miou"])


def test_parts_datamodule_tiny_batches():
    dm = PartsDataModule(tiny=True, num_points=128, batch_size=4)
    dm.setup()
    inputs, parts = next(iter(dm.train_dataloader()))
    assert inputs["xyz"].shape == (4, 128, 3) and inputs["category"].shape == (4,)
    assert parts.shape == (4, 128) and parts.dtype == torch.int64
    for c, p in zip(inputs["category"].tolist(), parts):
        assert set(p.unique().tolist()) <= set(PARTS_OF[c])
