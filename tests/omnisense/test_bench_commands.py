"""`omnisense bench commands`: whole commands against their floor or peer, fresh processes taking turns.

Not timed tests: the report's shape, the pairing and the arithmetic are checked; the full run is `slow`.
"""

from __future__ import annotations

import argparse
import sys

import pytest

from omnisense.bench import commands
from omnisense.bench._processes import Run, child_env, run_once


def test_interleaved_runs_each_command_in_turn_after_a_warm_up():
    env = child_env()
    runs = commands._interleaved({"a": [sys.executable, "-c", "pass"], "b": [sys.executable, "-c", "import json"]},
                                 env, repeat=3)
    assert set(runs) == {"a", "b"} and len(runs["a"]) == len(runs["b"]) == 3
    assert all(r.wall > 0 and r.cpu >= 0 and r.status == 0 for v in runs.values() for r in v)


def test_a_failing_command_is_an_error_with_its_stderr():
    from omnisense._errors import OmnisenseError

    with pytest.raises(OmnisenseError, match="(?s)status 3.*boom"):
        run_once([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"], child_env())


def test_row_ratios_and_targets():
    job, peer = [Run(2.0, 1.0, 0), Run(4.0, 1.2, 0), Run(3.0, 1.1, 0)], [Run(2.0, 1.0, 0)] * 3
    row = commands._row("j", "p", job, peer, 1.3, "x peer", "")
    assert (row["s"], row["cpu_s"], row["peer_s"], row["ratio"], row["cpu_ratio"]) == (3.0, 1.1, 2.0, 1.5, 1.1)
    assert row["met"] is False  # wall over the target: both must hold
    assert commands._row("j", "p", peer, peer, 1.0, "x peer", "")["met"] is True
    assert commands._row("j", "p", job, peer, 1.5, "seconds", "")["met"] is False  # 3 s wall
    assert commands._row("j", "p", peer, peer, 2.5, "seconds", "")["met"] is True


@pytest.mark.slow
def test_bench_commands_one_repeat():
    args = argparse.Namespace(repeat=1, clip=None, pair=None, only=None, threads=1, device="cpu")
    report = commands.run(args)
    jobs = [r["job"] for r in report.rows]
    if not report.notes[2:]:  # nothing skipped: the sample data is there
        assert jobs == ["omnisense classify-audio drum_snare_hard.flac", "omnisense register hippo1.ply hippo2.ply "
                        "(RoITr)", "import of perception3d.registration's register (roitr process)",
                        "first register call (roitr)", "import of perception3d.registration's register (fpfh process)",
                        "first register call (fpfh)"]
    for row in report.rows:
        # the import rows carry no target: they show the cost moved out of the first call
        want = (None,) if row["job"].startswith("import of") else (True, False)
        assert row["runs"] == 1 and row["s"] > 0 and row["peer_s"] > 0 and row["met"] in want
    assert report.context["threads_passed"] == 1 and "load_average_start" in report.context
