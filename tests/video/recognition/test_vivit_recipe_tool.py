"""tools/vivit_recipe.py: the single-frame targets of the image pre-training follow the crop they are drawn with."""

from __future__ import annotations

import math

import numpy as np
import torch

from video.recognition.synthetic import SHAPES, render_clip
from video.transforms import resize_short_side, to_clip


def test_frame_targets_point_at_the_object(tool):
    recipe = tool("vivit_recipe")
    drawn = {}
    frames = render_clip("slide_right", "square", np.random.default_rng(4), attributes=drawn, occlusion_prob=0.0)
    data = {"frames": resize_short_side(to_clip(frames), recipe.STORE)[None], "shape": torch.tensor([SHAPES.index("square")]),
            "colour": torch.as_tensor(drawn["colour"])[None]}
    for key in ("cx", "cy", "radius", "angle"):
        data[key] = torch.as_tensor(drawn[key])[None]
    images, targets = recipe.frame_batch(data, 32, 16, np.random.default_rng(0))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.uint8
    for image, pose in zip(images, targets["pose"]):
        cx, cy, log_r = float(pose[0]), float(pose[1]), float(pose[2])
        x, y = (cx + 1) / 2 * 32 - 0.5, (cy + 1) / 2 * 32 - 0.5  # crop pixel coordinates of the centre
        if not (1 <= x <= 30 and 1 <= y <= 30):
            continue  # centre cropped away
        pixel = image[:, int(round(y)), int(round(x))].float() / 255
        assert (pixel - targets["colour"][0]).abs().max() < 0.1, (x, y, pixel)
        assert 1.0 < math.exp(log_r) * 32 < 12  # radius in crop pixels, plausible for the generator's sizes
