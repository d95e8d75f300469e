"""Point-cloud models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from perception3d.models.roitr import roitr_3dmatch, roitr_small, roitr_tiny

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "roitr_3dmatch": roitr_3dmatch,
    "roitr_small": roitr_small,
    "roitr_tiny": roitr_tiny,
}

__all__ = ["VARIANTS"]
