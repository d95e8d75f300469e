"""Eager calls of the index fast paths must not import torch._dynamo (about 1.2 s of a first registration)."""

import subprocess
import sys


def test_eager_fast_paths_do_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from perception3d.ops import knn, ball_query, farthest_point_sample\n"
        "q, r = torch.rand(1, 50, 3), torch.rand(1, 200, 3)\n"
        "knn(q, r, 4, backend='scipy'); knn(q, r, 4, backend='open3d'); knn(q, r, 4, backend='torch')\n"
        "ball_query(q, r, 0.3, 8, backend='scipy'); farthest_point_sample(r, 16, backend='open3d')\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
