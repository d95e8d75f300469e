"""`omnisense recognize VIDEO...`: the action in videos, from shipped or given UniFormer / ViViT weights.

The work is `video.recognition.inference.recognize`, fed with the weights' input spec (`meta.transforms()`); one
`omnisense.recognition/1` record per video (top-k classes; docs/outputs.md). Inputs: files, folders or globs
(omnisense.commands._batch).
"""

from __future__ import annotations

import argparse
from typing import Any

from omnisense.commands._batch import Batch, add_batch_arguments, collect_inputs

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
    add_batch_arguments(parser)


def _describe(record: dict[str, Any]) -> str:
    best = record["top"][0]
    return (f"{record['input']}: {record['frames']} frames at {record['fps']:.3g} fps ({record['backend']}), "
            f"{len(record['clips'])} clip(s): {best['class']} {best['probability']:.3f}")


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense.models import load_model
    from omnisense.outputs import recognition_record
    from video.recognition.inference import recognize

    if args.topk < 1 or args.clips < 1:
        raise OmnisenseError("--topk and --clips must be at least 1")
    weights = args.weights or SHIPPED[args.model]

    def process(state, path):
        model, meta, device = state
        result = recognize(model, path, meta.classes, meta.transforms(), num_clips=args.clips, topk=args.topk,
                           device=device)
        return recognition_record(result, input=path, model=weights)

    return Batch(
        inputs=collect_inputs(args.videos, EXTENSIONS), label="videos",
        load=lambda rt: (*load_model(weights, device=rt.device, task="recognition"), rt.device),
        process=process, describe=_describe,
    ).run(args)
