"""`omnisense bench detect`: detector frames per second with a per-stage breakdown.

Stages: voxelise (dynamic VFE), backbone (FlatFormer / DSVT on the sparse pillars), bev (scatter + 2D backbone
and neck), head (CenterHead), nms (decoding, IoU rectification, per-class rotated NMS). The default frame is
a simulated 64-beam sweep of about 100k points (2048 firings per revolution). Every variant runs on the same
frame in the same process; the last column is each variant's speed relative to the first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "detector FPS with a stage breakdown (voxelise, backbone, BEV, head, NMS) on a ~100k-point sweep"

DEFAULT_VARIANTS = {"cpu": ["flatformer_small", "dsvt_pillar_small"],
                    "cuda": ["flatformer_waymo", "dsvt_pillar_waymo", "dsvt_voxel_waymo", "flatformer_small",
                             "dsvt_pillar_small"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, help="a scan (.bin .npy .pcd .ply .las); default: a simulated 64-beam sweep")
    parser.add_argument("--variants", nargs="+", help="detector variants (default: the small ones on CPU, "
                                                      "the paper ones too on GPU)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)


def _frame(path: Path | None):
    import numpy as np

    if path is not None:
        from perception3d.detection.data import read_scan

        return read_scan(path), str(path)
    from perception3d.detection.simulator import LidarConfig, simulate_frame

    frame = simulate_frame(np.random.default_rng(0), LidarConfig(beams=64, azimuth_steps=2048))
    return frame.points, "simulated 64-beam sweep (2048 firings/rev)"


def run(args: argparse.Namespace):
    import torch

    from omnisense.bench._common import BenchReport, base_context, measure, resolve_device
    from omnisense.models import VARIANTS, list_models, load_model
    from perception3d.detection.inference import prepare_points

    device = resolve_device(getattr(args, "device", "auto") or "auto")
    points, source = _frame(args.input)
    variants = args.variants or DEFAULT_VARIANTS["cuda" if device.startswith("cuda") else "cpu"]
    rows, notes = [], []
    base = None
    for name in variants:
        shipped = f"{name}_simkitti"
        if shipped in list_models():
            model, weights = load_model(shipped, device=device)[0], shipped
        else:
            model, weights = VARIANTS[name]().to(device).eval(), "random init"
        pts, counts = prepare_points(points, model.geometry.point_range)
        x = torch.from_numpy(pts).to(device)
        bi = torch.zeros(len(x), dtype=torch.long, device=device)

        def once():
            return model.predict(x, bi, 1)

        timing = measure(once, device=device, warmup=args.warmup, repeat=args.repeat, max_seconds=120)
        model.timings = {}
        for _ in range(max(1, min(args.repeat, 3))):
            dets = once()
        stages = {k: v / max(1, min(args.repeat, 3)) * 1e3 for k, v in model.timings.items()}
        model.timings = None
        fps = 1.0 / timing.seconds
        base = base or fps
        rows.append({"variant": name, "points_in": counts["input"], "points_used": counts["used"],
                     "ms": round(timing.ms, 1), "fps": round(fps, 2),
                     **{f"{k}_ms": round(v, 1) for k, v in stages.items()},
                     "boxes": int(len(dets[0]["boxes"])), "weights": weights,
                     "peak_mb": round(timing.peak_bytes / 2**20, 1) if timing.peak_bytes else None,
                     f"speed_vs_{variants[0]}": round(fps / base, 2)})
    notes.append("end to end in PyTorch, batch 1, fp32; stage times come from separate synchronised runs")
    notes.append("paper targets on GPU: FlatFormer >= 50 Hz, DSVT-P >= 30 Hz (DSVT's TensorRT: 27 Hz)")
    context = base_context(device)
    context["frame"] = source
    context["threads"] = torch.get_num_threads()
    return BenchReport(title="detector speed", rows=rows, context=context, notes=notes)
