"""Whole commands as fresh processes, timed: wall time and the child's own CPU time (`os.wait4`'s rusage).

Shared by `bench commands` (a command against its floor or peer, taking turns) and `bench contention` (commands
alone and side by side). The children run this process's interpreter with this checkout first on PYTHONPATH, so
the omnisense being measured is the one running the bench, installed or not (`python -c` and `-m` put the working
directory before PYTHONPATH, so `bench commands` also runs its children there, with absolute input paths).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One finished child: wall seconds from its start to its exit, user + system CPU seconds, exit status."""

    wall: float
    cpu: float
    status: int


def checkout() -> Path:
    """The folder holding the running omnisense package."""
    import omnisense

    return Path(omnisense.__file__).resolve().parents[1]


def child_env(*, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This environment with the checkout of the running omnisense first on PYTHONPATH, less the names in `drop`."""
    root = str(checkout())
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def omnisense_argv(*args: str) -> list[str]:
    """`python -m omnisense ARGS` with this interpreter."""
    return [sys.executable, "-m", "omnisense", *args]


def start(argv: list[str], env: dict[str, str], cwd: Path | None = None,
          new_session: bool = False) -> tuple[subprocess.Popen, float]:
    """Start a child, stdout discarded, stderr to a temporary file (a pipe nobody reads while we wait could fill).

    `new_session`: the child in a session of its own (setsid), as a command started from another terminal or by a
    service manager is; where the kernel groups CPU time by session (Linux autogroup), children sharing the bench's
    session also share one session's slice of the machine.
    """
    import tempfile

    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                            start_new_session=new_session)
    proc.stderr_file = err  # type: ignore[attr-defined]
    return proc, time.perf_counter()


def wait_all(started: list[tuple[subprocess.Popen, float]]) -> list[Run]:
    """Wait for every child (in whatever order they finish); each one's wall time ends at its own exit."""
    pending = {p.pid: (k, p, t0) for k, (p, t0) in enumerate(started)}
    runs: list[Run | None] = [None] * len(started)
    while pending:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in pending:  # a child this bench did not start (none expected)
            continue
        k, proc, t0 = pending.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        runs[k] = Run(time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, proc.returncode)
    for proc, _ in started:
        err = proc.stderr_file  # type: ignore[attr-defined]
        err.seek(0)
        proc.stderr_text = err.read().decode(errors="replace")  # type: ignore[attr-defined]
        err.close()
    return runs  # type: ignore[return-value]


def run_once(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,), cwd: Path | None = None) -> Run:
    """One child alone; a status outside `ok` is an error that shows the end of its stderr."""
    started = [start(argv, env, cwd)]
    run = wait_all(started)[0]
    check(run, started[0][0], argv, ok)
    return run


def check(run: Run, proc: subprocess.Popen, argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    if run.status not in ok:
        from omnisense._errors import OmnisenseError

        tail = getattr(proc, "stderr_text", "")[-800:]
        raise OmnisenseError(f"{' '.join(argv)} exited with status {run.status}:\n{tail}")
