"""fusion: the shared transformer fusion core, sensor streams, MultiTSF, and the engine glue of omnisense."""

from fusion._data import sample_data
from fusion._errors import ConfigError, DataSourceError, FileProblem, NotBuiltYet, OmnisenseError, WeightsError
from fusion._weights import (
    export_checkpoint,
    load_model_weights,
    load_weights,
    read_foreign_checkpoint,
    save_weights,
    shipped_weights,
)

__all__ = [
    "ConfigError", "DataSourceError", "FileProblem", "NotBuiltYet", "OmnisenseError", "WeightsError",
    "export_checkpoint", "load_model_weights", "load_weights", "read_foreign_checkpoint", "sample_data",
    "save_weights", "shipped_weights",
]
