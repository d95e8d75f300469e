"""`omnisense classify`: not built yet; issue #6 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #6"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("points", type=Path, help="point cloud or mesh: .ply .pcd .xyz .npy .off .obj")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("result.json"))


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense classify` is not built yet (issue #6)")
