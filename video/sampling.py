"""Which frames make a clip: the temporal sampling of mmaction2's `SampleFrames` and of PySlowFast.

A clip is `clip_len` frames taken every `frame_interval` frames (mmaction2's "32x2x1" reads
clip_len x frame_interval x num_clips). All functions return integer frame indices `[num_clips, clip_len]`
within `[0, num_frames)`; indices past the end wrap around ("loop", mmaction2's default) or repeat the
last frame ("repeat_last").

- `train_clips`: the video is cut into `num_clips` equal segments and each clip starts at a random
  offset inside its segment (mmaction2 `SampleFrames._get_train_clips`, TSN-style).
- `test_clips`: evenly spaced clips, rounded, or the centre clip when there is one (mmaction2, which
  aligns with PySlowFast's `USE_OFFSET_SAMPLING`).
- `dense_clip`: PySlowFast's dense sampling: one window of clip_len x frame_interval frames at a random
  start (train) or at view `view` of `num_views` evenly spaced starts (test).
- `segment_clip`: Something-Something sparse sampling (UniFormer `sth.py`, TSN): `num_segments`
  equal segments, one random frame per segment (train) or a fixed offset per view (test).
"""

from __future__ import annotations

import numpy as np

from video._errors import VideoValueError

OUT_OF_BOUND = ("loop", "repeat_last")


def _check(num_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> None:
    if num_frames < 1:
        raise VideoValueError(f"a video needs at least one frame, got {num_frames}")
    if clip_len < 1 or frame_interval < 1 or num_clips < 1:
        raise VideoValueError(f"clip_len, frame_interval and num_clips must be >= 1, got "
                              f"{clip_len}, {frame_interval}, {num_clips}")


def _indices(offsets: np.ndarray, num_frames: int, clip_len: int, frame_interval: int, out_of_bound: str) -> np.ndarray:
    if out_of_bound not in OUT_OF_BOUND:
        raise VideoValueError(f"out_of_bound must be one of {OUT_OF_BOUND}, not {out_of_bound!r}")
    inds = offsets.astype(np.int64)[:, None] + np.arange(clip_len)[None, :] * frame_interval  # [num_clips, clip_len]
    if out_of_bound == "loop":
        return np.mod(inds, num_frames)
    return np.minimum(inds, num_frames - 1)


def train_clips(num_frames: int, *, clip_len: int, frame_interval: int = 1, num_clips: int = 1,
                rng: np.random.Generator, out_of_bound: str = "loop") -> np.ndarray:
    """Training clips at a random offset within each of `num_clips` segments: `[num_clips, clip_len]`."""
    _check(num_frames, clip_len, frame_interval, num_clips)
    span = clip_len * frame_interval
    avg_interval = (num_frames - span + 1) // num_clips
    if avg_interval > 0:
        offsets = np.arange(num_clips) * avg_interval + rng.integers(0, avg_interval, size=num_clips)
    elif num_frames > max(num_clips, span):
        offsets = np.sort(rng.integers(0, num_frames - span + 1, size=num_clips))
    elif avg_interval == 0:
        offsets = np.around(np.arange(num_clips) * (num_frames - span + 1.0) / num_clips)
    else:  # the video is shorter than one clip: start at 0 and wrap or repeat
        offsets = np.zeros(num_clips)
    return _indices(offsets, num_frames, clip_len, frame_interval, out_of_bound)


def test_clips(num_frames: int, *, clip_len: int, frame_interval: int = 1, num_clips: int = 1,
               out_of_bound: str = "loop") -> np.ndarray:
    """Evenly spaced test clips (the centre clip when `num_clips == 1`): `[num_clips, clip_len]`."""
    _check(num_frames, clip_len, frame_interval, num_clips)
    max_offset = max(num_frames - clip_len * frame_interval, 0)
    if num_clips > 1:
        offsets = np.round(np.arange(num_clips) * (max_offset / (num_clips - 1)))
    else:
        offsets = np.array([max_offset // 2])
    return _indices(offsets, num_frames, clip_len, frame_interval, out_of_bound)


test_clips.__test__ = False  # not a pytest test, despite the name


def dense_clip(num_frames: int, *, clip_len: int, frame_interval: int = 1, rng: np.random.Generator | None = None,
               view: int = 0, num_views: int = 1) -> np.ndarray:
    """PySlowFast dense sampling of one clip: `[clip_len]` indices, clamped to the video.

    Train (`rng` given): a random window start in `[0, max(num_frames - span, 0)]`.
    Test (`rng` None): window `view` of `num_views` evenly spaced starts (UniFormer's offset sampling).
    """
    _check(num_frames, clip_len, frame_interval, 1)
    span = clip_len * frame_interval
    delta = max(num_frames - span, 0)
    if rng is not None:
        start = int(rng.integers(0, delta + 1))
    elif num_views == 1:
        start = delta // 2
    else:
        start = view * (delta // (num_views - 1))
    # PySlowFast: linspace over the window, then clamp
    inds = np.linspace(start, start + span - 1, clip_len)
    return np.clip(np.round(inds), 0, num_frames - 1).astype(np.int64)


def segment_clip(num_frames: int, *, num_segments: int, rng: np.random.Generator | None = None,
                 view: int = 0, num_views: int = 1) -> np.ndarray:
    """Sparse (segment) sampling: one frame from each of `num_segments` equal segments: `[num_segments]`.

    Train (`rng` given): a random frame in each segment. Test: view `view` of `num_views` takes the
    frame at fraction (view + 0.5) / num_views of each segment, so the views interleave
    and a single view takes the centre frame.
    """
    _check(num_frames, num_segments, 1, 1)
    seg = num_frames / num_segments
    starts = np.arange(num_segments) * seg
    if rng is not None:
        inds = starts + rng.random(num_segments) * seg
    else:
        inds = starts + seg * (view + 0.5) / num_views
    return np.clip(np.floor(inds), 0, num_frames - 1).astype(np.int64)
