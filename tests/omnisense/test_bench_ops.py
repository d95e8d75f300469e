"""`omnisense bench ops` runs on a small cloud and every implementation agrees with its peer."""

from __future__ import annotations

import argparse

import pytest

from omnisense.bench import ops


@pytest.mark.slow  # ~20 s on 2 busy cores: open3d import and measure()'s gc.collect per timing
def test_bench_ops_small_cloud():
    parser = argparse.ArgumentParser()
    ops.add_arguments(parser)
    args = parser.parse_args(["--points", "400", "--k", "4", "--repeat", "1"])
    args.device = "cpu"
    report = ops.run(args)
    impls = {(row["op"], row["impl"]) for row in report.rows}
    for op, impl in [("knn", "ours (scipy)"), ("knn", "ours (reference)"), ("ball_query", "ours (scipy)"),
                     ("fps", "ours (reference)")]:
        assert (op, impl) in impls
    assert all(row["agrees"] in (True, None) for row in report.rows), report.rows
    assert all(row["ms"] > 0 for row in report.rows)
    assert report.context["points"] == 400
