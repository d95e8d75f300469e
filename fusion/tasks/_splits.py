"""What the DataModules whose data sits in train / val / test splits share: the dataloader hooks, and the folder
they read (a user's `omnisense data make` output, or a tiny generated set)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from torch.utils.data import DataLoader

from fusion._errors import FileProblem


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
