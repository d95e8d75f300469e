"""Fusion inference, and the one input preparation that MultiTSF's training and inference both call.

    model, meta = omnisense.load_model("multitsf_small_synthetic", task="fusion")
    result = fuse_recording(model, "recording/", spec=meta.transforms(), classes=meta.classes)

A recording (`fusion.streams.read_recording`: per-view videos with their audio tracks, lidar sweeps, per-sensor
clocks) is aligned on the spec's grid (MultiTSF samples frames at 2.5 Hz): per view the nearest frame within half a
grid period (else invalid), the `audio_chunk_s` of audio around each grid time as a Kaldi fbank (AST's recipe:
25 ms Hann, 10 ms shift, normalised as `(fbank - mean) / (2 std)` with the training set's statistics), the lidar
sweeps of the window at their own timestamps (every `lidar_stride`-th, at most `max_points` points each).
`prepare_recording` does the alignment, `frames_to_tensor` and `normalize_fbank` the normalisation, `model_inputs`
turns a batch into MultiTSF's keyword arguments; `omnisense.train.multiview` caches the same arrays for training.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fusion._errors import FileProblem

__all__ = ["FusionSpec", "MODALITIES", "fbank_chunks", "frames_to_tensor", "fuse_recording", "model_inputs",
           "normalize_fbank", "plot_timeline", "prepare_recording", "read_for"]

MODALITIES = ("video", "audio", "lidar")
LIDAR_RATE = 10.0  # Hz, the sweep rate the windows' sweep budget assumes


@dataclass(frozen=True)
class FusionSpec:
    """MultiTSF's input: how a recording becomes the model's arrays.

    Attributes:
        grid_rate_hz: the common grid the sensors are aligned on (MultiTSF: 2.5 Hz).
        window_steps: grid steps fused at once by `fuse_recording` (30 steps: 12 s).
        frame_size: frames are decoded at `frame_size` x `frame_size` pixels.
        frame_mean, frame_std: frame normalisation, `(x / 255 - mean) / std`: one value, or one per RGB channel
            (the official MultiTSF's ImageNet statistics).
        audio_rate: audio is resampled to this rate (Hz).
        audio_chunk_s: seconds of audio per grid step, centred on it.
        audio_frames, audio_mels: the fbank of a chunk, `[audio_frames, audio_mels]` (10 ms frames).
        fbank_mean, fbank_std: the training set's fbank statistics, `(fbank - mean) / (2 std)`.
        lidar_stride: every `lidar_stride`-th sweep is used (10 Hz sweeps enter at 10 / stride Hz).
        max_points: points kept per sweep (a seeded random subset).
    """

    grid_rate_hz: float = 2.5
    window_steps: int = 30
    frame_size: int = 64
    frame_mean: float | tuple[float, float, float] = 0.5
    frame_std: float | tuple[float, float, float] = 0.25
    audio_rate: int = 16000
    audio_chunk_s: float = 0.4
    audio_frames: int = 40
    audio_mels: int = 32
    fbank_mean: float = 0.0
    fbank_std: float = 1.0
    lidar_stride: int = 4
    max_points: int = 128

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusionSpec":
        """The spec from a weights file's `input` record; an unknown key is a TypeError naming it."""
        spec = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
        if spec.fbank_std <= 0 or min(np.atleast_1d(spec.frame_std)) <= 0:
            raise ValueError(f"fbank_std and frame_std must be positive, got {spec.fbank_std}, {spec.frame_std}")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_for(spec: FusionSpec, path: str | Path, person_detector=None):
    """`fusion.streams.read_recording` at the spec's frame size and audio rate (person scores from
    `person_detector` for views that have none)."""
    from fusion.streams import read_recording

    return read_recording(path, frame_size=(spec.frame_size, spec.frame_size), audio_rate=spec.audio_rate,
                          person_detector=person_detector)


def fbank_chunks(chunks: np.ndarray, rate: int, spec: FusionSpec) -> np.ndarray:
    """Audio chunks [T, S] at `rate` Hz -> log-mel fbank [T, audio_frames, audio_mels] (Kaldi, as AST / MultiTSF),
    not yet normalised (`normalize_fbank`)."""
    import torchaudio

    out = np.zeros((len(chunks), spec.audio_frames, spec.audio_mels), np.float32)
    for i, c in enumerate(chunks):
        w = torch.from_numpy(c - c.mean())[None]
        fb = torchaudio.compliance.kaldi.fbank(w, htk_compat=True, sample_frequency=rate, use_energy=False,
                                               window_type="hanning", num_mel_bins=spec.audio_mels, dither=0.0,
                                               frame_shift=10, frame_length=25).numpy()
        out[i, :min(len(fb), spec.audio_frames)] = fb[:spec.audio_frames]
    return out


def normalize_fbank(fbank: np.ndarray, spec: FusionSpec) -> np.ndarray:
    """AST's normalisation with the training set's statistics: `(fbank - mean) / (2 std)`."""
    return (fbank - spec.fbank_mean) / (2 * spec.fbank_std)


def frames_to_tensor(frames: np.ndarray | Tensor, spec: FusionSpec) -> Tensor:
    """uint8 frames [..., H, W, 3] -> normalised float [..., 3, H, W]."""
    x = torch.as_tensor(frames).float().div(255.0)
    mean, std = torch.as_tensor(spec.frame_mean, dtype=x.dtype), torch.as_tensor(spec.frame_std, dtype=x.dtype)
    return ((x - mean) / std).movedim(-1, -3)


def prepare_recording(rec, grid: np.ndarray, spec: FusionSpec, *, max_sweeps: int, seed: int = 0
                      ) -> dict[str, np.ndarray]:
    """Align one `fusion.streams.Recording` on `grid` [T] (true seconds) -> arrays, V views:

    frames [V, T, S, S, 3] uint8, video_valid [V, T], fbank [V, T, audio_frames, audio_mels] (not normalised),
    audio_valid [V, T], person [V, T] scores, lidar [max_sweeps, max_points, 4] (x, y, z, intensity; metres),
    lidar_mask [max_sweeps, max_points], lidar_times [max_sweeps] and lidar_valid [max_sweeps], times [T],
    labels [T, K] and sequence [K] (from the recording's tricks), dark [T] (lights off; for slicing only).
    """
    from fusion.streams import audio_chunks

    rng = np.random.default_rng(seed)
    aligned = rec.align(grid)
    cams = rec.of_kind("video")
    v, t, size = len(cams), len(grid), spec.frame_size
    frames = np.zeros((v, t, size, size, 3), np.uint8)
    fbank = np.zeros((v, t, spec.audio_frames, spec.audio_mels), np.float32)
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
        chunks, aok = audio_chunks(audio.data, audio.rate, float(audio.times[0]), audio.clock, grid,
                                   spec.audio_chunk_s)
        fbank[i] = fbank_chunks(chunks, audio.rate, spec)
        audio_valid[i] = aok
    lidar = np.zeros((max_sweeps, spec.max_points, 4), np.float32)
    lidar_mask = np.zeros((max_sweeps, spec.max_points), bool)
    lidar_times = np.zeros(max_sweeps, np.float32)
    lidar_valid = np.zeros(max_sweeps, bool)
    for s in rec.of_kind("lidar")[:1]:
        tt = s.true_times
        keep = np.flatnonzero((tt >= grid[0] - 0.5) & (tt <= grid[-1] + 0.5))[::spec.lidar_stride][:max_sweeps]
        for j, k in enumerate(keep):
            pts = s.data[k]
            if len(pts) > spec.max_points:
                pts = pts[rng.choice(len(pts), spec.max_points, replace=False)]
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


def model_inputs(batch: dict[str, Tensor], modalities: tuple[str, ...] = MODALITIES) -> dict[str, Any]:
    """A batch -> MultiTSF keyword arguments, keeping only `modalities`.

    `batch["video"]` is normalised frames [B, V, T, 3, S, S] (a model with its frame encoder) or cached frame
    features [B, V, T, C]; `batch["fbank"]` normalised fbanks [B, V, T, audio_frames, audio_mels]; the other keys
    are `prepare_recording`'s, batched.
    """
    has_lidar = "lidar" in modalities and bool(batch["lidar_valid"].any())
    return dict(times=batch["times"],
                video=batch["video"] if "video" in modalities else None, video_valid=batch["video_valid"],
                audio=batch["fbank"] if "audio" in modalities else None, audio_valid=batch["audio_valid"],
                lidar=batch["lidar"] if has_lidar else None, lidar_mask=batch["lidar_mask"],
                lidar_times=batch["lidar_times"], lidar_valid=batch["lidar_valid"])


@torch.no_grad()
def fuse_recording(model: nn.Module, recording: str | Path, *, spec: FusionSpec, classes: list[str],
                   person_detector=None) -> dict[str, Any]:
    """Fuse one recording window by window (`spec.window_steps` grid steps) with a MultiTSF that has its frame
    encoder.

    Args:
        model: a MultiTSF (`omnisense.load_model(..., task="fusion")`).
        recording: a folder of per-view videos (with audio; a `lidar/` sweep folder too), a folder with a
            `recording.json` manifest, or the manifest itself.
        spec: the weights' input spec (`meta.transforms()`).
        classes: the K class names in the model's order.
        person_detector: frames uint8 [N, H, W, 3] -> person scores [N] (`video.people.HogPersonDetector`), run on
            the views whose manifest has no person scores (real footage).

    Returns:
        JSON-ready: the sensors and their clocks, grid `times` [T] (s, common clock), `frame_scores` [T][K],
        `sequence_scores` and `sequence_labels` (a label present in any window), `coverage` (the fraction of valid
        (view, step) pairs per modality), `ground_truth` when the manifest has it; per view, `person_scores` [T]
        (the detector's or the manifest's, 0 where the view has no frame) beside `human_presence` [T] (the
        human-centric head's softmax over the window's valid steps, what it was trained to match).
    """
    classes = list(classes)
    rec = read_for(spec, recording, person_detector)
    rec.classes = rec.classes or classes
    grid = rec.grid(spec.grid_rate_hz)
    if len(grid) == 0:
        raise FileProblem(Path(recording), "recording shorter than one grid step")
    # Sensors the recording lacks are absent for the model (None), not present and invalid.
    modalities = tuple(m for m in MODALITIES if m == "lidar" or rec.of_kind(m))
    device = next(model.parameters()).device
    model.eval()
    frame_scores, seq_scores, valid_frac, person, human = [], [], {}, [], []
    for s in range(0, len(grid), spec.window_steps):
        g = grid[s:s + spec.window_steps]
        a = prepare_recording(rec, g, spec, max_sweeps=int(len(g) / spec.grid_rate_hz * LIDAR_RATE) + 12, seed=s)
        for name in ("video", "audio"):
            valid_frac.setdefault(name, []).append(a[f"{name}_valid"])
        batch = {k: torch.from_numpy(a[k])[None] for k in ("times", "video_valid", "audio_valid", "lidar",
                                                           "lidar_mask", "lidar_times", "lidar_valid")}
        batch["video"] = frames_to_tensor(a["frames"], spec)[None]
        batch["fbank"] = torch.from_numpy(normalize_fbank(a["fbank"], spec))[None]
        out = model(**model_inputs({k: x.to(device) for k, x in batch.items()}, modalities))
        frame_scores.append(torch.sigmoid(out.frame[0]).cpu().numpy())
        person.append(a["person"])
        if out.human is not None:  # [1, V, T] logits -> a distribution over the valid steps of each view
            logits = out.human[0].float().masked_fill(~batch["video_valid"][0].bool().to(device), -1e4)
            human.append(logits.softmax(-1).cpu().numpy())
        seq_scores.append(torch.sigmoid(out.sequence[0]).cpu().numpy())
    frames = np.concatenate(frame_scores)
    seq = np.max(seq_scores, axis=0)  # a label present in any window is present in the recording
    result = {
        "recording": str(recording), "classes": classes,
        "sensors": [{"name": st.name, "kind": st.kind, "samples": int(len(st.times)) if st.kind != "audio" else None,
                     "clock": {"scale": st.clock.scale, "offset": st.clock.offset}} for st in rec.streams],
        "grid_rate_hz": spec.grid_rate_hz, "times": [round(float(t), 3) for t in grid],
        "frame_scores": [[round(float(x), 4) for x in row] for row in frames],
        "sequence_scores": {c: round(float(p), 4) for c, p in zip(classes, seq)},
        "sequence_labels": [c for c, p in zip(classes, seq) if p >= 0.5],
        "coverage": {k: round(float(np.concatenate(v, axis=-1).mean()), 3) for k, v in valid_frac.items()},
        "lidar": bool(rec.of_kind("lidar")),
    }
    views = [st.name for st in rec.of_kind("video")]
    if views:
        result["person_scores"] = {v: [round(float(x), 4) for x in row]
                                   for v, row in zip(views, np.concatenate(person, axis=-1))}
    if human:
        result["human_presence"] = {v: [round(float(x), 4) for x in row]
                                    for v, row in zip(views, np.concatenate(human, axis=-1))}
    if rec.tricks:
        result["ground_truth"] = rec.tricks
    return result


def plot_timeline(result: dict[str, Any], path: str | Path) -> Path:
    """Label timeline PNG of a `fuse_recording` result: per-frame scores (one row per class), the ground truth
    under it when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fusion._io import write_bytes_atomic

    classes, times = result["classes"], np.asarray(result["times"])
    scores = np.asarray(result["frame_scores"]).T  # [K, T]
    gt = result.get("ground_truth")
    fig, axes = plt.subplots(2 if gt else 1, 1, figsize=(10, 1.2 + 0.45 * len(classes) * (2 if gt else 1)),
                             sharex=True, squeeze=False)
    step = times[1] - times[0] if len(times) > 1 else 0.4
    extent = (times[0] - step / 2, times[-1] + step / 2, len(classes) - 0.5, -0.5)
    ax = axes[0, 0]
    im = ax.imshow(scores, aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(classes)), classes)
    labels = ", ".join(result["sequence_labels"]) or "none"
    ax.set_title(f"MultiTSF frame scores; sequence labels: {labels}", fontsize=9)
    fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01)
    if gt:
        ax = axes[1, 0]
        truth = np.zeros_like(scores)
        for tr in gt:
            for lab in tr["labels"]:
                if lab in classes:
                    truth[classes.index(lab), (times >= tr["start"]) & (times <= tr["end"])] = 1
        ax.imshow(truth, aspect="auto", extent=extent, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_title("ground truth", fontsize=9)
    axes[-1, 0].set_xlabel("time (s, common clock)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())
