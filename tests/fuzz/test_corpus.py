"""Every command on every bad input of the fuzz corpus (tests/fuzz/corpus.py), in-process through
`omnisense.cli.main`: exit 2, one line naming the file, no traceback, no output written, inputs untouched."""

from __future__ import annotations

import logging
import sys

import pytest

from tests.fuzz.corpus import Samples, all_cases
from tests.fuzz.runner import run_case

CASES = all_cases()


def _param(case):
    marks = [pytest.mark.xfail(strict=False, reason=case.xfail)] if case.xfail else []
    if case.slow:
        marks.append(pytest.mark.slow)
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="session")
def samples(sample_data, tmp_path_factory):
    return Samples(sample_data, tmp_path_factory.mktemp("fuzz-samples"))


def test_corpus_is_big_enough():
    commands = {c.command for c in CASES}
    assert len(CASES) >= 250
    assert commands >= {"register", "detect", "classify", "recognize", "classify-audio", "fuse", "convert", "fit",
                        "data"}


def _rebind_log_streams() -> None:
    """Lightning's log handlers keep the stderr object they were made with; under pytest that is an earlier test's
    capture, closed since (a "Logging error" traceback). Point them at the stderr of this test."""
    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                        if isinstance(v, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:  # not pytest's own capture handlers (subclasses)
                handler.stream = sys.stderr  # setStream would flush the old, closed one


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case, samples, tmp_path, capfd):
    _rebind_log_streams()
    capfd.readouterr()
    outcome = run_case(case, samples, tmp_path / "case", capture=lambda: capfd.readouterr().err)
    assert outcome.ok, f"{case.id}: exit {outcome.code}; {'; '.join(outcome.problems)}\n{outcome.stderr[-3000:]}"
