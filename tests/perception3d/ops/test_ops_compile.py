"""The index fast paths are registered custom ops: they pass torch.library.opcheck and trace with fullgraph=True."""

from __future__ import annotations

import pytest
import torch

from perception3d.ops import _library, ball_query, farthest_point_sample, knn


def _cloud(b: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=g) * 2 - 1


# opcheck runs the op's schema, fake (meta) and dispatch checks; torch.library's own test utility
OPCHECK_CASES = {
    "knn-scipy": (_library.knn_index, lambda q, r: (q, r, 5, "scipy")),
    "knn-open3d": (_library.knn_index, lambda q, r: (q, r, 5, "open3d")),
    "knn-torch": (_library.knn_index, lambda q, r: (q, r, 5, "torch")),
    "ball-scipy": (_library.ball_index, lambda q, r: (q, r, 0.4, 8, "scipy")),
    "fps-open3d": (_library.fps_index, lambda q, r: (r, 12, 0, "open3d")),
}


@pytest.mark.parametrize("case", list(OPCHECK_CASES), ids=list(OPCHECK_CASES))
def test_fast_path_passes_opcheck(case):
    op, make_args = OPCHECK_CASES[case]
    torch.library.opcheck(op, make_args(_cloud(2, 30, 0), _cloud(2, 80, 1)))


BACKENDS = {"knn": ["torch", "open3d", "scipy"], "ball": ["scipy"], "fps": ["open3d"]}


def _call(kind: str, backend: str, q: torch.Tensor, r: torch.Tensor):
    if kind == "knn":
        return knn(q, r, 6, backend=backend)
    if kind == "ball":
        return (ball_query(q, r, 0.5, 10, backend=backend),)
    return (farthest_point_sample(r, 16, backend=backend),)


@pytest.mark.parametrize("kind,backend", [(k, b) for k, bs in BACKENDS.items() for b in bs],
                         ids=[f"{k}-{b}" for k, bs in BACKENDS.items() for b in bs])
def test_fullgraph_trace_matches_eager(kind, backend):
    q, r = _cloud(2, 40, 2), _cloud(2, 120, 3)
    eager = _call(kind, backend, q, r)
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: _call(kind, backend, a, b), fullgraph=True, backend="aot_eager")(q, r)
    for want, got in zip(eager, compiled):
        assert torch.equal(want, got)


def test_fullgraph_trace_of_auto_backend_uses_the_custom_op():
    # auto picks open3d on CPU; the traced graph must hold the custom op node, not a graph break
    q, r = _cloud(1, 20, 4), _cloud(1, 60, 5)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda a, b: knn(a, b, 4, backend="auto"))(q, r)
    assert explained.graph_break_count == 0
    code = "\n".join(g.code for g in explained.graphs)
    assert "omnisense.knn_index" in code
