"""Per-frame person scores of a video stream from a person detector, for MultiTSF's human-centric module.

The detector is any callable `frames uint8 [N, H, W, 3] -> scores [N]` in [0, 1] (`video.people.HogPersonDetector`).
It runs on the video's own frames at their native resolution (the model's frames are far too small for it), on
`rate_hz` frames per second (the others take the score of the nearest scored frame in time), because a detector is
slow on CPU and MultiTSF's grid runs at 2.5 Hz.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["person_scores", "video_person_scores"]

Detector = Callable[[np.ndarray], np.ndarray]


def person_scores(frames: np.ndarray, times: np.ndarray, detector: Detector, *, rate_hz: float = 2.5) -> np.ndarray:
    """Scores `float32 [N]` of frames `uint8 [N, H, W, 3]` with their times `[N]` (seconds): `detector` runs on the
    first frame of every `1 / rate_hz` interval; every frame takes the score of the nearest such frame in time."""
    times = np.asarray(times, dtype=np.float64)
    if len(frames) == 0:
        return np.zeros(0, np.float32)
    bins = np.floor((times - times[0]) * rate_hz).astype(np.int64)
    picked = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # first frame of each interval
    scored = np.asarray(detector(frames[picked]), dtype=np.float32)
    nearest = np.abs(times[:, None] - times[picked][None, :]).argmin(1)
    return scored[nearest]


def video_person_scores(path: str | Path, detector: Detector, *, rate_hz: float = 2.5,
                        max_frames: int | None = None) -> np.ndarray:
    """`person_scores` of a video file's frames, decoded at their native size (`fusion.streams.read_video_frames`)."""
    from fusion.streams import read_video_frames

    frames, times = read_video_frames(Path(path), max_frames=max_frames)
    return person_scores(frames, times, detector, rate_hz=rate_hz)
