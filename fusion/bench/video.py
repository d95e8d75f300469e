"""`omnisense bench video`: not built yet; issue #7 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "decoding (decord vs PyAV) and model throughput against torchvision mvit_v2_s (issue #7)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench video` is not built yet (issue #7)")
