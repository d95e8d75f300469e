"""Shape classification data for the engine: the procedural shape set as a LightningDataModule.

Batches are `(points [B, num_points, 3], labels [B])`, the form `ClassificationTask` passes to GPSFormer.
The validation split is a fixed 10% of the training file (every 10th sample); the test split is the
held-out `test.npz`, generated from an independent random stream.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from fusion._errors import FileProblem


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation about the up (z) axis by `angle` radians: [3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


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
        rng = self.rng
        pts = pts[rng.choice(len(pts), self.num_points, replace=False)]
        pts = pts @ yaw_matrix(rng.uniform(0, 2 * np.pi)).T
        pts = pts * rng.uniform(0.8, 1.25, size=3).astype(np.float32)
        pts = pts + np.clip(rng.normal(scale=0.01, size=pts.shape), -0.05, 0.05).astype(np.float32)
        return torch.from_numpy(pts.astype(np.float32)), torch.tensor(self.labels[i])


class ShapesDataModule(L.LightningDataModule):
    """The procedural shape set written by `omnisense data make shapes --out ROOT`.

    Args:
        root: folder with train.npz, test.npz and classes.txt; None with `tiny` generates a tiny set.
        tiny: generate a tiny set (12 classes x 4 train / 2 test, 256 points) in a temporary folder.
        num_points: points per cloud given to the model (at most what the set stores).
        batch_size: clouds per batch.
        augment: training augmentation (see PointCloudSet).
        num_workers: DataLoader workers.
        seed: of the tiny set and of the augmentation stream.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, num_points: int = 1024, batch_size: int = 16,
                 augment: bool = True, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.root, self.tiny = root, tiny
        self.num_points, self.batch_size, self.augment = num_points, batch_size, augment
        self.num_workers, self.seed = num_workers, seed
        self.sets: dict[str, PointCloudSet] = {}
        self.classes: tuple[str, ...] = ()

    def setup(self, stage: str | None = None) -> None:
        from perception3d.classification import read_shapes, write_shapes

        if self.sets:
            return
        if self.tiny or self.root is None:
            folder = Path(tempfile.mkdtemp(prefix="omnisense-shapes-"))
            write_shapes(folder, seed=self.seed, size="tiny")
        else:
            folder = Path(self.root)
            if not (folder / "train.npz").exists():
                raise FileProblem(folder / "train.npz", f"missing; write it with `omnisense data make shapes --out {folder}`")
        train, test = read_shapes(folder, "train"), read_shapes(folder, "test")
        n = min(self.num_points, train.points.shape[1]) if self.tiny else self.num_points
        self.classes = train.classes
        is_val = np.arange(len(train)) % 10 == 9
        self.sets["train"] = PointCloudSet(train.points[~is_val], train.labels[~is_val], num_points=n,
                                           augment=self.augment, seed=self.seed)
        self.sets["val"] = PointCloudSet(train.points[is_val], train.labels[is_val], num_points=n, augment=False)
        self.sets["test"] = PointCloudSet(test.points, test.labels, num_points=n, augment=False)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("test")
