"""`omnisense bench commands`: the fixed costs a user feels, each against its floor or peer in the same run.

- `classify-audio CLIP` as a whole command (a fresh process) against `python -c "import torch"`, the floor of any
  command that runs a torch model; issue #19's target: <= 1.5 s on a short clip.
- `register SOURCE TARGET` (RoITr, the default) as a whole command against `register --method fpfh` on the same
  pair; target: no slower (ratio <= 1).
- The first `register` call of a process against the second, same process, same pair, for each method (the
  clouds read and the model loaded before either call; everything the first call imports counts); target: 1.3x.
  `perception3d.registration.inference` imports open3d and the registration modules with itself, so that the
  first call costs what later ones do: that import (after torch's) is a row of its own, against the same warm
  call, so the moved cost stays in view.

Whole commands take turns (the order alternates every round) after one untimed warm-up each, with the bench's
`--threads` passed on. Each row gives median wall time and the child's own CPU time (user + system, from
`os.wait4`), whose ratio is the steadier figure on a shared machine; the load average goes into the context.
Inputs default to the sample data: a 0.445 s sonic-pi drum hit and the CGAL hippo scan pair (two real scans of
one object); `--clip` and `--pair` take others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "whole-command fixed costs: classify-audio vs import torch, register vs --method fpfh, first vs warm call"

CLIP = ("sonic-pi-samples", "drum_snare_hard.flac")
PAIR = ("cgal", "points_3/hippo1.ply", "points_3/hippo2.ply")
TARGETS = {"classify-audio": 1.5, "register": 1.0, "first call": 1.3}  # seconds; ratio to fpfh; ratio to warm

# Run in a fresh interpreter: reads the pair, loads the model, then times two `register` calls on it.
_FIRST_CALL = """\
import json, sys, time
import numpy as np, torch
method, source, target, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
from perception3d.io import read_points
wall, cpu = time.perf_counter(), time.process_time()
from perception3d.registration import RegistrationSpec, register  # open3d comes with it
calls = [[time.perf_counter() - wall, time.process_time() - cpu]]
clouds = [read_points(p) for p in (source, target)]
clouds = [c.xyz.astype(np.float64) + c.origin for c in clouds]
model, spec = None, RegistrationSpec()
if method == "roitr":
    from omnisense.models import load_model
    model, meta = load_model("roitr_small_cgal", device="cpu", task="registration")
    spec = meta.transforms()
for _ in range(2):
    wall, cpu = time.perf_counter(), time.process_time()
    register(*clouds, model=model, method=method, spec=spec, device="cpu")
    calls.append([time.perf_counter() - wall, time.process_time() - cpu])
print(json.dumps(calls))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument("--clip", type=Path, help="the audio clip (default: a 0.445 s drum hit of the sample data)")
    parser.add_argument("--pair", type=Path, nargs=2, metavar=("SOURCE", "TARGET"),
                        help="the clouds to register (default: the CGAL hippo scan pair of the sample data)")
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="measure only these rows")


def _sample(name: str, *parts: str) -> list[Path] | None:
    from omnisense._errors import OmnisenseError
    from omnisense.data import sample_data

    try:
        folder = sample_data(name, fetch_if_missing=False)
    except OmnisenseError:
        return None
    return [folder / p for p in parts]


def _interleaved(commands: dict[str, list[str]], env: dict[str, str], repeat: int, ok=(0,)) -> dict[str, list]:
    """Each command once untimed, then `repeat` rounds taking turns (order alternating): {name: [Run]}."""
    from omnisense.bench._processes import checkout, run_once

    cwd = checkout()  # `-c` and `-m` put the working directory first on sys.path: this checkout's, not another's
    for argv in commands.values():
        run_once(argv, env, ok, cwd)
    runs: dict[str, list] = {k: [] for k in commands}
    names = list(commands)
    for i in range(repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            runs[name].append(run_once(commands[name], env, ok, cwd))
    return runs


def _row(job: str, peer: str, runs: list, peer_runs: list, target: float | None, target_kind: str,
         detail: str) -> dict:
    import statistics

    wall, cpu = statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)
    peer_wall, peer_cpu = statistics.median(r.wall for r in peer_runs), statistics.median(r.cpu for r in peer_runs)
    ratio, cpu_ratio = wall / peer_wall, cpu / peer_cpu
    met = None
    if target is not None:
        met = (wall <= target and cpu <= target) if target_kind == "seconds" else (ratio <= target and cpu_ratio <= target)
    return {"job": job, "runs": len(runs), "s": round(wall, 3), "cpu_s": round(cpu, 3), "peer": peer,
            "peer_s": round(peer_wall, 3), "peer_cpu_s": round(peer_cpu, 3), "ratio": round(ratio, 2),
            "cpu_ratio": round(cpu_ratio, 2), "target": None if target is None else f"{target:g} {target_kind}",
            "met": met, "detail": detail}


