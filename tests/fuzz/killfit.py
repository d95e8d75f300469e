"""A tiny deterministic training task for the kill test: full-batch data (one step per epoch, no shuffle, no
dropout), so a run resumed from any checkpoint takes exactly the steps an uninterrupted run takes and ends with
bit-identical weights. The model is wide enough (about 1.1 M parameters, a 13 MB checkpoint with its AdamW
state) that a save takes long enough to be killed in the middle of."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class FullBatchBlobs(L.LightningDataModule):
    """`n` points in `dim` dimensions, `classes` Gaussian blobs, one batch holding them all."""

    def __init__(self, n: int = 256, dim: int = 32, classes: int = 4, seed: int = 0):
        super().__init__()
        self.n, self.dim, self.classes, self.seed = n, dim, classes, seed

    def setup(self, stage: str | None = None) -> None:
        rng = np.random.default_rng(self.seed)
        y = rng.integers(0, self.classes, self.n)
        centres = rng.normal(0, 3, (self.classes, self.dim))
        x = (centres[y] + rng.normal(0, 1, (self.n, self.dim))).astype(np.float32)
        self.data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.n, shuffle=False)


class WideMLP(L.LightningModule):
    def __init__(self, dim: int = 32, hidden: int = 1024, classes: int = 4, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, classes))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
