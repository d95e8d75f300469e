"""Exception types of fusion and the engine: configs, weights, data sources, streams."""

from __future__ import annotations

from pathlib import Path


class OmnisenseError(Exception):
    """Base of every error the fusion package and the CLI raise on purpose."""


class FileProblem(OmnisenseError, ValueError):
    """A file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(OmnisenseError):
    """A config with an unknown key, a wrong type or a value out of range."""


class WeightsError(FileProblem):
    """A weights file that is missing, corrupt, or does not fit the model it is loaded into."""


class DataSourceError(OmnisenseError):
    """A sample-data source that cannot be fetched, or whose download does not match its checksum."""


class NotBuiltYet(OmnisenseError):
    """A capability whose issue has not landed yet: said plainly rather than faked."""
