"""Shape classification data for the engine: the procedural shape set as a LightningDataModule.

Batches are `(points [B, num_points, 3], labels [B])`, the form `ClassificationTask` passes to GPSFormer.
The validation split is a fixed 10% of the training file (every 10th sample); the test split is the
held-out `test.npz`, generated from an independent random stream.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnisense.train._splits import CloudSplitsData, generated_or_root


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation about the up (z) axis by `angle` radians: [3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def augment_cloud(points: np.ndarray, num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation (PointMLP's plus a rotation about up): a random subset of `num_points`, random yaw,
    per-axis scale in [0.8, 1.25] and Gaussian jitter (sigma 0.01, clipped at 0.05).

    Returns the augmented points [num_points, 3] float32 and the indices of the chosen points.
    """
    choice = rng.choice(len(points), num_points, replace=False)
    pts = points[choice] @ yaw_matrix(rng.uniform(0, 2 * np.pi)).T
    pts = pts * rng.uniform(0.8, 1.25, size=3).astype(np.float32)
    pts = pts + np.clip(rng.normal(scale=0.01, size=pts.shape), -0.05, 0.05).astype(np.float32)
    return pts.astype(np.float32), choice


class PointCloudSet(Dataset):
    """Fixed-size clouds with labels; training augmentation as in PointMLP plus a rotation about up.

    Args:
        points: [S, N, 3] float32, unit-sphere normalised.
        labels: [S] int64.
        num_points: points per returned cloud (<= N): a random subset when augmenting, else the first ones
            (the stored order is already random).
        augment: random yaw, per-axis scale in [0.8, 1.25] and Gaussian jitter (sigma 0.01, clipped at 0.05).
        seed: of the augmentation stream (mixed with the sample index and the epoch draw).
    """

    def __init__(self, points: np.ndarray, labels: np.ndarray, *, num_points: int, augment: bool, seed: int = 0):
        if num_points > points.shape[1]:
            raise ValueError(f"num_points {num_points} exceeds the {points.shape[1]} points stored per sample")
        self.points, self.labels = points, labels
        self.num_points, self.augment = num_points, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        pts = self.points[i]
        if not self.augment:
            return torch.from_numpy(np.ascontiguousarray(pts[: self.num_points])), torch.tensor(self.labels[i])
        pts, _ = augment_cloud(pts, self.num_points, self.rng)
        return torch.from_numpy(pts), torch.tensor(self.labels[i])


class ShapesDataModule(CloudSplitsData):
    """The procedural shape set written by `omnisense data make shapes --out ROOT` (train.npz, test.npz,
    classes.txt); `tiny` generates 12 classes x 4 train / 2 test at 256 points. Arguments: see CloudSplitsData;
    augmentation: see PointCloudSet."""

    classes: tuple[str, ...] = ()

    def setup(self, stage: str | None = None) -> None:
        from perception3d.classification import read_shapes, write_shapes

        if self.sets:
            return
        folder = generated_or_root(self.root, self.tiny, generator="shapes", write=write_shapes, seed=self.seed)
        train, test = read_shapes(folder, "train"), read_shapes(folder, "test")
        n = min(self.num_points, train.points.shape[1]) if self.tiny else self.num_points
        self.classes = train.classes
        is_val = self.validation_rows(len(train))
        self.sets["train"] = PointCloudSet(train.points[~is_val], train.labels[~is_val], num_points=n,
                                           augment=self.augment, seed=self.seed)
        self.sets["val"] = PointCloudSet(train.points[is_val], train.labels[is_val], num_points=n, augment=False)
        self.sets["test"] = PointCloudSet(test.points, test.labels, num_points=n, augment=False)


# ---- evaluation, robustness and export ----------------------------------------------------------------


# ---- the demo part --------------------------------------------------------------------------------------

# Real CGAL meshes: primitives whose type is one of the procedural classes, then objects that are none of them.
