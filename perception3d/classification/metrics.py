"""Classification and part-segmentation metrics, and voting test-time augmentation.

- Overall accuracy (OA): correct / all samples.
- Mean class accuracy (mAcc): the mean over the classes present in the targets of each class's accuracy.
- Voting: the mean softmax over several randomly scaled (and, with more points than the model takes,
  randomly subsampled) copies of each cloud, the test-time augmentation of PointNet++ / PointMLP.
- Part mIoU (ShapeNetPart): per shape, the mean over the parts of its category of IoU, where a part absent
  from both prediction and truth counts as IoU 1; instance mIoU averages over shapes, class mIoU over
  categories (of the per-category mean).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["confusion_matrix", "mean_class_accuracy", "overall_accuracy", "part_miou", "vote_predict"]


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def confusion_matrix(pred, target, num_classes: int) -> np.ndarray:
    """[K, K] counts, rows the true class, columns the predicted one."""
    pred, target = _as_numpy(pred).reshape(-1), _as_numpy(target).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ")
    return np.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def overall_accuracy(pred, target) -> float:
    """Fraction of samples predicted right; pred and target [S] class ids."""
    pred, target = _as_numpy(pred).reshape(-1), _as_numpy(target).reshape(-1)
    if len(target) == 0:
        raise ValueError("no samples")
    return float((pred == target).mean())


def mean_class_accuracy(pred, target, num_classes: int | None = None) -> float:
    """Mean over the classes present in `target` of the fraction of their samples predicted right."""
    pred, target = _as_numpy(pred).reshape(-1), _as_numpy(target).reshape(-1)
    if len(target) == 0:
        raise ValueError("no samples")
    k = num_classes or int(max(pred.max(), target.max())) + 1
    conf = confusion_matrix(pred, target, k)
    total = conf.sum(1)
    present = total > 0
    return float((np.diag(conf)[present] / total[present]).mean())


@torch.no_grad()
def vote_predict(model: Callable[[Tensor], Tensor], points: Tensor, *, num_votes: int = 10,
                 num_points: int | None = None, scale: tuple[float, float] = (0.8, 1.25),
                 generator: torch.Generator | None = None) -> Tensor:
    """Voting TTA: the mean softmax of `model` over `num_votes` augmented copies of each cloud.

    Vote 0 is the cloud itself (subsampled to its first `num_points` when asked); the others are scaled
    per axis by factors drawn from `scale` and, when `num_points` is less than N, randomly subsampled.

    Args:
        model: maps [B, n, 3] to logits [B, K].
        points: [B, N, 3].
        num_votes: copies per cloud (1 = no augmentation).
        num_points: points the model takes (default N).
        scale: range of the per-axis scale factors.
        generator: for reproducible votes.
    Returns:
        [B, K] mean class probabilities.
    """
    b, n, _ = points.shape
    m = num_points or n
    if m > n:
        raise ValueError(f"num_points {m} exceeds the {n} points given")
    total = None
    for vote in range(num_votes):
        if vote == 0:
            x = points[:, :m]
        else:
            factors = torch.empty(b, 1, 3).uniform_(*scale, generator=generator).to(points)
            x = points * factors
            if m < n:
                idx = torch.stack([torch.randperm(n, generator=generator)[:m] for _ in range(b)]).to(points.device)
                x = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        prob = model(x).softmax(-1)
        total = prob if total is None else total + prob
    return total / num_votes


def part_miou(pred, target, categories, parts_of: Mapping[int, Sequence[int]]) -> dict[str, float]:
    """ShapeNetPart mIoU.

    Args:
        pred: [S, N] predicted global part labels (the argmax restricted to the sample's category parts).
        target: [S, N] true part labels.
        categories: [S] category ids.
        parts_of: category id -> its global part labels.
    Returns:
        {"instance_miou", "class_miou"}.
    """
    pred, target, categories = _as_numpy(pred), _as_numpy(target), _as_numpy(categories).reshape(-1)
    if pred.shape != target.shape or len(pred) != len(categories):
        raise ValueError(f"pred {pred.shape}, target {target.shape}, categories {categories.shape} disagree")
    shape_ious: dict[int, list[float]] = {}
    for p, t, c in zip(pred, target, categories):
        ious = []
        for part in parts_of[int(c)]:
            inter = np.sum((p == part) & (t == part))
            union = np.sum((p == part) | (t == part))
            ious.append(1.0 if union == 0 else inter / union)
        shape_ious.setdefault(int(c), []).append(float(np.mean(ious)))
    every = [v for values in shape_ious.values() for v in values]
    return {"instance_miou": float(np.mean(every)),
            "class_miou": float(np.mean([np.mean(v) for v in shape_ious.values()]))}
