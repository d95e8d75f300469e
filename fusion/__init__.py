"""fusion: the shared transformer fusion core, sensor streams, MultiTSF, and the engine glue of omnisense.

The public names below load on first use, so that `omnisense --help` and the error types do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from fusion._errors import ConfigError, DataSourceError, FileProblem, NotBuiltYet, OmnisenseError, WeightsError

_LAZY = {
    "export_checkpoint": "fusion._weights",
    "load_model_weights": "fusion._weights",
    "load_weights": "fusion._weights",
    "read_foreign_checkpoint": "fusion._weights",
    "save_weights": "fusion._weights",
    "shipped_weights": "fusion._weights",
    "sample_data": "fusion._data",
    "build_model": "fusion._catalogue",
}

__all__ = ["ConfigError", "DataSourceError", "FileProblem", "NotBuiltYet", "OmnisenseError", "WeightsError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fusion' has no attribute {name!r}")
