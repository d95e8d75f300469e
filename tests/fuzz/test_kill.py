"""The kill test: a real `omnisense fit`, killed (SIGKILL) at random, 4 of 10 times in the middle of a checkpoint save,
half of the time with TMPDIR on another filesystem (/dev/shm, a tmpfs); each run resumed from its `last.ckpt` ends at
max_steps with weights bit-identical to an uninterrupted run under the same seed, and no staged file is left.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 60
EVERY = 3
STAGED = re.compile(r"^\..+\.pid\d+\..+\.tmp$")

pytestmark = pytest.mark.slow


def _config(root: Path) -> Path:
    runs = str(root / "runs")
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "max_epochs": 100000,
                    "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": runs,
                    "deterministic": True, "log_every_n_steps": 1,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": runs, "name": "kill"}}},
        "model": {"class_path": "tests.fuzz.killfit.WideMLP", "init_args": {"hidden": 1024}},
        "data": {"class_path": "tests.fuzz.killfit.FullBatchBlobs"},
        "checkpoint": {"every_n_train_steps": EVERY},
    }
    path = root / "kill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env(tmpdir: Path) -> dict:
    tmpdir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmpdir)}


def _fit(config: Path, env: dict, ckpt: Path | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "omnisense.cli", "fit", "--config", str(config)]
    if ckpt is not None:
        argv += ["--ckpt_path", str(ckpt)]
    return subprocess.Popen(argv, env=env, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _checkpoints(runs: Path) -> list[Path]:
    return sorted(runs.glob("kill/version_*/checkpoints/last.ckpt"),
                  key=lambda p: int(p.parent.parent.name.split("_")[1]))


def _final_state(runs: Path) -> dict[str, torch.Tensor]:
    for path in reversed(_checkpoints(runs)):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt["global_step"] == MAX_STEPS:
            return ckpt["state_dict"]
    raise AssertionError(f"no last.ckpt at step {MAX_STEPS} under {runs}")


def _staged(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if STAGED.match(p.name)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    root = tmp_path_factory.mktemp("reference")
    proc = _fit(_config(root), _env(root / "tmp"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]
    return _final_state(root / "runs")


@pytest.mark.parametrize("trial", range(10))
def test_killed_fit_resumes_to_the_same_weights(trial, reference, tmp_path):
    during_save, other_fs = trial < 4, trial % 2 == 0
    rng = random.Random(trial)
    tmpdir = Path("/dev/shm") / f"omnisense-kill-{os.getpid()}-{trial}" if other_fs else tmp_path / "tmp"
    if other_fs and not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm here")
    config = _config(tmp_path)
    runs = tmp_path / "runs"
    env = _env(tmpdir)
    try:
        killed_at = None
        for attempt in range(4):  # the kill must land while the run is still going
            proc = _fit(config, env, _checkpoints(runs)[-1] if _checkpoints(runs) else None)
            if during_save:
                target = rng.randint(2, 6)
                seen, staged_now = set(), False
                while proc.poll() is None:
                    # a save in progress: a staged file beside the checkpoints, or (Lightning's own save, which
                    # this test must catch too) one in TMPDIR
                    names = set(_staged(runs)) if runs.exists() else set()
                    names |= {p for p in tmpdir.rglob("*") if p.is_file()}
                    if names - seen:
                        seen |= names
                        if len(seen) >= target:
                            staged_now = True
                            break
                    time.sleep(0.0005)
                if staged_now and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = "save"
            else:
                while proc.poll() is None and not _checkpoints(runs):
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 1.5 / (attempt + 1)))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = "step"
            proc.wait(timeout=600)
            if killed_at:
                break
            # finished before the kill: start over in a fresh folder
            import shutil

            shutil.rmtree(runs, ignore_errors=True)
        assert killed_at, "the run always finished before it could be killed"
        # every last.ckpt left behind is whole: the old one or the new one, never a partial file
        from omnisense.weights import read_training_checkpoint

        for path in _checkpoints(runs):
            read_training_checkpoint(path)
        resume = _checkpoints(runs)[-1] if _checkpoints(runs) else None
        proc = _fit(config, env, resume)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        final = _final_state(runs)
        assert final.keys() == reference.keys()
        for name, tensor in reference.items():
            assert torch.equal(final[name], tensor), f"{name} differs after a kill during a {killed_at}"
        assert not _staged(runs), f"staged files left: {_staged(runs)}"
        assert not [p for p in tmpdir.rglob("*") if p.is_file()], "files left in TMPDIR (a leaked staged save)"
    finally:
        if other_fs:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
