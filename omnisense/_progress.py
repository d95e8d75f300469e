"""Progress for long work with no natural steps: a heartbeat line every few seconds.

    with heartbeat("data make lidar-scenes", count=lambda: f"{files_in(staging)} files written"):
        generate(...)

A daemon thread prints `[label] 12 s ..., 340 files written` to stderr every `every` seconds until the block ends
(nothing when it ends sooner), so a generator, a benchmark or a demo part never runs silent for long. Work with
natural steps prints one line per step instead (`omnisense.demo.DemoContext.step`).
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

EVERY_S = 5.0


@contextmanager
def heartbeat(label: str, *, every: float = EVERY_S, count: Callable[[], str] | None = None) -> Iterator[None]:
    """Print `[label] N s ...` (and `count()` when given) every `every` seconds while the block runs."""
    done = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not done.wait(every):
            extra = ""
            if count is not None:
                try:
                    extra = f", {count()}"
                except Exception:  # the heartbeat must never break the work it reports on
                    extra = ""
            print(f"[{label}] {time.perf_counter() - start:.0f} s ...{extra}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, name=f"heartbeat {label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1.0)


def files_in(folder: Path) -> str:
    """"340 files (12.5 MB) written": what a generator has written so far."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return f"{len(files)} files ({size / 1e6:.1f} MB) written"
