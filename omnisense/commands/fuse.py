"""`omnisense fuse RECORDING`: multi-view, multi-modal action recognition of one recording with MultiTSF.

RECORDING is a folder of per-view videos (their audio tracks are used; a `lidar/` sweep folder too), a folder with
a `recording.json` manifest, or the manifest itself (`fusion.streams.read_recording`; the manifest carries the
per-sensor clocks). The work is `fusion.inference.fuse_recording`, fed with the weights' input spec
(`meta.transforms()`): the sensors are aligned on the model's grid, fused window by window, and the result holds
per-frame label scores and the sequence labels; `--plot` draws a label timeline (`fusion.inference.plot_timeline`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fuse a multi-view recording (videos with audio, lidar sweeps): per-frame and sequence action labels"
DEFAULT_WEIGHTS = "multitsf_small_synthetic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="folder of per-view videos (with audio), or a manifest JSON")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name or .safetensors file (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG timeline of the labels")
    parser.add_argument("--no-person-detector", action="store_true",
                        help="do not run the HOG person detector on views without person scores")


def run(args: argparse.Namespace) -> int:
    from fusion.inference import fuse_recording, plot_timeline
    from omnisense._io import write_json_atomic
    from omnisense.models import load_model

    model, meta = load_model(str(args.weights), task="fusion")
    detector = None
    if not args.no_person_detector:
        from video.people import HogPersonDetector

        detector = HogPersonDetector()
    result = fuse_recording(model, args.recording, spec=meta.transforms(), classes=meta.classes,
                            person_detector=detector)
    write_json_atomic(args.output, {"weights": str(args.weights), **result})
    print(f"{args.recording}: {len(result['times'])} grid steps at {result['grid_rate_hz']} Hz, "
          f"{sum(s['kind'] == 'video' for s in result['sensors'])} views; sequence labels: "
          f"{', '.join(result['sequence_labels']) or 'none'} -> {args.output}")
    if args.plot:
        plot_timeline(result, args.plot)
        print(f"timeline -> {args.plot}")
    return 0
