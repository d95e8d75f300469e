"""`omnisense bench startup` measures `--help` against `python -c pass` and says whether torch was imported.

Not a timed test: one repeat, and only the report's shape and the torch check are asserted.
"""

from __future__ import annotations

import argparse

from omnisense.bench import startup


def test_bench_startup_one_repeat():
    parser = argparse.ArgumentParser()
    startup.add_arguments(parser)
    args = parser.parse_args(["--repeat", "1"])
    args.device = "cpu"
    report = startup.run(args)
    floor, help_ = report.rows
    assert floor["command"].startswith("python -c pass") and help_["command"].endswith("--help")
    assert floor["runs"] == help_["runs"] == 1
    assert floor["ratio_median"] == 1.0
    assert help_["ratio_median"] > 0 and help_["ratio_min"] > 0
    assert help_["median_ms"] > 0
    assert report.context["torch_imported_by_help"] is False
    assert report.context["modules_after_help"] > report.context["modules_after_floor"]
