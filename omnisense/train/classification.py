"""A LightningModule for any classifier: point-cloud shapes, video clips, audio clips, the debug MLP.

The model is a plain `nn.Module` given in the config (class_path / init_args), so LightningCLI validates it
against the model's typed constructor; the loss, the optimiser and the metrics live here, outside `forward`.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnisense.train._distributed import gather_samples


def topk_records(probs: Tensor, class_names: list[str] | None, k: int = 5) -> list[dict]:
    """Prediction records, one per sample: `{"top": [{"class", "probability"}, ...]}`, the k most probable classes
    (names when known, else label numbers), most probable first. probs: [B, K]."""
    values, indices = probs.float().topk(min(k, probs.shape[-1]), dim=-1)
    out = []
    for vs, ids in zip(values.tolist(), indices.tolist()):
        out.append({"top": [{"class": class_names[i] if class_names else i, "probability": round(v, 6)}
                            for v, i in zip(vs, ids)]})
    return out


class EvalStageHooks:
    """Lightning's validation and test hooks for a task that implements `_eval_step(stage, batch)`, which
    accumulates, and `_eval_end(stage)`, which computes and logs the stage's metrics."""

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def on_test_epoch_end(self):
        self._eval_end("test")


class ClassificationTask(EvalStageHooks, L.LightningModule):
    """Cross-entropy training with AdamW and a linear-warm-up cosine schedule; top-1, top-5, mean class accuracy.

    Args:
        model: returns logits [B, num_classes] for `model(inputs)` (or `model(**inputs)` for dict inputs).
        num_classes: number of classes.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not applied to biases and norm weights).
        warmup_steps: linear warm-up steps before the cosine decay.
        label_smoothing: cross-entropy label smoothing.
        class_names: names in label order, saved with the weights.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 1e-3, weight_decay: float = 0.05,
                 warmup_steps: int = 0, label_smoothing: float = 0.0, class_names: list[str] | None = None):
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.label_smoothing = label_smoothing
        self.class_names = class_names
        self.save_hyperparameters(ignore=["model"])
        self._rows: dict[str, list[Tensor]] = {}

    def forward(self, inputs: Any) -> Tensor:
        return self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)

    def training_step(self, batch: tuple[Any, Tensor], batch_idx: int) -> Tensor:
        inputs, labels = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(-1) == labels).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.shape[0])
        self.log("train/acc1", acc, batch_size=labels.shape[0])
        return loss

    def _eval_step(self, stage: str, batch: tuple[Any, Tensor]) -> None:
        inputs, labels = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits, labels, reduction="none")
        top5 = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        # one row per sample: label, top-1 prediction, label among the top 5, loss
        rows = torch.stack([labels.double(), logits.argmax(-1).double(), (top5 == labels[:, None]).any(-1).double(),
                            loss.double()], dim=1)
        self._rows.setdefault(stage, []).append(rows.cpu())

    def _eval_end(self, stage: str) -> None:
        if stage not in self._rows:
            return
        rows = gather_samples(self, torch.cat(self._rows.pop(stage)), stage)
        if not rows:
            return
        rows = torch.stack(rows)  # [S, 4], every sample of the split once, in its order
        labels, preds = rows[:, 0].long(), rows[:, 1].long()
        conf = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        conf.index_put_((labels, preds), torch.ones_like(labels), accumulate=True)
        metrics = classification_metrics(conf)
        metrics["acc5"] = float(rows[:, 2].mean())
        metrics["loss"] = float(rows[:, 3].mean())
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "acc1")

    def predict_step(self, batch, batch_idx) -> list[dict]:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return topk_records(self(inputs).softmax(-1), self.class_names)

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, decay_groups(self.model.named_parameters(), self.weight_decay),
                                   self.lr, self.warmup_steps)


def decay_groups(named_parameters, weight_decay: float, **extra: Any) -> list[dict]:
    """AdamW parameter groups: weight decay on weight matrices, none on biases and norm weights; frozen
    parameters are left out. `extra` (e.g. `lr=`) goes into both groups."""
    decay, no_decay = [], []
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay, **extra},
            {"params": no_decay, "weight_decay": 0.0, **extra}]


def adamw_warmup_cosine(task: L.LightningModule, groups: list[dict], lr: float, warmup_steps: int) -> dict:
    """AdamW over `groups` with a per-step linear warm-up and cosine decay over the trainer's total steps."""
    optimizer = torch.optim.AdamW(groups, lr=lr)
    total = task.trainer.estimated_stepping_batches if task._trainer is not None else 1
    total = int(total) if math.isfinite(total) else 10_000
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, max(total, 1)))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Multiplier of the peak learning rate: linear warm-up, then cosine decay to zero at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def classification_metrics(confusion: Tensor) -> dict[str, float]:
    """Top-1 (overall) accuracy and mean class accuracy from a confusion matrix [K, K] (rows: truth)."""
    confusion = confusion.double()
    per_class_total = confusion.sum(1)
    present = per_class_total > 0
    acc1 = float(confusion.diag().sum() / confusion.sum().clamp(min=1))
    macc = float((confusion.diag()[present] / per_class_total[present]).mean()) if present.any() else 0.0
    return {"acc1": acc1, "macc": macc}
