"""A 10-million-point cloud through register, detect and classify: each runs within a stated memory bound (peak
RSS measured with /usr/bin/time), and above the per-file limit (`perception3d.io.MAX_POINTS`, lowered here through
OMNISENSE_MAX_POINTS) the file is refused from its header in one line, before the points are read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HUGE = 10_000_000
RSS_BOUND_GB = 8.0  # the bound the README states for a 10-million-point file
TIME = Path("/usr/bin/time")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not TIME.exists(), reason="needs /usr/bin/time (GNU time)")]


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.npy"
    rng = np.random.default_rng(0)
    xyz = rng.random((HUGE, 4), dtype=np.float32)
    xyz[:, :3] = xyz[:, :3] * 80 - 40  # a 80 m box around the sensor, metres
    xyz[:, 2] = xyz[:, 2] * 0.05 - 1.0  # mostly ground height
    np.save(path, xyz)
    return path


def _run(argv: list[str], cwd: Path, **env) -> tuple[int, str, float]:
    """(exit status, stderr without time's report, peak RSS in GB) of `omnisense ARGV`."""
    proc = subprocess.run([str(TIME), "-f", "PEAK_RSS_KB %M", sys.executable, "-m", "omnisense.cli", *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=3000,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **env})
    peak = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stderr).group(1)) / 2**20
    err = "\n".join(line for line in proc.stderr.splitlines()
                    if not line.startswith(("PEAK_RSS_KB", "Command exited with non-zero status")))  # GNU time's own
    print(f"omnisense {' '.join(argv[:1])}: exit {proc.returncode}, peak RSS {peak:.2f} GB")
    return proc.returncode, err, peak


COMMANDS = {
    "register": lambda p, out: ["register", str(p), str(p), "--output", str(out)],
    "detect": lambda p, out: ["detect", str(p), "--output", str(out)],
    "classify": lambda p, out: ["classify", str(p), "--output", str(out)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ten_million_points_run_within_the_bound(command, huge, tmp_path):
    out = tmp_path / "result.json"
    code, err, peak = _run(COMMANDS[command](huge, out), tmp_path)
    assert code == 0, err[-2000:]
    assert out.exists()
    assert peak < RSS_BOUND_GB, f"peak RSS {peak:.2f} GB"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_above_the_limit_refused_from_the_header(command, huge, tmp_path):
    out = tmp_path / "result.json"
    code, err, peak = _run(COMMANDS[command](huge, out), tmp_path, OMNISENSE_MAX_POINTS="1000000")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "above the limit" in lines[0] and huge.name in lines[0], err
    assert not out.exists()
    assert peak < 1.5, f"peak RSS {peak:.2f} GB: the points were read before the refusal"
