"""open3d, imported without the web viewer its package import drags in.

`import open3d` runs `open3d.visualization.draw_plotly`, which imports dash at module top, and dash imports IPython
(prompt_toolkit, jedi, ...) where it is installed: 0.7-1.6 s of the first registration call of a process (about
1,000 modules) for a plotly/dash viewer perception3d never calls. `import_open3d` imports open3d while `dash` is
answered by a stand-in whose names resolve to the real dash on first use, so `open3d.visualization.draw_plotly` still
works for whoever calls it. The stand-in leaves `sys.modules` as soon as open3d is imported: a later `import dash`
gets the real package. Where dash is imported already, or the stand-in does not fit (an open3d release that imports
dash another way), open3d is imported the ordinary way. Every open3d call in perception3d goes through here.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _Deferred:
    """`dash.<name>`, looked up in the real dash on first use (attribute access or call)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _target(self) -> Any:
        return getattr(importlib.import_module("dash"), self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._target(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<dash.{self._name}, imported on first use>"


class _DashStandIn(types.ModuleType):
    """Answers `from dash import X` with a `_Deferred` X; dunder lookups fail as on an empty module."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Deferred(name)


def _forget_open3d() -> None:
    for name in [m for m in sys.modules if m == "open3d" or m.startswith("open3d.")]:
        del sys.modules[name]


def match_torch_threads(module: types.ModuleType) -> None:
    """Give open3d's parallel loops (RANSAC, ICP, normals) torch's intra-op thread count, the process's one policy.

    open3d otherwise takes every core whatever `torch.set_num_threads` (or OMP_NUM_THREADS) says.
    """
    import torch

    setter = getattr(getattr(module, "utility", None), "set_max_threads", None)
    if setter is not None:  # open3d >= 0.19
        setter(torch.get_num_threads())


def import_open3d() -> types.ModuleType:
    """The `open3d` module (imported once per process, as `import open3d` would, without importing dash), its
    thread count set to torch's (`match_torch_threads`)."""
    module = sys.modules.get("open3d")
    if module is not None:
        return module
    module = None
    if "dash" not in sys.modules:
        stand_in = _DashStandIn("dash")
        sys.modules["dash"] = stand_in
        try:
            module = importlib.import_module("open3d")
        except ImportError:
            _forget_open3d()  # then the ordinary import below, which reports open3d's own error if it has one
        finally:
            if sys.modules.get("dash") is stand_in:
                del sys.modules["dash"]
    if module is None:
        module = importlib.import_module("open3d")
    match_torch_threads(module)
    return module


def knn_search(ref, query, k: int):
    """open3d's KD-tree (`core.nns`) search: the `k` nearest points of `ref` [N, 3] to each of `query` [Q, 3], both
    float64 numpy, 1 <= k <= N -> indices [Q, k] int64 and squared distances [Q, k] float64, nearest first."""
    import numpy as np

    o3d = import_open3d()
    search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(ref))
    search.knn_index()
    idx, d2 = (t.numpy() for t in search.knn_search(o3d.core.Tensor(query), k))
    return idx.astype(np.int64).reshape(len(query), k), d2.reshape(len(query), k)
