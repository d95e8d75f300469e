"""`omnisense bench ops`: not built yet; issue #3 fills it in."""

from __future__ import annotations

import argparse

from fusion._errors import NotBuiltYet

HELP = "kNN, ball query and FPS against scipy cKDTree and open3d (issue #3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace):
    raise NotBuiltYet("`omnisense bench ops` is not built yet (issue #3)")
