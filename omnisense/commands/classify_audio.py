"""`omnisense classify-audio FILE...`: classify the sound in audio files, or in the audio tracks of videos.

Each file is decoded (soundfile for wav/flac/ogg/mp3, PyAV for video containers), mixed to mono, resampled to the
weights' rate and turned into the normalised Kaldi fbank they were trained on (their input spec); the work is
`video.audio.inference.AudioClassifier`. One `omnisense.audio_classification/1` record per file (top-k classes, or
"none of the known classes" when the weights' calibrated rejection rule finds the evidence weak, unless
--no-reject; docs/outputs.md). Inputs: files, folders or globs (omnisense.commands._batch). Default weights: the
shipped CNN of the coarse real-sound classes (bird, instrument, noise, percussion, speech;
`omnisense.train.real_sounds`); the sonic-pi instrument model stays available as `--weights audio_cnn_small_sonic_pi`.
"""

from __future__ import annotations

import argparse
from typing import Any

from omnisense.commands._batch import Batch, add_batch_arguments, answer_line, collect_inputs

HELP = "classify the sound in audio files or videos' audio tracks"
DEFAULT_WEIGHTS = "audio_cnn_small_real_sounds"
EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".mp4", ".mkv", ".webm", ".avi", ".mov")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="audio files (wav flac ogg mp3) or videos with an audio track, "
                                                 "folders of them, or glob patterns")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name, .safetensors file or Lightning .ckpt (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")
    add_batch_arguments(parser)


def _describe(record: dict[str, Any]) -> str:
    return f"{record['input']} ({record['duration_s']} s, {record['clips']} clip(s)): {answer_line(record)}"


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense.models import load_model
    from omnisense.outputs import audio_record
    from video.audio.inference import AudioClassifier
    from video.rejection import Rejection

    if args.topk < 1:
        raise OmnisenseError("--topk must be at least 1")

    def load(rt):
        model, meta = load_model(args.weights, device=rt.device, task="audio_classification")
        return AudioClassifier(model, meta.transforms(), meta.classes, rejection=Rejection.from_dict(meta.rejection),
                               vocabulary=meta.vocabulary)

    return Batch(
        inputs=collect_inputs(args.files, EXTENSIONS), label="files", load=load,
        process=lambda clf, path: audio_record(clf.classify_file(path, args.topk, reject=not args.no_reject),
                                               input=path, model=args.weights),
        describe=_describe,
    ).run(args)
