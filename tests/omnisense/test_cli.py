"""The `omnisense` console script: every subcommand has a clear --help; bad input gives one line and exit 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from omnisense import _registry
from omnisense.cli import build_parser, main

SUBCOMMANDS = ["fit", "validate", "test", "predict", "register", "detect", "classify", "recognize",
               "classify-audio", "fuse", "bench", "data", "convert", "models", "demo"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    missing = [name for name in SUBCOMMANDS if f"    {name}" not in out]
    assert not missing, f"--help does not list {missing}"


@pytest.mark.parametrize("name", [s for s in SUBCOMMANDS if s not in ("fit", "validate", "test", "predict")])
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: omnisense " + name in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(_registry.BENCHES))
def test_each_bench_has_help_with_json(name, capsys):
    with pytest.raises(SystemExit):
        main(["bench", name, "--help"])
    assert "--json" in capsys.readouterr().out


def test_fit_help_comes_from_lightning(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--ckpt_path" in out and "--checkpoint.every_n_train_steps" in out


def test_version():
    out = subprocess.run([sys.executable, "-m", "omnisense.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("omnisense ")


def test_unknown_converter_is_one_clear_line(tmp_path, capsys):
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"")
    assert main(["convert", "no-such-family", str(ckpt), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no converter named 'no-such-family'" in err[0]


def test_debug_flag_shows_the_traceback(tmp_path):
    args = [sys.executable, "-m", "omnisense.cli", "data", "make", "no-such-generator"]
    plain = subprocess.run(args, capture_output=True, text=True)
    debug = subprocess.run(args + ["--debug"], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "unknown generator" in plain.stderr
    assert "Traceback" in debug.stderr


def test_data_make_is_atomic_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "blobs"
    assert main(["data", "make", "blobs", "--seed", "3", "--size", "tiny", "--out", str(out)]) == 0
    first = (out / "blobs.npz").read_bytes()
    # Same request: reused, untouched.
    assert main(["data", "make", "blobs", "--seed", "3", "--size", "tiny", "--out", str(out)]) == 0
    assert (out / "blobs.npz").read_bytes() == first
    # A different request into the same folder: refused, untouched.
    capsys.readouterr()
    assert main(["data", "make", "blobs", "--seed", "4", "--size", "tiny", "--out", str(out)]) == 2
    assert "holds a different generated dataset" in capsys.readouterr().err
    assert (out / "blobs.npz").read_bytes() == first
    # A non-empty folder that is not a generated dataset: refused.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["data", "make", "blobs", "--out", str(other)]) == 2
    assert (other / "keep.txt").read_text() == "mine"


def test_models_lists_as_json(tmp_path):
    out = tmp_path / "models.json"
    assert main(["models", "--json", str(out)]) == 0
    listing = json.loads(out.read_text())
    assert set(listing) == {"variants", "converters", "shipped_weights"}
    out.write_text("mine")
    assert main(["models", "--json", str(out)]) == 2 and out.read_text() == "mine"  # never replaced unasked
    assert main(["models", "--json", str(out), "--overwrite"]) == 0 and json.loads(out.read_text()) == listing


def test_parser_builds_without_importing_heavy_optional_packages():
    code = ("import sys; from omnisense.cli import build_parser; build_parser(); "
            "print([m for m in ('open3d', 'decord', 'av', 'spconv', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_build_parser_is_reusable():
    assert build_parser().parse_args(["models"]).command == "models"


def _subparser(parser, name: str):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.mark.parametrize("name", sorted(_registry.COMMANDS))
def test_one_command_parser_is_that_command_of_the_whole_parser(name):
    """`main` builds only the named command's parser (no other command module imported): same help, same usage."""
    whole, one = _subparser(build_parser(), name), _subparser(build_parser(name), name)
    assert one.format_help() == whole.format_help() and one.prog == whole.prog == f"omnisense {name}"
