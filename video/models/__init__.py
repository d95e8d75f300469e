"""Video and audio models and their named variants.

`VARIANTS` maps each named variant (the paper's hyperparameters, plus tiny ones for tests) to its
constructor; `omnisense models` lists them. Every video model here takes `video: Tensor[B, 3, T, H, W]`
(normalised RGB) and has `forward(video) -> logits [B, K]` and the encoder contract
`forward_tokens(video) -> Tensor[B, T', N, D]` with `D = model.token_dim` (see each model file for T', N).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from video.models import ast as _ast
from video.models import audio_cnn as _audio_cnn
from video.models import uniformer, uniformer_light, vivit
from video.models.uniformer import UniFormer
from video.models.vivit import ViViTFactorised

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    # audio (issue #8)
    "ast_base": _ast.ast_base,
    "ast_small": _ast.ast_small,
    "ast_tiny": _ast.ast_tiny,
    "ast_micro": _ast.ast_micro,
    "audio_cnn_small": _audio_cnn.audio_cnn_small,
    "audio_cnn_tiny": _audio_cnn.audio_cnn_tiny,
    # UniFormer (Li et al. 2022), Kinetics-400 heads; K400 recipe sizes
    # light models (exp_light): conv stem, class token, Evo-ViT token pruning
    "uniformer_xxs_k400": uniformer_light.uniformer_xxs_light,
    "uniformer_xs_k400": uniformer_light.uniformer_xs_light,
    "uniformer_small_k400": uniformer.uniformer_small,
    "uniformer_base_k400": uniformer.uniformer_base,
    # CPU-sized, not in the paper
    "uniformer_tiny": uniformer.uniformer_tiny,
    "uniformer_mini": uniformer.uniformer_mini,
    # ViViT factorised encoder (Arnab et al. 2021), K400 heads, 32x224^2
    "vivit_base_fe_k400": vivit.vivit_base_fe,
    "vivit_large_fe_k400": vivit.vivit_large_fe,
    "vivit_base_fe_frozen_k400": vivit.vivit_base_fe_frozen,
    # CPU-sized, not in the paper
    "vivit_tiny": vivit.vivit_tiny,
    "vivit_tiny_frozen": vivit.vivit_tiny_frozen,
}

__all__ = ["VARIANTS", "UniFormer", "ViViTFactorised"]
