"""fusion: the shared transformer fusion core, MultiTSF, sensor streams, recordings and robot logs, and fusion inference.

The public names below load on first use, so that importing the error types does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from fusion._errors import FileProblem, FusionError

_LAZY = {
    "MultiTSF": "fusion.multitsf",
    "multitsf_paper": "fusion.multitsf",
    "multitsf_small": "fusion.multitsf",
    "multitsf_tiny": "fusion.multitsf",
    "Recording": "fusion.streams",
    "read_recording": "fusion.streams",
    "FusionSpec": "fusion.inference",
    "fuse_recording": "fusion.inference",
    "inspect_log": "fusion.logs",
    "read_log": "fusion.logs",
    "read_sweep": "fusion.logs",
}

__all__ = ["FileProblem", "FusionError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fusion' has no attribute {name!r}")
