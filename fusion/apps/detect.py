"""`omnisense detect SCAN`: cars, pedestrians and cyclists in one lidar sweep, as boxes.json and a BEV plot.

SCAN is in the sensor frame (metres): .bin (KITTI, N x 4 float32), .npy (Waymo-style, N x >=4), .pcd, .ply,
.las / .laz. The detector is one of the shipped models (trained on the simulated KITTI-layout set) or any
weights file whose JSON names its variant. What is filtered from the input (non-finite points, points
outside the model's range, rescaled intensities) is counted and printed; see
`perception3d.detection.inference` for the policy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "3D boxes of cars, pedestrians and cyclists in a lidar sweep (FlatFormer / DSVT)"

# --model -> (shipped weights name, variant family prefix)
SHIPPED = {
    "flatformer": ("flatformer_small_simkitti", "flatformer"),
    "dsvt-pillar": ("dsvt_pillar_small_simkitti", "dsvt_pillar"),
    "dsvt-voxel": (None, "dsvt_voxel"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="lidar scan: .bin (KITTI, N x 4 float32) .npy .pcd .ply .las .laz")
    parser.add_argument("--model", choices=["flatformer", "dsvt-pillar", "dsvt-voxel"], default="flatformer")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--output", type=Path, default=Path("boxes.json"))
    parser.add_argument("--plot", type=Path, help="bird's-eye-view PNG of the points and boxes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def load_detector(model: str, weights: Path | None, device: str = "cpu"):
    """The detector for `--model` with its weights (shipped by default). Returns (model, meta)."""
    from fusion._errors import WeightsError
    from fusion._weights import load_model_weights, load_weights, shipped_weights
    from perception3d.models import VARIANTS

    shipped, family = SHIPPED[model]
    if weights is None:
        if shipped is None:
            raise WeightsError(Path(f"<{model}>"), "no shipped weights for this model; pass --weights")
        weights = shipped_weights(shipped)
    state, meta = load_weights(weights)
    variant = meta.get("variant")
    if variant not in VARIANTS:
        raise WeightsError(weights, f"its metadata names no known detector variant (variant={variant!r})")
    if not variant.startswith(family):
        raise WeightsError(weights, f"holds a {variant} model, not a {model} one")
    det = VARIANTS[variant]()
    load_model_weights(det, state)
    return det.to(device).eval(), meta


def run(args: argparse.Namespace) -> int:
    from fusion._io import write_json_atomic
    from perception3d.detection.data import read_scan
    from perception3d.detection.inference import boxes_to_json, detect_points, plot_bev

    points = read_scan(args.scan)
    model, meta = load_detector(args.model, args.weights, args.device)
    det, counts = detect_points(model, points, args.device)
    boxes = boxes_to_json(det, model.class_names)
    write_json_atomic(args.output, boxes)
    dropped = {k: v for k, v in counts.items() if k not in ("input", "used") and v}
    print(f"{args.scan}: {counts['input']} points, {counts['used']} used"
          + (f" (filtered: {', '.join(f'{k} {v}' for k, v in dropped.items())})" if dropped else ""))
    by_class = {}
    for b in boxes:
        by_class[b["label"]] = by_class.get(b["label"], 0) + 1
    print(f"{len(boxes)} boxes ({', '.join(f'{k} {v}' for k, v in sorted(by_class.items())) or 'none'}) "
          f"-> {args.output} [{meta.get('variant')}]")
    if args.plot:
        r = model.geometry.point_range
        plot_bev(args.plot, points, det, model.class_names, extent=max(abs(v) for v in (r[0], r[1], r[3], r[4])),
                 title=f"{args.scan.name}: {len(boxes)} boxes ({meta.get('variant')})")
        print(f"plot -> {args.plot}")
    return 0
