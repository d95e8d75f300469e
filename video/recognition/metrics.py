"""Clip-level metrics of mmaction2's `AccMetric`: top-k accuracy and mean class accuracy."""

from __future__ import annotations

import torch
from torch import Tensor


def topk_accuracy(scores: Tensor, labels: Tensor, k: int = 1) -> float:
    """Fraction of samples whose label is among the `k` highest scores. scores `[N, K]`, labels `[N]`."""
    k = min(k, scores.shape[-1])
    hit = (scores.topk(k, dim=-1).indices == labels[:, None]).any(-1)
    return float(hit.float().mean()) if len(labels) else 0.0


def mean_class_accuracy(scores: Tensor, labels: Tensor, num_classes: int | None = None) -> float:
    """Top-1 accuracy per class, averaged over the classes that occur in `labels`."""
    k = num_classes or scores.shape[-1]
    pred = scores.argmax(-1)
    accs = [float((pred[labels == c] == c).float().mean()) for c in range(k) if (labels == c).any()]
    return sum(accs) / len(accs) if accs else 0.0


def confusion_matrix(scores: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """`[K, K]` counts, rows = truth, columns = prediction."""
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_((labels.long(), scores.argmax(-1).long()), torch.ones_like(labels, dtype=torch.long), accumulate=True)
    return conf


def evaluate(scores: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """`{"top1", "top5", "mean_class_accuracy"}` of scores `[N, K]` against labels `[N]`."""
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
            "mean_class_accuracy": mean_class_accuracy(scores, labels, num_classes)}
