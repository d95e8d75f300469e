"""The batch runner every inference command shares: many inputs, one model load, one record per input.

Inputs are files, folders (their files with the command's extensions, sorted, not recursive) or glob patterns.
The model is loaded once; a progress bar runs on stderr (when it is a terminal); each input gives one record of the
task's schema (`omnisense.outputs`) written as one JSON line to `--output FILE.jsonl`, or to stdout when neither
`--output` nor `--out-dir` is given, or as `<name>.json` under `--out-dir`. A bad input is reported on its own line
(the file and the problem), recorded as an `omnisense.error/1` record and skipped; `--fail-fast` stops at the
first one. The exit status is 2 when any input failed, after a summary line ("N ok, M failed"). A run of ONE input
that fails prints one line (`omnisense: error: FILE: problem`), writes nothing and exits 2, like any other error.

Nothing is overwritten without `--overwrite`: every output a run would write (the JSONL, the per-input files, a
plot, ...) is checked before the model is loaded, and an existing one stops the run with one line and exit 2,
having written nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from omnisense._errors import OmnisenseError
from omnisense._runtime import Runtime, add_runtime_arguments, configure

GLOB_CHARS = set("*?[")


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The output and runtime options of every inference command."""
    out = parser.add_argument_group("output (one record per input, see docs/outputs.md)")
    where = out.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, metavar="FILE.jsonl",
                       help="write one JSON line per input here (default: to stdout)")
    where.add_argument("--out-dir", type=Path, metavar="DIR", help="write one <name>.json per input here")
    out.add_argument("--overwrite", action="store_true", help="replace existing output files")
    out.add_argument("--fail-fast", action="store_true", help="stop at the first bad input instead of skipping it")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_arguments(parser)


