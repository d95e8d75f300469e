"""Where and on how many threads a command runs: `--device auto|cpu|cuda`, `--threads N`, OMNISENSE_THREADS.

`--threads` wins, then OMNISENSE_THREADS, then OMP_NUM_THREADS. The default thread count is the number of idle cores this process may use: the cores in its affinity mask
(`os.sched_getaffinity`, which honours taskset and container CPU sets) less the busy ones (the one-minute load
average, or the tasks runnable at this instant where those are more), at least one. On a busy machine that keeps a command from oversubscribing the cores other jobs hold (PyTorch's own default is
every core, whatever runs beside it). `OMP_WAIT_POLICY=PASSIVE` makes idle OpenMP workers sleep rather than spin,
which costs little in inference and frees the cores for others; it only takes effect when set before torch (and
its OpenMP runtime) is imported, so `prepare_environment` runs before any torch import.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

THREADS_ENV = "OMNISENSE_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), or os.cpu_count() where there is no mask."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The one-minute load average, or None where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def running_now() -> int | None:
    """Tasks runnable at this instant on the machine, this process included (the 4th field of /proc/loadavg), or
    None where there is no /proc/loadavg."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def busy_cores() -> float | None:
    """Cores other work holds: the one-minute load average, or the tasks runnable now besides this one where that is
    more (a job started a few seconds ago has not reached the average yet: two commands started together); None
    where the platform tells neither."""
    load, running = load_average(), running_now()
    if running is None:
        return load
    return max(load or 0.0, float(running - 1))


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Idle cores: `cores - load`, rounded down, between 1 and `cores`; `load` defaults to `busy_cores()` (a missing
    one counts as 0)."""
    cores = usable_cores() if cores is None else cores
    load = busy_cores() if load is None else load
    return max(1, min(cores, int(cores - (load or 0.0))))


def resolve_threads(requested: int | None = None) -> int:
    """`--threads`, else OMNISENSE_THREADS, else OMP_NUM_THREADS (the user's choice for every OpenMP program, which
    torch honours too), else `default_threads()`; a value below 1 is an error."""
    from omnisense._errors import OmnisenseError

    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        env = os.environ.get(name, "").strip()
        if requested is None and env:
            try:
                requested = int(env)
            except ValueError:
                raise OmnisenseError(f"{name}={env!r} is not a whole number of threads") from None
    if requested is None:
        return default_threads()
    if requested < 1:
        raise OmnisenseError(f"the thread count must be at least 1, not {requested}")
    return requested


def prepare_environment() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it; call before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def resolve_device(name: str = "auto") -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without one is an error."""
    import torch

    from omnisense._errors import OmnisenseError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OmnisenseError(f"--device {name} asked for, but no CUDA GPU is visible")
    return name


@dataclass(frozen=True)
class Runtime:
    """What a command runs on; `to_dict` goes into benchmark JSON."""

    device: str
    threads: int
    load_average: float | None
    cores: int

    def to_dict(self) -> dict:
        return {"device": self.device, "threads": self.threads, "load_average": self.load_average,
                "cores": self.cores}


def configure(device: str = "auto", threads: int | None = None) -> Runtime:
    """Apply the policy: environment first, then torch's intra-op thread count; returns what was chosen."""
    prepare_environment()
    n = resolve_threads(threads)
    load = load_average()
    import torch

    torch.set_num_threads(n)
    if "open3d" in sys.modules:  # imported before the policy was applied: give it the same count
        from perception3d._open3d import match_torch_threads

        match_torch_threads(sys.modules["open3d"])
    return Runtime(device=resolve_device(device), threads=n, load_average=load, cores=usable_cores())


def add_runtime_arguments(parser, *, threads: bool = True) -> None:
    """`--device` and `--threads` (unless the parser has its own), the same on every inference command and bench."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (auto: cuda when present)")
    if threads:
        parser.add_argument("--threads", type=int, default=None, metavar="N",
                            help=f"CPU threads (default: ${THREADS_ENV}, else $OMP_NUM_THREADS, else the idle cores: "
                                 "usable cores less the load average, at least 1)")
