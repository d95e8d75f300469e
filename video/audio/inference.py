"""Classify the sound in a waveform or a file: the weights' fbank recipe, clips at half-clip hops, mean probability.

    model, meta = omnisense.load_model("audio_cnn_small_sonic_pi")
    AudioClassifier(model, meta.transforms(), meta.classes).classify_file("kick.wav")

A file longer than one clip is cut into clips at half-clip hops and the class probabilities are averaged over
the clips; a shorter one is zero-padded (the AST recipe). With the weights' calibrated rejection rule
(`video.rejection`), a sound whose evidence is weak is answered "none of the known classes".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from video.rejection import Rejection, captured_features, input_statistics, open_set_answer

__all__ = ["AudioClassifier", "AudioSpec"]


@dataclass(frozen=True)
class AudioSpec:
    """An audio model's input: mono `sample_rate` Hz -> Kaldi fbank with `num_mel_bins` bins, clips of
    `target_frames` frames (10 ms each), normalised as `(fbank - mean) / (2 std)` with the training set's
    statistics; with `file_statistics` each clip is followed by two rows, the whole file's per-bin fbank mean and
    std (`video.audio.frontend.with_file_statistics`), so clips are `[N, target_frames + 2, num_mel_bins]`."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_frames: int = 100
    mean: float = 0.0
    std: float = 1.0
    features: str = "kaldi_fbank"
    file_statistics: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioSpec":
        spec = cls(**d)
        if spec.features != "kaldi_fbank":
            raise ValueError(f"features {spec.features!r} is not supported (only 'kaldi_fbank')")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def features_of(self, waveform: Tensor) -> Tensor:
        """Mono `Tensor[S]` at `sample_rate` -> normalised clips `Tensor[N, target_frames, num_mel_bins]`
        (`[N, target_frames + 2, num_mel_bins]` with `file_statistics`)."""
        from video.audio.frontend import (file_statistics, kaldi_fbank, normalize_fbank, sliding_clips,
                                          with_file_statistics)

        fbank = kaldi_fbank(waveform, self.sample_rate, num_mel_bins=self.num_mel_bins)
        clips = normalize_fbank(sliding_clips(fbank, self.target_frames), self.mean, self.std)
        if self.file_statistics:
            clips = with_file_statistics(clips, file_statistics(fbank), self.mean, self.std)
        return clips


class AudioClassifier:
    """An audio model ready for inference, with its input spec and class names.

    Args:
        model: an audio encoder with `forward(fbank [N, T, F]) -> logits [N, K]` (AST, the small CNN).
        spec: the weights' input spec (`meta.transforms()`).
        classes: the K class names in the model's order.
        rejection: the weights' calibrated open-set rule (`Rejection.from_dict(meta.rejection)`); None never rejects.
        vocabulary: what the classes are, stated in every answer (`meta.vocabulary`).
    """

    def __init__(self, model: nn.Module, spec: AudioSpec, classes: list[str], *, rejection: Rejection | None = None,
                 vocabulary: str = ""):
        self.model, self.spec, self.classes = model.eval(), spec, list(classes)
        self.rejection, self.vocabulary = rejection, vocabulary
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def logits(self, waveform: Tensor, *, features: bool = False,
               stats: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Per-clip logits `[N, K]` of a mono waveform `Tensor[S]` at the spec's rate; with `features` the clips'
        mean classifier features `[D]`, with `stats` the `input_statistics` `[S]` of the clips and the waveform
        (else None)."""
        clips = self.spec.features_of(waveform.to(self.device))
        with captured_features(self.model, features) as rows:
            logits = self.model(clips).float().cpu()
        return (logits, torch.cat(rows).float().flatten(0, -2).mean(0).cpu() if rows else None,
                input_statistics(clips[:, : self.spec.target_frames].cpu(), waveform.cpu(), self.spec.sample_rate)
                if stats else None)  # of the clips only, not of the file-statistics rows

    def classify_waveform(self, waveform: Tensor, topk: int = 5, *, reject: bool = True) -> dict[str, Any]:
        """`waveform: Tensor[S]` mono at the spec's rate -> top-k `{"class", "probability"}` and all probabilities,
        or "none of the known classes" (empty `top`) when rejected; `reject=False` gives the raw top-k."""
        rule = self.rejection
        logits, features, stats = self.logits(waveform, features=rule is not None and rule.needs_features,
                                              stats=rule is not None and rule.needs_inputs)
        probs = logits.softmax(-1).mean(0)
        answer = open_set_answer(logits.mean(0), probs, self.classes, topk=topk, rejection=rule,
                                 reject=reject, vocabulary=self.vocabulary, features=features, stats=stats)
        return {**answer, "probabilities": {c: round(float(p), 4) for c, p in zip(self.classes, probs)},
                "clips": int(logits.shape[0])}

    def classify_file(self, path: str | Path, topk: int = 5, *, reject: bool = True) -> dict[str, Any]:
        """Classify an audio file or the first audio track of a video file."""
        from video.audio.io import load_audio

        waveform, sr = load_audio(path, self.spec.sample_rate)
        return {"file": str(path), "duration_s": round(waveform.shape[0] / sr, 3),
                **self.classify_waveform(waveform, topk, reject=reject)}
