"""Which implementation an op runs: the pure-torch reference or a fast path, chosen explicitly.

Every op takes `backend=None | "auto" | "reference" | <a named fast path>`. None reads the environment
variable OMNISENSE_OPS_BACKEND (`reference` or `auto`, default `auto`), so a whole run can be forced onto the
references to rule the fast paths out when a result looks wrong.
"""

from __future__ import annotations

import importlib.util
import os

import torch

ENV_VAR = "OMNISENSE_OPS_BACKEND"
_ENV_CHOICES = ("auto", "reference")


def requested(backend: str | None) -> str:
    """The backend asked for: the argument, else the environment variable, else 'auto'."""
    if backend is not None:
        return backend
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _ENV_CHOICES:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(_ENV_CHOICES)}")
    return value


_OPTIONAL = ("scipy", "open3d", "triton")
# looked up once at import (find_spec imports nothing): `choose` then reads a dict, which Dynamo traces
_PRESENT = {name: importlib.util.find_spec(name) is not None for name in _OPTIONAL}


def has_module(name: str) -> bool:
    """Whether an optional package can be imported, without importing it."""
    if name in _PRESENT:
        return _PRESENT[name]
    return importlib.util.find_spec(name) is not None


def choose(op: str, backend: str | None, device: torch.device, *, cpu: tuple[str, ...], gpu: tuple[str, ...],
           available: tuple[str, ...]) -> str:
    """Resolve `backend` for `op` on `device`.

    Args:
        op: the op's name, for error messages.
        backend: the caller's choice (None: the environment variable).
        device: where the inputs live.
        cpu: the preferred order of fast paths on CPU under 'auto' (the first one importable wins).
        gpu: the same on CUDA.
        available: every backend name this op knows, 'reference' included.
    """
    name = requested(backend)
    if name == "auto":
        for candidate in (gpu if device.type == "cuda" else cpu):
            if _usable(candidate, device):
                return candidate
        return "reference"
    if name not in available:
        raise ValueError(f"{op}: unknown backend {name!r}; expected auto or one of {', '.join(available)}")
    if not _usable(name, device):
        raise ValueError(f"{op}: backend {name!r} cannot run on {device.type} here")
    return name


def _usable(name: str, device: torch.device) -> bool:
    if name in ("reference", "torch"):
        return True
    if name in ("scipy", "open3d"):
        return device.type == "cpu" and has_module(name)
    if name == "triton":
        return device.type == "cuda" and has_module("triton")
    return False
