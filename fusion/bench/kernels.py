"""`omnisense bench kernels`: not built yet; issue #3 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "flattened-window and DSVT set attention against padded-window attention and spconv (issue #3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench kernels` is not built yet (issue #3)")
