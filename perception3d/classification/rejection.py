"""Open-set answers: a classifier says "none of the known classes" when its evidence is weak.

A rejection score is computed from the logits of one input (higher = more like the training vocabulary) and
compared with a threshold calibrated on held-out in-vocabulary data (the weights' `rejection` metadata, written by
`tools/calibrate_rejection.py`; the same rule as `video.rejection`, kept apart because the two packages never
import each other). Score kinds:

- "max_softmax": the largest class probability (Hendrycks & Gimpel, arXiv:1610.02136);
- "energy": the free energy's negative, `T * logsumexp(logits / T)` with T = 1 (Liu et al., arXiv:2010.03759),
  which keeps the logits' magnitude that the softmax normalises away;
- "mahalanobis": minus the smallest Mahalanobis distance of the features the classifier reads (the input of the
  model's last `nn.Linear`) to the class means of the training features, with one shared diagonal covariance,
  divided by the feature size (Lee et al., arXiv:1807.03888, diagonal to keep the statistics small). Softmax
  scores see only where an input falls among the classes; this one sees how far it lies from all of them;
- "input_stats": minus the mean squared z-score of a few statistics of the model's input (`input_statistics`) under
  the training data's mean and variance: a check on the input itself, for models trained on generated data whose
  features do not tell real inputs apart (a real clip's texture, a real scan's density, against rendered ones);
- "knn": minus the Euclidean distance of the L2-normalised classifier features to the nearest entry of a bank of
  L2-normalised training features (Sun et al., "Out-of-distribution detection with deep nearest neighbors",
  ICML 2022, arXiv:2204.06507, k = 1). The bank kept in the metadata is a few k-means prototypes per class of the
  training features rather than every one of them, to keep the record small;
- "detector": the logit of a logistic regression over the standardised input statistics (the "input_stats" mean
  and variance), trained to tell training-like inputs from real out-of-vocabulary ones of a validation split
  (outlier exposure, Hendrycks et al., arXiv:1812.04606); the threshold is still a quantile of held-out
  in-vocabulary scores. With a hidden layer (`detector_hidden_weight` `[H, S]`, `detector_hidden_bias` `[H]`), the
  logit of a small network instead: `relu(z @ W_h.T + b_h) @ w + b`;
- "feature_detector": the same over the classifier's L2-normalised features (weights `[D]` and bias, the
  standardisation folded in), trained on the same inputs and generated outliers (`omnisense.train.outliers`):
  it learns which directions of the feature space out-of-vocabulary inputs take, where "knn" only measures the
  distance to the training features.

When an input is averaged over several views (clips, votes), the score is taken on the mean logits (features).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

NONE_OF_THE_KNOWN = "none of the known classes"
SCORE_KINDS = ("max_softmax", "energy", "mahalanobis", "input_stats", "knn", "detector", "feature_detector")


def rejection_score(logits: Tensor, kind: str, *, features: Tensor | None = None,
                    feature_mean: Tensor | None = None, feature_var: Tensor | None = None,
                    stats: Tensor | None = None, input_mean: Tensor | None = None,
                    input_var: Tensor | None = None, feature_bank: Tensor | None = None,
                    detector_weight: Tensor | None = None, detector_bias: float | None = None,
                    feature_detector_weight: Tensor | None = None, feature_detector_bias: float | None = None,
                    detector_hidden_weight: Tensor | None = None,
                    detector_hidden_bias: Tensor | None = None) -> Tensor:
    """Scores `[...]` of logits `[..., K]` (for "mahalanobis", features `[..., D]` with the class means `[K, D]` and
    the shared variance `[D]`; for "knn", features `[..., D]` and the bank `[M, D]`; for "input_stats", input
    statistics `[..., S]` with their training mean and variance `[S]`; for "detector", those and the regression's
    weights `[S]` and bias (or `[H]`, after a hidden layer `[H, S]`, `[H]`); for "feature_detector", features
    `[..., D]` and its weights `[D]` and bias): higher means more like the training vocabulary."""
    if kind == "max_softmax":
        return logits.float().softmax(-1).amax(-1)
    if kind == "energy":
        return torch.logsumexp(logits.float(), dim=-1)
    if kind == "mahalanobis":
        if features is None or feature_mean is None or feature_var is None:
            raise ValueError("the mahalanobis score needs features, feature_mean and feature_var")
        d2 = ((features.float().unsqueeze(-2) - feature_mean.float()) ** 2 / feature_var.float()).mean(-1)  # [..., K]
        return -d2.amin(-1)
    if kind == "knn":
        if features is None or feature_bank is None:
            raise ValueError("the knn score needs features and feature_bank")
        f = nn.functional.normalize(features.float(), dim=-1)
        bank = nn.functional.normalize(feature_bank.float(), dim=-1)
        d2 = (2 - 2 * f @ bank.T).clamp_min(0)  # [..., M]: |a - b|^2 of unit vectors
        return -d2.amin(-1).sqrt()
    if kind == "feature_detector":
        if features is None or feature_detector_weight is None or feature_detector_bias is None:
            raise ValueError("the feature_detector score needs features, feature_detector_weight and "
                             "feature_detector_bias")
        if features.shape[-1] != feature_detector_weight.shape[-1]:
            raise ValueError(f"{features.shape[-1]} features but the feature detector has "
                             f"{feature_detector_weight.shape[-1]} weights")
        return nn.functional.normalize(features.float(), dim=-1) @ feature_detector_weight.float() + float(
            feature_detector_bias)
    if kind in ("input_stats", "detector"):
        if stats is None or input_mean is None or input_var is None:
            raise ValueError(f"the {kind} score needs stats, input_mean and input_var")
        if stats.shape[-1] != input_mean.shape[-1]:
            raise ValueError(f"{stats.shape[-1]} input statistics but the rule was calibrated on "
                             f"{input_mean.shape[-1]}: recalibrate it (tools/calibrate_rejection.py)")
        z = (stats.float() - input_mean.float()) / input_var.float().sqrt()
        if kind == "input_stats":
            return -(z ** 2).mean(-1)
        if detector_weight is None or detector_bias is None:
            raise ValueError("the detector score needs detector_weight and detector_bias")
        if detector_hidden_weight is not None:
            if detector_hidden_bias is None:
                raise ValueError("a detector's hidden layer needs detector_hidden_bias")
            z = torch.relu(z @ detector_hidden_weight.float().T + detector_hidden_bias.float())  # [..., H]
        return z @ detector_weight.float() + float(detector_bias)
    raise ValueError(f"unknown rejection score {kind!r}; kinds: {', '.join(SCORE_KINDS)}")


def input_statistics(x: Tensor) -> Tensor:
    """A few statistics of a shape model's input clouds, averaged over the clouds: `[S]` (31).

    Clouds `[B, N, 3]` (unit sphere). Global shape (16): the covariance's normalised eigenvalues (3), the histogram of
    distances to the centroid (8 bins over [0, 1]), the mean and spread of the distances to the 4 nearest neighbours
    relative to their mean (2), and the mean, spread and 90th percentile of pairwise distances (3). Local surface
    (15), from each point's 16 nearest neighbours: the mean and spread of their covariance's linearity and planarity
    (scan lines and rings are linear, smooth surfaces planar), the mean, spread and 90th percentile of its
    scattering (sensor noise, vegetation), the spread and 10th/90th percentiles of the nearest-neighbour distance
    and the 16th neighbour's distance, all relative to the mean nearest-neighbour distance (density and spacing),
    and the offset of the neighbours' centroid from the point relative to their mean distance (mean, spread, share
    above 0.5, 90th percentile: points on a border, where a surface is open).
    """
    x = x.float()
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"no input statistics for an input of shape {tuple(x.shape)} (clouds [B, N, 3])")
    rows = []
    for p in x:
        c = p - p.mean(0)
        ev = torch.linalg.eigvalsh(c.T @ c / len(p)).flip(0)
        r = c.norm(dim=1)
        hist = torch.histc(r, bins=8, min=0.0, max=1.0) / len(p)
        d = torch.cdist(p, p)
        near = d.topk(min(17, len(p)), largest=False)  # the point itself and its 16 nearest neighbours
        knn = near.values[:, 1:5].mean(1)
        pair = d[torch.triu_indices(len(p), len(p), 1).unbind()]
        p90 = pair.kthvalue(max(1, int(0.9 * len(pair)))).values  # the 90th percentile; linear in the pair count
        rows.append(torch.cat([ev / ev.sum().clamp_min(1e-12), hist,
                               torch.stack([knn.mean(), knn.std() / knn.mean().clamp_min(1e-12), pair.mean(),
                                            pair.std(), p90]), _local_statistics(p, near.values, near.indices)]))
    return torch.stack(rows).mean(0)


def _local_statistics(p: Tensor, near: Tensor, index: Tensor) -> Tensor:
    """The 15 local-surface statistics of `input_statistics` for one cloud `p: [N, 3]` from the distances `near` and
    indices `index` `[N, k + 1]` of each point's nearest neighbours, itself first."""
    nd, idx = near[:, 1:], index[:, 1:]  # [N, k], without the point itself
    k = nd.shape[1]
    nb = p[idx]  # [N, k, 3]
    c = nb - nb.mean(1, keepdim=True)
    ev = torch.linalg.eigvalsh(c.transpose(1, 2) @ c / k).flip(-1).clamp_min(1e-12)  # [N, 3], largest first
    lin, pla, sca = (ev[:, 0] - ev[:, 1]) / ev[:, 0], (ev[:, 1] - ev[:, 2]) / ev[:, 0], ev[:, 2] / ev[:, 0]
    d1 = nd[:, 0]
    m1 = d1.mean().clamp_min(1e-12)
    off = (nb.mean(1) - p).norm(dim=1) / nd.mean(1).clamp_min(1e-12)
    return torch.stack([lin.mean(), lin.std(), pla.mean(), pla.std(), sca.mean(), sca.std(), sca.quantile(0.9),
                        d1.std() / m1, d1.quantile(0.1) / m1, d1.quantile(0.9) / m1, nd[:, -1].mean() / m1,
                        off.mean(), off.std(), (off > 0.5).float().mean(), off.quantile(0.9)])


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last `nn.Linear` in registration order: its classifier, whose input are the features."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to read features from")
    return linears[-1]


