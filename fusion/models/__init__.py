"""Fusion models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from fusion.multitsf import multitsf_paper, multitsf_small, multitsf_tiny

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "multitsf_paper": multitsf_paper,
    "multitsf_small": multitsf_small,
    "multitsf_tiny": multitsf_tiny,
}

__all__ = ["VARIANTS"]
