"""`omnisense register`: not built yet; issue #4 fills it in."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion._errors import NotBuiltYet

HELP = "see issue #4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="SOURCE cloud: .ply .pcd .xyz .npy .bin (KITTI) .las .laz")
    parser.add_argument("target", type=Path, help="TARGET cloud, same formats")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--method", choices=["roitr", "fpfh"], default="roitr")
    parser.add_argument("--refine", choices=["none", "icp"], default="none")
    parser.add_argument("--voxel-size", type=float, help="voxel size in the clouds' unit")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG of both clouds before and after")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltYet("`omnisense register` is not built yet (issue #4)")
