"""Video and audio models, one family per file: UniFormer, ViViT (factorised encoder), AST and a small audio CNN.

Each file ends with its named variants (the paper's hyperparameters, plus tiny ones for tests); `omnisense.models`
is the one table that names them all. Every video model here takes `video: Tensor[B, 3, T, H, W]` (normalised RGB)
and has `forward(video) -> logits [B, K]` and the encoder contract `forward_tokens(video) -> Tensor[B, T', N, D]`
with `D = model.token_dim` (see each model file for T', N).
"""

from video.models.uniformer import UniFormer
from video.models.vivit import ViViTFactorised

__all__ = ["UniFormer", "ViViTFactorised"]
