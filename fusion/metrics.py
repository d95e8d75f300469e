"""Multi-label metrics of multi-view action recognition: mAP_C, mAP_S and a true frame-level mAP.

All take scores (sigmoid probabilities or logits: AP only depends on the ranking) and binary targets, and return
percentages. AP is non-interpolated: the mean of the precision at the rank of each positive, as MultiTSF's
`utils/misc_utils.py` and MultiASL compute it. Ties are broken by the stable order of the input.

- `map_class` (mAP_C): for each class, AP over samples; classes with no positive are skipped.
- `map_sample` (mAP_S): for each sample, AP over classes; samples with no positive are skipped.
- `frame_map`: for each class, AP over every valid frame of every sample (the frames pooled together);
  the released MultiTSF code has no such metric (it scores max-over-time frame logits against sequence labels).

Deviation from the released code: it ranks softmax scores across classes; we rank per-class sigmoid scores,
the natural choice for multi-label logits. For mAP_C the two rank samples identically only when the softmax
normaliser is the same for every sample, which it is not, so numbers are not directly comparable.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "frame_map", "map_class", "map_sample"]


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Non-interpolated AP of one ranking: scores [N], targets [N] in {0, 1}. NaN when there is no positive."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets).astype(bool)
    if scores.shape != targets.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must be equal 1-D shapes")
    npos = int(targets.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = targets[order]
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def _mean_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over columns of AP, skipping columns without positives; percent."""
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    aps = [a for a in aps if not np.isnan(a)]
    return float(100.0 * np.mean(aps)) if aps else float("nan")


def map_class(scores: np.ndarray, targets: np.ndarray) -> float:
    """mAP_C: scores, targets [N, K] -> percent."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    return _mean_ap(scores, targets)


def map_sample(scores: np.ndarray, targets: np.ndarray) -> float:
    """mAP_S: scores, targets [N, K] -> percent."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    return _mean_ap(scores.T, targets.T)


def frame_map(scores: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Frame mAP: scores, targets [N, T, K], valid [N, T] (padding frames False) -> percent."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 3 or scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be [N, T, K]")
    keep = np.ones(scores.shape[:2], bool) if valid is None else np.asarray(valid).astype(bool)
    return _mean_ap(scores[keep], targets[keep])
