"""Point-cloud models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from perception3d.models import gpsformer as _gpsformer

VARIANTS: dict[str, Callable[..., nn.Module]] = {}
VARIANTS.update(_gpsformer.VARIANTS)

__all__ = ["VARIANTS"]
