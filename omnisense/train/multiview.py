"""Multi-view, multi-modal action recognition: MultiTSF's training on cached features (LightningModule, DataModule).

The recipe (MultiTSF on the synthetic recordings of `omnisense data make multiview-recordings`):

1. `prepare_split`: every recording is read and aligned on the grid of `SPEC` (`fusion.inference.prepare_recording`,
   the preparation inference uses too: 2.5 Hz grid, per-view frames, 0.4 s audio chunks as Kaldi fbanks, lidar
   sweeps, person scores, frame and sequence labels); the fbanks are normalised with the train-set statistics
   (`fusion.inference.normalize_fbank`), which the shipped weights carry in their input spec (`cached_spec`).
2. The frame encoder (a tiny hybrid ViT, 64 x 64) is first trained alone as a per-frame multi-label classifier of
   single views, on the frames where the person detector fires (`train_frame_encoder` says why), then frozen;
   its features are cached (`features_<split>.npz`).
   The released MultiTSF fine-tunes its ViT end to end every epoch on fully decoded videos; freezing and
   caching makes the CPU recipe possible, the price is that fusion cannot reshape the frame features.
3. `MultiViewTask` trains MultiTSF (audio MLP, lidar encoder, transformers and heads) on the cached features with
   the paper's losses and optimiser (Adam, wd 5e-4, cosine to 1e-5; lr raised to 5e-4 for the short CPU run),
   with sensor dropout (whole views, a view's camera or microphone, the lidar) so that absent sensors at
   inference degrade gracefully.

The whole comparison (single view, late fusion, modality subsets, sensors dropped at inference, one evaluation on
the test split, the shipped weights' export) is a research script: `tools/multitsf_experiment.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from fusion.inference import (LIDAR_RATE, MODALITIES, FusionSpec, frames_to_tensor, model_inputs,
                              normalize_fbank, prepare_recording, read_for)
from fusion.metrics import frame_map, map_class, map_sample
from fusion.multitsf import MultiTSF, build_frame_encoder, multitsf_loss
from omnisense._errors import FileProblem
from omnisense._io import atomic_write, write_bytes_atomic
from omnisense.train._distributed import gather_samples

# The training recipe's input spec; the fbank statistics are the train split's (`cached_spec`).
# max_points 128 of the ~250 points per sweep and lidar_stride 4 (the 10 Hz lidar enters at 2.5 Hz): the CPU
# budget of the lidar encoder.
SPEC = FusionSpec()
PERSON_MIN = 0.3         # person score above which a frame trains the frame encoder


# --------------------------------------------------------------------------------------------- preparation

def prepare_split(root: Path, split: str, spec: FusionSpec = SPEC) -> dict[str, np.ndarray]:
    """All recordings of `root/<split>.json` stacked: dict of arrays with a leading recording axis (fbanks not
    normalised)."""
    from fusion.recordings import read_multisensor_home
    from fusion.streams import make_grid

    entries = read_multisensor_home(root / f"{split}.json")
    items = []
    for n, e in enumerate(entries):
        if e.recording is None:
            raise FileProblem(root / f"{split}.json", "entries need a 'recording' manifest (clocks, lidar)")
        rec = read_for(spec, e.recording)
        duration = float(rec.meta.get("duration", rec.span[1]))
        items.append(prepare_recording(rec, make_grid(0.0, duration, spec.grid_rate_hz), spec,
                                       max_sweeps=int(duration * LIDAR_RATE / spec.lidar_stride) + 8, seed=n))
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def ensure_raw(root: Path, cache: Path, spec: FusionSpec = SPEC) -> None:
    """Write `cache/raw_<split>.npz` for train/val/test once (normalising fbanks with train statistics)."""
    cache.mkdir(parents=True, exist_ok=True)
    normed = cached_spec(cache, spec) if (cache / "raw_train.npz").exists() else None
    for split in ("train", "val", "test"):
        path = cache / f"raw_{split}.npz"
        if path.exists():
            continue
        data = prepare_split(root, split, spec)
        if normed is None:  # the train split, prepared first
            sel = data["fbank"][data["audio_valid"]]
            normed = dataclasses.replace(spec, fbank_mean=float(sel.mean()), fbank_std=float(sel.std() + 1e-6))
        data["fbank"] = normalize_fbank(data["fbank"], normed).astype(np.float16)
        atomic_write(path, lambda tmp: np.savez(tmp, fbank_mean=normed.fbank_mean, fbank_std=normed.fbank_std,
                                                **data))


def cached_spec(cache: Path, spec: FusionSpec = SPEC) -> FusionSpec:
    """`spec` with the fbank statistics of the cache's train split: the input spec of models trained on it."""
    with np.load(cache / "raw_train.npz") as z:
        return dataclasses.replace(spec, fbank_mean=float(z["fbank_mean"]), fbank_std=float(z["fbank_std"]))


