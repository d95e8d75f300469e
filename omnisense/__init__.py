"""omnisense: the application. One model API over the perception3d, video and fusion libraries.

    model, meta = omnisense.load_model("roitr_small_cgal")
    omnisense.list_models()

The public names below load on first use, so that `omnisense --help` and the error types do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from omnisense._errors import DataSourceError, FileProblem, OmnisenseError, WeightsError

_LAZY = {
    "load_model": "omnisense.models",
    "list_models": "omnisense.models",
    "build_model": "omnisense.models",
    "WeightsMeta": "omnisense.weights",
    "save_weights": "omnisense.weights",
    "read_weights": "omnisense.weights",
    "export_checkpoint": "omnisense.weights",
    "sample_data": "omnisense.data",
}

__all__ = ["DataSourceError", "FileProblem", "OmnisenseError", "WeightsError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'omnisense' has no attribute {name!r}")
