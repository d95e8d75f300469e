"""Point-cloud models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from perception3d.models.gpsformer import (
    gpsformer,
    gpsformer_elite,
    gpsformer_partseg,
    gpsformer_partseg_small,
    gpsformer_partseg_tiny,
    gpsformer_tiny,
)
from perception3d.models.roitr import roitr_3dmatch, roitr_small, roitr_tiny

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "roitr_3dmatch": roitr_3dmatch,
    "roitr_small": roitr_small,
    "roitr_tiny": roitr_tiny,
    "gpsformer": gpsformer,
    "gpsformer_elite": gpsformer_elite,
    "gpsformer_tiny": gpsformer_tiny,
    "gpsformer_partseg": gpsformer_partseg,
    "gpsformer_partseg_small": gpsformer_partseg_small,
    "gpsformer_partseg_tiny": gpsformer_partseg_tiny,
}


def _lazy(module: str, name: str) -> Callable[..., nn.Module]:
    def build(**kwargs) -> nn.Module:
        import importlib

        return getattr(importlib.import_module(f"perception3d.models.{module}"), name)(**kwargs)

    build.__name__ = name
    return build


# lidar 3D detection (issue #5)
for _module, _names in (("flatformer", ("flatformer_waymo", "flatformer_small", "flatformer_tiny")),
                        ("dsvt", ("dsvt_pillar_waymo", "dsvt_voxel_waymo", "dsvt_pillar_small", "dsvt_pillar_tiny",
                                  "dsvt_voxel_tiny"))):
    for _name in _names:
        VARIANTS[_name] = _lazy(_module, _name)

__all__ = ["VARIANTS"]