def load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileProblem(path, "missing")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_cached_tensors(path: Path, state: dict[str, Tensor], info: dict[str, Any]) -> Path:
    """A working file of the cache (not shipped weights): tensors plus `info` (JSON) in the safetensors header."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return write_bytes_atomic(path, save(tensors, metadata={"info": json.dumps(info)}))


def read_cached_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, info) of a `save_cached_tensors` file."""
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise FileProblem(path, "missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
            return {k: f.get_tensor(k) for k in f.keys()}, info
    except (SafetensorError, OSError, ValueError) as exc:
        raise FileProblem(path, f"not a readable safetensors file ({exc}); delete it to rebuild the cache") from None


class FrameClassifier(torch.nn.Module):
    """The single-frame model that trains the frame encoder: encoder -> Linear -> K frame logits."""

    def __init__(self, encoder: str = "vit_hybrid64", num_classes: int = 7):
        super().__init__()
        self.encoder, width = build_frame_encoder(encoder)
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def train_frame_encoder(train: dict, val: dict, *, encoder: str, epochs: int, log, seed: int = 0,
                        batch_size: int = 64, lr: float = 6e-4) -> FrameClassifier:
    """Per-frame multi-label training of single views (BCE on the frame labels) on the frames where the person
    detector fires (score > PERSON_MIN).

    The labels are the scene's, but a camera sees an action only when it sees the actor: most (view, frame) pairs
    carry labels that frame cannot show (the actor is elsewhere, behind an occluder, or the room is dark). On all
    frames the encoder stayed at chance (val frame mAP 19.6 after 4 epochs, chance 19.5); on the frames the
    detector marks as showing a person (MultiTSF's human-presence signal, used here to pick the encoder's
    training frames) it learns (a 300-step probe: val frame mAP 30 on all frames, 46 on person frames)."""
    torch.manual_seed(seed)
    k = train["labels"].shape[-1]
    model = FrameClassifier(encoder, k)
    ok = train["video_valid"] & (train["person"] > PERSON_MIN)            # [R, V, T]
    if ok.sum() < batch_size:  # no person scores (or a tiny set): every valid frame
        ok = train["video_valid"]
    r, v, t = np.nonzero(ok)
    frames, labels = train["frames"][r, v, t], train["labels"][r, t]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(frames) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        order = gen.permutation(len(frames))
        total = 0.0
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            x = frames_to_tensor(frames[b], SPEC)
            if gen.random() < 0.5:
                x = x.flip(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.from_numpy(labels[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        vr, vv, vt = np.nonzero(val["video_valid"])
        scores = predict_frames(model, val["frames"][vr, vv, vt])
        log(f"frame encoder epoch {epoch + 1}/{epochs}: loss {total / len(frames):.4f}, val per-view frame mAP "
            f"{frame_map(scores[:, None], val['labels'][vr, vt][:, None]):.1f}")
    return model.eval()


@torch.no_grad()
def predict_frames(model: FrameClassifier, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([torch.sigmoid(model(frames_to_tensor(frames[s:s + batch_size], SPEC))).numpy()
                           for s in range(0, len(frames), batch_size)])


@torch.no_grad()
def encode_split(encoder: torch.nn.Module, raw: dict, batch_size: int = 256) -> np.ndarray:
    """Frozen frame features for every (recording, view, time): [R, V, T, C] float16 (0 where invalid)."""
    encoder.eval()
    r, v, t = raw["frames"].shape[:3]
    flat = raw["frames"].reshape(r * v * t, *raw["frames"].shape[3:])
    feats = np.concatenate([encoder(frames_to_tensor(flat[s:s + batch_size], SPEC)).numpy()
                            for s in range(0, len(flat), batch_size)])
    feats = feats.reshape(r, v, t, -1) * raw["video_valid"][..., None]
    return feats.astype(np.float16)


def ensure_features(root: str | Path, *, encoder: str = "vit_hybrid64", encoder_epochs: int = 8,
                    log=print) -> Path:
    """Raw cache, trained frame encoder and cached features under `root/cache/`; each step done once."""
    root = Path(root)
    cache = root / "cache"
    ensure_raw(root, cache)
    weights = cache / "frame_encoder.safetensors"
    if not weights.exists():
        train, val = load_npz(cache / "raw_train.npz"), load_npz(cache / "raw_val.npz")
        start = time.time()
        clf = train_frame_encoder(train, val, encoder=encoder, epochs=encoder_epochs, log=log)
        info = {"encoder": encoder, "classes": int(train["labels"].shape[-1]), "seconds": round(time.time() - start, 1)}
        save_cached_tensors(weights, clf.state_dict(), info)
    clf = None
    for split in ("train", "val", "test"):
        out = cache / f"features_{split}.npz"
        if out.exists():
            continue
        raw = load_npz(cache / f"raw_{split}.npz")
        if clf is None:  # the frozen encoder, read once for the splits still to encode
            state, info = read_cached_tensors(weights)  # caches written before the info header: the defaults
            clf = FrameClassifier(info.get("encoder", encoder), int(info.get("classes", raw["labels"].shape[-1])))
            clf.load_state_dict(state)
        feats = encode_split(clf.encoder, raw)
        keep = {k: v for k, v in raw.items() if k != "frames"}
        atomic_write(out, lambda tmp: np.savez(tmp, video=feats, **keep))
    return cache


# --------------------------------------------------------------------------------------------- datasets

class MultiViewFeatures(Dataset):
    """Cached features of one split; `single_view`: every (recording, view) pair is a sample of one view."""

    KEYS = ("video", "video_valid", "fbank", "audio_valid", "person", "lidar", "lidar_mask", "lidar_times",
            "lidar_valid", "times", "labels", "sequence")

    def __init__(self, arrays: dict[str, np.ndarray], *, single_view: bool = False):
        self.a = {k: torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in self.KEYS}
        self.single_view = single_view
        self.views = self.a["video"].shape[1]

    def __len__(self) -> int:
        return len(self.a["times"]) * (self.views if self.single_view else 1)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        r, v = (i // self.views, i % self.views) if self.single_view else (i, None)
        item = {k: x[r] for k, x in self.a.items()}
        item["video"], item["fbank"] = item["video"].float(), item["fbank"].float()
        if v is not None:
            for k in ("video", "video_valid", "fbank", "audio_valid", "person"):
                item[k] = item[k][v:v + 1]
            item["lidar_valid"] = torch.zeros_like(item["lidar_valid"])  # one camera + its microphone only
        return item


def sensor_dropout(batch: dict[str, Tensor], *, p_view: float, p_modality: float, p_lidar: float,
                   generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Randomly hide whole views, a view's camera or microphone, or the lidar (training only)."""
    b, v, t = batch["video_valid"].shape
    rnd = lambda *s: torch.rand(*s, generator=generator)  # noqa: E731
    drop_view = rnd(b, v) < p_view
    drop_view[drop_view.all(1)] = False  # always keep at least one view
    vv = batch["video_valid"] & ~(drop_view | (rnd(b, v) < p_modality))[..., None]
    av = batch["audio_valid"] & ~(drop_view | (rnd(b, v) < p_modality))[..., None]
    lv = batch["lidar_valid"] & ~(rnd(b) < p_lidar)[:, None]
    return {**batch, "video_valid": vv, "audio_valid": av, "lidar_valid": lv}


# --------------------------------------------------------------------------------------------- Lightning

def multiview_records(sequence: Tensor, frame: Tensor, times: Tensor, class_names: list[str] | None) -> list[dict]:
    """Prediction records, one per recording, in `omnisense fuse`'s layout: grid `times` [T] (s), `frame_scores`
    [T][K], `sequence_scores` {class: probability} and `sequence_labels` (probability >= 0.5).

    sequence: [B, K] and frame: [B, T, K] probabilities; times: [B, T].
    """
    out = []
    for seq, fr, t in zip(sequence.cpu().tolist(), frame.cpu().tolist(), times.cpu().tolist()):
        names = list(class_names) if class_names else list(range(len(seq)))
        out.append({"times": [round(x, 3) for x in t], "frame_scores": [[round(x, 4) for x in row] for row in fr],
                    "sequence_scores": {str(c): round(p, 4) for c, p in zip(names, seq)},
                    "sequence_labels": [c for c, p in zip(names, seq) if p >= 0.5]})
    return out


class MultiViewTask(L.LightningModule):
    """Trains MultiTSF on cached multi-view features with the paper's losses.

    Args:
        model: a MultiTSF (for cached features: `frame_encoder: null`).
        lr, weight_decay, eta_min: Adam and its cosine schedule (the paper: 1e-4, 5e-4, 1e-5).
        modalities: which of video / audio / lidar the model sees.
        p_view, p_modality, p_lidar: sensor dropout during training.
        class_names: the K class names in label order, for prediction records.
    """

    def __init__(self, model: MultiTSF, lr: float = 1e-4, weight_decay: float = 5e-4, eta_min: float = 1e-5,
                 modalities: list[str] | None = None, p_view: float = 0.15, p_modality: float = 0.1,
                 p_lidar: float = 0.15, class_names: list[str] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.modalities = tuple(modalities or MODALITIES)
        self.class_names = class_names
        self._records: dict[str, list[tuple[np.ndarray, ...]]] = {}

    def forward(self, batch: dict[str, Tensor]):
        return self.model(**model_inputs(batch, self.modalities))

    def training_step(self, batch, batch_idx):
        batch = sensor_dropout(batch, p_view=self.hparams.p_view, p_modality=self.hparams.p_modality,
                               p_lidar=self.hparams.p_lidar)
        out = self(batch)
        losses = multitsf_loss(out, batch["sequence"], batch["labels"], out.row_valid.any(1) & _label_frames(batch),
                               batch["person"] if "video" in self.modalities else None, batch["video_valid"])
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=len(batch["times"]))
        return losses["loss"]

    def _eval_step(self, stage: str, batch) -> None:
        out = self(batch)
        arrays = (torch.sigmoid(out.sequence).float().cpu().numpy(), batch["sequence"].cpu().numpy(),
                  torch.sigmoid(out.frame).float().cpu().numpy(), batch["labels"].cpu().numpy(),
                  _label_frames(batch).cpu().numpy())
        # one record per recording: its sequence scores and labels, frame scores, labels and mask
        self._records.setdefault(stage, []).extend(zip(*arrays))

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def _eval_end(self, stage: str):
        if stage not in self._records:
            return
        records = gather_samples(self, self._records.pop(stage), stage)  # every recording once, in order
        if not records:
            return
        seq, seq_y, fr, fr_y, fr_v = (np.stack(x) for x in zip(*records))
        metrics = {"frame_map": frame_map(fr, fr_y, fr_v), "map_c": map_class(seq, seq_y),
                   "map_s": map_sample(seq, seq_y)}
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", float(np.nan_to_num(v)), prog_bar=k == "frame_map")

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_end(self):
        self._eval_end("test")

    def predict_step(self, batch, batch_idx) -> list[dict]:
        out = self(batch)
        return multiview_records(torch.sigmoid(out.sequence).float(), torch.sigmoid(out.frame).float(), batch["times"],
                                 self.class_names)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=self.hparams.eta_min)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _label_frames(batch: dict[str, Tensor]) -> Tensor:
    """Grid steps that carry labels: all of [0, duration) here (a [B, T] mask)."""
    return torch.ones(batch["labels"].shape[:2], dtype=torch.bool, device=batch["labels"].device)


class MultiViewDataModule(L.LightningDataModule):
    """Cached features of synthetic multi-view recordings (`omnisense data make multiview-recordings`).

    Args:
        root: the generated folder; its `cache/` is built on first use (raw alignment, frame-encoder training,
            features). None with `tiny`: a tiny set generated into a temporary folder (untrained encoder, 1 epoch).
        tiny: generate a tiny dataset instead of reading `root`.
        batch_size: recordings per batch.
        single_view: every (recording, view) is a sample with one camera + its microphone.
        encoder_epochs: epochs of frame-encoder training when the cache is built here.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, batch_size: int = 8, single_view: bool = False,
                 encoder_epochs: int = 8, num_workers: int = 0):
        super().__init__()
        self.root, self.tiny, self.batch_size, self.single_view = root, tiny, batch_size, single_view
        self.encoder_epochs, self.num_workers = encoder_epochs, num_workers
        self.data: dict[str, MultiViewFeatures] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        if self.tiny or self.root is None:
            from fusion.recordings import make_multiview_recordings

            root = Path(tempfile.mkdtemp(prefix="omnisense-multiview-"))
            make_multiview_recordings(root, seed=0, size="tiny")
            cache = ensure_features(root, encoder_epochs=1, log=lambda *_: None)
        else:
            cache = ensure_features(self.root, encoder_epochs=self.encoder_epochs)
        for split in ("train", "val", "test"):
            self.data[split] = MultiViewFeatures(load_npz(cache / f"features_{split}.npz"),
                                                 single_view=self.single_view)

    def train_dataloader(self):
        return DataLoader(self.data["train"], batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self.data["val"], batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.data["test"], batch_size=self.batch_size)

    def predict_dataloader(self):
        return self.test_dataloader()


