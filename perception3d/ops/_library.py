"""The index-only fast paths as `torch.library` custom ops, so the ops trace under `torch.compile`.

scipy, open3d and Triton calls are opaque to Dynamo: called directly they break the graph (and fail
`fullgraph=True`). Wrapped as custom ops with a fake (meta) implementation that gives only the output's
shape, they enter the graph as single nodes and run eagerly inside the compiled function. Each op returns
indices only, never aliases an input, and takes detached inputs (gradients flow through the distances that
`perception3d.ops.neighbors` recomputes in torch from the indices).

Eager callers go through `call`, which runs the op's Python body directly unless Dynamo is tracing: the
first eager call of a custom op imports `torch._dynamo` (torch wraps the kernel in a lazily built
`torch._dynamo.disable`), which costs about 1.2 s of the first registration in a process.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

_EAGER: dict[str, Callable[..., Tensor]] = {}


def call(name: str, *args: Any) -> Tensor:
    """Run the custom op `name` ("knn_index", "ball_index", "fps_index"): through torch.library while
    torch.compile traces, as its plain Python body otherwise (the same function, without the Dynamo import)."""
    if torch.compiler.is_compiling():
        return _OPS[name](*args)
    return _EAGER[name](*args)


def _eager(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    _EAGER[fn.__name__] = fn
    return fn


@torch.library.custom_op("omnisense::knn_index", mutates_args=())
@_eager
def knn_index(query: Tensor, ref: Tensor, k: int, backend: str) -> Tensor:
    """`query [B, M, 3]`, `ref [B, N, 3]` -> `LongTensor[B, M, k]` (k <= N) by a named fast path."""
    from perception3d.ops import neighbors

    if backend == "open3d":
        return neighbors._knn_open3d(query, ref, k).to(query.device)
    if backend == "scipy":
        return neighbors._knn_scipy(query, ref, k).to(query.device)
    if backend == "torch":
        return neighbors._knn_torch_mm(query, ref, k)
    raise ValueError(f"knn_index: no fast path named {backend!r}")


@knn_index.register_fake
def _knn_index_fake(query: Tensor, ref: Tensor, k: int, backend: str) -> Tensor:
    return query.new_empty((query.shape[0], query.shape[1], k), dtype=torch.long)


@torch.library.custom_op("omnisense::ball_index", mutates_args=())
@_eager
def ball_index(query: Tensor, ref: Tensor, radius: float, count: int, backend: str) -> Tensor:
    """`query [B, M, 3]`, `ref [B, N, 3]` -> `LongTensor[B, M, count]` by a named fast path."""
    from perception3d.ops import neighbors

    if backend == "scipy":
        return neighbors._ball_scipy(query, ref, radius, count).to(query.device)
    raise ValueError(f"ball_index: no fast path named {backend!r}")


@ball_index.register_fake
def _ball_index_fake(query: Tensor, ref: Tensor, radius: float, count: int, backend: str) -> Tensor:
    return query.new_empty((query.shape[0], query.shape[1], count), dtype=torch.long)


@torch.library.custom_op("omnisense::fps_index", mutates_args=())
@_eager
def fps_index(xyz: Tensor, n: int, start: int, backend: str) -> Tensor:
    """`xyz [B, N, 3]` -> `LongTensor[B, n]` farthest-point picks by a named fast path."""
    from perception3d.ops import neighbors

    if backend == "open3d":
        return neighbors._fps_open3d(xyz, n, start).to(xyz.device)
    if backend == "triton":
        from perception3d.ops._triton_fps import fps_triton

        return fps_triton(xyz, n, start)
    raise ValueError(f"fps_index: no fast path named {backend!r}")


@fps_index.register_fake
def _fps_index_fake(xyz: Tensor, n: int, start: int, backend: str) -> Tensor:
    return xyz.new_empty((xyz.shape[0], n), dtype=torch.long)


_OPS = {"knn_index": knn_index, "ball_index": ball_index, "fps_index": fps_index}
