"""Classify the sound in a waveform or a file: the weights' fbank recipe, clips at half-clip hops, mean probability.

    model, meta = omnisense.load_model("audio_cnn_small_sonic_pi")
    AudioClassifier(model, meta.transforms(), meta.classes).classify_file("kick.wav")

A file longer than one clip is cut into clips at half-clip hops and the class probabilities are averaged over
the clips; a shorter one is zero-padded (the AST recipe).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["AudioClassifier", "AudioSpec"]


@dataclass(frozen=True)
class AudioSpec:
    """An audio model's input: mono `sample_rate` Hz -> Kaldi fbank with `num_mel_bins` bins, clips of
    `target_frames` frames (10 ms each), normalised as `(fbank - mean) / (2 std)` with the training set's
    statistics."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_frames: int = 100
    mean: float = 0.0
    std: float = 1.0
    features: str = "kaldi_fbank"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioSpec":
        spec = cls(**d)
        if spec.features != "kaldi_fbank":
            raise ValueError(f"features {spec.features!r} is not supported (only 'kaldi_fbank')")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def features_of(self, waveform: Tensor) -> Tensor:
        """Mono `Tensor[S]` at `sample_rate` -> normalised clips `Tensor[N, target_frames, num_mel_bins]`."""
        from video.audio.frontend import kaldi_fbank, normalize_fbank, sliding_clips

        fbank = kaldi_fbank(waveform, self.sample_rate, num_mel_bins=self.num_mel_bins)
        return normalize_fbank(sliding_clips(fbank, self.target_frames), self.mean, self.std)


class AudioClassifier:
    """An audio model ready for inference, with its input spec and class names.

    Args:
        model: an audio encoder with `forward(fbank [N, T, F]) -> logits [N, K]` (AST, the small CNN).
        spec: the weights' input spec (`meta.transforms()`).
        classes: the K class names in the model's order.
    """

    def __init__(self, model: nn.Module, spec: AudioSpec, classes: list[str]):
        self.model, self.spec, self.classes = model.eval(), spec, list(classes)
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def classify_waveform(self, waveform: Tensor, topk: int = 5) -> dict[str, Any]:
        """`waveform: Tensor[S]` mono at the spec's rate -> top-k `{label, score}` and all probabilities."""
        clips = self.spec.features_of(waveform.to(self.device))
        probs = self.model(clips).softmax(-1).mean(0).cpu()
        scores, index = probs.topk(min(max(1, topk), len(self.classes)))
        return {
            "top": [{"label": self.classes[i], "score": round(float(s), 4)} for s, i in zip(scores, index.tolist())],
            "probabilities": {c: round(float(p), 4) for c, p in zip(self.classes, probs)},
            "clips": int(clips.shape[0]),
        }

    def classify_file(self, path: str | Path, topk: int = 5) -> dict[str, Any]:
        """Classify an audio file or the first audio track of a video file."""
        from video.audio.io import load_audio

        waveform, sr = load_audio(path, self.spec.sample_rate)
        return {"file": str(path), "duration_s": round(waveform.shape[0] / sr, 3),
                **self.classify_waveform(waveform, topk)}
