"""`omnisense detect`: not built yet; issue #5 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="lidar scan: .bin (KITTI, N x 4 float32) .npy .pcd .ply .las .laz")
    parser.add_argument("--model", choices=["flatformer", "dsvt-pillar", "dsvt-voxel"], default="flatformer")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--output", type=Path, default=Path("boxes.json"))
    parser.add_argument("--plot", type=Path, help="bird's-eye-view PNG of the points and boxes")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense detect` is not built yet (issue #5)")
