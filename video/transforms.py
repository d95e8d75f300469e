"""Spatial transforms of clips, with the semantics of PySlowFast / mmaction2, in plain PyTorch.

A clip is a `uint8` tensor `[C, T, H, W]` (RGB, 0-255) while it is augmented on the CPU workers; it stays
`uint8` to keep host-to-device copies small, and `normalize` turns it into float on whichever device it
sits on (the DataModule calls it after the batch reached the GPU, like mmaction2's `ActionDataPreprocessor`).
One random draw per clip: every frame of a clip gets the same crop and flip.

- `random_short_side_scale`: scale jitter, the short side drawn in `[min_size, max_size]`
  (PySlowFast `random_short_side_scale_jitter`, UniFormer's `TRAIN_JITTER_SCALES`).
- `random_resized_crop`: area fraction in `scale` and aspect ratio in `ratio` (log-uniform), resized to
  `size` (PySlowFast `random_resized_crop`, UniFormer's `TRAIN_JITTER_SCALES_RELATIVE/ASPECT_RELATIVE`).
- `center_crop`, `three_crop` (left/centre/right along the long side: mmaction2 `ThreeCrop`).
- `horizontal_flip`, `normalize`.
`ClipTransform` composes the train and test pipelines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from video._errors import VideoValueError

# UniFormer / PySlowFast / mmaction2 Kinetics statistics (mmaction2 writes them as 114.75 / 57.375 on 0-255)
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
# ViT (ImageNet-21k, the ViViT spatial backbone) statistics
VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)


def to_clip(frames: np.ndarray | Tensor) -> Tensor:
    """Decoded frames `uint8 [T, H, W, 3]` to a clip `uint8 [3, T, H, W]`."""
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise VideoValueError(f"frames must be [T, H, W, 3], got {list(x.shape)}")
    return x.permute(3, 0, 1, 2).contiguous()


def resize(clip: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (antialiased) resize of every frame to `size = (H, W)`; keeps the dtype."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    x = clip.permute(1, 0, 2, 3).float()  # [T, C, H, W]: frames as a batch
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.permute(1, 0, 2, 3)
    return x.round().clamp(0, 255).to(torch.uint8) if clip.dtype == torch.uint8 else x.to(clip.dtype)


def resize_short_side(clip: Tensor, size: int) -> Tensor:
    """Resize so that the short side is `size`, keeping the aspect ratio."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    if h < w:
        return resize(clip, (size, max(1, int(round(w * size / h)))))
    return resize(clip, (max(1, int(round(h * size / w))), size))


def random_short_side_scale(clip: Tensor, min_size: int, max_size: int, rng: np.random.Generator) -> Tensor:
    """Scale jitter: short side uniform in `[min_size, max_size]`."""
    return resize_short_side(clip, int(rng.integers(min_size, max_size + 1)))


def crop(clip: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    return clip[..., top:top + height, left:left + width]


def center_crop(clip: Tensor, size: int) -> Tensor:
    h, w = clip.shape[-2:]
    if h < size or w < size:
        clip = resize_short_side(clip, size)
        h, w = clip.shape[-2:]
    return crop(clip, (h - size) // 2, (w - size) // 2, size, size)


def three_crop(clip: Tensor, size: int) -> list[Tensor]:
    """Three `size` x `size` crops spread along the long side (start, centre, end): mmaction2 `ThreeCrop`."""
    h, w = clip.shape[-2:]
    if h < size or w < size:
        clip = resize_short_side(clip, size)
        h, w = clip.shape[-2:]
    if w >= h:
        top = (h - size) // 2
        return [crop(clip, top, left, size, size) for left in (0, (w - size) // 2, w - size)]
    left = (w - size) // 2
    return [crop(clip, top, left, size, size) for top in (0, (h - size) // 2, h - size)]


def random_resized_crop(clip: Tensor, size: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize it to `size` x `size`.

    Ten tries, then a centre crop of the clamped ratio (the torchvision / PySlowFast fallback).
    """
    h, w = clip.shape[-2:]
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return resize(crop(clip, top, left, ch, cw), (size, size))
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return resize(crop(clip, (h - ch) // 2, (w - cw) // 2, ch, cw), (size, size))


def horizontal_flip(clip: Tensor) -> Tensor:
    return clip.flip(-1)


def normalize(clip: Tensor, mean: tuple[float, ...] = KINETICS_MEAN, std: tuple[float, ...] = KINETICS_STD) -> Tensor:
    """`uint8` (0-255) or float (0-1) clips `[..., C, T, H, W]` to normalised float32, on their own device."""
    x = clip.float() / 255.0 if clip.dtype == torch.uint8 else clip.float()
    shape = (len(mean), 1, 1, 1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(shape)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(shape)
    return (x - m) / s


@dataclass(frozen=True)
class ClipTransform:
    """The train and test pipelines of one recipe (no normalisation: that happens on the device).

    Train: scale jitter (short side in `jitter_scales`) -> random-resized crop (`crop_scale`,
    `crop_ratio`) to `crop_size` -> flip with probability `flip_prob`. With `crop_scale=(1, 1)` the
    random-resized crop becomes a plain random crop of the jittered clip.
    Test: short side `test_short_side` -> `num_crops` crops of `crop_size` (1: centre, 3: three-crop).
    """

    crop_size: int = 224
    jitter_scales: tuple[int, int] = (256, 320)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    test_short_side: int = 224

    def train(self, clip: Tensor, rng: np.random.Generator) -> Tensor:
        """`uint8 [C, T, H, W]` -> `uint8 [C, T, crop_size, crop_size]`."""
        clip = random_short_side_scale(clip, *self.jitter_scales, rng)
        clip = random_resized_crop(clip, self.crop_size, rng, self.crop_scale, self.crop_ratio)
        if rng.random() < self.flip_prob:
            clip = horizontal_flip(clip)
        return clip.contiguous()

    def test(self, clip: Tensor, num_crops: int = 1) -> Tensor:
        """`uint8 [C, T, H, W]` -> `uint8 [num_crops, C, T, crop_size, crop_size]`."""
        clip = resize_short_side(clip, self.test_short_side)
        if num_crops == 1:
            return center_crop(clip, self.crop_size)[None].contiguous()
        if num_crops == 3:
            return torch.stack(three_crop(clip, self.crop_size))
        raise VideoValueError(f"num_crops must be 1 or 3, got {num_crops}")
