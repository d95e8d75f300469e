"""`omnisense bench detect`: detector frames against the 10 Hz budget, and its stages against their peers.

Stages: voxelise (dynamic VFE), backbone (FlatFormer / DSVT on the sparse pillars), bev (scatter + 2D backbone
and neck), head (CenterHead), nms (decoding, IoU rectification, per-class rotated NMS). The default frames are
a simulated 64-beam sweep of about 100k points (2048 firings per revolution) and the real Ouster sweeps of the
sample data (`omnisense data fetch ouster-samples`: the first sweep of each pcap, OS-0-32, OS-1-128 and OS-2-128;
decoded by ouster-sdk, extra `ouster`: without it, or without the data, they are skipped with one line that says
why). `--input` measures given scans or captures instead. Every row, per frame, is measured at each
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
    parser.add_argument("--input", type=Path, nargs="+", metavar="SCAN",
                        help="scans (.bin .npy .pcd .ply .las) or captures/logs (.pcap .osf .bag .mcap: sweep --frame); "
                             "default: a simulated 64-beam sweep and the real Ouster sweeps of the sample data")
    parser.add_argument("--frame", type=int, default=0, help="the sweep of each capture or log given (default 0)")
    parser.add_argument("--no-real", action="store_true", help="the simulated sweep only (not the Ouster samples)")
    parser.add_argument("--variants", nargs="+", help="detector variants (default: the small ones on CPU, "
                                                      "the paper ones too on GPU)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--thread-rows", default="1,all", metavar="N,N",
                        help="torch thread counts to measure every row at ('all': the cores this process may use)")


SIMULATED = "simulated 64-beam sweep (2048 firings/rev)"


def _simulated():
    import numpy as np

    from perception3d.detection.simulator import LidarConfig, simulate_frame

    return simulate_frame(np.random.default_rng(0), LidarConfig(beams=64, azimuth_steps=2048)).points


def _read(path: Path, frame: int):
    """float32 [N, 4] of a scan file, or of sweep `frame` of a capture or log."""
    from fusion.logs import is_log, read_scan

    return read_scan(path, frame=frame) if is_log(path) else read_scan(path)


def ouster_samples() -> tuple[list[Path], str | None]:
    """The sample data's Ouster pcaps, or ([], the one line that says why they are not measured)."""
    import importlib.util

    from omnisense._errors import OmnisenseError
    from omnisense.data import sample_data

    if importlib.util.find_spec("ouster") is None or importlib.util.find_spec("ouster.sdk") is None:
        return [], "real Ouster sweeps skipped: ouster-sdk is not installed (pip install -e '.[ouster]')"
    try:
        folder = sample_data("ouster-samples", fetch_if_missing=False)
    except OmnisenseError:
        return [], "real Ouster sweeps skipped: the sample data is not fetched (omnisense data fetch ouster-samples)"
    return sorted((folder / "pcaps").glob("*.pcap")), None


def frames(args: argparse.Namespace) -> tuple[list[tuple[str, object]], list[str]]:
    """[(name, float32 points [N, 4])] to measure, and the lines saying what was skipped."""
    inputs = getattr(args, "input", None)
    frame = getattr(args, "frame", 0)
    if inputs:
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        return [(str(p), _read(Path(p), frame)) for p in paths], []
    out, skipped = [(SIMULATED, _simulated())], []
    if not getattr(args, "no_real", False):
        pcaps, why = ouster_samples()
        if why:
            skipped.append(why)
        out += [(f"{p.stem} sweep 0 (real Ouster)", _read(p, 0)) for p in pcaps]
    return out, skipped


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
    sweeps, skipped = frames(args)
    for line in skipped:
        print(line)
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
    for source, points in sweeps:
        for threads in counts_of_threads:
            with torch_threads(threads):
                rows_before = len(rows)
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
                    details.append({"frame": source, "variant": name, "threads": threads, "ms": frame["ms"],
                                    "stages_ms": stages, "points_in": counts["input"], "points_used": counts["used"],
                                    "boxes": int(len(dets[0]["boxes"])), "weights": weights})
                    if model.grid not in grids_done:
                        grids_done.add(model.grid)
                        rows.append(voxel_assignment_row(x, model.grid, threads=threads, device=device,
                                                         repeat=args.repeat))
                    rows.append(nms_row(*_nms_inputs(model, x, bi), threads=threads, device=device,
                                        repeat=args.repeat))
                rows[rows_before:] = [{"frame": source, **row} for row in rows[rows_before:]]
    notes = ["end to end in PyTorch, batch 1, fp32; stage times (detail) come from separate synchronised runs",
             "ratio = job / peer, each pair measured taking turns; met: ratio <= target",
             "paper targets on GPU: FlatFormer >= 50 Hz, DSVT-P >= 30 Hz (DSVT's TensorRT: 27 Hz)", *skipped]
    context = base_context(device)
    context.update(frames=[name for name, _ in sweeps], thread_rows=counts_of_threads, load_average_start=load_start,
                   load_average_end=load_average())
    return BenchReport(title="detector speed", rows=rows, context=context, notes=notes, details=details)
