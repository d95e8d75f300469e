"""Recognise the action in one video file: uniform clips, a centre crop each, probabilities averaged; with the
weights' calibrated rejection rule, "none of the known classes" when the evidence is weak (`video.rejection`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from video._errors import MediaFileError
from video.io import VideoReader
from video.rejection import NONE_OF_THE_KNOWN, Rejection, captured_features, input_statistics, open_set_answer
from video.sampling import test_clips
from video.transforms import center_crop, normalize, resize_short_side, to_clip


@dataclass(frozen=True)
class InputSpec:
    """How a model's clips were made in training: frames, stride, frame rate, crop, normalisation."""

    clip_len: int = 8
    frame_interval: int = 2
    fps: float | None = None  # frame rate of the training videos; None: use frame_interval as is
    short_side: int = 72
    crop_size: int = 64
    mean: tuple[float, ...] = (0.45, 0.45, 0.45)
    std: tuple[float, ...] = (0.225, 0.225, 0.225)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


@dataclass
class Recognition:
    video: str
    frames: int
    fps: float
    backend: str
    clips: list[dict[str, Any]] = field(default_factory=list)  # per clip: start/end seconds, top class
    topk: list[dict[str, Any]] = field(default_factory=list)  # averaged over clips: class, probability; [] if rejected
    label: str = NONE_OF_THE_KNOWN  # the top class, or NONE_OF_THE_KNOWN when rejected
    known: bool = False
    vocabulary: str = ""
    rejection: dict[str, Any] = field(default_factory=dict)  # score kind, value, threshold, applied

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# A clip of one frame is a still image: no motion to recognise.
MIN_FRAMES = 2


@torch.no_grad()
def recognize(model: nn.Module, path: str | Path, class_names: list[str], spec: InputSpec, *, num_clips: int = 1,
              topk: int = 5, device: str = "cpu", backend: str = "auto", rejection: Rejection | None = None,
              reject: bool = True, vocabulary: str = "") -> Recognition:
    """Top-k classes of a video, or "none of the known classes" when the weights' `rejection` rule says the
    evidence is weak (its score on the clips' mean logits below the calibrated threshold; `reject=False` gives the
    raw top-k).

    The stride is scaled to the video's frame rate when `spec.fps` is known (mmaction2's `target_fps`),
    so a model trained at 12 fps with stride 2 sees the same time span in a 25 fps video.
    """
    reader = VideoReader(path, backend=backend)
    if len(reader) < MIN_FRAMES:
        raise MediaFileError(path, f"{len(reader)} decodable frame; an action needs a clip of at least {MIN_FRAMES}")
    interval = spec.frame_interval
    if spec.fps and reader.fps > 0:
        interval = max(1, int(round(spec.frame_interval * reader.fps / spec.fps)))
    inds = test_clips(len(reader), clip_len=spec.clip_len, frame_interval=interval, num_clips=num_clips)
    frames = reader.get_frames(inds.reshape(-1))
    clips = to_clip(frames).unflatten(1, inds.shape)  # [3, num_clips, T, H, W]
    views = torch.stack([center_crop(resize_short_side(clips[:, k], spec.short_side), spec.crop_size)
                         for k in range(num_clips)])  # [V, 3, T, S, S]
    x = normalize(views.to(device), spec.mean, spec.std)
    model.eval().to(device)
    with captured_features(model, rejection is not None and rejection.needs_features) as rows:
        logits = model(x).float().cpu()  # [V, K]
    features = torch.cat(rows).float().flatten(0, -2).mean(0).cpu() if rows else None  # mean over views: [D]
    stats = input_statistics(x.cpu()) if rejection is not None and rejection.needs_inputs else None
    probs = logits.softmax(-1)
    times = reader.timestamps()
    result = Recognition(video=str(path), frames=len(reader), fps=reader.fps, backend=reader.backend)
    for k in range(num_clips):
        top = int(probs[k].argmax())
        v, i = probs[k].topk(min(topk, len(class_names)))
        result.clips.append({"start_s": float(times[inds[k].min()]), "end_s": float(times[inds[k].max()]),
                             "frame_indices": inds[k].tolist(), "top1": class_names[top], "prob": float(probs[k, top]),
                             "topk": [{"class": class_names[c], "probability": round(float(p), 6)}
                                      for p, c in zip(v.tolist(), i.tolist())]})
    answer = open_set_answer(logits.mean(0), probs.mean(0), class_names, topk=topk, rejection=rejection,
                             reject=reject, vocabulary=vocabulary, features=features, stats=stats)
    result.topk, result.label, result.known = answer["top"], answer["label"], answer["known"]
    result.vocabulary, result.rejection = answer["vocabulary"], answer["rejection"]
    return result


def demo_frames(path: str | Path, n: int = 6) -> np.ndarray:
    """`n` evenly spaced frames of a video side by side, `uint8 [H, n * W, 3]`, for reports."""
    reader = VideoReader(path)
    frames = reader.get_frames(np.linspace(0, len(reader) - 1, n).round().astype(int))
    return np.concatenate(list(frames), axis=1)
