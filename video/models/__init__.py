"""Video and audio models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from video.models import ast as _ast
from video.models import audio_cnn as _audio_cnn

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    # audio (issue #8)
    "ast_base": _ast.ast_base,
    "ast_small": _ast.ast_small,
    "ast_tiny": _ast.ast_tiny,
    "ast_micro": _ast.ast_micro,
    "audio_cnn_small": _audio_cnn.audio_cnn_small,
    "audio_cnn_tiny": _audio_cnn.audio_cnn_tiny,
}

__all__ = ["VARIANTS"]
