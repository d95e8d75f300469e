"""`import perception3d` stays cheap; its lazy io and ops names resolve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_is_cheap_and_lazy_names_resolve():
    code = ("import sys, perception3d; heavy = [m for m in ('torch', 'numpy', 'open3d', 'scipy', 'spconv', 'laspy') "
            "if m in sys.modules]; print(heavy); "
            "from perception3d import knn, read_points, PointBatch; import perception3d.ops as ops; "
            "assert knn is ops.knn; "
            "assert all(hasattr(perception3d, n) for n in perception3d.__all__); "
            "print([m for m in ('open3d', 'scipy', 'spconv', 'laspy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split("\n")
    assert out[0] == "[]", f"import perception3d loaded {out[0]}"
    assert out[1] == "[]", f"perception3d.ops / io loaded optional packages at import: {out[1]}"
