"""`omnisense bench detect`: detector frames against the 10 Hz budget, and its stages against their peers.

Stages: voxelise (dynamic VFE), backbone (FlatFormer / DSVT on the sparse pillars), bev (scatter + 2D backbone
and neck), head (CenterHead), nms (decoding, IoU rectification, per-class rotated NMS). The default frame is
a simulated 64-beam sweep of about 100k points (2048 firings per revolution). Every row is measured at each
torch thread count of `--thread-rows` (default: 1 and all cores) in the same process, and each job takes
turns with its peer: a whole frame against the 100 ms of a 10 Hz sweep, voxel assignment against spconv's
`PointToVoxel`, rotated NMS on the frame's own boxes against torchvision's axis-aligned NMS. `ratio` is job /
peer; the load average before and after goes into the JSON (the machine may be shared).
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
    parser.add_argument("--thread-rows", default="1,all", metavar="N,N",
                        help="torch thread counts to measure every row at ('all': the cores this process may use)")


def _frame(path: Path | None):
    import numpy as np

    if path is not None:
        from perception3d.detection.data import read_scan

        return read_scan(path), str(path)
    from perception3d.detection.simulator import LidarConfig, simulate_frame

    frame = simulate_frame(np.random.default_rng(0), LidarConfig(beams=64, azimuth_steps=2048))
    return frame.points, "simulated 64-beam sweep (2048 firings/rev)"


# whole-frame targets on one CPU core (issue #19): 10 Hz for FlatFormer, 8 Hz for DSVT-P
FRAME_TARGETS = {"flatformer_small": 1.0, "dsvt_pillar_small": 1.25}


def _nms_inputs(model, x, bi):
    """The arguments of the detector's own call to the per-class NMS on this frame."""
    from unittest import mock

    import perception3d.detection.head as head

    seen = []
    real = head.nms_rotated_per_class

    def spy(*args):
        seen.append(args)
        return real(*args)

    with mock.patch.object(head, "nms_rotated_per_class", spy):
        model.predict(x, bi, 1)
    return seen[0]


def run(args: argparse.Namespace):
    import torch

    from omnisense.bench._common import BenchReport, base_context, load_average, thread_rows, torch_threads
    from omnisense.bench._kernels import nms_row, peer_row, voxel_assignment_row
    from omnisense.models import VARIANTS, list_models, load_model
    from perception3d.detection.inference import prepare_points

    device = args.device
    points, source = _frame(args.input)
    variants = args.variants or DEFAULT_VARIANTS["cuda" if device.startswith("cuda") else "cpu"]
    counts_of_threads = thread_rows(getattr(args, "thread_rows", "1,all"))
    if device != "cpu":  # one row: threads do not change a GPU's figures
        counts_of_threads = [torch.get_num_threads()]
    load_start = load_average()
    models = {}
    for name in variants:
        shipped = f"{name}_simkitti"
        if shipped in list_models():
            models[name] = load_model(shipped, device=device)[0], shipped
        else:
            models[name] = VARIANTS[name]().to(device).eval(), "random init"
    rows, details = [], []
    for threads in counts_of_threads:
        with torch_threads(threads):
            grids_done = set()
            for name, (model, weights) in models.items():
                pts, counts = prepare_points(points, model.geometry.point_range)
                x = torch.from_numpy(pts).to(device)
                bi = torch.zeros(len(x), dtype=torch.long, device=device)
                frame = peer_row(f"{name} whole frame", "10 Hz budget", lambda: model.predict(x, bi, 1), None,
                                 threads=threads, device=device, repeat=args.repeat, peer_ms=100.0,
                                 target=FRAME_TARGETS.get(name), detail="")
                model.timings = {}
                runs = max(1, min(args.repeat, 3))
                for _ in range(runs):
                    dets = model.predict(x, bi, 1)
                stages = {k: round(v / runs * 1e3, 1) for k, v in model.timings.items()}
                model.timings = None
                frame["detail"] = (", ".join(f"{k} {v}" for k, v in stages.items())
                                   + f" ms; {counts['used']} points, {len(dets[0]['boxes'])} boxes, weights {weights}")
                rows.append(frame)
                details.append({"variant": name, "threads": threads, "ms": frame["ms"], "stages_ms": stages,
                                "points_in": counts["input"], "points_used": counts["used"],
                                "boxes": int(len(dets[0]["boxes"])), "weights": weights})
                if model.grid not in grids_done:
                    grids_done.add(model.grid)
                    rows.append(voxel_assignment_row(x, model.grid, threads=threads, device=device, repeat=args.repeat))
                rows.append(nms_row(*_nms_inputs(model, x, bi), threads=threads, device=device, repeat=args.repeat))
    notes = ["end to end in PyTorch, batch 1, fp32; stage times (detail) come from separate synchronised runs",
             "ratio = job / peer, each pair measured taking turns; met: ratio <= target",
             "paper targets on GPU: FlatFormer >= 50 Hz, DSVT-P >= 30 Hz (DSVT's TensorRT: 27 Hz)"]
    context = base_context(device)
    context.update(frame=source, thread_rows=counts_of_threads, load_average_start=load_start,
                   load_average_end=load_average())
    return BenchReport(title="detector speed", rows=rows, context=context, notes=notes, details=details)
