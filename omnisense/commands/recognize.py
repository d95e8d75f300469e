"""`omnisense recognize VIDEO`: the action in a video, from shipped or given UniFormer / ViViT weights.

The work is `video.recognition.inference.recognize`, fed with the weights' input spec (`meta.transforms()`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "recognise the action in a video (UniFormer or ViViT; top-k classes to JSON)"

SHIPPED = {"uniformer": "uniformer_tiny_synthetic", "vivit": "vivit_tiny_synthetic"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="video file (mp4, avi, mkv, webm, ...)")
    parser.add_argument("--model", choices=sorted(SHIPPED), default="uniformer",
                        help="which shipped recogniser (default: uniformer)")
    parser.add_argument("--weights", help="shipped name or .safetensors file (overrides --model)")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--clips", type=int, default=1, help="clips sampled uniformly, probabilities averaged")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")


def run(args: argparse.Namespace) -> int:
    import torch

    from omnisense._io import write_json_atomic
    from omnisense.models import load_model
    from video.recognition.inference import recognize
    from video.rejection import Rejection

    weights = args.weights or SHIPPED[args.model]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = load_model(weights, device=device, task="recognition")
    result = recognize(model, args.video, meta.classes, meta.transforms(), num_clips=args.clips, topk=args.topk,
                       device=device, rejection=Rejection.from_dict(meta.rejection), reject=not args.no_reject,
                       vocabulary=meta.vocabulary)
    write_json_atomic(args.output, {"weights": str(weights), **result.to_dict()})
    print(f"{args.video}: {result.frames} frames at {result.fps:.3g} fps ({result.backend}), {args.clips} clip(s)")
    if not result.known:
        print(f"  {result.label} (vocabulary: {result.vocabulary})")
    for row in result.topk:
        print(f"  {row['probability']:6.3f}  {row['class']}")
    print(f"written: {args.output}")
    return 0