def collect_inputs(items: Sequence[str | Path], extensions: Sequence[str],
                   keep_folder: Callable[[Path], bool] = lambda p: False) -> list[Path]:
    """Files as given (whatever their extension), folders' files with `extensions`, glob patterns' matches.

    A folder for which `keep_folder` is true is one input itself (a ROS 2 bag, say). A pattern that matches nothing
    and a path that does not exist are kept as given, so the run reports them as failed inputs. Order: as given,
    folders and patterns sorted; duplicates dropped.
    """
    exts = {e.lower() for e in extensions}
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and keep_folder(path):
            out.append(path)
        elif path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in exts))
        elif not path.exists() and GLOB_CHARS & set(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            files = [m for m in matches if m.is_file()]
            out.extend(files if files else [path])
        else:
            out.append(path)
    seen: set[Path] = set()
    found = [p for p in out if not (p in seen or seen.add(p))]
    if not found and items:
        raise OmnisenseError(f"{items[0]}: no input files in it (looked for {', '.join(sorted(exts))})"
                             + (f" (and in {len(items) - 1} more)" if len(items) > 1 else ""))
    return found


def unique_names(inputs: Sequence[Any], name: Callable[[Any], str] = lambda p: Path(p).stem) -> list[str]:
    """A file name (without extension) per input: its stem, or its path's parts joined by '__' on a clash."""
    stems = [name(i) for i in inputs]
    if len(set(stems)) == len(stems):
        return stems
    full = ["__".join(Path(str(i)).with_suffix("").parts).lstrip("_/") for i in inputs]
    counts: dict[str, int] = {}
    out = []
    for s in full:  # still clashing (the same path twice): number them
        counts[s] = counts.get(s, 0) + 1
        out.append(s if counts[s] == 1 else f"{s}-{counts[s]}")
    return out


def refuse_existing(paths: Sequence[Path | None], overwrite: bool) -> None:
    """Stop (one line, exit 2 through the CLI) when an output exists and `--overwrite` was not given."""
    if overwrite:
        return
    existing = [p for p in paths if p is not None and Path(p).exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OmnisenseError(f"refusing to overwrite {existing[0]}{more}: pass --overwrite to replace it")


def check_writable(paths: Sequence[Path | None]) -> None:
    """Stop before any work when an output cannot be written: a file stands where one of its folders should be."""
    for path in paths:
        if path is None:
            continue
        for parent in Path(path).parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OmnisenseError(f"cannot write {path}: {parent} is a file, not a folder")
                break


def answer_line(record: dict[str, Any]) -> str:
    """The answer of a classification / recognition / audio record in a few words: its best class and probability,
    or "none of the known classes" with the vocabulary and the rejection score against its threshold."""
    if record.get("known", True) and record["top"]:
        best = record["top"][0]
        return f"{best['class']} {best['probability']:.3f}"
    rule = record.get("rejection") or {}
    why = f"; {rule['score']} {rule['value']} against thresholds {rule['threshold']}" if rule.get("score") else ""
    return f"{record.get('label', '?')} (vocabulary: {record.get('vocabulary') or '?'}{why})"


def input_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "this input is bad": the packages' own, and the operating system's."""
    from fusion._errors import FusionError
    from perception3d._errors import Perception3DError
    from video._errors import VideoError

    return (OmnisenseError, FusionError, Perception3DError, VideoError, OSError, ValueError)


@dataclass
class Batch:
    """One run of a command over its inputs.

    Args:
        inputs: the inputs (paths, or (source, target) pairs for `register`).
        load: `load(runtime) -> model state`, called once, after the outputs were checked.
        process: `process(state, input) -> record` (a schema record of `omnisense.outputs`).
        describe: a one-line human summary of a record (printed to stderr).
        per_input_outputs: `fn(input, name) -> [paths]` other files the command writes for an input (KITTI labels,
            a plot), checked against overwriting before the run.
        after: `after(state, input, record, name)` writes those files.
        names: `fn(input) -> str`, the name of an input's own files (default: the file's stem).
    """

    inputs: list[Any]
    load: Callable[[Runtime], Any]
    process: Callable[[Any, Any], dict[str, Any]]
    describe: Callable[[dict[str, Any]], str] = lambda r: ""
    per_input_outputs: Callable[[Any, str], list[Path]] | None = None
    after: Callable[[Any, Any, dict[str, Any], str], None] | None = None
    names: Callable[[Any], str] = lambda p: Path(p).stem
    label: str = "inputs"
    records: list[dict[str, Any]] = field(default_factory=list)

    def run(self, args: argparse.Namespace) -> int:
        """Check outputs, load once, process every input, write the records; 2 when any input failed."""
        from omnisense._io import write_json_atomic, write_text_atomic
        from omnisense.outputs import error_record

        if not self.inputs:
            raise OmnisenseError(f"no {self.label} given (or none found in the folders named)")
        names = unique_names(self.inputs, self.names)
        planned: list[Path | None] = [args.output]
        if args.out_dir is not None:
            planned += [args.out_dir / f"{n}.json" for n in names]
        if self.per_input_outputs is not None:
            for item, n in zip(self.inputs, names):
                planned += self.per_input_outputs(item, n)
        refuse_existing(planned, args.overwrite)
        check_writable(planned)

        runtime = configure(args.device, args.threads)
        state = self.load(runtime)
        to_stdout = args.output is None and args.out_dir is None
        single = len(self.inputs) == 1  # one input that fails: one line naming it, exit 2, nothing written
        ok = failed = 0
        errors = input_errors()
        bar = _progress(len(self.inputs), self.label, disable=args.no_progress or len(self.inputs) < 2)
        try:
            for item, name in zip(self.inputs, names):
                try:
                    record = self.process(state, item)
                    if self.after is not None:
                        self.after(state, item, record, name)
                except errors as err:
                    record = error_record(_shown(item), _message(err))
                except Exception as err:  # noqa: BLE001 - a batch reports an unexpected failure and goes on
                    record = error_record(_shown(item), f"unexpected {type(err).__name__}: {_message(err)}")
                if single and "error" in record:
                    named = any(str(p) in record["error"] for p in (item if isinstance(item, tuple) else (item,)))
                    message = record["error"] if named else f"{record['input']}: {record['error']}"
                    print(f"omnisense: error: {message}", file=sys.stderr)
                    return 2
                self.records.append(record)
                if "error" in record:
                    failed += 1
                    _say(bar, f"omnisense: skipped {record['input']}: {record['error']}"
                         if record["input"] not in record["error"] else f"omnisense: skipped: {record['error']}")
                else:
                    ok += 1
                    line = self.describe(record)
                    if line:
                        _say(bar, line)
                if args.out_dir is not None:
                    write_json_atomic(args.out_dir / f"{name}.json", record)
                if to_stdout:
                    sys.stdout.write(json.dumps(record, default=_json_default) + "\n")
                    sys.stdout.flush()
                bar.update(1)
                if failed and args.fail_fast:
                    break
        finally:
            bar.close()
            if args.output is not None and self.records:
                write_text_atomic(args.output, "".join(json.dumps(r, default=_json_default) + "\n"
                                                       for r in self.records))
        skipped = len(self.inputs) - ok - failed
        where = f" -> {args.output}" if args.output else f" -> {args.out_dir}/" if args.out_dir else ""
        print(f"{ok} ok, {failed} failed" + (f", {skipped} not run (--fail-fast)" if skipped else "") + where,
              file=sys.stderr)
        return 2 if failed else 0


def _shown(item: Any) -> str:
    return " ".join(str(p) for p in item) if isinstance(item, tuple) else str(item)


def _message(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, label: str, *, disable: bool):
    if disable or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=label.rstrip("s")[:12] or "input", file=sys.stderr, dynamic_ncols=True)


def _say(bar: Any, line: str) -> None:
    if isinstance(bar, _NoBar):
        print(line, file=sys.stderr)
    else:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
