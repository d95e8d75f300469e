"""Part segmentation for the engine: the procedural part set as a LightningDataModule, and the task.

Batches are `({"xyz": [B, N, 3], "category": [B]}, parts [B, N])`, the form GPSFormerPartSeg takes. The task
trains with cross-entropy over all parts (as ShapeNetPart models do) and evaluates ShapeNetPart's way: each
point's prediction is the argmax over its object category's parts, then instance mIoU (mean over shapes) and
class mIoU (mean over categories of their shapes' mean), with a part absent from both truth and prediction
counting IoU 1.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnisense.train._distributed import gather_samples
from omnisense.train._splits import CloudSplitsData, generated_or_root
from omnisense.train.classification import EvalStageHooks, adamw_warmup_cosine, decay_groups
from omnisense.train.shapes import augment_cloud


class PartCloudSet(Dataset):
    """Fixed-size labelled clouds: points [S, N, 3], parts [S, N], categories [S].

    Augmentation (training): a random subset of `num_points`, random yaw, per-axis scale in [0.8, 1.25] and
    Gaussian jitter (sigma 0.01, clipped at 0.05). Without it, the first `num_points` (stored order is random).
    """

    def __init__(self, points: np.ndarray, parts: np.ndarray, categories: np.ndarray, *, num_points: int,
                 augment: bool, seed: int = 0):
        if num_points > points.shape[1]:
            raise ValueError(f"num_points {num_points} exceeds the {points.shape[1]} points stored per sample")
        self.points, self.parts, self.categories = points, parts, categories
        self.num_points, self.augment = num_points, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Tensor]:
        pts, parts = self.points[i], self.parts[i]
        if self.augment:
            pts, choice = augment_cloud(pts, self.num_points, self.rng)
            parts = parts[choice]
        else:
            pts, parts = pts[: self.num_points], parts[: self.num_points]
        inputs = {"xyz": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32)),
                  "category": torch.tensor(int(self.categories[i]))}
        return inputs, torch.from_numpy(np.ascontiguousarray(parts, dtype=np.int64))


class PartsDataModule(CloudSplitsData):
    """The procedural part set written by `omnisense data make parts --out ROOT` (train.npz, test.npz,
    parts.json); `tiny` generates 6 categories x 3 train / 2 test at 256 points. Arguments: see CloudSplitsData;
    augmentation: see PartCloudSet."""

    def setup(self, stage: str | None = None) -> None:
        from perception3d.classification import read_parts, write_parts

        if self.sets:
            return
        folder = generated_or_root(self.root, self.tiny, generator="parts", write=write_parts, seed=self.seed)
        train, test = read_parts(folder, "train"), read_parts(folder, "test")
        n = min(self.num_points, train.points.shape[1]) if self.tiny else self.num_points
        is_val = self.validation_rows(len(train))
        self.sets["train"] = PartCloudSet(train.points[~is_val], train.parts[~is_val], train.labels[~is_val],
                                          num_points=n, augment=self.augment, seed=self.seed)
        self.sets["val"] = PartCloudSet(train.points[is_val], train.parts[is_val], train.labels[is_val],
                                        num_points=n, augment=False)
        self.sets["test"] = PartCloudSet(test.points, test.parts, test.labels, num_points=n, augment=False)


def category_argmax(logits: Tensor, category: Tensor, category_parts: list[list[int]]) -> Tensor:
    """Per-point part predictions restricted to each sample's category: logits [B, N, P], category [B] -> [B, N]."""
    mask = torch.full((len(category_parts), logits.shape[-1]), float("-inf"), device=logits.device)
    for c, parts in enumerate(category_parts):
        mask[c, list(parts)] = 0.0
    return (logits + mask[category].unsqueeze(1)).argmax(-1)


