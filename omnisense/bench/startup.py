"""`omnisense bench startup`: the wall time of `omnisense --help` against the interpreter's floor, `python -c pass`.

Both run as fresh subprocesses of the same interpreter with the same environment, interleaved (the order
alternates every round, so drift in the machine's load falls on both), after one untimed warm-up each. The
report gives min and median of each, their ratio, and whether `--help` imported torch (a separate, untimed run
of the same CLI that prints what `sys.modules` holds at exit): the parser imports every command and bench
module, so one heavy import at module top shows here first.
"""

from __future__ import annotations

import argparse

HELP = "wall time of `omnisense --help` against `python -c pass`, and whether it imports torch"

# Runs the CLI exactly as `python -m omnisense --help` does, then reports what it imported.
_PROBE = """\
import json, runpy, sys
sys.argv = ["omnisense", "--help"]
try:
    runpy.run_module("omnisense", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write(json.dumps({"torch": "torch" in sys.modules, "modules": len(sys.modules)}) + "\\n")
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=10, help="timed runs of each command (default 10)")


def run(args: argparse.Namespace):
    import json
    import os
    import platform
    import statistics
    import subprocess
    import sys
    import time
    from pathlib import Path

    import omnisense
    from omnisense.bench._common import BenchReport

    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    # the omnisense being measured is the one this process runs, installed or not
    root = str(Path(omnisense.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    commands = {"floor": [sys.executable, "-c", "pass"], "help": [sys.executable, "-m", "omnisense", "--help"]}

    def once(name: str) -> float:
        start = time.perf_counter()
        # `-m` puts the working directory first on sys.path: run in this checkout, not the caller's
        subprocess.run(commands[name], env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"floor": [], "help": []}
    for name in times:  # warm-up: the OS file cache and any .pyc writing
        once(name)
    for i in range(args.repeat):
        for name in (("floor", "help") if i % 2 == 0 else ("help", "floor")):
            times[name].append(once(name))

    probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=root, capture_output=True, text=True,
                           check=True)
    imported = json.loads(probe.stderr.strip().splitlines()[-1])
    floor_modules = int(subprocess.run([sys.executable, "-c", "import sys; print(len(sys.modules))"], env=env,
                                       capture_output=True, text=True, check=True).stdout)

    floor_min, floor_median = min(times["floor"]), statistics.median(times["floor"])
    rows = []
    for name, label in (("floor", "python -c pass (floor)"), ("help", "python -m omnisense --help")):
        t_min, t_median = min(times[name]), statistics.median(times[name])
        rows.append({"command": label, "runs": len(times[name]), "min_ms": t_min * 1e3, "median_ms": t_median * 1e3,
                     "ratio_min": t_min / floor_min, "ratio_median": t_median / floor_median})
    help_row = rows[1]
    context = {
        "device": "cpu (subprocesses; --device plays no part)",
        "python": f"{platform.python_version()} ({sys.executable})",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "repeat": args.repeat,
        "torch_imported_by_help": imported["torch"],
        "modules_after_help": imported["modules"],
        "modules_after_floor": floor_modules,
    }
    notes = [f"--help costs {help_row['median_ms'] - rows[0]['median_ms']:.1f} ms over the interpreter's start "
             f"(median {help_row['ratio_median']:.2f}x the floor, min {help_row['ratio_min']:.2f}x)",
             "torch imported by --help: " + ("YES, a module imports it at top" if imported["torch"] else "no")]
    return BenchReport("omnisense --help vs python -c pass (wall time, fresh processes)", rows, context, notes,
                       details=[{"command": name, "seconds": times[name]} for name in times])
