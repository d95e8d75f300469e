"""`omnisense classify-audio FILE`: classify the sound in an audio file, or in the audio track of a video.

The file is decoded (soundfile for wav/flac/ogg/mp3, PyAV for video containers), mixed to mono, resampled
to the weights' rate and turned into the normalised Kaldi fbank they were trained on (their input spec); the work
is `video.audio.inference.AudioClassifier`. Default weights: the shipped CNN of the coarse real-sound classes
(bird, instrument, noise, percussion, speech; `omnisense.train.real_sounds`); the sonic-pi instrument model stays
available as `--weights audio_cnn_small_sonic_pi`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "classify the sound in an audio file or a video's audio track"
DEFAULT_WEIGHTS = "audio_cnn_small_real_sounds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="audio file (wav flac ogg mp3) or a video with an audio track")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name or .safetensors file (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense._io import write_json_atomic
    from omnisense.models import load_model
    from video.audio.inference import AudioClassifier
    from video.rejection import Rejection

    if args.topk < 1:
        raise OmnisenseError("--topk must be at least 1")
    model, meta = load_model(args.weights, task="audio_classification")
    classifier = AudioClassifier(model, meta.transforms(), meta.classes, rejection=Rejection.from_dict(meta.rejection),
                                 vocabulary=meta.vocabulary)
    result = classifier.classify_file(args.file, args.topk, reject=not args.no_reject)
    result["weights"] = str(args.weights)
    write_json_atomic(args.output, result)
    print(f"{args.file} ({result['duration_s']} s, {result['clips']} clip(s)):")
    if not result["known"]:
        print(f"  {result['label']} (vocabulary: {result['vocabulary']})")
    for row in result["top"]:
        print(f"  {row['probability']:.3f}  {row['class']}")
    print(f"written: {args.output}")
    return 0
