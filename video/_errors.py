"""Exception types of video: every bad input ends in one of these, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class VideoError(Exception):
    """Base of every error the video package raises on purpose."""


class MediaFileError(VideoError, ValueError):
    """A video or audio file that cannot be used: missing, truncated, no decodable frames, no audio stream.

    Args:
        path: the offending file.
        reason: what is wrong with it, in a few words.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VideoValueError(VideoError, ValueError):
    """An in-memory value that cannot be used: frames of the wrong shape or dtype, a bad sampling setting."""
