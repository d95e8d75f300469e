"""`omnisense recognize VIDEO...`: the action in videos, from shipped or given UniFormer / ViViT weights.

The work is `video.recognition.inference.recognize`, fed with the weights' input spec (`meta.transforms()`); one
`omnisense.recognition/1` record per video (top-k classes, or "none of the known classes" when the weights'
calibrated rejection rule finds the evidence weak, unless --no-reject; docs/outputs.md). Inputs: files, folders or globs
(omnisense.commands._batch).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnisense.commands._batch import Batch, add_batch_arguments, answer_line, collect_inputs

HELP = "recognise the action in videos (UniFormer or ViViT; top-k classes)"

SHIPPED = {"uniformer": "uniformer_tiny_synthetic", "vivit": "vivit_tiny_synthetic"}
EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".gif")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", help="video files (mp4, avi, mkv, webm, ...), folders of them, or globs")
    parser.add_argument("--model", choices=sorted(SHIPPED), default="uniformer",
                        help="which shipped recogniser (default: uniformer)")
    parser.add_argument("--weights", help="shipped name, .safetensors file or Lightning .ckpt (overrides --model)")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--clips", type=int, default=1, help="clips sampled uniformly, probabilities averaged")
    parser.add_argument("--overlay", type=Path,
                        help="MP4 of the video with each clip's top-k labels drawn on it (one video only)")
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")
    add_batch_arguments(parser)


def _describe(record: dict[str, Any]) -> str:
    return (f"{record['input']}: {record['frames']} frames at {record['fps']:.3g} fps ({record['backend']}), "
            f"{len(record['clips'])} clip(s): {answer_line(record)}")


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense.models import load_model
    from omnisense.outputs import recognition_record
    from video.recognition.inference import recognize
    from video.rejection import Rejection

    if args.topk < 1 or args.clips < 1:
        raise OmnisenseError("--topk and --clips must be at least 1")
    weights = args.weights or SHIPPED[args.model]

    inputs = collect_inputs(args.videos, EXTENSIONS)
    overlay = getattr(args, "overlay", None)
    if overlay is not None and len(inputs) != 1:
        raise OmnisenseError(f"--overlay draws on one video, but {len(inputs)} were given")
    results = {}  # input -> its RecognitionResult, for --overlay

    def process(state, path):
        model, meta, device = state
        result = recognize(model, path, meta.classes, meta.transforms(), num_clips=args.clips, topk=args.topk,
                           device=device, rejection=Rejection.from_dict(meta.rejection), reject=not args.no_reject,
                           vocabulary=meta.vocabulary)
        if overlay is not None:
            results[path] = result
        return recognition_record(result, input=path, model=weights)

    def after(state, path, record, name):
        if overlay is not None:
            from video.overlay import write_recognition_overlay

            write_recognition_overlay(overlay, path, results.pop(path))

    return Batch(
        inputs=inputs, label="videos",
        load=lambda rt: (*load_model(weights, device=rt.device, task="recognition"), rt.device),
        process=process, describe=_describe, after=after,
        per_input_outputs=lambda path, name: [overlay] if overlay is not None else [],
    ).run(args)
