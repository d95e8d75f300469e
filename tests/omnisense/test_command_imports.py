"""What an inference command imports: nothing it does not use (issue #19's fixed costs).

Each command runs in a fresh interpreter (as the console script runs it) and reports `sys.modules` at exit. Not a
timed test: the modules are the check.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

_PROBE = """\
import json, runpy, sys
sys.argv = ["omnisense", *json.loads(sys.argv[1])]
try:
    runpy.run_module("omnisense", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
else:
    code = 0
sys.stdout.flush()
sys.stderr.write("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""

NEVER = ("lightning", "pytorch_lightning", "timm", "matplotlib", "dash", "IPython", "torch._dynamo")


def _imports(args: list[str]) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True, text=True, check=True)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None, 3), out.stderr[-2000:]  # 3: registered false, still a record
    return set(report["modules"])


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_classify_audio_imports_no_lightning_timm_torchvision_scipy(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    clip = tmp_path / "beep.wav"
    t = np.arange(int(0.4 * 16000)) / 16000
    soundfile.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    modules = _imports(["classify-audio", str(clip), "--threads", "1", "--output", str(tmp_path / "out.jsonl")])
    assert "torch" in modules and "torchaudio" in modules
    for name in (*NEVER, "torchvision", "scipy", "open3d"):
        assert not _loaded(modules, name), name


def test_register_imports_open3d_without_its_web_viewer(tmp_path):
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(600, 3)) * [1.0, 0.6, 0.3]
    source, target = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(source, cloud)
    np.save(target, cloud[::-1] + [0.05, 0.0, 0.0])
    for method in ("roitr", "fpfh"):
        modules = _imports(["register", str(source), str(target), "--method", method, "--threads", "1",
                            "--allow-failure", "--output", str(tmp_path / f"{method}.jsonl")])
        # open3d's KD-tree serves every neighbour query of the path: scipy.spatial's import (0.2-0.4 s) is gone
        assert "open3d" in modules and "scipy.spatial" not in modules, method
        for name in NEVER:
            assert not _loaded(modules, name), (method, name)
