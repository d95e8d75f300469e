"""What the DataModules whose data sits in train / val / test splits share: the dataloader hooks, and the folder
they read (a user's `omnisense data make` output, or a tiny generated set)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from omnisense._errors import FileProblem


def generated_or_root(root: str | None, tiny: bool, *, generator: str, write: Callable[..., object], seed: int,
                      required: str = "train.npz") -> Path:
    """The data folder: with `tiny` (or no root) a tiny set written by `write(folder, seed=, size="tiny")` into a
    new temporary folder, else `root`, which must hold `required` (a clear error names the command that writes it).

    Args:
        generator: the `omnisense data make` name of the set, for the temporary folder's name and the error.
    """
    if tiny or root is None:
        folder = Path(tempfile.mkdtemp(prefix=f"omnisense-{generator}-"))
        write(folder, seed=seed, size="tiny")
        return folder
    folder = Path(root)
    if not (folder / required).exists():
        raise FileProblem(folder / required, f"missing; write it with `omnisense data make {generator} --out {folder}`")
    return folder


class SplitLoaders:
    """Lightning's four dataloader hooks over `self._loader(split)`; prediction reads the test split.

    Put it before `L.LightningDataModule` in the bases; the DataModule defines `_loader(split)`, which shuffles
    the train split only.
    """

    def _loader(self, split: str) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


class CloudSplitsData(SplitLoaders, L.LightningDataModule):
    """A DataModule of fixed-size clouds in train / val / test sets (`self.sets`, filled by the subclass's `setup`).

    Args:
        root: the folder `omnisense data make` wrote; None with `tiny` generates a tiny set.
        tiny: generate a tiny set in a temporary folder.
        num_points: points per cloud given to the model (at most what the set stores).
        batch_size: clouds per batch.
        augment: training augmentation.
        num_workers: DataLoader workers.
        seed: of the tiny set and of the augmentation stream.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, num_points: int = 1024, batch_size: int = 16,
                 augment: bool = True, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.root, self.tiny = root, tiny
        self.num_points, self.batch_size, self.augment = num_points, batch_size, augment
        self.num_workers, self.seed = num_workers, seed
        self.sets: dict[str, Dataset] = {}

    @staticmethod
    def validation_rows(count: int) -> np.ndarray:
        """[count] bool: every tenth training sample is held out for validation."""
        return np.arange(count) % 10 == 9

    def _loader(self, split: str) -> DataLoader:
        shuffle = split == "train"
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.num_workers)
