"""`omnisense detect SCAN...`: cars, pedestrians and cyclists in lidar sweeps, as 3D boxes.

SCAN is in the sensor frame (metres): .bin (KITTI, N x 4 float32), .npy (Waymo-style, N x >=4), .pcd, .ply,
.las / .laz, and every other format `register` and `classify` read (.xyz .txt .pts, the vertices of .off / .obj;
no intensity: zeros). The detector is one of the shipped models (trained on the simulated KITTI-layout set) or any
detection weights file. What is filtered from the input (non-finite points, points outside the model's range,
rescaled intensities) is counted in the record; see `perception3d.detection.inference` for the policy.

One `omnisense.detection/1` record per scan (docs/outputs.md), boxes scored below `--score-threshold` dropped;
`--kitti-dir` also writes KITTI label files (with a score column), `--plot` a bird's-eye view of one scan.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnisense.commands._batch import Batch, add_batch_arguments, collect_inputs

HELP = "3D boxes of cars, pedestrians and cyclists in lidar sweeps (FlatFormer / DSVT)"

# --model -> its shipped weights
SHIPPED = {"flatformer": "flatformer_small_simkitti", "dsvt-pillar": "dsvt_pillar_small_simkitti"}
SCAN_EXTENSIONS = (".bin", ".npy", ".pcd", ".ply", ".las", ".laz")  # read_scan: with intensity
# captures and logs (`fusion.logs`: Ouster/Velodyne .pcap, .osf, ROS 1 .bag, .mcap, ROS 2 bag folders): one sweep each
LOG_EXTENSIONS = (".pcap", ".osf", ".bag", ".mcap", ".db3")
EXTENSIONS = SCAN_EXTENSIONS + (".xyz", ".txt", ".pts", ".off", ".obj") + LOG_EXTENSIONS[:-1]
# --score-threshold's default: the F1-best threshold of each shipped detector on the simulated validation frames
# (tools/detect_score_threshold.py; docs/detect_score_threshold.json), and the field's usual 0.1 (OpenPCDet's
# SCORE_THRESH, mmdet3d's score_thr) for any other weights. The two shipped models score on different scales:
# DSVT-P's small, short-trained head gives most background proposals 0.2-0.4.
SHIPPED_SCORE_THRESHOLDS = {"flatformer_small_simkitti": 0.1, "dsvt_pillar_small_simkitti": 0.45}
DEFAULT_SCORE_THRESHOLD = 0.1


def default_score_threshold(weights: str) -> float:
    return SHIPPED_SCORE_THRESHOLDS.get(str(weights), DEFAULT_SCORE_THRESHOLD)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scans", nargs="+", help="lidar scans (.bin .npy .pcd .ply .las .laz .xyz .txt .pts .off "
                                                 ".obj), captures and logs (.pcap .osf .bag .mcap, ROS 2 bag "
                                                 "folders), folders of them, or glob patterns")
    parser.add_argument("--frame", type=int, default=0, help="which sweep of a capture or log, from 0 (default 0)")
    parser.add_argument("--topic", help="the lidar topic of a log with several")
    parser.add_argument("--model", choices=sorted(SHIPPED), default="flatformer",
                        help="which shipped detector (default: flatformer)")
    parser.add_argument("--weights", help="shipped name, .safetensors file or Lightning .ckpt (overrides --model)")
    parser.add_argument("--score-threshold", type=float,
                        help="drop boxes scored below this (default: the shipped model's F1-best threshold on the "
                             "validation frames, " + ", ".join(f"{k} {v}" for k, v in SHIPPED_SCORE_THRESHOLDS.items())
                             + f"; {DEFAULT_SCORE_THRESHOLD} for other weights)")
    parser.add_argument("--kitti-dir", type=Path, metavar="DIR",
                        help="also write KITTI label files <name>.txt here (camera frame from the scan's KITTI calib "
                             "file when it has one, else a camera at the lidar origin looking along x)")
    parser.add_argument("--plot", type=Path, help="bird's-eye-view PNG of the points and boxes (one scan only)")
    parser.add_argument("--view", type=Path, help="interactive 3D view (self-contained HTML) of the sweep and boxes "
                                                  "(one scan only)")
    parser.add_argument("--save-boxes", type=Path, help="the boxes as a line-set PLY for MeshLab / CloudCompare "
                                                        "(one scan only)")
    add_batch_arguments(parser)


def is_log(path: Path) -> bool:
    """A capture or log (`fusion.logs`), or a ROS 2 bag folder."""
    path = Path(path)
    return path.suffix.lower() in LOG_EXTENSIONS or (path.is_dir() and (path / "metadata.yaml").is_file())


def read_sweep(path: Path, frame: int = 0, topic: str | None = None):
    """float32 `(N, 4)` x, y, z, intensity of any point file, or of sweep `frame` of a capture or log; formats
    without intensity get zeros."""
    import numpy as np

    from perception3d.detection.data import read_scan
    from perception3d.io import read_points

    path = Path(path)
    if is_log(path):
        from fusion.logs import read_scan as read_log_scan

        return read_log_scan(path, frame=frame, topic=topic)
    if path.suffix.lower() in SCAN_EXTENSIONS or not path.is_file():
        return read_scan(path)
    xyz = read_points(path).xyz.astype(np.float32)
    if len(xyz) < 4:  # as read_scan: a sweep of fewer points is no sweep
        from perception3d._errors import PointCloudValueError

        raise PointCloudValueError(f"{path}: {len(xyz)} point(s), a lidar sweep needs at least 4")
    return np.concatenate([xyz, np.zeros((len(xyz), 1), np.float32)], 1)


def _describe(record: dict[str, Any]) -> str:
    c = record["counts"]
    dropped = {k: v for k, v in c.items() if k not in ("input", "used", "below_threshold") and v}
    by_class: dict[str, int] = {}
    for b in record["boxes"]:
        by_class[b["label"]] = by_class.get(b["label"], 0) + 1
    return (f"{record['input']}: {c['input']} points, {c['used']} used"
            + (f" (filtered: {', '.join(f'{k} {v}' for k, v in dropped.items())})" if dropped else "")
            + f"; {len(record['boxes'])} boxes >= {record['score_threshold']} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(by_class.items())) or 'none'})")


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense._io import write_text_atomic
    from omnisense.models import load_model
    from omnisense.outputs import detection_record, kitti_calib_for, kitti_lines
    from perception3d.detection import boxes_to_json, detect_points

    weights = args.weights or SHIPPED[args.model]
    if args.score_threshold is None:
        args.score_threshold = default_score_threshold(weights)
    if not 0.0 <= args.score_threshold <= 1.0:
        raise OmnisenseError(f"--score-threshold must be in [0, 1], not {args.score_threshold}")
    inputs = collect_inputs(args.scans, EXTENSIONS, keep_folder=is_log)
    for flag in ("plot", "view", "save_boxes"):
        if getattr(args, flag, None) is not None and len(inputs) != 1:
            raise OmnisenseError(f"--{flag.replace('_', '-')} shows one scan, but {len(inputs)} were given")

    def process(state, path):
        model, meta, device = state
        points = read_sweep(path, args.frame, args.topic)
        det, counts = detect_points(model, points, device, spec=meta.transforms())
        boxes = boxes_to_json(det, meta.classes)
        counts["below_threshold"] = sum(b["score"] < args.score_threshold for b in boxes)
        return detection_record(boxes, input=path, model=weights, score_threshold=args.score_threshold,
                                classes=meta.classes, counts=counts, variant=meta.describe_model(),
                                **({"sweep": args.frame} if is_log(path) else {}))

    def outputs(path, name):
        one = [getattr(args, flag, None) for flag in ("plot", "view", "save_boxes")]
        return ([args.kitti_dir / f"{name}.txt"] if args.kitti_dir else []) + [p for p in one if p is not None]

    def after(state, path, record, name):
        model, meta, device = state
        if args.kitti_dir is not None:
            from perception3d.detection.data import read_kitti_calib

            calib = kitti_calib_for(path)
            write_text_atomic(args.kitti_dir / f"{name}.txt",
                              kitti_lines(record, read_kitti_calib(calib) if calib else None))
        if args.plot is not None:
            _plot(record, meta, path, args.plot, args.topic)
        if getattr(args, "view", None) is not None or getattr(args, "save_boxes", None) is not None:
            _views(record, meta, path, args)

    return Batch(inputs=inputs, label="scans",
                 load=lambda rt: (*load_model(weights, device=rt.device, task="detection"), rt.device),
                 process=process, describe=_describe, per_input_outputs=outputs, after=after).run(args)


def _detections(record: dict[str, Any], meta) -> dict[str, Any]:
    """A record's boxes back as the tensors `detect_points` returns."""
    import torch

    boxes = record["boxes"]
    return {"boxes": torch.tensor([[*b["center"], *b["size"], b["heading"]] for b in boxes]).reshape(-1, 7),
            "scores": torch.tensor([b["score"] for b in boxes]),
            "labels": torch.tensor([list(meta.classes).index(b["label"]) for b in boxes], dtype=torch.long)}


def _plot(record: dict[str, Any], meta, path: Path, out: Path, topic: str | None) -> None:
    from perception3d.detection.inference import plot_bev

    boxes = record["boxes"]
    r = meta.transforms().point_range
    plot_bev(out, read_sweep(path, record.get("sweep", 0), topic), _detections(record, meta), meta.classes,
             extent=max(abs(v) for v in (r[0], r[1], r[3], r[4])),
             title=f"{Path(path).name}: {len(boxes)} boxes ({meta.describe_model()})")


def _views(record: dict[str, Any], meta, path: Path, args: argparse.Namespace) -> None:
    """`--view` (plotly HTML) and `--save-boxes` (line-set PLY) of one scan's record."""
    from perception3d.detection.view import write_boxes_ply, write_detection_view

    det = _detections(record, meta)
    if args.view is not None:
        write_detection_view(args.view, read_sweep(path, record.get("sweep", 0), args.topic), det, meta.classes,
                             score_threshold=record["score_threshold"], title=Path(path).name)
    if args.save_boxes is not None:
        write_boxes_ply(args.save_boxes, det, meta.classes, score_threshold=record["score_threshold"])
