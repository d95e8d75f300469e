"""`omnisense fuse RECORDING...`: multi-view, multi-modal action recognition of recordings with MultiTSF.

A RECORDING is a folder of per-view videos (their audio tracks are used; a `lidar/` sweep folder too), a folder with
a `recording.json` manifest, or the manifest itself (`fusion.streams.read_recording`; the manifest carries the
per-sensor clocks); a folder holding neither stands for its sub-folders that are recordings, and glob patterns
work too. The work is `fusion.inference.fuse_recording`, fed with the weights' input spec (`meta.transforms()`):
the sensors are aligned on the model's grid, fused window by window, and each `omnisense.fusion/1` record
(docs/outputs.md) holds per-frame label scores and the sequence labels, and per view the person scores (the
manifest's, or OpenCV's HOG person detector's on views without them unless --no-person-detector) beside the
human-centric head's presence; `--plot` draws the label timeline of one
recording (`fusion.inference.plot_timeline`).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from omnisense.commands._batch import GLOB_CHARS, Batch, add_batch_arguments

HELP = "fuse multi-view recordings (videos with audio, lidar sweeps): per-frame and sequence action labels"
DEFAULT_WEIGHTS = "multitsf_small_synthetic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", nargs="+", help="folders of per-view videos (with audio), manifest JSONs, "
                                                      "folders of recordings, or glob patterns")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name, .safetensors file or Lightning .ckpt (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--plot", type=Path, help="PNG timeline of the labels (one recording only)")
    parser.add_argument("--view", type=Path, help="interactive 3D view (HTML): the room, lidar over time, cameras "
                                                  "(one recording only)")
    parser.add_argument("--overlay", type=Path, help="MP4 of the views side by side with the frame scores as bars "
                                                     "(one recording only)")
    parser.add_argument("--no-person-detector", action="store_true",
                        help="do not run the HOG person detector on views without person scores")
    add_batch_arguments(parser)


def _is_recording(folder: Path) -> bool:
    from fusion.streams import VIDEO_EXTENSIONS

    return (folder / "recording.json").is_file() or any(
        p.suffix.lower() in VIDEO_EXTENSIONS for p in folder.iterdir() if p.is_file())


def _name(path: Path) -> str:
    """A recording's name for its own files: the folder's name, or a manifest's stem."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return path.parent.name if path.stem == "recording" else path.stem
    return path.name


def collect_recordings(items: list[str]) -> list[Path]:
    """Recordings as given; a folder that is no recording stands for its sub-folders that are."""
    out: list[Path] = []
    for item in items:
        paths = [Path(item)]
        if not paths[0].exists() and GLOB_CHARS & set(item):
            paths = sorted(Path(m) for m in glob.glob(item)) or paths
        for path in paths:
            if path.is_dir() and not _is_recording(path):
                subs = sorted(p for p in path.iterdir() if p.is_dir() and _is_recording(p))
                out.extend(subs or [path])  # none: kept, so the run reports the folder
            else:
                out.append(path)
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense.models import load_model
    from omnisense.outputs import fusion_record

    recordings = collect_recordings(args.recordings)
    extras = {flag: getattr(args, flag, None) for flag in ("plot", "view", "overlay")}
    for flag, value in extras.items():
        if value is not None and len(recordings) != 1:
            raise OmnisenseError(f"--{flag} shows one recording, but {len(recordings)} were given")

    def process(state, path):
        from fusion.inference import fuse_recording

        model, meta, detector = state
        return fusion_record(fuse_recording(model, path, spec=meta.transforms(), classes=meta.classes,
                                            person_detector=detector), input=path, model=args.weights)

    def load(rt):
        detector = None
        if not getattr(args, "no_person_detector", False):
            from video.people import HogPersonDetector

            detector = HogPersonDetector()
        return (*load_model(str(args.weights), device=rt.device, task="fusion"), detector)

    def after(state, path, record, name):
        if args.plot is not None:
            from fusion.inference import plot_timeline

            plot_timeline(record, args.plot)
        if extras["view"] is not None:
            from fusion.view import write_recording_view

            write_recording_view(extras["view"], path, record)
        if extras["overlay"] is not None:
            from fusion.view import write_fusion_overlay

            write_fusion_overlay(extras["overlay"], path, record)

    return Batch(
        inputs=recordings, label="recordings", process=process, after=after,
        load=load,
        names=_name,
        per_input_outputs=lambda p, name: [v for v in extras.values() if v is not None],
        describe=lambda r: (f"{r['input']}: {len(r['times'])} grid steps at {r['grid_rate_hz']} Hz, "
                            f"{sum(s['kind'] == 'video' for s in r['sensors'])} views; sequence labels: "
                            f"{', '.join(r['sequence_labels']) or 'none'}"),
    ).run(args)
