"""Video and audio models, one family per file: UniFormer, ViViT (factorised encoder), AST and a small audio CNN.

Each file ends with its named variants (the paper's hyperparameters, plus tiny ones for tests); `omnisense.models`
is the one table that names them all. Every video model here takes `video: Tensor[B, 3, T, H, W]` (normalised RGB)
and has `forward(video) -> logits [B, K]` and the encoder contract `forward_tokens(video) -> Tensor[B, T', N, D]`
with `D = model.token_dim` (see each model file for T', N).

The classes below are imported on first use: UniFormer needs timm, which an audio model loaded from
`video.models.audio_cnn` should not pay for (about 0.5 s of every `omnisense classify-audio`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["UniFormer", "ViViTFactorised"]

_MODULES = {"UniFormer": "video.models.uniformer", "ViViTFactorised": "video.models.vivit"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'video.models' has no attribute {name!r}")
