"""`omnisense fuse`: not built yet; issue #9 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #9"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="folder of per-view videos (with audio), or a manifest JSON")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG timeline of the labels")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense fuse` is not built yet (issue #9)")
