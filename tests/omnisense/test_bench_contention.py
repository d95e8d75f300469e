"""`omnisense bench contention`: two commands alone and side by side, the default thread policy.

Not a timed test: two cheap commands (`--version`, `models --help`) and the report's shape and arithmetic.
"""

from __future__ import annotations

import argparse


def test_bench_contention_pairs_each_command_with_itself_alone(monkeypatch):
    from omnisense.bench import contention

    monkeypatch.setenv("OMNISENSE_THREADS", "1")  # the children must not see it: the default policy is measured
    args = argparse.Namespace(commands=["--version", "models --help"], repeat=2, threads=1, device="cpu")
    report = contention.run(args)
    assert [r["command"] for r in report.rows] == ["omnisense --version", "omnisense models --help"]
    for row in report.rows:
        assert row["runs"] == 2 and row["alone_s"] > 0 and row["side_by_side_s"] > 0
        assert abs(row["ratio"] - row["side_by_side_s"] / row["alone_s"]) < 0.02  # from the unrounded times
        assert row["met"] == (row["ratio"] <= 1.5)
    assert len(report.details) == 2 and report.context["sessions"] == "one per child (setsid)"
    for round_ in report.details:
        assert len(round_["alone"]) == len(round_["side_by_side"]) == 2
        assert round_["default_threads_at_start"] >= 1


def test_child_environment_drops_the_thread_settings(monkeypatch):
    from omnisense.bench._processes import child_env

    monkeypatch.setenv("OMNISENSE_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = child_env(drop=("OMNISENSE_THREADS", "OMP_NUM_THREADS"))
    assert "OMNISENSE_THREADS" not in env and "OMP_NUM_THREADS" not in env
    import omnisense
    from pathlib import Path

    assert env["PYTHONPATH"].split(":")[0] == str(Path(omnisense.__file__).resolve().parents[1])
