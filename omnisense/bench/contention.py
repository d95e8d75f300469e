"""`omnisense bench contention`: two commands started side by side, each against its own time alone, same run.

The thread policy (`omnisense._runtime`) is what is measured: the children get no `--threads` and neither
OMNISENSE_THREADS nor OMP_NUM_THREADS, so each picks its threads as a user's command would (the idle cores, at
least 1). Each round runs A alone, B alone, then A and B started together (the order of the solo runs alternates);
a command's ratio is its median wall time side by side over its median alone (issue #19: each <= 1.5x on the
2-core machine). The child's CPU time (user + system, `os.wait4`) is reported beside it: a ratio well above its CPU
ratio is time spent waiting for a core. Load averages before each round go into the JSON; a machine already
loaded (load >= 1.5) says so in a note, since the others' jobs are then part of both figures.

Each child runs in a session of its own (setsid), as two commands started from two terminals or by a service manager
do: where the kernel shares CPU time between sessions first (Linux autogroup, `/proc/sys/kernel/sched_autogroup_enabled`),
two children of the bench's own session would split one session's slice of a shared machine whatever their threads.
`--same-session` measures that case too.

Defaults: `omnisense register` on the CGAL hippo scan pair (RoITr) and `omnisense detect` on a simulated
100k-point 64-beam sweep written to a temporary .bin (both need only the sample data); `--commands` takes any two.
"""

from __future__ import annotations

import argparse

HELP = "two commands side by side vs each alone, with the default thread policy (ratio and load average)"
TARGET = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commands", nargs=2, metavar=("A", "B"),
                        help="two omnisense command lines, quoted, without the leading `omnisense` (default: "
                             "register on the hippo pair, detect on a simulated 100k-point sweep)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--same-session", action="store_true",
                        help="run the children in the bench's session (default: a session each, as two terminals)")


def _default_commands(tmp) -> list[list[str]]:
    import numpy as np

    from omnisense.data import sample_data
    from perception3d.detection.simulator import LidarConfig, simulate_frame

    cgal = sample_data("cgal") / "points_3"
    sweep = tmp / "sweep.bin"
    simulate_frame(np.random.default_rng(0), LidarConfig(beams=64, azimuth_steps=2048)).points.astype(
        np.float32).tofile(sweep)
    return [["register", str(cgal / "hippo1.ply"), str(cgal / "hippo2.ply"), "--allow-failure"],
            ["detect", str(sweep), "--output", str(tmp / "detections.json"), "--overwrite"]]


def _autogroup() -> str | None:
    """Whether the kernel shares CPU time between sessions first (Linux autogroup): '1', '0', or None elsewhere."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip()
    except OSError:
        return None


def run(args: argparse.Namespace):
    import os
    import platform
    import shlex
    import statistics
    import sys
    import tempfile
    from pathlib import Path

    from omnisense._runtime import default_threads
    from omnisense.bench._common import BenchReport, load_average
    from omnisense.bench._processes import check, checkout, child_env, omnisense_argv, start, wait_all

    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    env = child_env(drop=("OMNISENSE_THREADS", "OMP_NUM_THREADS"))
    with tempfile.TemporaryDirectory(prefix="omnisense-contention-") as tmp:
        commands = ([shlex.split(c) for c in args.commands] if args.commands else _default_commands(Path(tmp)))
        argvs = [omnisense_argv(*c) for c in commands]
        # `-m` puts the working directory first on sys.path: the default commands (absolute paths) run in this
        # checkout; commands given run where the bench was started, for their relative paths
        cwd = None if args.commands else checkout()
        same_session = bool(getattr(args, "same_session", False))

        def together(which: list[int]) -> list:
            started = [start(argvs[k], env, cwd, new_session=not same_session) for k in which]
            runs = wait_all(started)
            for k, (proc, _), r in zip(which, started, runs):
                check(r, proc, argvs[k])
            return runs

        for k in (0, 1):  # untimed warm-up: the OS file cache, any bytecode writing
            together([k])
        alone: list[list] = [[], []]
        side: list[list] = [[], []]
        rounds = []
        for i in range(args.repeat):
            load = load_average()
            for k in ((0, 1) if i % 2 == 0 else (1, 0)):
                alone[k].append(together([k])[0])
            load_side = load_average()
            threads_side = default_threads()  # what each child's policy sees at the start, give or take
            a, b = together([0, 1])
            side[0].append(a)
            side[1].append(b)
            rounds.append({"load_average_alone": load, "load_average_side_by_side": load_side,
                           "default_threads_at_start": threads_side,
                           "alone": [vars(alone[0][-1]), vars(alone[1][-1])], "side_by_side": [vars(a), vars(b)]})

    rows = []
    for k, command in enumerate(commands):
        wall_alone = statistics.median(r.wall for r in alone[k])
        wall_side = statistics.median(r.wall for r in side[k])
        cpu_alone = statistics.median(r.cpu for r in alone[k])
        cpu_side = statistics.median(r.cpu for r in side[k])
        ratio = wall_side / wall_alone
        rows.append({"command": "omnisense " + " ".join(Path(c).name if "/" in c else c for c in command),
                     "runs": len(alone[k]), "alone_s": round(wall_alone, 3), "side_by_side_s": round(wall_side, 3),
                     "ratio": round(ratio, 2), "cpu_alone_s": round(cpu_alone, 3),
                     "cpu_side_by_side_s": round(cpu_side, 3), "cpu_ratio": round(cpu_side / cpu_alone, 2),
                     "target": TARGET, "met": ratio <= TARGET})
    loads = [r["load_average_side_by_side"][0] for r in rounds if r["load_average_side_by_side"]]
    notes = ["ratio = median wall time side by side / alone, the same command, the same run; met: <= 1.5",
             "children: no --threads, OMNISENSE_THREADS and OMP_NUM_THREADS removed (the default thread policy)"]
    if loads and max(loads) >= 1.5:
        notes.append(f"the machine was loaded (1-minute load average up to {max(loads):.2f} before a side-by-side "
                     "run): other jobs shared the cores in both the solo and the side-by-side runs")
    context = {"device": "cpu (fresh processes)", "cores": os.cpu_count(),
               "sessions": "the bench's own" if same_session else "one per child (setsid)",
               "autogroup": _autogroup(),
               "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
               "python": f"{platform.python_version()} ({sys.executable})", "repeat": args.repeat,
               "commands": [" ".join(c) for c in commands], "load_average_end": load_average()}
    return BenchReport("two commands side by side vs alone (default thread policy)", rows, context, notes,
                       details=rounds)
