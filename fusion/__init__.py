"""fusion: the shared transformer fusion core, sensor streams, MultiTSF, and the engine glue of omnisense."""

from fusion._errors import ConfigError, DataSourceError, FileProblem, NotBuiltYet, OmnisenseError, WeightsError

__all__ = ["ConfigError", "DataSourceError", "FileProblem", "NotBuiltYet", "OmnisenseError", "WeightsError"]
