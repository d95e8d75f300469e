"""Exception types of perception3d: every bad input ends in one of these, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class Perception3DError(Exception):
    """Base of every error perception3d raises on purpose."""


class PointCloudFileError(Perception3DError, ValueError):
    """A point-cloud or mesh file that cannot be used: missing, unreadable, truncated or malformed.

    Args:
        path: the offending file.
        reason: what is wrong with it, in a few words.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PointCloudValueError(Perception3DError, ValueError):
    """Points that cannot be used whatever their file: empty, too few, NaN or infinite coordinates."""
