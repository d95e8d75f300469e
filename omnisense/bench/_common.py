"""Shared pieces of the benchmarks: timing with warm-up, peak memory, the report table and its JSON.

A benchmark measures ours and a peer or naive baseline in the same run and reports the ratio; it is a
command, never a timed test.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class Timing:
    """Median wall time of a callable, in seconds, and its peak memory in bytes (CUDA only, else None)."""

    seconds: float
    runs: int
    peak_bytes: int | None
    cpu_seconds: float | None = None  # median process CPU time of a call (on a busy machine: near the wall time
    # that call would take alone, when it runs on one thread)

    @property
    def ms(self) -> float:
        return self.seconds * 1e3


@dataclass
class BenchReport:
    """What a benchmark returns: a title, one row per measured thing, the context, and free notes; `details`
    (per-item records, e.g. every registered pair) go to the JSON only."""

    title: str
    rows: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {"title": self.title, "context": self.context, "rows": self.rows, "notes": self.notes}
        return {**out, "details": self.details} if self.details else out


def resolve_device(name: str) -> str:
    """'auto' becomes 'cuda' when a GPU is present, else 'cpu'; asking for 'cuda' without one is an error."""
    import torch

    from omnisense._errors import OmnisenseError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise OmnisenseError("--device cuda asked for, but no CUDA GPU is visible")
    return name


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 2, repeat: int = 5,
            max_seconds: float = 30.0) -> Timing:
    """Time `fn()` after `warmup` calls; the median of up to `repeat` runs, stopping early after `max_seconds`."""
    import torch

    for _ in range(warmup):
        fn()
    _sync(device)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget_end:
            break
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return Timing(statistics.median(times), len(times), peak)


def measure_interleaved(fns: dict[str, Callable[[], Any]], *, device: str = "cpu", warmup: int = 2, repeat: int = 5,
                        max_seconds: float = 60.0) -> dict[str, Timing]:
    """Time several callables taking turns (A B A B ...), the median of each: a job and its peer then see the
    same machine, which matters on a shared one where the speed drifts during a run."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    gc.collect()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeat):
        for name, fn in fns.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
        if time.perf_counter() > budget_end:
            break
    return {k: Timing(statistics.median(v), len(v), None, statistics.median(cpu[k])) for k, v in times.items()}


def thread_rows(spec: str) -> list[int]:
    """`--thread-rows` ("1,all", "1,2,4"): torch thread counts, "all" being the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip().lower()
        n = cores if part == "all" else int(part) if part.isdigit() and int(part) > 0 else None
        if n is None:
            from omnisense._errors import OmnisenseError

            raise OmnisenseError(f"--thread-rows: {part!r} is neither a positive count nor 'all'")
        if n not in out:
            out.append(n)
    return out


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none): a busy machine slows every row."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def base_context(device: str) -> dict[str, Any]:
    import torch

    return {
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def print_report(report: BenchReport) -> None:
    from rich.console import Console

    from omnisense._console import print_table

    columns: list[str] = []
    for row in report.rows:
        columns.extend(k for k in row if k not in columns)
    print_table(report.title, columns, ([_fmt(row.get(c)) for c in columns] for row in report.rows))
    console = Console()
    for key, value in report.context.items():
        console.print(f"{key}: {value}")
    for note in report.notes:
        console.print(f"note: {note}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(path: Path, report: BenchReport) -> None:
    from omnisense._io import write_json_atomic

    write_json_atomic(path, report.to_dict())
