"""Multi-view, multi-modal action recognition: data preparation, feature caching, training and evaluation.

The recipe (MultiTSF on the synthetic recordings of `omnisense data make multiview-recordings`):

1. `prepare_split`: every recording is read (`fusion.streams.read_recording`: videos, audio tracks, lidar sweeps,
   clocks) and aligned on a 2.5 Hz grid over [0, duration) (MultiTSF samples frames at 2.5 fps): per view the
   nearest frame within half a grid period (else invalid), the 0.4 s of audio around each grid time as a Kaldi
   fbank (32 mel, 25 ms Hann, 10 ms shift, 40 frames; AST's recipe, normalised with the train-set statistics), the
   lidar sweeps of the window at their own timestamps, per-frame person scores, frame and sequence labels.
2. The frame encoder (a tiny hybrid ViT, 64 x 64) is first trained alone as a per-frame multi-label classifier of
   single views, on the frames where the person detector fires (`train_frame_encoder` says why), then frozen;
   its features are cached (`features_<split>.npz`).
   The released MultiTSF fine-tunes its ViT end to end every epoch on fully decoded videos; freezing and
   caching makes the CPU recipe possible, the price is that fusion cannot reshape the frame features.
3. `MultiViewTask` trains MultiTSF (audio MLP, lidar encoder, transformers and heads) on the cached features with
   the paper's losses and optimiser (Adam, wd 5e-4, cosine to 1e-5; lr raised to 5e-4 for the short CPU run),
   with sensor dropout (whole views, a view's camera or microphone, the lidar) so that absent sensors at
   inference degrade gracefully.
4. `run_experiment` (python -m omnisense.train.multiview experiment): all of the above, plus a single-view model
   (one camera + its microphone per sample), models trained on every subset of {camera, audio, lidar}, and ONE
   evaluation on the held-out test split: frame mAP, mAP_C, mAP_S of MultiTSF vs the best single view vs late
   fusion (the mean of the single-view model's per-view probabilities), each modality subset, and sensors
   dropped at inference, frames with the lights off, and a paired bootstrap of MultiTSF against each baseline.
   It writes results.json / results.md and exports the shipped weights.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from omnisense._errors import FileProblem
from omnisense._io import write_json_atomic, write_text_atomic
from fusion.metrics import frame_map, map_class, map_sample
from fusion.multitsf import MultiTSF, build_frame_encoder, multitsf_loss

GRID_RATE = 2.5          # Hz, MultiTSF's frame rate
AUDIO_CHUNK = 0.4        # s of audio per grid step
AUDIO_FRAMES, AUDIO_MELS = 40, 32
MAX_POINTS = 128         # points kept per sweep (random subset): CPU budget, ~250 are recorded
LIDAR_STRIDE = 4         # every 4th sweep: the 10 Hz lidar enters at 2.5 Hz (CPU budget of the FlatFormer)
PERSON_MIN = 0.3         # person score above which a frame trains the frame encoder
FRAME_SIZE = 64
FRAME_MEAN, FRAME_STD = 0.5, 0.25
MODALITIES = ("video", "audio", "lidar")


# --------------------------------------------------------------------------------------------- preparation

def fbank_chunks(chunks: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Audio chunks [T, S] -> log-mel fbank [T, AUDIO_FRAMES, AUDIO_MELS] (Kaldi, as AST / MultiTSF)."""
    import torchaudio

    out = np.zeros((len(chunks), AUDIO_FRAMES, AUDIO_MELS), np.float32)
    for i, c in enumerate(chunks):
        w = torch.from_numpy(c - c.mean())[None]
        fb = torchaudio.compliance.kaldi.fbank(w, htk_compat=True, sample_frequency=rate, use_energy=False,
                                               window_type="hanning", num_mel_bins=AUDIO_MELS, dither=0.0,
                                               frame_shift=10, frame_length=25).numpy()
        out[i, :min(len(fb), AUDIO_FRAMES)] = fb[:AUDIO_FRAMES]
    return out


