"""`omnisense bench batch`: a folder of N inputs through one command call, against N separate calls.

Both sides run the real console command as fresh subprocesses of the same interpreter with the same environment
(`python -m omnisense <command> ...`, writing JSON Lines to a temporary folder): the batch side once on a folder
of the N files, the naive side once per file. The ratio is what a user saves by handing a command a folder: one
interpreter start, one import of torch and the library, one model load, instead of N. By default the inputs are
the first N sound files of the sonic-pi sample data (`omnisense data fetch sonic-pi-samples`) through
`classify-audio`; `--folder` and `--command` measure another command. Both sides produce the same records (checked).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "batch inference: a folder of N inputs in one command call against N separate calls, as a ratio"

# command -> its module (for its input extensions)
COMMAND_EXTENSIONS = {"classify-audio": "omnisense.commands.classify_audio",
                      "classify": "omnisense.commands.classify",
                      "recognize": "omnisense.commands.recognize",
                      "detect": "omnisense.commands.detect"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--command", dest="inference_command", choices=sorted(COMMAND_EXTENSIONS),
                        default="classify-audio",
                        help="the inference command to time (default: classify-audio)")
    parser.add_argument("--folder", type=Path,
                        help="the inputs (default: the sonic-pi sample sounds, for classify-audio)")
    parser.add_argument("--n", type=int, default=14, help="how many inputs (default 14)")
    parser.add_argument("--weights", help="weights for the command (default: the command's own)")


def run(args: argparse.Namespace):
    import json
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from omnisense._errors import OmnisenseError
    from omnisense._registry import resolve
    from omnisense.bench._common import BenchReport, base_context

    if args.folder is None:
        if args.inference_command != "classify-audio":
            raise OmnisenseError("--folder is needed for commands other than classify-audio")
        from omnisense.data import sample_data

        args.folder = sample_data("sonic-pi-samples")
    exts = {e.lower() for e in resolve(COMMAND_EXTENSIONS[args.inference_command]).EXTENSIONS}
    files = sorted(p for p in Path(args.folder).iterdir() if p.is_file() and p.suffix.lower() in exts)[:args.n]
    if len(files) < args.n:
        raise OmnisenseError(f"{args.folder}: {len(files)} {args.inference_command} inputs, fewer than --n {args.n}")

    env = {**os.environ, "OMNISENSE_THREADS": str(args.threads)}
    common = ["--device", args.device, "--no-progress"] + (["--weights", args.weights] if args.weights else [])

    def call(inputs: list[Path], out: Path) -> float:
        cmd = [sys.executable, "-m", "omnisense", args.inference_command, *map(str, inputs), "--output", str(out),
               *common]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise OmnisenseError(f"`{' '.join(cmd[2:5])} ...` failed: {done.stderr.strip().splitlines()[-1:]}")
        return seconds

    with tempfile.TemporaryDirectory(prefix="omnisense-bench-batch-") as tmp:
        folder = Path(tmp) / "inputs"
        folder.mkdir()
        for f in files:  # exactly these N files, as one folder
            (folder / f.name).symlink_to(f.resolve())
        batch_s = call([folder], Path(tmp) / "batch.jsonl")
        single_s = [call([folder / f.name], Path(tmp) / f"one_{i}.jsonl") for i, f in enumerate(files)]
        batch = [json.loads(line) for line in (Path(tmp) / "batch.jsonl").read_text().splitlines()]
        singles = [json.loads((Path(tmp) / f"one_{i}.jsonl").read_text()) for i in range(len(files))]
    same = [b.get("top") for b in batch] == [s.get("top") for s in singles]
    naive = sum(single_s)
    rows = [
        {"way": f"one call on a folder of {len(files)}", "seconds": round(batch_s, 2),
         "per_input_s": round(batch_s / len(files), 3), "speedup": round(naive / batch_s, 2)},
        {"way": f"{len(files)} separate calls", "seconds": round(naive, 2),
         "per_input_s": round(naive / len(files), 3), "speedup": 1.0},
    ]
    context = {**base_context(args.device), "command": args.inference_command, "inputs": len(files),
               "folder": str(args.folder), "same_records": same}
    notes = [f"ratio {naive / batch_s:.1f}x: N separate calls / one call on the folder (same interpreter, same "
             "environment; each call starts Python, imports torch, loads the model)"]
    if not same:
        notes.append("the batch and the separate calls gave different top-k classes: investigate")
    return BenchReport(f"batch inference: {args.inference_command} on {len(files)} inputs", rows, context, notes)
