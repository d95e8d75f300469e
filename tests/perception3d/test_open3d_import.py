"""`perception3d._open3d.import_open3d`: open3d without dash (its web viewer's import), the viewer still working.

Each case runs in a fresh interpreter: what `sys.modules` holds is the thing under test.
"""

import json
import subprocess
import sys

import pytest


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_open3d_imports_without_dash_and_works():
    got = _run(
        "import json, sys, numpy as np\n"
        "from perception3d._open3d import import_open3d\n"
        "o3d = import_open3d()\n"
        "pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).random((100, 3))))\n"
        "n = len(pc.voxel_down_sample(0.2).points)\n"
        "print(json.dumps({'dash': 'dash' in sys.modules, 'ipython': 'IPython' in sys.modules, 'n': n,\n"
        "                  'same': import_open3d() is sys.modules['open3d']}))\n")
    assert got == {"dash": False, "ipython": False, "n": got["n"], "same": True} and 0 < got["n"] <= 100


def test_dash_is_the_real_one_afterwards_and_the_viewer_resolves_it():
    pytest.importorskip("dash")
    got = _run(
        "import json, sys\n"
        "from perception3d._open3d import import_open3d\n"
        "import_open3d()\n"
        "import dash\n"
        "viewer = sys.modules['open3d.visualization.draw_plotly']\n"
        "print(json.dumps({'real': hasattr(dash, '__file__'), 'div': viewer.html.Div is dash.html.Div,\n"
        "                  'dash_class': callable(viewer.Dash)}))\n")
    assert got == {"real": True, "div": True, "dash_class": True}


def test_with_dash_already_imported_open3d_imports_as_usual():
    pytest.importorskip("dash")
    got = _run(
        "import json, sys, dash\n"
        "from perception3d._open3d import import_open3d\n"
        "o3d = import_open3d()\n"
        "print(json.dumps({'same_dash': sys.modules['dash'] is dash,\n"
        "                  'viewer': sys.modules['open3d.visualization.draw_plotly'].html is dash.html}))\n")
    assert got == {"same_dash": True, "viewer": True}


def test_open3d_takes_torchs_thread_count_before_and_after_import():
    # open3d takes every core by itself; the process's policy (torch's intra-op count) must reach it, whether the
    # policy is set before open3d is imported or after (omnisense's `configure`).
    got = _run(
        "import json, torch\n"
        "torch.set_num_threads(1)\n"
        "from perception3d._open3d import import_open3d\n"
        "o3d = import_open3d()\n"
        "before = o3d.utility.get_max_threads()\n"
        "from omnisense._runtime import configure\n"
        "configure('cpu', 2)\n"
        "print(json.dumps({'before': before, 'after': o3d.utility.get_max_threads()}))\n")
    assert got == {"before": 1, "after": 2}
