"""The shipped part-segmentation GPSFormer loads through its metadata and segments fresh procedural shapes."""

from __future__ import annotations

import numpy as np
import torch

from omnisense.models import load_model
from omnisense.train.parts import category_argmax
from perception3d.classification import PARTS_OF, make_part_split, part_miou

NAME = "gpsformer_partseg_small_parts"


def test_shipped_partseg_weights_segment_new_shapes():
    model, meta = load_model(NAME, task="part_segmentation")  # missing weights fail here
    spec = meta.transforms()
    torch.manual_seed(0)
    # A seed the training and test splits never used: 2 shapes of each category.
    points, parts, categories = make_part_split(424242, 2, spec.num_points)
    category_parts = [list(p) for p in spec.category_parts]
    with torch.no_grad():
        c = torch.from_numpy(categories)
        pred = category_argmax(model(torch.from_numpy(points), c), c, category_parts).numpy()
    ours = part_miou(pred, parts, categories, PARTS_OF)
    # Baseline: every point labelled with its category's most common part in this set.
    majority = np.stack([np.full(parts.shape[1], np.bincount(parts[categories == k].ravel()).argmax())
                         for k in categories])
    base = part_miou(majority, parts, categories, PARTS_OF)
    assert ours["instance_miou"] > base["instance_miou"] + 0.2, (ours, base)
    assert ours["class_miou"] > 0.6, ours