@contextmanager
def captured_features(model: nn.Module, wanted: bool = True) -> Iterator[list[Tensor]]:
    """While active, the input of the model's classifier on every forward is appended to the list yielded
    (`[B, D]` each); with `wanted` False nothing is hooked."""
    rows: list[Tensor] = []
    if not wanted:
        yield rows
        return
    handle = last_linear(model).register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].detach()))
    try:
        yield rows
    finally:
        handle.remove()


@dataclass(frozen=True)
class Rejection:
    """A calibrated rejection rule: accept an input when each of its scores reaches its threshold.

    Attributes:
        score: one of `SCORE_KINDS`, or several joined by "+" ("energy+mahalanobis"): then an input is accepted
            only when every score reaches its own threshold (each calibrated on its share of the rejection budget).
        threshold: the calibrated threshold, one per kind in `score` (a float for a single kind).
        feature_mean: for "mahalanobis", the class means `[K][D]` of the training features.
        feature_var: for "mahalanobis", their shared per-dimension variance `[D]`.
        input_mean, input_var: for "input_stats" and "detector", the training data's mean and variance of
            `input_statistics`.
        feature_bank: for "knn", the bank of training features `[M][D]` (L2-normalised on use).
        detector_weight, detector_bias: for "detector", the logistic regression over the standardised statistics
            (over the hidden layer's outputs when there is one).
        detector_hidden_weight, detector_hidden_bias: for "detector", an optional hidden layer `[H][S]`, `[H]`.
        feature_detector_weight, feature_detector_bias: for "feature_detector", the logistic regression over the
            L2-normalised features `[D]`.
        calibration: how it was calibrated and what it gave (data, accepted and rejected fractions); not read by code.
    """

    score: str
    threshold: float | Sequence[float]
    feature_mean: Sequence[Sequence[float]] | None = None
    feature_var: Sequence[float] | None = None
    input_mean: Sequence[float] | None = None
    input_var: Sequence[float] | None = None
    feature_bank: Sequence[Sequence[float]] | None = None
    detector_weight: Sequence[float] | None = None
    detector_bias: float | None = None
    feature_detector_weight: Sequence[float] | None = None
    feature_detector_bias: float | None = None
    detector_hidden_weight: Sequence[Sequence[float]] | None = None
    detector_hidden_bias: Sequence[float] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in SCORE_KINDS]
        if unknown:
            raise ValueError(f"unknown rejection score {'+'.join(unknown)!r}; kinds: {', '.join(SCORE_KINDS)}")
        if len(self.thresholds) != len(self.kinds):
            raise ValueError(f"{len(self.kinds)} score(s) {self.score!r} but {len(self.thresholds)} threshold(s)")
        if "mahalanobis" in self.kinds and (self.feature_mean is None or self.feature_var is None):
            raise ValueError("a mahalanobis rule needs feature_mean and feature_var")
        if "knn" in self.kinds and not self.feature_bank:
            raise ValueError("a knn rule needs feature_bank")
        if self.needs_inputs and (self.input_mean is None or self.input_var is None):
            raise ValueError("an input_stats or detector rule needs input_mean and input_var")
        hidden, stats = self.detector_hidden_weight, len(self.input_mean or ())
        bad_hidden = hidden is not None and (self.detector_hidden_bias is None or len(self.detector_hidden_bias) !=
                                             len(hidden) or any(len(row) != stats for row in hidden))
        if "detector" in self.kinds and (self.detector_weight is None or self.detector_bias is None or bad_hidden
                                         or len(self.detector_weight) != (len(hidden) if hidden else stats)):
            raise ValueError("a detector rule needs detector_weight (one per input statistic, or per hidden unit with "
                             "detector_hidden_weight [H][S] and detector_hidden_bias [H]) and detector_bias")
        if "feature_detector" in self.kinds and (not self.feature_detector_weight
                                                 or self.feature_detector_bias is None):
            raise ValueError("a feature_detector rule needs feature_detector_weight and feature_detector_bias")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.score.split("+"))

    @property
    def thresholds(self) -> tuple[float, ...]:
        t = self.threshold
        return (float(t),) if isinstance(t, (int, float)) else tuple(float(x) for x in t)

    @property
    def needs_features(self) -> bool:
        return any(k in self.kinds for k in ("mahalanobis", "knn", "feature_detector"))

    @property
    def needs_inputs(self) -> bool:
        return "input_stats" in self.kinds or "detector" in self.kinds

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Rejection | None":
        """The rule of a weights' `rejection` metadata; None when the weights have none (never calibrated)."""
        if not d:
            return None
        optional = {f.name: d.get(f.name) for f in fields(cls) if f.name not in ("score", "threshold", "calibration")}
        return cls(score=str(d["score"]), threshold=d["threshold"], calibration=dict(d.get("calibration", {})),
                   **optional)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scores_of(self, logits: Tensor, features: Tensor | None = None,
                  stats: Tensor | None = None) -> tuple[float, ...]:
        """The scores of one input, one per kind: its logits `[K]`, for "mahalanobis", "knn" and "feature_detector" its
        features `[D]`, for "input_stats" and "detector" its `input_statistics` `[S]`."""
        extra: dict[str, Any] = {"features": features, "stats": stats}
        if "mahalanobis" in self.kinds:
            extra.update(feature_mean=torch.tensor(self.feature_mean), feature_var=torch.tensor(self.feature_var))
        if "knn" in self.kinds:
            extra.update(feature_bank=torch.tensor(self.feature_bank))
        if self.needs_inputs:
            extra.update(input_mean=torch.tensor(self.input_mean), input_var=torch.tensor(self.input_var))
        if "detector" in self.kinds:
            extra.update(detector_weight=torch.tensor(self.detector_weight), detector_bias=self.detector_bias)
            if self.detector_hidden_weight is not None:
                extra.update(detector_hidden_weight=torch.tensor(self.detector_hidden_weight),
                             detector_hidden_bias=torch.tensor(self.detector_hidden_bias))
        if "feature_detector" in self.kinds:
            extra.update(feature_detector_weight=torch.tensor(self.feature_detector_weight),
                         feature_detector_bias=self.feature_detector_bias)
        return tuple(float(rejection_score(logits, kind, **extra)) for kind in self.kinds)

    def accepts(self, values: Sequence[float]) -> bool:
        return all(v >= t for v, t in zip(values, self.thresholds))


