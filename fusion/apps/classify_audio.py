"""`omnisense classify-audio FILE`: classify the sound in an audio file, or in the audio track of a video.

The file is decoded (soundfile for wav/flac/ogg/mp3, PyAV for video containers), mixed to mono, resampled
to 16 kHz and turned into the normalised Kaldi fbank the weights were trained on (their `input_spec`).
A file longer than one clip is cut into clips at half-clip hops, and the class probabilities are averaged
over the clips; a shorter one is zero-padded (the AST recipe). Default weights: the shipped CNN trained on
the sonic-pi sample classes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "classify the sound in an audio file or a video's audio track"
DEFAULT_WEIGHTS = "audio_cnn_small_sonic_pi"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="audio file (wav flac ogg mp3) or a video with an audio track")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("result.json"))


class AudioClassifier:
    """A weights pair ready for inference: the encoder, its categories and its input spec.

    Args:
        weights: a `.safetensors` file written by `fusion.tasks.audio.export_weights` (or None: shipped).
        device: where to run ("cpu", "cuda").
    """

    def __init__(self, weights: str | Path | None = None, device: str = "cpu"):
        from fusion import load_model_weights, load_weights, shipped_weights
        from fusion._errors import WeightsError
        from fusion.tasks.audio import build_model

        self.path = Path(weights) if weights is not None else shipped_weights(DEFAULT_WEIGHTS)
        state, meta = load_weights(self.path)
        for key in ("model", "categories", "input_spec"):
            if key not in meta:
                raise WeightsError(self.path, f"its metadata has no {key!r}: not audio-classifier weights")
        self.meta = meta
        self.categories: list[str] = list(meta["categories"])
        self.spec: dict[str, Any] = meta["input_spec"]
        self.model = build_model(meta["model"])
        load_model_weights(self.model, state)
        self.device = device
        self.model.to(device).eval()

    def features(self, waveform) -> Any:
        """Mono 16 kHz `Tensor[S]` -> normalised clips `Tensor[N, clip_frames, F]` at half-clip hops."""
        import torch

        from video.audio.frontend import kaldi_fbank, normalize_fbank, pad_or_crop

        fbank = kaldi_fbank(waveform.to(self.device), self.spec["sample_rate"], num_mel_bins=self.spec["num_mel_bins"])
        clip = int(self.spec["target_frames"])
        hop = max(1, clip // 2)
        starts = list(range(0, max(fbank.shape[0] - clip, 0) + 1, hop))
        if fbank.shape[0] > clip and (fbank.shape[0] - clip) % hop:
            starts.append(fbank.shape[0] - clip)  # the tail, so the end of the file is heard too
        clips = torch.stack([pad_or_crop(fbank[s:], clip) for s in starts])
        return normalize_fbank(clips, self.spec["mean"], self.spec["std"])

    def classify_waveform(self, waveform, topk: int = 5) -> dict[str, Any]:
        """`waveform: Tensor[S]` mono at the spec's rate -> top-k `{label, score}` and all probabilities."""
        import torch

        with torch.no_grad():
            clips = self.features(waveform)
            probs = self.model(clips).softmax(-1).mean(0).cpu()
        k = min(topk, len(self.categories))
        scores, index = probs.topk(k)
        return {
            "top": [{"label": self.categories[i], "score": round(float(s), 4)} for s, i in zip(scores, index.tolist())],
            "probabilities": {c: round(float(p), 4) for c, p in zip(self.categories, probs)},
            "clips": int(clips.shape[0]),
        }

    def classify_file(self, path: str | Path, topk: int = 5) -> dict[str, Any]:
        """Classify an audio file or the first audio track of a video file."""
        from video.audio.io import load_audio

        waveform, sr = load_audio(path, self.spec["sample_rate"])
        result = self.classify_waveform(waveform, topk)
        return {"file": str(path), "duration_s": round(waveform.shape[0] / sr, 3), **result}


def run(args: argparse.Namespace) -> int:
    from fusion._io import write_json_atomic

    if args.topk < 1:
        raise SystemExit("omnisense classify-audio: --topk must be at least 1")
    classifier = AudioClassifier(args.weights)
    result = classifier.classify_file(args.file, args.topk)
    result["weights"] = str(classifier.path)
    write_json_atomic(args.output, result)
    print(f"{args.file} ({result['duration_s']} s, {result['clips']} clip(s)):")
    for row in result["top"]:
        print(f"  {row['score']:.3f}  {row['label']}")
    print(f"written: {args.output}")
    return 0
