"""Classifying one point cloud or mesh: input clean-up, normalisation, voting.

How awkward input is handled (documented behaviour, tested):
- NaN or infinite coordinates, an empty cloud, a mesh with no faces: `perception3d.io` raises
  `PointCloudFileError` naming the file; arrays given directly raise `PointCloudValueError`.
- Exactly duplicated points are removed first (they carry no shape and would bias the sampling);
  the count is reported.
- Fewer distinct points than `min_points` (32), or all points within 1e-9 of one another: `PointCloudValueError`.
- Between `min_points` and the model's `num_points`: points are repeated (drawn with replacement) up to
  `num_points`, and the result says so (`upsampled: true`); FPS and ball query tolerate repeats.
- More points than `num_points`: a seeded random subset per vote, as in training.
- Meshes (.off, .obj) are sampled uniformly on their surface (area-weighted) to `mesh_samples` points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from perception3d._errors import PointCloudValueError
from perception3d.classification.rejection import Rejection, captured_features, input_statistics, open_set_answer
from perception3d.classification.shapes import normalize_unit_sphere

__all__ = ["CloudSpec", "PreparedCloud", "classify", "classify_cloud", "cloud_logits", "prepare_cloud"]

MIN_POINTS = 32


@dataclass(frozen=True)
class CloudSpec:
    """A shape model's input: `num_points` points per cloud, centred and scaled to the unit sphere, z up.

    category_parts: for part segmentation, the part indices of each object category (in the classes' order).
    """

    num_points: int
    category_parts: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CloudSpec":
        unknown = sorted(set(d) - {"num_points", "category_parts"})
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        parts = d.get("category_parts")
        return cls(num_points=int(d["num_points"]),
                   category_parts=None if parts is None else tuple(tuple(int(i) for i in p) for p in parts))


@dataclass
class PreparedCloud:
    """A cloud ready for the model: unit-sphere normalised, de-duplicated.

    Attributes:
        xyz: [M, 3] float32, M >= num_points after upsampling.
        points_in: points given.
        duplicates_removed: exact duplicates dropped.
        upsampled: whether points were repeated to reach num_points.
    """

    xyz: np.ndarray
    points_in: int
    duplicates_removed: int
    upsampled: bool


def prepare_cloud(xyz: np.ndarray, num_points: int, *, seed: int = 0, min_points: int = MIN_POINTS) -> PreparedCloud:
    """Validate, de-duplicate, normalise to the unit sphere and, if needed, upsample `xyz` [N, 3]."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise PointCloudValueError(f"expected points [N, 3], got shape {xyz.shape}")
    if len(xyz) == 0:
        raise PointCloudValueError("no points (empty cloud)")
    bad = int((~np.isfinite(xyz).all(axis=1)).sum())
    if bad:
        raise PointCloudValueError(f"{bad} of {len(xyz)} points have NaN or infinite coordinates")
    unique = np.unique(xyz, axis=0)
    removed = len(xyz) - len(unique)
    if len(unique) < min_points:
        raise PointCloudValueError(f"only {len(unique)} distinct points ({removed} duplicates removed); "
                                   f"classification needs at least {min_points}")
    if np.linalg.norm(unique - unique.mean(axis=0), axis=1).max() < 1e-9:
        raise PointCloudValueError("all points coincide: no shape to classify")
    rng = np.random.default_rng(seed)
    unique = unique[rng.permutation(len(unique))]  # np.unique sorted them; restore an unbiased order
    upsampled = len(unique) < num_points
    if upsampled:
        extra = unique[rng.choice(len(unique), num_points - len(unique), replace=True)]
        unique = np.concatenate([unique, extra])
    return PreparedCloud(normalize_unit_sphere(unique).astype(np.float32), len(xyz), removed, upsampled)


@torch.no_grad()
def cloud_logits(model: nn.Module, cloud: PreparedCloud, *, num_points: int, num_votes: int = 1, seed: int = 0,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(mean softmax [K], mean logits [K]) over `num_votes` random subsets of `num_points` points.

    Vote 0 takes the first `num_points` points (already a random order); later votes draw other subsets
    and scale the axes by factors in [0.8, 1.25] (the voting of PointNet++ / PointMLP).
    """
    model.eval()
    rng = np.random.default_rng(seed)
    xyz = cloud.xyz
    probs, logits = [], []
    for vote in range(max(1, num_votes)):
        if vote == 0:
            pts = xyz[:num_points]
        else:
            pts = xyz[rng.choice(len(xyz), num_points, replace=False)] * rng.uniform(0.8, 1.25, 3)
        x = torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32)).unsqueeze(0).to(device)
        out = model(x)[0].float().cpu()  # [K]
        logits.append(out)
        probs.append(out.softmax(-1))
    return torch.stack(probs).mean(0).numpy(), torch.stack(logits).mean(0).numpy()


def classify_cloud(model: nn.Module, cloud: PreparedCloud, *, num_points: int, num_votes: int = 1, seed: int = 0,
                   device: str = "cpu") -> np.ndarray:
    """Class probabilities [K]: the mean softmax over `num_votes` random subsets (`cloud_logits`)."""
    return cloud_logits(model, cloud, num_points=num_points, num_votes=num_votes, seed=seed, device=device)[0]


def classify(model: nn.Module, xyz: np.ndarray, *, spec: CloudSpec, classes: list[str], topk: int = 5,
             num_votes: int = 1, seed: int = 0, device: str = "cpu", rejection: Rejection | None = None,
             reject: bool = True, vocabulary: str = "") -> dict[str, Any]:
    """Top-k classes of one cloud `xyz` [N, 3]: clean-up (`prepare_cloud`), voting (`cloud_logits`), rejection.

    With a calibrated `rejection` rule (the weights' `rejection` metadata) a cloud whose score falls below the
    threshold is answered "none of the known classes" (`label`, `known: false`, empty `top`); `reject=False`
    gives the raw top-k.

    Returns {"label", "known", "top": [{"class", "probability"}], "vocabulary", "rejection", "points_in",
    "duplicates_removed", "upsampled", "num_points", "votes"}.
    """
    prepared = prepare_cloud(xyz, spec.num_points, seed=seed)
    with captured_features(model, rejection is not None and rejection.needs_features) as rows:
        prob, logits = cloud_logits(model, prepared, num_points=spec.num_points, num_votes=num_votes, seed=seed,
                                    device=device)
    features = torch.cat(rows).float().mean(0).cpu() if rows else None  # mean over the votes: [D]
    stats = None
    if rejection is not None and rejection.needs_inputs:  # of vote 0's input, the cloud as the model sees it
        stats = input_statistics(torch.from_numpy(prepared.xyz[: spec.num_points])[None])
    answer = open_set_answer(torch.from_numpy(logits), torch.from_numpy(prob), classes, topk=topk,
                             rejection=rejection, reject=reject, vocabulary=vocabulary, features=features, stats=stats)
    return {**answer, "points_in": prepared.points_in, "duplicates_removed": prepared.duplicates_removed,
            "upsampled": prepared.upsampled, "num_points": spec.num_points, "votes": num_votes}