def open_set_answer(logits: Tensor, probs: Tensor, classes: list[str], *, topk: int, rejection: "Rejection | None",
                    reject: bool = True, vocabulary: str = "", features: Tensor | None = None,
                    stats: Tensor | None = None) -> dict[str, Any]:
    """The answer for one input: top-k `{"class", "probability"}` records, or none of them when rejected.

    Args:
        logits: `[K]` the input's (mean) logits, for the rejection score.
        probs: `[K]` the class probabilities reported.
        features: `[D]` the input's (mean) classifier features, for a "mahalanobis", "knn" or "feature_detector" rule.
        stats: `[S]` the input's `input_statistics`, for an "input_stats" or "detector" rule.
        rejection: the weights' calibrated rule; None: never rejects (and says that no rule was calibrated).
        reject: False gives the raw top-k whatever the score (`--no-reject`).

    Returns {"label", "known", "top", "vocabulary", "rejection": {"score", "value", "threshold", "applied"}} (value
    and threshold: one per kind of the rule's score):
    `label` is the top class or NONE_OF_THE_KNOWN; `top` is empty when the input is rejected.
    """
    order = probs.argsort(descending=True)[: max(1, min(topk, len(classes)))].tolist()
    top = [{"class": classes[i], "probability": round(float(probs[i]), 6)} for i in order]
    info: dict[str, Any] = {"score": None, "value": None, "threshold": None, "applied": False}
    known = True
    if rejection is not None:
        values = rejection.scores_of(logits, features, stats)
        info = {"score": rejection.score, "value": [round(v, 6) for v in values],
                "threshold": [round(t, 6) for t in rejection.thresholds], "applied": bool(reject)}
        known = rejection.accepts(values) or not reject
    return {"label": top[0]["class"] if known else NONE_OF_THE_KNOWN, "known": known, "top": top if known else [],
            "vocabulary": vocabulary, "rejection": info}
