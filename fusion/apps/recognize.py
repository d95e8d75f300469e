"""`omnisense recognize VIDEO`: the action in a video, from shipped or given UniFormer / ViViT weights."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "recognise the action in a video (UniFormer or ViViT; top-k classes to JSON)"

SHIPPED = {"uniformer": "uniformer_tiny_synthetic", "vivit": "vivit_tiny_synthetic"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="video file (mp4, avi, mkv, webm, ...)")
    parser.add_argument("--model", default="uniformer", help="uniformer or vivit")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--clips", type=int, default=1, help="clips sampled uniformly, probabilities averaged")
    parser.add_argument("--output", type=Path, default=Path("result.json"))


def load_recognizer(model: str = "uniformer", weights: Path | None = None):
    """(model, class_names, InputSpec, weights path) from a weights pair of `tools/export_recognition.py`:
    a backbone's tensors, with `variant`, `model_kwargs`, `class_names` and `input` in the metadata."""
    from fusion._catalogue import build_from_meta
    from fusion._errors import OmnisenseError, WeightsError
    from fusion._weights import load_model_weights, load_weights, shipped_weights
    from video.recognition.inference import InputSpec
    from video.recognition.recognizer import VideoRecognizer

    if weights is None:
        if model not in SHIPPED:
            raise OmnisenseError(f"--model must be one of {sorted(SHIPPED)} (or give --weights), not {model!r}")
        weights = shipped_weights(SHIPPED[model])
    state, meta = load_weights(weights)
    for key in ("variant", "class_names"):
        if key not in meta:
            raise WeightsError(weights, f"its metadata lacks {key!r}; export it with the recognition metadata")
    backbone = build_from_meta(meta)
    load_model_weights(backbone, state)
    net = VideoRecognizer(backbone)
    return net, list(meta["class_names"]), InputSpec.from_dict(meta.get("input", {})), weights


def run(args: argparse.Namespace) -> int:
    import torch

    from fusion._io import write_json_atomic
    from video.recognition.inference import recognize

    net, names, spec, weights = load_recognizer(args.model, args.weights)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = recognize(net, args.video, names, spec, num_clips=args.clips, topk=args.topk, device=device)
    record = {"weights": str(weights), **result.to_dict()}
    write_json_atomic(args.output, record)
    print(f"{args.video}: {result.frames} frames at {result.fps:.3g} fps ({result.backend}), {args.clips} clip(s)")
    for row in result.topk:
        print(f"  {row['prob']:6.3f}  {row['class']}")
    print(f"written: {args.output}")
    return 0
