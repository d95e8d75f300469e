"""A backbone plus multi-view testing: clips x crops, class probabilities averaged (mmaction2 `average_clips='prob'`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VideoRecognizer(nn.Module):
    """Wraps a video classifier so that it also takes several views per sample.

    Args:
        backbone: any model with `forward(video [B, 3, T, H, W]) -> logits [B, K]` (UniFormer, ViViT).
        average: "prob" (softmax, then mean over views; the result is returned as log-probabilities so
            that argmax, top-k and cross-entropy read it like logits) or "score" (mean of the logits).

    `forward(video)`: `[B, 3, T, H, W]` -> the backbone's logits `[B, K]`; `[B, V, 3, T, H, W]` -> the
    V views (clips x crops) fused into `[B, K]`.
    """

    def __init__(self, backbone: nn.Module, average: str = "prob"):
        super().__init__()
        if average not in ("prob", "score"):
            raise ValueError(f"average must be 'prob' or 'score', not {average!r}")
        self.backbone = backbone
        self.average = average

    def forward(self, video: Tensor) -> Tensor:
        if video.ndim == 5:
            return self.backbone(video)
        b, v = video.shape[:2]
        logits = self.backbone(video.flatten(0, 1)).unflatten(0, (b, v))  # [B, V, K]
        if self.average == "score":
            return logits.mean(1)
        return torch.log(logits.softmax(-1).mean(1).clamp_min(1e-12))

    def forward_tokens(self, video: Tensor) -> Tensor:
        return self.backbone.forward_tokens(video)
