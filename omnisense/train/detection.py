"""Lidar 3D detection training and evaluation: a LightningModule for the FlatFormer / DSVT detectors and a
DataModule over a KITTI-layout folder (the simulated set of `omnisense data make lidar-scenes`).

Validation and test report KITTI-style AP_R40 (3D and BEV; IoU 0.7 Car, 0.5 Pedestrian / Cyclist; easy,
moderate, hard) and Waymo-style 3D mAP / mAPH (LEVEL_1, LEVEL_2), on the ground truth inside the model's
point range.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from omnisense._errors import FileProblem
from omnisense.train._distributed import gather_samples
from perception3d.detection.data import AugmentConfig, KittiDetectionDataset, collate_frames
from perception3d.detection.evaluation import kitti_eval, waymo_eval
from perception3d.detection.head import LossWeights, build_targets, center_head_loss

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")


def detection_record(det: dict[str, torch.Tensor], class_names: tuple[str, ...], frame: str | None) -> dict:
    """A prediction record for one frame: `{"frame", "boxes": [{"label", "score", "center", "size", "heading"}]}`
    (lidar frame, metres, radians), every box the model kept, most confident first."""
    from perception3d.detection.inference import boxes_to_json

    boxes = sorted(boxes_to_json({k: v.cpu() for k, v in det.items()}, class_names), key=lambda b: -b["score"])
    return {"frame": frame, "boxes": boxes}


class DetectionTask(L.LightningModule):
    """CenterPoint-style training of a named detector variant.

    Args:
        variant: a detector in `omnisense.models.VARIANTS` (flatformer_small, dsvt_pillar_small, ...).
        lr: peak learning rate of the one-cycle schedule (DSVT: 3e-3; FlatFormer's cyclic policy peaks at 1e-3).
        weight_decay: AdamW weight decay (0.05 in both papers; not on biases and norms).
        div_factor: initial lr = lr / div_factor (DSVT: 100); the final lr is lr / div_factor / 100.
        pct_start: fraction of the steps spent rising (0.1 in both papers).
        loss_weights: cls, loc, iou, iou_reg weights (DSVT: 1, 2, 1, 2).
        max_objs: targets per frame (500).
        gaussian_overlap: CenterNet radius overlap (0.1).
        init_weights: a weights file (.safetensors) to start from, e.g. to continue training shipped weights.
    """

    def __init__(self, variant: str = "flatformer_small", lr: float = 3e-3, weight_decay: float = 0.05,
                 div_factor: float = 100.0, pct_start: float = 0.1, loss_weights: dict[str, float] | None = None,
                 max_objs: int = 500, gaussian_overlap: float = 0.1, init_weights: str | None = None):
        super().__init__()
        from omnisense.models import build_model

        self.save_hyperparameters()
        self.model = build_model(variant)
        if init_weights:
            from omnisense.weights import load_model_weights, read_weights

            load_model_weights(self.model, read_weights(init_weights)[0], source=init_weights)
        self.variant = variant
        self.lr, self.weight_decay, self.div_factor, self.pct_start = lr, weight_decay, div_factor, pct_start
        self.loss_weights = LossWeights(**(loss_weights or {}))
        self.max_objs, self.gaussian_overlap = max_objs, gaussian_overlap
        self._eval: dict[str, list] = {}

    def _in_range(self, boxes: torch.Tensor) -> torch.Tensor:
        r = self.model.geometry.point_range
        return (boxes[:, 0] >= r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] < r[4])

    def training_step(self, batch: dict, batch_idx: int):
        preds = self.model(batch["points"], batch["batch_index"], batch["batch_size"])
        boxes = [b[self._in_range(b)] for b in batch["boxes"]]
        labels = [lb[self._in_range(b)] for b, lb in zip(batch["boxes"], batch["labels"])]
        targets = build_targets(boxes, labels, self.model.geometry, len(self.model.class_names), self.max_objs,
                                self.gaussian_overlap, getattr(self.model, "min_radius", 2))
        losses = center_head_loss(preds, targets, self.model.geometry, self.loss_weights)
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=batch["batch_size"])
        return losses["loss"]

    def _eval_step(self, batch: dict, stage: str) -> None:
        dets = self.model.predict(batch["points"], batch["batch_index"], batch["batch_size"])
        store = self._eval.setdefault(stage, [])
        for i, det in enumerate(dets):
            keep = self._in_range(batch["boxes"][i])
            gt = {"boxes": batch["boxes"][i][keep].cpu(), "labels": batch["labels"][i][keep].cpu(),
                  "difficulty": batch["difficulty"][i][keep].cpu(), "num_points": batch["num_points"][i][keep].cpu()}
            store.append(({k: v.cpu() for k, v in det.items()}, gt))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_end(self, stage: str) -> None:
        if stage not in self._eval:
            return
        pairs = gather_samples(self, self._eval.pop(stage), stage)  # every frame of the split once, in order
        if not pairs:
            return
        dets, gts = [p[0] for p in pairs], [p[1] for p in pairs]
        metrics = kitti_eval(dets, gts, self.model.class_names)
        metrics.update(waymo_eval(dets, gts, self.model.class_names))
        for k, v in metrics.items():
            if not math.isnan(v):
                self.log(f"{stage}/{k}", v, batch_size=1)

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        dets = self.model.predict(batch["points"], batch["batch_index"], batch["batch_size"])
        return [detection_record(det, self.model.class_names, frame) for det, frame in
                zip(dets, batch["frame_id"])]

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self) -> Any:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr, betas=(0.95, 0.99))
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=self.pct_start,
                                                    div_factor=self.div_factor, final_div_factor=100.0,
                                                    base_momentum=0.85, max_momentum=0.95)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class SimKittiDataModule(L.LightningDataModule):
    """A KITTI-layout detection folder: `root/training/{velodyne,label_2,calib}`, `root/ImageSets/{train,val}.txt`.

    Args:
        root: the folder (`omnisense data make lidar-scenes --out DIR`); None with `tiny` generates one.
        tiny: generate a tiny simulated set into a temporary folder instead of reading `root`.
        batch_size: frames per batch.
        num_workers: DataLoader workers.
        gt_sampling: objects pasted per frame by class (the papers: Car 15, Pedestrian 10, Cyclist 10).
        augment: global flips, rotation (+-pi/4), scaling (0.95-1.05) and translation (std 0.5 m).
        seed: augmentation seed.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, batch_size: int = 2, num_workers: int = 0,
                 gt_sampling: dict[str, int] | None = None, augment: bool = True, seed: int = 0):
        super().__init__()
        self.root, self.tiny, self.batch_size, self.num_workers = root, tiny, batch_size, num_workers
        self.gt_sampling = {"Car": 15, "Pedestrian": 10, "Cyclist": 10} if gt_sampling is None else gt_sampling
        self.augment, self.seed = augment, seed
        self._sets: dict[str, KittiDetectionDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._sets:
            return
        if self.tiny or self.root is None:
            from perception3d.detection.simulator import make_lidar_scenes

            folder = Path(tempfile.mkdtemp(prefix="omnisense-simkitti-"))
            make_lidar_scenes(folder, seed=self.seed, size="tiny")
        else:
            folder = Path(self.root)
        if not (folder / "ImageSets" / "train.txt").is_file():
            raise FileProblem(folder, "not a KITTI-layout folder; write one with "
                                      f"`omnisense data make lidar-scenes --out {folder}`")
        wide = (-100.0, -100.0, -10.0, 100.0, 100.0, 10.0)  # the model crops to its own range
        aug = AugmentConfig(gt_sampling=self.gt_sampling or None) if self.augment else None
        self._sets["train"] = KittiDetectionDataset(folder, "train", CLASS_NAMES, wide, aug, seed=self.seed)
        self._sets["val"] = KittiDetectionDataset(folder, "val", CLASS_NAMES, wide, None)

    def train_dataloader(self):
        return DataLoader(self._sets["train"], batch_size=self.batch_size, shuffle=True, drop_last=True, collate_fn=collate_frames,
                          num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self._sets["val"], batch_size=self.batch_size, collate_fn=collate_frames,
                          num_workers=self.num_workers)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self):
        return self.val_dataloader()


