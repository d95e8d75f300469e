"""Run corpus cases in-process through `omnisense.cli.main` and sort what happened.

`python -m tests.fuzz.runner [SUBSTRING ...]` runs the corpus (or the cases whose id contains a SUBSTRING) and
prints the counts the issue asks for: cases, tracebacks, crashes or hangs, bad inputs accepted, unasked
overwrites, messages that do not name the file; then one line per case that broke the contract.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.corpus import Call, Case, Samples, Workspace

CASE_TIMEOUT_S = 120
# Lightning's run chatter, printed by every `fit` before its data is read: not part of an error message.
CHATTER = re.compile(r"^(?:INFO: )?(Seed set to \d+|GPU available: |TPU available: |HPU available: |💡 Tip: )")


class _Hang(Exception):
    pass


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (and the listing of folders), by relative path."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel + "/"] = "dir"
    return out


@dataclass
class Outcome:
    case: Case
    call: Call | None
    code: int | str  # exit status, or "exception" / "hang" / "build-failed"
    stderr: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def run_argv(argv: list[str], capture) -> tuple[int | str, str]:
    """`omnisense.cli.main(argv)` with stderr captured by `capture()` (a context manager yielding a reader)."""
    from omnisense.cli import main

    def alarm(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_TIMEOUT_S)
    tb = ""
    try:
        try:
            code: int | str = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except _Hang:
            code = "hang"
        except BaseException:  # noqa: BLE001 - the corpus records whatever escapes
            code, tb = "exception", traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, tb


def judge(case: Case, call: Call, code, stderr: str, before: dict, after: dict,
          outputs_before: dict[Path, str | None]) -> list[str]:
    problems = []
    if code == "exception" or "Traceback (most recent call last)" in stderr:
        problems.append("traceback")
    if code in ("hang",) or (isinstance(code, int) and code not in (0, 2)) or code == "exception":
        problems.append("crash")
    if code == 0:
        problems.append("accepted")
    lines = [line for line in stderr.splitlines() if line.strip() and not CHATTER.match(line)]
    if code == 2:
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines")
        name = Path(call.names).name if isinstance(call.names, Path) else str(call.names)
        if not any(name in line for line in lines[-1:]):
            problems.append("does not name the file")
    for out, digest in outputs_before.items():
        now = _digest(out)
        if now != digest:
            problems.append("overwrote an output" if digest is not None else "wrote an output")
    root = call_root(call)
    for pattern in call.forbidden:
        if root is not None and any(root.glob(pattern)):
            problems.append(f"wrote an output ({pattern})")
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and not _is_output(k, call)
                     and not any(Path(k.rstrip("/")).match(p) or k.startswith(p.split("/")[0] + "/")
                                 for p in call.forbidden))
    if changed:
        problems.append("inputs changed: " + ", ".join(changed[:3]))
    return problems


def call_root(call: Call) -> Path | None:
    return getattr(call, "root", None)


def _is_output(rel: str, call: Call) -> bool:
    """Paths under a declared output are judged by the output check, not as inputs."""
    for out in call.outputs:
        name = out.name
        if rel == name or rel.startswith(name + "/") or rel.rstrip("/") == name or rel.endswith("/" + name):
            return True
    return False


def _digest(path: Path) -> str | None:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.rglob("*")))
    if path.exists():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return None


@contextlib.contextmanager
def _capture_stderr():
    """stderr at the file-descriptor level (C libraries and logging handlers included) into a buffer."""
    import tempfile

    sys.stderr.flush()
    saved = __import__("os").dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        __import__("os").dup2(tmp.fileno(), 2)
        box = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield box
        finally:
            sys.stderr.flush()
            __import__("os").dup2(saved, 2)
            __import__("os").close(saved)
            tmp.seek(0)
            box.write(tmp.read().decode("utf-8", "replace"))


def run_case(case: Case, samples: Samples, folder: Path, capture=None) -> Outcome:
    """Build the case in `folder` and run it. `capture`: a callable returning the captured stderr so far
    (pytest's capfd); without it, fd 2 is redirected here."""
    ws = Workspace(folder, samples)
    try:
        call = case.build(ws)
    except Exception:  # noqa: BLE001
        return Outcome(case, None, "build-failed", traceback.format_exc(), ["corpus could not build the case"])
    call.root = ws.dir
    if capture is not None:
        capture()  # what building the case printed is not the call's
    outputs_before = {out: _digest(out) for out in call.outputs}
    before = snapshot(ws.dir)
    if capture is None:
        with _capture_stderr() as box:
            code, tb = run_argv(call.argv, None)
        stderr = box.getvalue()
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            code, tb = run_argv(call.argv, None)
        stderr = capture()
    stderr += tb
    after = snapshot(ws.dir)
    return Outcome(case, call, code, stderr, judge(case, call, code, stderr, before, after, outputs_before))


def summarise(outcomes: list[Outcome]) -> str:
    def count(word):
        return sum(any(p.startswith(word) for p in o.problems) for o in outcomes)

    lines = [f"cases {len(outcomes)}", f"passed {sum(o.ok for o in outcomes)}",
             f"tracebacks {count('traceback')}", f"crashes or hangs {count('crash')}",
             f"bad inputs accepted {count('accepted')}",
             f"unasked overwrites {count('overwrote')}", f"outputs written {count('wrote')}",
             f"messages not naming the file {count('does not name')}",
             f"messages longer than one line {sum(any(p.endswith(' lines') for p in o.problems) for o in outcomes)}",
             f"inputs changed {count('inputs changed')}", f"corpus build failures {count('corpus')}"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import tempfile

    from omnisense.data import sample_data
    from tests.fuzz.corpus import all_cases

    cases = [c for c in all_cases() if not argv or any(a in c.id for a in argv)]
    work = Path(tempfile.mkdtemp(prefix="omnisense-fuzz-"))
    samples = Samples(sample_data, work / "_samples")
    outcomes = []
    for i, case in enumerate(cases):
        outcome = run_case(case, samples, work / f"case{i:04d}")
        outcomes.append(outcome)
        if not outcome.ok:
            last = [x for x in outcome.stderr.strip().splitlines() if x.strip()][-1:] or [""]
            print(f"FAIL {case.id}{' (xfail)' if case.xfail else ''}: code {outcome.code}; "
                  f"{'; '.join(outcome.problems)} | {last[0][:220]}", flush=True)
    print(summarise(outcomes))
    print(f"(cases built under {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