def run(args: argparse.Namespace):
    import json
    import os
    import platform
    import subprocess
    import sys

    from omnisense.bench._common import BenchReport, load_average
    from omnisense.bench._processes import Run, checkout, child_env, omnisense_argv

    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    only = set(args.only or TARGETS)
    threads = str(args.threads)
    env = child_env()
    rows, details, skipped = [], [], []
    load_start = load_average()

    if "classify-audio" in only:
        clip = [args.clip.resolve()] if args.clip else _sample(*CLIP)
        if clip is None:
            skipped.append("classify-audio skipped: no clip (omnisense data fetch sonic-pi-samples, or --clip)")
        else:
            runs = _interleaved({"floor": [sys.executable, "-c", "import torch"],
                                 "job": omnisense_argv("classify-audio", str(clip[0]), "--threads", threads)},
                                env, args.repeat)
            rows.append(_row(f"omnisense classify-audio {clip[0].name}", 'python -c "import torch"', runs["job"],
                             runs["floor"], TARGETS["classify-audio"], "seconds",
                             "whole command, fresh process; the floor is torch's own import"))
            details.append({"row": "classify-audio", **{k: [vars(r) for r in v] for k, v in runs.items()}})

    pair = [p.resolve() for p in args.pair] if args.pair else _sample(*PAIR)
    if pair is None and ({"register", "first call"} & only):
        skipped.append("register rows skipped: no pair (omnisense data fetch cgal, or --pair)")
        only -= {"register", "first call"}
    if "register" in only:
        base = ["register", str(pair[0]), str(pair[1]), "--threads", threads, "--allow-failure"]
        runs = _interleaved({"fpfh": omnisense_argv(*base, "--method", "fpfh"), "roitr": omnisense_argv(*base)},
                            env, args.repeat)
        rows.append(_row(f"omnisense register {pair[0].name} {pair[1].name} (RoITr)", "--method fpfh", runs["roitr"],
                         runs["fpfh"], TARGETS["register"], "x peer", "whole commands, fresh processes"))
        details.append({"row": "register", **{k: [vars(r) for r in v] for k, v in runs.items()}})
    if "first call" in only:
        for method in ("roitr", "fpfh"):
            calls = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, "-c", _FIRST_CALL, method, str(pair[0]), str(pair[1]), threads],
                                     env=env, cwd=checkout(), capture_output=True, text=True)
                if out.returncode != 0:
                    from omnisense._errors import OmnisenseError

                    raise OmnisenseError(f"the first-call probe ({method}) failed:\n{out.stderr[-800:]}")
                calls.append(json.loads(out.stdout.strip().splitlines()[-1]))
            imports = [Run(c[0][0], c[0][1], 0) for c in calls]
            first = [Run(c[1][0], c[1][1], 0) for c in calls]
            second = [Run(c[2][0], c[2][1], 0) for c in calls]
            rows.append(_row(f"import of perception3d.registration's register ({method} process)",
                             "second call, same process", imports, second, None, "x peer",
                             "after torch's import: open3d and the registration modules, imported with the module "
                             "so that the first call is warm; no target, shown so the moved cost is not hidden"))
            rows.append(_row(f"first register call ({method})", "second call, same process", first, second,
                             TARGETS["first call"], "x peer",
                             "one fresh process per run; clouds read and model loaded before both calls"))
            details.append({"row": f"first call {method}", "calls": calls})

    context = {"device": "cpu (fresh processes)", "threads_passed": int(threads),
               "python": f"{platform.python_version()} ({sys.executable})",
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
               "repeat": args.repeat, "load_average_start": load_start, "load_average_end": load_average(),
               "bytecode_cache": "off (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE")
               else "on"}
    notes = ["s, cpu_s: medians of wall and of the child's CPU time (user + system); ratio = job / peer",
             "met: the target holds for both wall and CPU time (on a loaded machine the CPU figures are the steadier)",
             *skipped]
    for line in skipped:
        print(line)
    return BenchReport("fixed costs of whole commands (fresh processes, taking turns)", rows, context, notes,
                       details=details)