def shape_ious(pred: Tensor, target: Tensor, category: Tensor, category_parts: list[list[int]]) -> Tensor:
    """Mean part IoU of each shape, ShapeNetPart's convention (a part absent from both counts 1): [B]."""
    out = []
    for p, t, c in zip(pred, target, category.tolist()):
        ious = []
        for part in category_parts[c]:
            union = ((p == part) | (t == part)).sum()
            inter = ((p == part) & (t == part)).sum()
            ious.append(torch.ones((), device=p.device) if union == 0 else inter.double() / union)
        out.append(torch.stack([i.double() for i in ious]).mean())
    return torch.stack(out)


def partseg_records(pred: Tensor, category: Tensor, category_names: list[str] | None) -> list[dict]:
    """Prediction records, one per shape: its category and the part label of each point.

    pred: [B, N] global part labels; category: [B].
    """
    out = []
    for parts, c in zip(pred.tolist(), category.tolist()):
        out.append({"category": category_names[c] if category_names else int(c), "parts": parts})
    return out


class PartSegmentationTask(EvalStageHooks, L.LightningModule):
    """Per-point cross-entropy with AdamW and a warm-up cosine schedule; instance and class mIoU.

    Args:
        model: `model(xyz=[B, N, 3], category=[B])` -> part logits [B, N, num_parts].
        num_parts: total (global) part labels.
        category_parts: the global part labels of each category, in category order.
        lr, weight_decay, warmup_steps, label_smoothing: as ClassificationTask.
        category_names: names in category order, saved with the weights.
    """

    def __init__(self, model: nn.Module, num_parts: int, category_parts: list[list[int]], lr: float = 1e-3,
                 weight_decay: float = 0.05, warmup_steps: int = 0, label_smoothing: float = 0.0,
                 category_names: list[str] | None = None):
        super().__init__()
        self.model = model
        self.num_parts = num_parts
        self.category_parts = [list(p) for p in category_parts]
        self.lr, self.weight_decay = lr, weight_decay
        self.warmup_steps, self.label_smoothing = warmup_steps, label_smoothing
        self.category_names = category_names
        self.save_hyperparameters(ignore=["model"])
        self._ious: dict[str, list[Tensor]] = {}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.model(**inputs)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        inputs, parts = batch
        logits = self(inputs)  # [B, N, P]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), parts.reshape(-1),
                               label_smoothing=self.label_smoothing)
        acc = (category_argmax(logits, inputs["category"], self.category_parts) == parts).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=parts.shape[0])
        self.log("train/point_acc", acc, batch_size=parts.shape[0])
        return loss

    def _eval_step(self, stage: str, batch) -> None:
        inputs, parts = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits.transpose(1, 2), parts, reduction="none").mean(1)  # [B]: per shape
        pred = category_argmax(logits, inputs["category"], self.category_parts)
        ious = shape_ious(pred, parts, inputs["category"], self.category_parts)
        # one row per shape: its mean part IoU, its category, its loss
        rows = torch.stack([ious, inputs["category"].double(), loss.double()], dim=1)
        self._ious.setdefault(stage, []).append(rows.cpu())

    def _eval_end(self, stage: str) -> None:
        if stage not in self._ious:
            return
        rows = gather_samples(self, torch.cat(self._ious.pop(stage)), stage)
        if not rows:
            return
        rows = torch.stack(rows)  # [S, 3]: every shape of the split once
        per_category = [rows[rows[:, 1] == c, 0].mean() for c in rows[:, 1].unique()]
        self.log(f"{stage}/instance_miou", float(rows[:, 0].mean()), prog_bar=True)
        self.log(f"{stage}/class_miou", float(torch.stack(per_category).mean()))
        self.log(f"{stage}/loss", float(rows[:, 2].mean()))

    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = self(inputs)
        return partseg_records(category_argmax(logits, inputs["category"], self.category_parts), inputs["category"],
                               self.category_names)

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, decay_groups(self.model.named_parameters(), self.weight_decay),
                                   self.lr, self.warmup_steps)
