"""Exception types of the fusion library: recordings, streams and the files they are read from."""

from __future__ import annotations

from pathlib import Path


class FusionError(Exception):
    """Base of every error the fusion library raises on purpose."""


class FileProblem(FusionError, ValueError):
    """A file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
