"""Audio classification metrics: top-k accuracy (single label) and mAP (multi-label, AudioSet style)."""

from __future__ import annotations

import torch
from torch import Tensor

from video.audio._errors import AudioValueError


def accuracy(logits: Tensor, labels: Tensor, topk: int = 1) -> float:
    """Fraction of rows whose label is among the `topk` highest scores.

    Args:
        logits: `Tensor[N, K]` scores (any monotone transform of probabilities).
        labels: `Tensor[N]` class indices in [0, K).
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise AudioValueError(f"expected logits [N, K] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise AudioValueError("accuracy of an empty set is undefined")
    k = min(topk, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # [N, k]
    return float((top == labels[:, None]).any(dim=1).float().mean())


def mean_class_accuracy(logits: Tensor, labels: Tensor, num_classes: int | None = None) -> float:
    """Top-1 accuracy averaged over the classes present in `labels` (robust to class imbalance)."""
    pred = logits.argmax(dim=1)
    classes = labels.unique() if num_classes is None else torch.arange(num_classes)
    per_class = [float((pred[labels == c] == c).float().mean()) for c in classes if (labels == c).any()]
    return sum(per_class) / len(per_class)


def average_precision(scores: Tensor, targets: Tensor) -> float:
    """Average precision of one class: the mean, over positives, of the precision at each positive's rank.

    Ties are broken by a stable sort on descending score (as sklearn's step-wise AP with distinct scores).

    Args:
        scores: `Tensor[N]` scores, higher means more likely positive.
        targets: `Tensor[N]` in {0, 1}; at least one positive.
    """
    targets = targets.float()
    positives = float(targets.sum())
    if positives <= 0:
        raise AudioValueError("average precision needs at least one positive")
    order = torch.argsort(scores.double(), descending=True, stable=True)
    hits = targets[order]
    precision_at = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=hits.dtype)
    return float((precision_at * hits).sum() / positives)


def mean_average_precision(scores: Tensor, targets: Tensor) -> tuple[float, list[float | None]]:
    """Multi-label mAP over classes (AudioSet's metric), skipping classes with no positive.

    Args:
        scores: `Tensor[N, K]` (sigmoid or logits; only the ranking matters).
        targets: `Tensor[N, K]` in {0, 1}.

    Returns:
        `(mAP, per_class)` where `per_class[k]` is None for a class with no positive.
    """
    if scores.shape != targets.shape or scores.ndim != 2:
        raise AudioValueError(f"expected scores and targets [N, K] of one shape, got {tuple(scores.shape)}, {tuple(targets.shape)}")
    per_class: list[float | None] = []
    for k in range(scores.shape[1]):
        per_class.append(average_precision(scores[:, k], targets[:, k]) if targets[:, k].any() else None)
    valid = [ap for ap in per_class if ap is not None]
    if not valid:
        raise AudioValueError("no class has a positive: mAP is undefined")
    return sum(valid) / len(valid), per_class
