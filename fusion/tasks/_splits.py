"""The dataloader hooks shared by the DataModules whose data sits in train / val / test splits."""

from __future__ import annotations

from torch.utils.data import DataLoader


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
