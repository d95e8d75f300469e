"""The Triton FPS kernel's logic, run through Triton's interpreter on CPU tensors (no GPU needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[3]

# TRITON_INTERPRET is read when the kernel is defined, hence a fresh interpreter. Triton 3.6's interpreter
# calls int() on 1-element arrays, which numpy 2.4 refuses: the script patches that one conversion.
SCRIPT = r"""
import numpy as np
import torch
import triton.runtime.interpreter as interp

_orig = interp._patch_lang_tensor


def _patched(tensor, scope):
    _orig(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))


interp._patch_lang_tensor = _patched

from perception3d.ops._triton_fps import fps_triton
from perception3d.ops.neighbors import _fps_reference

g = torch.Generator().manual_seed(0)
for dtype in (torch.float32, torch.float64):
    for b, n_points, picks, start, block in ((1, 1, 1, 0, 16), (2, 100, 10, 3, 16), (1, 40, 40, 5, 16)):
        x = torch.rand(b, n_points, 3, generator=g, dtype=dtype)
        got = fps_triton(x, picks, start, block=block)
        want = _fps_reference(x, picks, start)
        assert torch.equal(got, want), (dtype, b, n_points, picks, got, want)
# ties: a grid has many equal distances; the first index must win, as in the reference
x = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(1, -1, 3)
assert torch.equal(fps_triton(x, 20, 0, block=16), _fps_reference(x, 20, 0))
print("ok")
"""


@pytest.mark.slow  # the interpreter runs the kernel in numpy: ~20 s with a fresh torch import
def test_triton_fps_matches_reference_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
