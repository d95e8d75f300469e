"""`omnisense bench detect`: not built yet; issue #5 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "detector frames per second with a per-stage breakdown (issue #5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench detect` is not built yet (issue #5)")
