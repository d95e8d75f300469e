"""The audio error type for bad in-memory input (file problems raise `video.MediaFileError`)."""

from __future__ import annotations

from video._errors import VideoError


class AudioValueError(VideoError, ValueError):
    """A waveform, sample rate or timestamp array that cannot be used (NaN samples, wrong shape, ...)."""
