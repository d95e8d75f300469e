"""`omnisense bench classify`: not built yet; issue #6 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "GPSFormer training and inference samples per second (issue #6)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench classify` is not built yet (issue #6)")
