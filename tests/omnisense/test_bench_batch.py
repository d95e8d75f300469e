"""`omnisense bench batch`: one call on a folder against N calls, with the same records on both sides."""

from __future__ import annotations

import json

import pytest

from omnisense.cli import main


@pytest.mark.slow
def test_bench_batch_runs_both_ways_and_reports_the_ratio(tmp_path, sample_data, capsys):
    sample_data("sonic-pi-samples")
    out = tmp_path / "b.json"
    assert main(["bench", "batch", "--n", "2", "--device", "cpu", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    batch, separate = report["rows"]
    assert report["context"]["inputs"] == 2 and report["context"]["same_records"] is True
    assert report["context"]["threads"] == 1 and "load_average" in report["context"]
    assert batch["speedup"] == pytest.approx(separate["seconds"] / batch["seconds"], rel=0.02)


def test_bench_batch_needs_a_folder_for_other_commands(capsys):
    assert main(["bench", "batch", "--command", "detect", "--device", "cpu"]) == 2
    assert "--folder" in capsys.readouterr().err
