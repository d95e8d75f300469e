"""Open-set answers: a classifier says "none of the known classes" when its evidence is weak.

A rejection score is computed from the logits of one input (higher = more like the training vocabulary) and
compared with a threshold calibrated on held-out in-vocabulary data (the weights' `rejection` metadata, written by
`tools/calibrate_rejection.py`). Score kinds:

- "max_softmax": the largest class probability (Hendrycks & Gimpel, arXiv:1610.02136);
- "energy": the free energy's negative, `T * logsumexp(logits / T)` with T = 1 (Liu et al., arXiv:2010.03759),
  which keeps the logits' magnitude that the softmax normalises away;
- "mahalanobis": minus the smallest Mahalanobis distance of the features the classifier reads (the input of the
  model's last `nn.Linear`) to the class means of the training features, with one shared diagonal covariance,
  divided by the feature size (Lee et al., arXiv:1807.03888, diagonal to keep the statistics small). Softmax
  scores see only where an input falls among the classes; this one sees how far it lies from all of them;
- "input_stats": minus the mean squared z-score of a few statistics of the model's input (`input_statistics`) under
  the training data's mean and variance: a check on the input itself, for models trained on generated data whose
  features do not tell real inputs apart (a real clip's texture, a real scan's density, against rendered ones).

When an input is averaged over several views (clips, votes), the score is taken on the mean logits (features).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

NONE_OF_THE_KNOWN = "none of the known classes"
SCORE_KINDS = ("max_softmax", "energy", "mahalanobis", "input_stats")


def rejection_score(logits: Tensor, kind: str, *, features: Tensor | None = None,
                    feature_mean: Tensor | None = None, feature_var: Tensor | None = None,
                    stats: Tensor | None = None, input_mean: Tensor | None = None,
                    input_var: Tensor | None = None) -> Tensor:
    """Scores `[...]` of logits `[..., K]` (for "mahalanobis", features `[..., D]` with the class means `[K, D]` and
    the shared variance `[D]`; for "input_stats", input statistics `[..., S]` with their training mean and variance
    `[S]`): higher means more like the training vocabulary."""
    if kind == "max_softmax":
        return logits.float().softmax(-1).amax(-1)
    if kind == "energy":
        return torch.logsumexp(logits.float(), dim=-1)
    if kind == "mahalanobis":
        if features is None or feature_mean is None or feature_var is None:
            raise ValueError("the mahalanobis score needs features, feature_mean and feature_var")
        d2 = ((features.float().unsqueeze(-2) - feature_mean.float()) ** 2 / feature_var.float()).mean(-1)  # [..., K]
        return -d2.amin(-1)
    if kind == "input_stats":
        if stats is None or input_mean is None or input_var is None:
            raise ValueError("the input_stats score needs stats, input_mean and input_var")
        return -((stats.float() - input_mean.float()) ** 2 / input_var.float()).mean(-1)
    raise ValueError(f"unknown rejection score {kind!r}; kinds: {', '.join(SCORE_KINDS)}")


def input_statistics(x: Tensor) -> Tensor:
    """A few statistics of a model input, averaged over its views: `[S]`.

    Video `[V, 3, T, H, W]` (normalised clips): channel means, overall spread, horizontal and vertical gradient,
    the share of flat pixels at two levels, frame-to-frame change and the share of still pixels, spatial spread
    per frame, colourfulness (12). Audio fbank clips `[N, T, F]` (normalised): mean, spread, the spread over
    frequency and over time, spectral flux, the share of quiet frames, and the mean of 8 frequency bands (14).
    """
    x = x.float()
    if x.ndim == 5:
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
        dt = (x[:, :, 1:] - x[:, :, :-1]).abs()
        grad = dx[..., :-1, :] + dy[..., :, :-1]
        channel = x.mean((0, 2, 3, 4))
        return torch.stack([*channel, x.std((0, 2, 3, 4)).mean(), dx.mean(), dy.mean(), (grad < 0.1).float().mean(),
                            (grad < 0.5).float().mean(), dt.mean(), (dt < 0.1).float().mean(),
                            x.mean(1).std((-1, -2)).mean(), (x.amax(1) - x.amin(1)).mean()])
    if x.ndim == 3:
        frame_energy = x.mean(-1)  # [N, T]
        bands = x.unflatten(-1, (8, -1)).mean((0, 1, 3))  # [8]
        return torch.cat([torch.stack([x.mean(), x.std(), x.std(-1).mean(), x.std(-2).mean(),
                                       (x[:, 1:] - x[:, :-1]).abs().mean(),
                                       (frame_energy < frame_energy.median() - 1.0).float().mean()]), bands])
    raise ValueError(f"no input statistics for an input of shape {tuple(x.shape)} (video [V, 3, T, H, W] or "
                     "audio [N, T, F])")


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
        input_mean, input_var: for "input_stats", the training data's mean and variance of `input_statistics`.
        calibration: how it was calibrated and what it gave (data, accepted and rejected fractions); not read by code.
    """

    score: str
    threshold: float | Sequence[float]
    feature_mean: Sequence[Sequence[float]] | None = None
    feature_var: Sequence[float] | None = None
    input_mean: Sequence[float] | None = None
    input_var: Sequence[float] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in SCORE_KINDS]
        if unknown:
            raise ValueError(f"unknown rejection score {'+'.join(unknown)!r}; kinds: {', '.join(SCORE_KINDS)}")
        if len(self.thresholds) != len(self.kinds):
            raise ValueError(f"{len(self.kinds)} score(s) {self.score!r} but {len(self.thresholds)} threshold(s)")
        if self.needs_features and (self.feature_mean is None or self.feature_var is None):
            raise ValueError("a mahalanobis rule needs feature_mean and feature_var")
        if self.needs_inputs and (self.input_mean is None or self.input_var is None):
            raise ValueError("an input_stats rule needs input_mean and input_var")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.score.split("+"))

    @property
    def thresholds(self) -> tuple[float, ...]:
        t = self.threshold
        return (float(t),) if isinstance(t, (int, float)) else tuple(float(x) for x in t)

    @property
    def needs_features(self) -> bool:
        return "mahalanobis" in self.kinds

    @property
    def needs_inputs(self) -> bool:
        return "input_stats" in self.kinds

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Rejection | None":
        """The rule of a weights' `rejection` metadata; None when the weights have none (never calibrated)."""
        if not d:
            return None
        return cls(score=str(d["score"]), threshold=d["threshold"], feature_mean=d.get("feature_mean"),
                   feature_var=d.get("feature_var"), input_mean=d.get("input_mean"), input_var=d.get("input_var"),
                   calibration=dict(d.get("calibration", {})))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scores_of(self, logits: Tensor, features: Tensor | None = None,
                  stats: Tensor | None = None) -> tuple[float, ...]:
        """The scores of one input, one per kind: its logits `[K]`, for "mahalanobis" its features `[D]`, for
        "input_stats" its `input_statistics` `[S]`."""
        extra: dict[str, Any] = {}
        if self.needs_features:
            extra.update(features=features, feature_mean=torch.tensor(self.feature_mean),
                         feature_var=torch.tensor(self.feature_var))
        if self.needs_inputs:
            extra.update(stats=stats, input_mean=torch.tensor(self.input_mean), input_var=torch.tensor(self.input_var))
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
        features: `[D]` the input's (mean) classifier features, for a "mahalanobis" rule.
        stats: `[S]` the input's `input_statistics`, for an "input_stats" rule.
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