def prepare_recording(rec, grid: np.ndarray, *, max_sweeps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Align one `fusion.streams.Recording` on `grid` -> arrays (see the module docstring)."""
    from fusion.streams import audio_chunks

    rng = np.random.default_rng(seed)
    aligned = rec.align(grid)
    cams = rec.of_kind("video")
    v, t = len(cams), len(grid)
    frames = np.zeros((v, t, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    fbank = np.zeros((v, t, AUDIO_FRAMES, AUDIO_MELS), np.float32)
    video_valid, audio_valid = np.zeros((v, t), bool), np.zeros((v, t), bool)
    person = np.zeros((v, t), np.float32)
    for i, cam in enumerate(cams):
        idx, ok = aligned.index[cam.name], aligned.valid[cam.name]
        frames[i, ok] = cam.data[idx[ok]]
        video_valid[i] = ok
        if cam.person is not None:
            person[i, ok] = cam.person[idx[ok]]
        try:
            audio = rec.stream(cam.name + "/audio")
        except KeyError:
            continue
        chunks, aok = audio_chunks(audio.data, audio.rate, float(audio.times[0]), audio.clock, grid, AUDIO_CHUNK)
        fbank[i] = fbank_chunks(chunks, audio.rate)
        audio_valid[i] = aok
    lidar = np.zeros((max_sweeps, MAX_POINTS, 4), np.float32)
    lidar_mask = np.zeros((max_sweeps, MAX_POINTS), bool)
    lidar_times = np.zeros(max_sweeps, np.float32)
    lidar_valid = np.zeros(max_sweeps, bool)
    for s in rec.of_kind("lidar")[:1]:
        tt = s.true_times
        keep = np.flatnonzero((tt >= grid[0] - 0.5) & (tt <= grid[-1] + 0.5))[::LIDAR_STRIDE][:max_sweeps]
        for j, k in enumerate(keep):
            pts = s.data[k]
            if len(pts) > MAX_POINTS:
                pts = pts[rng.choice(len(pts), MAX_POINTS, replace=False)]
            lidar[j, :len(pts)] = pts[:, :4]
            lidar_mask[j, :len(pts)] = True
            lidar_times[j] = tt[k]
            lidar_valid[j] = True
    dark = np.zeros(t, bool)  # grid steps with the room lights off (synthetic recordings say so; for slicing only)
    off = rec.meta.get("lights_off")
    if off:
        dark = (grid >= off[0]) & (grid < off[1])
    return dict(frames=frames, video_valid=video_valid, fbank=fbank, audio_valid=audio_valid, person=person,
                lidar=lidar, lidar_mask=lidar_mask, lidar_times=lidar_times, lidar_valid=lidar_valid,
                times=grid.astype(np.float32), labels=rec.frame_labels(grid), sequence=rec.sequence_labels(),
                dark=dark)


def prepare_split(root: Path, split: str) -> dict[str, np.ndarray]:
    """All recordings of `root/<split>.json` stacked: dict of arrays with a leading recording axis."""
    from fusion.recordings import read_multisensor_home
    from fusion.streams import make_grid, read_recording

    entries = read_multisensor_home(root / f"{split}.json")
    items = []
    for n, e in enumerate(entries):
        if e.recording is None:
            raise FileProblem(root / f"{split}.json", "entries need a 'recording' manifest (clocks, lidar)")
        rec = read_recording(e.recording, frame_size=(FRAME_SIZE, FRAME_SIZE))
        duration = float(rec.meta.get("duration", rec.span[1]))
        items.append(prepare_recording(rec, make_grid(0.0, duration, GRID_RATE),
                                       max_sweeps=int(duration * 10 / LIDAR_STRIDE) + 8, seed=n))
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def ensure_raw(root: Path, cache: Path) -> None:
    """Write `cache/raw_<split>.npz` for train/val/test once (normalising fbanks with train statistics)."""
    cache.mkdir(parents=True, exist_ok=True)
    stats = None
    for split in ("train", "val", "test"):
        path = cache / f"raw_{split}.npz"
        if path.exists():
            if split == "train":
                with np.load(path) as z:
                    stats = (float(z["fbank_mean"]), float(z["fbank_std"]))
            continue
        data = prepare_split(root, split)
        if stats is None:
            sel = data["fbank"][data["audio_valid"]]
            stats = (float(sel.mean()), float(sel.std() + 1e-6))
        data["fbank"] = ((data["fbank"] - stats[0]) / (2 * stats[1])).astype(np.float16)  # AST's (x - m) / 2s
        np.savez(str(path) + ".tmp.npz", fbank_mean=stats[0], fbank_std=stats[1], **data)
        Path(str(path) + ".tmp.npz").replace(path)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileProblem(path, "missing")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def frames_to_tensor(frames: np.ndarray | Tensor) -> Tensor:
    """uint8 [..., H, W, 3] -> normalised float [..., 3, H, W]."""
    x = torch.as_tensor(frames).float().div(255.0)
    return ((x - FRAME_MEAN) / FRAME_STD).movedim(-1, -3)


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
            x = frames_to_tensor(frames[b])
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
    return np.concatenate([torch.sigmoid(model(frames_to_tensor(frames[s:s + batch_size]))).numpy()
                           for s in range(0, len(frames), batch_size)])


@torch.no_grad()
def encode_split(encoder: torch.nn.Module, raw: dict, batch_size: int = 256) -> np.ndarray:
    """Frozen frame features for every (recording, view, time): [R, V, T, C] float16 (0 where invalid)."""
    encoder.eval()
    r, v, t = raw["frames"].shape[:3]
    flat = raw["frames"].reshape(r * v * t, *raw["frames"].shape[3:])
    feats = np.concatenate([encoder(frames_to_tensor(flat[s:s + batch_size])).numpy()
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
        from omnisense.weights import save_weights

        train, val = load_npz(cache / "raw_train.npz"), load_npz(cache / "raw_val.npz")
        start = time.time()
        clf = train_frame_encoder(train, val, encoder=encoder, epochs=encoder_epochs, log=log)
        save_weights(weights, clf.state_dict(), {"encoder": encoder, "classes": int(train["labels"].shape[-1]),
                                                  "seconds": round(time.time() - start, 1)})
    for split in ("train", "val", "test"):
        out = cache / f"features_{split}.npz"
        if out.exists():
            continue
        from omnisense.weights import load_weights

        state, meta = load_weights(weights)
        clf = FrameClassifier(meta["encoder"], meta["classes"])
        clf.load_state_dict(state)
        raw = load_npz(cache / f"raw_{split}.npz")
        feats = encode_split(clf.encoder, raw)
        keep = {k: v for k, v in raw.items() if k != "frames"}
        np.savez(str(out) + ".tmp.npz", video=feats, **keep)
        Path(str(out) + ".tmp.npz").replace(out)
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


def model_inputs(batch: dict[str, Tensor], modalities: tuple[str, ...] = MODALITIES) -> dict[str, Any]:
    """A batch of `MultiViewFeatures` -> MultiTSF keyword arguments, keeping only `modalities`."""
    has_lidar = "lidar" in modalities and bool(batch["lidar_valid"].any())
    return dict(times=batch["times"],
                video=batch["video"] if "video" in modalities else None, video_valid=batch["video_valid"],
                audio=batch["fbank"] if "audio" in modalities else None, audio_valid=batch["audio_valid"],
                lidar=batch["lidar"] if has_lidar else None, lidar_mask=batch["lidar_mask"],
                lidar_times=batch["lidar_times"], lidar_valid=batch["lidar_valid"])


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

class MultiViewTask(L.LightningModule):
    """Trains MultiTSF on cached multi-view features with the paper's losses.

    Args:
        model: a MultiTSF (for cached features: `frame_encoder: null`).
        lr, weight_decay, eta_min: Adam and its cosine schedule (the paper: 1e-4, 5e-4, 1e-5).
        modalities: which of video / audio / lidar the model sees.
        p_view, p_modality, p_lidar: sensor dropout during training.
    """

    def __init__(self, model: MultiTSF, lr: float = 1e-4, weight_decay: float = 5e-4, eta_min: float = 1e-5,
                 modalities: list[str] | None = None, p_view: float = 0.15, p_modality: float = 0.1,
                 p_lidar: float = 0.15):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.modalities = tuple(modalities or MODALITIES)
        self._val: list[tuple[np.ndarray, ...]] = []

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

    def _eval_step(self, batch):
        out = self(batch)
        self._val.append((torch.sigmoid(out.sequence).float().cpu().numpy(), batch["sequence"].cpu().numpy(),
                          torch.sigmoid(out.frame).float().cpu().numpy(), batch["labels"].cpu().numpy(),
                          _label_frames(batch).cpu().numpy()))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def _eval_end(self, prefix: str):
        if not self._val:
            return
        seq, seq_y, fr, fr_y, fr_v = (np.concatenate(x) for x in zip(*self._val))
        self._val.clear()
        metrics = {"frame_map": frame_map(fr, fr_y, fr_v), "map_c": map_class(seq, seq_y),
                   "map_s": map_sample(seq, seq_y)}
        for k, v in metrics.items():
            self.log(f"{prefix}/{k}", float(np.nan_to_num(v)), prog_bar=k == "frame_map")

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_end(self):
        self._eval_end("test")

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


# --------------------------------------------------------------------------------------------- the experiment

SUBSETS = [("video",), ("audio",), ("lidar",), ("video", "audio"), ("video", "lidar"), ("audio", "lidar"),
           ("video", "audio", "lidar")]


def small_fusion_model(**overrides) -> MultiTSF:
    """`multitsf_small` without its frame encoder: it is trained on cached features."""
    from fusion.multitsf import multitsf_small

    return multitsf_small(frame_encoder=None, **overrides)


def _lock_held(lock: Path) -> bool:
    """True while the process named in `lock` is alive (a killed run's stale lock does not block)."""
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return pid != os.getpid()


def fit_model(name: str, out: Path, train: MultiViewFeatures, val: MultiViewFeatures, *, modalities, epochs: int,
              batch_size: int, lr: float, seed: int, log, model_args: dict | None = None) -> MultiTSF:
    """Train one MultiTSF (resuming from its last checkpoint), keep the last epoch (no selection on test)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from omnisense.weights import load_weights, save_weights

    weights = out / "models" / f"{name}.safetensors"
    model = small_fusion_model(**(model_args or {}))
    weights.parent.mkdir(parents=True, exist_ok=True)
    lock = weights.with_suffix(".lock")  # another process (`--only`) is training this model: wait for it
    while _lock_held(lock) and not weights.exists():
        time.sleep(10)
    if weights.exists():
        model.load_state_dict(load_weights(weights)[0])
        return model.eval()
    lock.write_text(str(os.getpid()))
    L.seed_everything(seed, verbose=False)
    task = MultiViewTask(model, lr=lr, modalities=list(modalities))
    ckpt_dir = out / "checkpoints" / name
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=5,
                        check_val_every_n_epoch=max(epochs // 4, 1),
                        logger=CSVLogger(str(out / "logs"), name=name),
                        # "last.ckpt" rewritten at the end of every training epoch (monitor None, top 1); with
                        # save_top_k=0 + save_last it was only written at validation epochs, so a kill lost epochs
                        callbacks=[ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", every_n_epochs=1,
                                                   save_top_k=1, enable_version_counter=False,
                                                   save_on_train_epoch_end=True)])
    last = ckpt_dir / "last.ckpt"
    start = time.time()
    g = torch.Generator().manual_seed(seed)
    trainer.fit(task, DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
                DataLoader(val, batch_size=batch_size), ckpt_path=str(last) if last.exists() else None)
    metrics = {k: round(float(v), 2) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    log(f"{name}: {epochs} epochs in {time.time() - start:.0f} s; last val {metrics}")
    save_weights(weights, task.model.state_dict(), {"modalities": list(modalities), "epochs": epochs,
                                                    "model_args": model_args or {},
                                                    "val": metrics, "seconds": round(time.time() - start, 1)})
    lock.unlink(missing_ok=True)
    return task.model.eval()


@torch.no_grad()
def predict(model: MultiTSF, ds: MultiViewFeatures, modalities=MODALITIES, edit=None, batch_size: int = 16
            ) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores: sequence [N, K] and frame [N, T, K]; `edit(batch)` may hide sensors first."""
    model.eval()
    seq, fr = [], []
    for batch in DataLoader(ds, batch_size=batch_size):
        if edit is not None:
            batch = edit(batch)
        out = model(**model_inputs(batch, modalities))
        seq.append(torch.sigmoid(out.sequence).numpy())
        fr.append(torch.sigmoid(out.frame).numpy())
    return np.concatenate(seq), np.concatenate(fr)


def score(seq: np.ndarray, fr: np.ndarray, ds: MultiViewFeatures) -> dict[str, float]:
    seq_y, fr_y = ds.a["sequence"].numpy(), ds.a["labels"].numpy()
    return {"frame_mAP": round(frame_map(fr, fr_y), 2), "mAP_C": round(map_class(seq, seq_y), 2),
            "mAP_S": round(map_sample(seq, seq_y), 2)}


def _hide(**what):
    def edit(batch):
        batch = dict(batch)
        if "views" in what:
            keep = torch.ones(batch["video_valid"].shape[1], dtype=torch.bool)
            keep[list(what["views"])] = False
            batch["video_valid"] = batch["video_valid"] & keep[None, :, None]
            batch["audio_valid"] = batch["audio_valid"] & keep[None, :, None]
        return batch
    return edit


def run_experiment(root: Path, out: Path, *, epochs: int = 20, single_epochs: int = 6, subset_epochs: int = 20,
                   batch_size: int = 8, lr: float = 5e-4, seed: int = 0, encoder_epochs: int = 8,
                   export: Path | None = None, only: list[str] | None = None, bootstrap: int = 1000
                   ) -> dict[str, Any] | None:
    """Every model of the comparison, then one evaluation on the test split; results.json and results.md."""
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.txt"

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    t0 = time.time()
    cache = ensure_features(root, encoder_epochs=encoder_epochs, log=log)
    log(f"features ready in {time.time() - t0:.0f} s")
    arrays = {s: load_npz(cache / f"features_{s}.npz") for s in ("train", "val", "test")}
    multi = {s: MultiViewFeatures(a) for s, a in arrays.items()}
    single = {s: MultiViewFeatures(a, single_view=True) for s, a in arrays.items()}
    common = dict(batch_size=batch_size, lr=lr, seed=seed, log=log)
    # name -> (samples, modalities, epochs, model args); each model is trained once (weights under out/models/,
    # resumable).
    specs = {"multitsf_all": (multi, MODALITIES, epochs, {}),
             "single_view": (single, ("video", "audio"), single_epochs, {})}
    specs.update({"multitsf_" + "+".join(sub): (multi, sub, subset_epochs, {}) for sub in SUBSETS[:-1]})
    if only:  # train these models only (a second process can train some while the first trains the others)
        for name in only:
            data, mods, n, kw = specs[name]
            fit_model(name, out, data["train"], data["val"], modalities=mods, epochs=n, model_args=kw, **common)
        return None
    models = {name: fit_model(name, out, data["train"], data["val"], modalities=mods, epochs=n, model_args=kw,
                              **common)
              for name, (data, mods, n, kw) in specs.items()}
    main, sv = models["multitsf_all"], models["single_view"]
    subsets = {sub: models["multitsf_" + "+".join(sub)] for sub in SUBSETS[:-1]}
    log("training done; evaluating on the test split")
    test, v = multi["test"], multi["test"].views
    results: dict[str, Any] = {"split": "test", "recordings": len(test), "views": v, "grid_rate_hz": GRID_RATE}
    main_pred = predict(main, test)
    results["multitsf"] = score(*main_pred, test)
    # single view: per view index, best chosen on val; late fusion: mean of per-view probabilities
    per_view = {}
    for split in ("val", "test"):
        s_seq, s_fr = predict(sv, single[split], ("video", "audio"))
        n = len(multi[split])
        s_seq, s_fr = s_seq.reshape(n, v, -1), s_fr.reshape(n, v, *s_fr.shape[1:])
        per_view[split] = [score(s_seq[:, i], s_fr[:, i], multi[split]) for i in range(v)]
        if split == "test":
            results["late_fusion_mean"] = score(s_seq.mean(1), s_fr.mean(1), test)
            results["late_fusion_max"] = score(s_seq.max(1), s_fr.max(1), test)
            baselines = {"late fusion (mean)": (s_seq.mean(1), s_fr.mean(1)),
                         "late fusion (max)": (s_seq.max(1), s_fr.max(1))}
            baselines.update({f"cam{i + 1}": (s_seq[:, i], s_fr[:, i]) for i in range(v)})
    best = int(np.argmax([m["frame_mAP"] for m in per_view["val"]]))
    if bootstrap:
        results["bootstrap"] = paired_bootstrap(main_pred, baselines, test, resamples=bootstrap, seed=seed)
    results["single_view_test"] = {f"cam{i + 1}": m for i, m in enumerate(per_view["test"])}
    results["best_single_view"] = {"view": f"cam{best + 1} (chosen on val)", **per_view["test"][best]}
    results["best_single_view_oracle"] = max(per_view["test"], key=lambda m: m["frame_mAP"])
    # each modality's worth: models trained on every subset
    results["subsets_trained"] = {"+".join(s): score(*predict(m, test, s), test) for s, m in subsets.items()}
    results["subsets_trained"]["video+audio+lidar"] = results["multitsf"]
    # per class: which modality carries which action (frame AP, percent)
    from fusion.metrics import average_precision
    from fusion.recordings import CLASSES

    y = test.a["labels"].numpy().reshape(-1, len(CLASSES))
    per_class = {"+".join(sub): predict(m, test, sub)[1] for sub, m in subsets.items()}
    per_class["video+audio+lidar"] = main_pred[1]
    results["frame_ap_per_class"] = {
        k: {c: round(100 * average_precision(p.reshape(-1, len(CLASSES))[:, j], y[:, j]), 1)
            for j, c in enumerate(CLASSES)} for k, p in per_class.items()}
    # sensors dropped at inference from the full model
    drops = {"no camera": dict(modalities=("audio", "lidar")), "no audio": dict(modalities=("video", "lidar")),
             "no lidar": dict(modalities=("video", "audio")), "lidar only": dict(modalities=("lidar",))}
    drops.update({"camera only": dict(modalities=("video",)), "audio only": dict(modalities=("audio",))})
    results["dropped_at_inference"] = {k: score(*predict(main, test, **kw), test) for k, kw in drops.items()}
    one = [score(*predict(main, test, edit=_hide(views=[i])), test) for i in range(v)]
    results["dropped_at_inference"]["one view missing (mean over which)"] = {
        k: round(float(np.mean([o[k] for o in one])), 2) for k in one[0]}
    two = [score(*predict(main, test, edit=_hide(views=[i, (i + 1) % v])), test) for i in range(v)]
    results["dropped_at_inference"]["two views missing (mean)"] = {
        k: round(float(np.mean([o[k] for o in two])), 2) for k in two[0]}
    # the frames recorded with the room lights off (cameras nearly blind): what the lidar is worth there
    dark = arrays["test"].get("dark")
    if dark is not None and dark.any():
        y = test.a["labels"].numpy()
        _, s_fr = predict(sv, single["test"], ("video", "audio"))
        s_fr = s_fr.reshape(len(test), v, *s_fr.shape[1:])
        results["lights_off_frames"] = {
            "frames": int(dark.sum()),
            "MultiTSF": round(frame_map(predict(main, test)[1], y, dark), 2),
            "MultiTSF, lidar dropped": round(frame_map(predict(main, test, ("video", "audio"))[1], y, dark), 2),
            "best single view": round(frame_map(s_fr[:, best], y, dark), 2),
            "late fusion (mean)": round(frame_map(s_fr.mean(1), y, dark), 2)}
    results["seconds_total"] = round(time.time() - t0, 1)
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.md", results_markdown(results))
    log(results_markdown(results))
    if export is not None:
        export_shipped(main, cache, export, results)
        log(f"exported {export}")
    return results


def paired_bootstrap(ours: tuple[np.ndarray, np.ndarray], baselines: dict[str, tuple[np.ndarray, np.ndarray]],
                     ds: MultiViewFeatures, *, resamples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """MultiTSF minus each baseline over `resamples` resamplings of the recordings (the same ones for both):
    per metric, the mean difference and its 2.5 / 97.5 percentiles."""
    seq_y, fr_y = ds.a["sequence"].numpy(), ds.a["labels"].numpy()
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(seq_y), len(seq_y)) for _ in range(resamples)]

    def metrics(seq, fr, ix):
        return frame_map(fr[ix], fr_y[ix]), map_class(seq[ix], seq_y[ix]), map_sample(seq[ix], seq_y[ix])

    mine = np.array([metrics(*ours, ix) for ix in draws])
    out = {}
    for name, pred in baselines.items():
        d = mine - np.array([metrics(*pred, ix) for ix in draws])
        lo, hi = np.nanpercentile(d, [2.5, 97.5], axis=0)
        out[name] = {m: [round(float(np.nanmean(d[:, j])), 2), round(float(lo[j]), 2), round(float(hi[j]), 2)]
                     for j, m in enumerate(("frame_mAP", "mAP_C", "mAP_S"))}
    return out


def results_markdown(r: dict[str, Any]) -> str:
    def row(name, m):
        return f"| {name} | {m['frame_mAP']:.1f} | {m['mAP_C']:.1f} | {m['mAP_S']:.1f} |"

    head = "| model | frame mAP | mAP_C | mAP_S |\n|---|---|---|---|"
    lines = [f"Held-out test split: {r['recordings']} recordings, {r['views']} cameras + audio + lidar.", "", head,
             row("MultiTSF (camera + audio + lidar)", r["multitsf"]),
             row(f"best single view, {r['best_single_view']['view']}", r["best_single_view"]),
             row("best single view (oracle: best on test)", r["best_single_view_oracle"]),
             row("late fusion (mean of per-view probabilities)", r["late_fusion_mean"]),
             row("late fusion (max of per-view probabilities)", r["late_fusion_max"]), "",
             "Trained on each subset of the modalities:", "", head]
    lines += [row(k, m) for k, m in r["subsets_trained"].items()]
    lines += ["", "The full model with sensors missing at inference:", "", head, row("nothing missing", r["multitsf"])]
    lines += [row(k, m) for k, m in r["dropped_at_inference"].items()]
    if "frame_ap_per_class" in r:
        classes = list(next(iter(r["frame_ap_per_class"].values())))
        lines += ["", "Frame AP per class of the models trained on each subset:", "",
                  "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
        lines += [f"| {k} | " + " | ".join(f"{m[c]:.1f}" for c in classes) + " |"
                  for k, m in r["frame_ap_per_class"].items()]
    if "lights_off_frames" in r:
        d = r["lights_off_frames"]
        lines += ["", f"Frame mAP on the {d['frames']} test frames recorded with the lights off:", "",
                  "| model | frame mAP |", "|---|---|"]
        lines += [f"| {k} | {m:.1f} |" for k, m in d.items() if k != "frames"]
    if "bootstrap" in r:
        lines += ["", "MultiTSF minus each baseline, paired bootstrap over the test recordings: mean [95 % interval]:",
                  "", "| baseline | frame mAP | mAP_C | mAP_S |", "|---|---|---|---|"]
        cell = "%+.1f [%+.1f, %+.1f]"
        lines += [f"| {k} | " + " | ".join(cell % tuple(m[x]) for x in ("frame_mAP", "mAP_C", "mAP_S")) + " |"
                  for k, m in r["bootstrap"].items()]
    lines += ["", "Per view (single-view model, test):", "", head]
    lines += [row(k, m) for k, m in r["single_view_test"].items()]
    return "\n".join(lines) + "\n"


def export_shipped(model: MultiTSF, cache: Path, path: Path, results: dict[str, Any]) -> Path:
    """One model for raw recordings: the frozen frame encoder put back into `multitsf_small`, plus the fusion."""
    from omnisense.weights import load_weights, save_weights
    from fusion.multitsf import multitsf_small
    from fusion.recordings import CLASSES

    args = {"frame_from": model.frame_from, "sequence_from": model.sequence_from}
    full = multitsf_small(**args)
    enc_state, _ = load_weights(cache / "frame_encoder.safetensors")
    state = {k: v for k, v in model.state_dict().items()}
    state.update({k: v for k, v in enc_state.items() if k.startswith("encoder.")})  # FrameClassifier.encoder
    full.load_state_dict(state)
    with np.load(cache / "raw_train.npz") as z:
        stats = [float(z["fbank_mean"]), float(z["fbank_std"])]
    meta = {"variant": "multitsf_small", "model_args": args, "classes": CLASSES, "grid_rate_hz": GRID_RATE,
            "window_steps": 30,
            "frame_size": FRAME_SIZE, "frame_mean": FRAME_MEAN, "frame_std": FRAME_STD,
            "audio": {"rate": 16000, "chunk_s": AUDIO_CHUNK, "frames": AUDIO_FRAMES, "mels": AUDIO_MELS,
                      "fbank_mean": stats[0], "fbank_std": stats[1]},
            "trained_on": "synthetic multiview-recordings (size small, seed 0)",
            "recipe": "python -m omnisense.train.multiview experiment --root ROOT --out OUT --export PATH",
            "lidar_stride": LIDAR_STRIDE, "max_points": MAX_POINTS,
            "test_metrics": {k: results[k] for k in ("multitsf", "best_single_view", "late_fusion_mean")}}
    # float16 on disk keeps the file small (~5 MB); load_state_dict casts back to the float32 parameters.
    return save_weights(path, {k: v.half().contiguous() for k, v in full.state_dict().items()}, meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m omnisense.train.multiview", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("experiment", help="features, every model, one evaluation on test, export")
    e.add_argument("--root", type=Path, required=True, help="folder from `omnisense data make multiview-recordings`")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--epochs", type=int, default=20)
    e.add_argument("--single-epochs", type=int, default=6)
    e.add_argument("--subset-epochs", type=int, default=20)
    e.add_argument("--only", nargs="+", help="train only these models (e.g. multitsf_lidar), no evaluation")
    e.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (0: none)")
    e.add_argument("--encoder-epochs", type=int, default=8)
    e.add_argument("--lr", type=float, default=5e-4)
    e.add_argument("--export", type=Path)
    f = sub.add_parser("features", help="only build the cache (alignment, frame encoder, features)")
    f.add_argument("--root", type=Path, required=True)
    f.add_argument("--encoder-epochs", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "features":
        ensure_features(args.root, encoder_epochs=args.encoder_epochs)
        return 0
    run_experiment(args.root, args.out, epochs=args.epochs, single_epochs=args.single_epochs,
                   subset_epochs=args.subset_epochs, encoder_epochs=args.encoder_epochs, lr=args.lr,
                   export=args.export, only=args.only, bootstrap=args.bootstrap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
