"""Exception types of the application: weights, data sources.

A bad file anywhere is a `FileProblem` (the fusion library's type, re-exported here) naming the file and the reason.
"""

from __future__ import annotations

from fusion._errors import FileProblem, FusionError


class OmnisenseError(Exception):
    """Base of every error the application (CLI, weights, data, training) raises on purpose."""


class WeightsError(OmnisenseError, FileProblem):
    """A weights file that is missing, corrupt, or does not fit the model it is loaded into."""


class DataSourceError(OmnisenseError):
    """A sample-data source that cannot be fetched, or whose download does not match its checksum."""


__all__ = ["DataSourceError", "FileProblem", "FusionError", "OmnisenseError", "WeightsError"]
