"""The debug task: a tiny MLP on generated Gaussian blobs, small enough to train in seconds.

It exercises the whole engine (configs, Trainer, checkpoints, resume, DDP, weights export) without any
model of a capability, and it is the engine's part of `omnisense demo`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from omnisense._arrays import load_arrays
from omnisense._errors import FileProblem
from omnisense._io import write_bytes_atomic
from omnisense.train._splits import SplitLoaders


class TinyMLP(nn.Module):
    """Two-layer perceptron: features [B, in_dim] -> logits [B, num_classes]."""

    def __init__(self, *, in_dim: int = 16, hidden: int = 64, num_classes: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


SPLITS = ("train", "val", "test")


def make_blobs(out: Path, *, seed: int = 0, size: str = "small", num_classes: int = 4, dim: int = 16,
               noise: float = 2.5) -> dict[str, Any]:
    """Write Gaussian blobs (one cluster per class, overlapping at `noise`) to `out/blobs.npz`."""
    per_split = {"tiny": (64, 32, 32), "small": (2048, 512, 512), "full": (20000, 4000, 4000)}[size]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 2.0
    arrays: dict[str, np.ndarray] = {"centres": centres}
    for split, n in zip(SPLITS, per_split):
        labels = rng.integers(0, num_classes, size=n)
        arrays[f"{split}_x"] = (centres[labels] + noise * rng.normal(size=(n, dim))).astype(np.float32)
        arrays[f"{split}_y"] = labels.astype(np.int64)
    out = Path(out)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(out / "blobs.npz", buffer.getvalue())
    return {"path": str(out / "blobs.npz"), "classes": num_classes, "dim": dim,
            **{f"{s}_samples": n for s, n in zip(SPLITS, per_split)}}


class BlobsDataModule(SplitLoaders, L.LightningDataModule):
    """Gaussian blobs from `root/blobs.npz` (written by `omnisense data make blobs`).

    Args:
        root: folder holding blobs.npz; None with `tiny` generates a tiny set in a temporary folder.
        tiny: generate a tiny dataset instead of reading `root`.
        batch_size: samples per batch.
        seed: generator seed when the data is generated here.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, batch_size: int = 64, seed: int = 0,
                 num_classes: int = 4, dim: int = 16):
        super().__init__()
        self.root, self.tiny, self.batch_size, self.seed = root, tiny, batch_size, seed
        self.num_classes, self.dim = num_classes, dim
        self._data: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._data:
            return
        if self.tiny or self.root is None:
            folder = Path(tempfile.mkdtemp(prefix="omnisense-blobs-"))
            make_blobs(folder, seed=self.seed, size="tiny" if self.tiny else "small", num_classes=self.num_classes,
                       dim=self.dim)
        else:
            folder = Path(self.root)
        path = folder / "blobs.npz"
        if not path.exists():
            raise FileProblem(path, "missing; write it with `omnisense data make blobs --out " f"{folder}`")
        arrays = load_arrays(path, [f"{split}_{part}" for split in SPLITS for part in "xy"])  # checked
        for split in SPLITS:
            self._data[split] = TensorDataset(torch.from_numpy(arrays[f"{split}_x"]),
                                              torch.from_numpy(arrays[f"{split}_y"]))

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(self._data[split], batch_size=self.batch_size, shuffle=train, drop_last=train)
