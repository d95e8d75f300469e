"""`omnisense classify-audio`: not built yet; issue #8 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="audio file (wav flac ogg mp3) or a video with an audio track")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("result.json"))


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense classify-audio` is not built yet (issue #8)")
