from __future__ import annotations

import numpy as np
import pytest
import torch

from video.transforms import (ClipTransform, center_crop, horizontal_flip, normalize, random_resized_crop,
                              random_short_side_scale, resize_short_side, three_crop, to_clip)


@pytest.fixture
def clip():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 4, 60, 80), dtype=torch.uint8, generator=g)


def test_to_clip_layout():
    frames = np.zeros((4, 6, 8, 3), np.uint8)
    frames[2, 1, 3, 0] = 7
    x = to_clip(frames)
    assert x.shape == (3, 4, 6, 8) and x[0, 2, 1, 3] == 7


def test_short_side(clip):
    assert resize_short_side(clip, 30).shape == (3, 4, 30, 40)
    x = random_short_side_scale(clip, 64, 80, np.random.default_rng(0))
    assert 64 <= min(x.shape[-2:]) <= 80 and x.dtype == torch.uint8


def test_random_resized_crop_same_for_all_frames():
    frames = torch.arange(60 * 80, dtype=torch.float32).view(1, 1, 60, 80).expand(3, 4, 60, 80)
    x = random_resized_crop(frames.to(torch.uint8), 32, np.random.default_rng(3))
    assert x.shape == (3, 4, 32, 32)
    assert torch.equal(x[:, 0], x[:, 3])


def test_random_resized_crop_covers_scale_range(clip):
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert random_resized_crop(clip, 16, rng, scale=(0.08, 1.0)).shape == (3, 4, 16, 16)


def test_crops(clip):
    c = center_crop(clip, 40)
    assert torch.equal(c, clip[..., 10:50, 20:60])
    crops = three_crop(clip, 60)
    assert [tuple(x.shape) for x in crops] == [(3, 4, 60, 60)] * 3
    assert torch.equal(crops[0], clip[..., :60]) and torch.equal(crops[2], clip[..., 20:])


def test_flip(clip):
    assert torch.equal(horizontal_flip(clip)[..., 0], clip[..., -1])


def test_normalize_uint8_and_float_agree(clip):
    a = normalize(clip)
    b = normalize(clip.float() / 255)
    torch.testing.assert_close(a, b)
    assert a.dtype == torch.float32
    torch.testing.assert_close(normalize(torch.full((3, 1, 1, 1), 0.45 * 255).to(torch.uint8).float() / 255 * 0 + 0.45),
                               torch.zeros(3, 1, 1, 1))


def test_clip_transform(clip):
    t = ClipTransform(crop_size=32, jitter_scales=(40, 48), test_short_side=36)
    assert t.train(clip, np.random.default_rng(0)).shape == (3, 4, 32, 32)
    assert t.test(clip, 1).shape == (1, 3, 4, 32, 32)
    assert t.test(clip, 3).shape == (3, 3, 4, 32, 32)
