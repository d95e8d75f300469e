"""The thread and device policy of every inference command and benchmark (omnisense._runtime)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from omnisense import _runtime
from omnisense._errors import OmnisenseError


@pytest.mark.parametrize("cores, load, want", [
    (8, 0.0, 8),      # idle machine: every core
    (8, 5.6, 2),      # 5.6 cores busy: the 2 left whole
    (8, 7.9, 1),      # busy: at least one
    (8, 30.0, 1),     # oversubscribed already: one
    (2, None, 2),     # no load average (not Linux/macOS): the cores
    (4, -1.0, 4),     # never more than the cores
])
def test_default_threads_are_the_idle_cores(cores, load, want, monkeypatch):
    if load is None:
        monkeypatch.setattr(_runtime, "load_average", lambda: None)
        monkeypatch.setattr(_runtime, "running_now", lambda: None)
    assert _runtime.default_threads(cores, load) == want


def test_default_threads_read_affinity_and_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 1.0, 1.0))
    monkeypatch.setattr(_runtime, "running_now", lambda: 1)  # this process alone runs now
    assert _runtime.usable_cores() == 6 and _runtime.default_threads() == 2


@pytest.mark.parametrize("load, running, want", [
    (0.0, 1, 6),     # idle: this process alone
    (0.0, 3, 4),     # two jobs started a moment ago, not yet in the one-minute average
    (3.5, 2, 2),     # the average says more
    (0.0, None, 6),  # no /proc/loadavg: the average alone
])
def test_busy_cores_count_jobs_the_average_has_not_seen(load, running, want, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(_runtime, "running_now", lambda: running)
    assert _runtime.default_threads(6) == want


def test_running_now_reads_proc_loadavg():
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg")
    assert _runtime.running_now() >= 1  # this process runs while it reads


def test_threads_flag_then_env_then_omp_then_policy(monkeypatch):
    monkeypatch.setattr(_runtime, "default_threads", lambda: 3)
    monkeypatch.delenv(_runtime.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert _runtime.resolve_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert _runtime.resolve_threads() == 5
    monkeypatch.setenv(_runtime.THREADS_ENV, "2")
    assert _runtime.resolve_threads() == 2
    assert _runtime.resolve_threads(7) == 7
    monkeypatch.setenv(_runtime.THREADS_ENV, "many")
    with pytest.raises(OmnisenseError, match="OMNISENSE_THREADS"):
        _runtime.resolve_threads()
    with pytest.raises(OmnisenseError, match="at least 1"):
        _runtime.resolve_threads(0)


def test_configure_sets_passive_wait_before_torch_and_the_thread_count():
    """In a fresh process: OMP_WAIT_POLICY is PASSIVE by the time torch is imported, torch uses the chosen count."""
    code = ("import os, sys; from omnisense import _runtime; assert 'torch' not in sys.modules; "
            "rt = _runtime.configure('cpu', 2); import torch; "
            "print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads(), rt.device, rt.threads)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["PASSIVE", "2", "cpu", "2"]


def test_cuda_without_a_gpu_is_one_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _runtime.resolve_device("auto") == "cpu"
    with pytest.raises(OmnisenseError, match="no CUDA GPU"):
        _runtime.resolve_device("cuda")
