"""`omnisense bench classify` runs end to end on a tiny model and reports every figure it promises."""

from __future__ import annotations

import argparse

import pytest

from omnisense.bench import classify


def test_bench_classify_tiny():
    args = argparse.Namespace(models="gpsformer_tiny", points="64", batch=2, repeat=1, threads=1, num_classes=4,
                              device="cpu")
    report = classify.run(args)
    assert [r["model"] for r in report.rows] == ["pointnet", "gpsformer_tiny"]
    row = report.rows[1]
    assert row["infer_samples_s"] > 0 and row["train_samples_s"] > 0 and row["GFLOPs_per_cloud"] > 0
    assert row["GMACs_per_cloud"] == pytest.approx(row["GFLOPs_per_cloud"] / 2)
    assert row["infer_vs_pointnet"] > 0 and report.context["device"] == "cpu"


def test_bench_classify_rejects_unknown_models():
    args = argparse.Namespace(models="nope", points="64", batch=2, repeat=1, threads=None, num_classes=4, device="cpu")
    with pytest.raises(ValueError, match="unknown classification variants"):
        classify.run(args)
