"""`omnisense recognize`: not built yet; issue #7 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #7"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="video file (mp4, avi, mkv, webm, ...)")
    parser.add_argument("--model", default="uniformer", help="uniformer or vivit")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--clips", type=int, default=1, help="clips sampled uniformly, probabilities averaged")
    parser.add_argument("--output", type=Path, default=Path("result.json"))


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense recognize` is not built yet (issue #7)")
