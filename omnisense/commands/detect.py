"""`omnisense detect SCAN`: cars, pedestrians and cyclists in one lidar sweep, as boxes.json and a BEV plot.

SCAN is in the sensor frame (metres): .bin (KITTI, N x 4 float32), .npy (Waymo-style, N x >=4), .pcd, .ply,
.las / .laz. The detector is one of the shipped models (trained on the simulated KITTI-layout set) or any
detection weights file. What is filtered from the input (non-finite points, points outside the model's range,
rescaled intensities) is counted and printed; see `perception3d.detection.inference` for the policy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "3D boxes of cars, pedestrians and cyclists in a lidar sweep (FlatFormer / DSVT)"

# --model -> its shipped weights
SHIPPED = {"flatformer": "flatformer_small_simkitti", "dsvt-pillar": "dsvt_pillar_small_simkitti"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="lidar scan: .bin (KITTI, N x 4 float32) .npy .pcd .ply .las .laz, or a "
                                                "capture / log: .pcap .osf .bag .mcap, ROS 2 bag folder")
    parser.add_argument("--frame", type=int, default=0, help="which sweep of a capture or log, from 0 (default 0)")
    parser.add_argument("--topic", help="the lidar topic of a log with several")
    parser.add_argument("--model", choices=sorted(SHIPPED), default="flatformer",
                        help="which shipped detector (default: flatformer)")
    parser.add_argument("--weights", help="shipped name or .safetensors file (overrides --model)")
    parser.add_argument("--output", type=Path, default=Path("boxes.json"))
    parser.add_argument("--plot", type=Path, help="bird's-eye-view PNG of the points and boxes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--view", type=Path, help="interactive 3D view (self-contained HTML) of the sweep and boxes")
    parser.add_argument("--save-boxes", type=Path, help="the boxes as a line-set PLY (MeshLab, CloudCompare)")
    parser.add_argument("--view-threshold", type=float, default=0.0,
                        help="boxes of --view and --save-boxes: those scoring at least this (default: all)")


def run(args: argparse.Namespace) -> int:
    from omnisense._io import write_json_atomic
    from omnisense.models import load_model
    from perception3d.detection import boxes_to_json, detect_points
    from fusion.logs import read_scan
    from perception3d.detection.inference import plot_bev

    points = read_scan(args.scan, frame=getattr(args, "frame", 0), topic=getattr(args, "topic", None))
    model, meta = load_model(args.weights or SHIPPED[args.model], device=args.device, task="detection")
    spec = meta.transforms()
    det, counts = detect_points(model, points, args.device, spec=spec)
    boxes = boxes_to_json(det, meta.classes)
    write_json_atomic(args.output, boxes)
    dropped = {k: v for k, v in counts.items() if k not in ("input", "used") and v}
    print(f"{args.scan}: {counts['input']} points, {counts['used']} used"
          + (f" (filtered: {', '.join(f'{k} {v}' for k, v in dropped.items())})" if dropped else ""))
    by_class = {}
    for b in boxes:
        by_class[b["label"]] = by_class.get(b["label"], 0) + 1
    print(f"{len(boxes)} boxes ({', '.join(f'{k} {v}' for k, v in sorted(by_class.items())) or 'none'}) "
          f"-> {args.output} [{meta.describe_model()}]")
    if args.plot:
        r = spec.point_range
        plot_bev(args.plot, points, det, meta.classes, extent=max(abs(v) for v in (r[0], r[1], r[3], r[4])),
                 title=f"{args.scan.name}: {len(boxes)} boxes ({meta.describe_model()})")
        print(f"plot -> {args.plot}")
    threshold = getattr(args, "view_threshold", 0.0)
    if getattr(args, "view", None):
        from perception3d.detection.view import write_detection_view
        view = write_detection_view(args.view, points, det, meta.classes, score_threshold=threshold,
                                    title=args.scan.name)
        print(f"view -> {view}")
    if getattr(args, "save_boxes", None):
        from perception3d.detection.view import write_boxes_ply
        print(f"boxes -> {write_boxes_ply(args.save_boxes, det, meta.classes, score_threshold=threshold)}")
    return 0
