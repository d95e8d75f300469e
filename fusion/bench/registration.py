"""`omnisense bench registration`: not built yet; issue #4 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "RoITr against FPFH + RANSAC on real scans: recall and time per pair (issue #4)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench registration` is not built yet (issue #4)")
