"""`omnisense register SOURCE TARGET`: the rigid transform that maps SOURCE into TARGET's frame.

RoITr (the shipped `roitr_small_cgal` weights, or `--weights`) with local-to-global registration, or the
classical FPFH + RANSAC (`--method fpfh`); optional point-to-plane ICP (`--refine icp`). Writes result.json:
{"transform": 4x4 row-major, "fitness", "inlier_rmse", "num_correspondences", "method", "runtime_s", ...}
and, with --plot, a PNG of both clouds before and after. The work is `perception3d.registration.register`.

result.json also says `"registered": true|false` and `"confidence": {"overlap", "descriptor_fitness",
"inlier_ratio"}` (`perception3d.registration.confidence`, thresholds calibrated on benchmark pairs). When the
clouds cannot be registered (unrelated clouds, too little overlap) the command writes result.json, prints one line
and exits with status 3 (NOT_REGISTERED), unless --allow-failure; bad input exits 2.

With SOURCE alone, a sequence (a folder of clouds, a KITTI sequence folder, or every sweep of a capture) is
registered sweep to sweep and chained into poses (`perception3d.registration.odometry`): --poses gets them in KITTI
format, result.json the poses and each step's transform and confidence; status 3 when any step is not registered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "register two point clouds (RoITr, or FPFH + RANSAC) and write the 4x4 transform"
DEFAULT_WEIGHTS = "roitr_small_cgal"
NOT_REGISTERED = 3  # exit status when the confidence says the clouds were not registered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="SOURCE cloud: .ply .pcd .xyz .npy .bin (KITTI) .las .laz")
    parser.add_argument("target", type=Path, nargs="?",
                        help="TARGET cloud, same formats; leave out to register SOURCE as a sequence (a folder of "
                             "clouds, a KITTI sequence folder, or a capture's sweeps) into poses")
    parser.add_argument("--frames", type=int, nargs=2, default=(0, 0), metavar=("S", "T"),
                        help="the sweeps of SOURCE and TARGET when they are captures or logs (.pcap .osf .bag .mcap)")
    parser.add_argument("--topic", help="the lidar topic of a log with several")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name or .safetensors file (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--method", choices=["roitr", "fpfh"], default="roitr")
    parser.add_argument("--refine", choices=["none", "icp"], default="none")
    parser.add_argument("--pose", choices=["verified", "lgr"], default="verified",
                        help="RoITr's pose: LGR with its hypotheses verified by the point descriptors (default), or "
                             "LGR choosing by inlier count as in the paper")
    parser.add_argument("--voxel-size", type=float, help="voxel size in the clouds' unit")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG of both clouds before and after")
    parser.add_argument("--poses", type=Path, default=Path("poses.txt"),
                        help="sequence mode: the KITTI poses file to write (default poses.txt)")
    parser.add_argument("--allow-failure", action="store_true",
                        help=f"exit 0 even when the result is not trusted (registered: false); else {NOT_REGISTERED}")


def read_cloud(path: Path, frame: int = 0, topic: str | None = None):
    """float64 [N, 3] absolute coordinates of a cloud file (LAS origins added back), or of sweep `frame` of a
    capture or log, checked for registration."""
    import numpy as np

    from fusion.logs import is_log, read_sweep
    from perception3d.io import read_points
    from perception3d.registration.pipeline import check_points

    if is_log(path):
        return check_points(read_sweep(path, frame, topic=topic).xyz.astype(np.float64), f"{path} sweep {frame}")
    data = read_points(path)
    return check_points(data.xyz.astype(np.float64) + data.origin, str(path))


def run(args: argparse.Namespace) -> int:
    from omnisense._io import write_json_atomic
    from omnisense.models import load_model
    from perception3d.registration import RegistrationSpec, plot_registration, register

    model, spec = None, RegistrationSpec()
    if args.method == "roitr":
        model, meta = load_model(args.weights, task="registration")
        spec = meta.transforms()
    if args.target is None:
        return run_sequence(args, model, spec)
    source, target = (read_cloud(p, k, args.topic) for p, k in zip((args.source, args.target), args.frames))
    result = register(source, target, model=model, method=args.method, refine=args.refine, pose=args.pose,
                      voxel_size=args.voxel_size, spec=spec)
    record = {**result.to_dict(), "source": str(args.source), "target": str(args.target), "frames": list(args.frames),
              **({"weights": str(args.weights)} if model is not None else {})}
    write_json_atomic(args.output, record)
    print(f"{result.method}: registered {str(result.registered).lower()}, fitness {result.fitness:.3f}, "
          f"inlier RMSE {result.inlier_rmse:.4g}, "
          f"{result.num_correspondences} correspondences, {result.runtime_s:.2f} s -> {args.output}")
    if args.plot:
        plot_registration(source, target, result.transform, args.plot,
                          f"{args.source.name} -> {args.target.name} ({result.method})")
        print(f"plot: {args.plot}")
    return exit_status(result, getattr(args, "allow_failure", False))


def run_sequence(args: argparse.Namespace, model, spec) -> int:
    """SOURCE as a sequence: poses (KITTI) to --poses, poses and per-step confidence to --output."""
    from omnisense._io import write_json_atomic
    from perception3d.registration.odometry import read_sequence, register_sequence, write_kitti_poses

    def progress(k, r):
        print(f"sweep {k + 1} -> {k}: registered {str(r.registered).lower()}, fitness {r.fitness:.3f}, "
              f"{r.runtime_s:.2f} s")

    odo = register_sequence(read_sequence(args.source), model=model, method=args.method, refine=args.refine,
                            pose=args.pose, voxel_size=args.voxel_size, spec=spec, progress=progress)
    write_kitti_poses(args.poses, odo.poses)
    write_json_atomic(args.output, {**odo.to_dict(), "source": str(args.source), "poses_file": str(args.poses)})
    print(f"{len(odo.poses)} poses -> {args.poses}, {odo.to_dict()['registered_steps']}/{len(odo.steps)} steps "
          f"registered -> {args.output}")
    failed = [k for k, s in enumerate(odo.steps) if not s.registered]
    if failed and not getattr(args, "allow_failure", False):
        print(f"omnisense: not registered: step(s) {', '.join(f'{k + 1}->{k}' for k in failed)} of {args.source} "
              "(their poses are unreliable); --allow-failure to accept", file=sys.stderr)
        return NOT_REGISTERED
    return 0


def exit_status(result, allow_failure: bool = False) -> int:
    """0 when the result is trusted or failure is allowed; else one line on stderr and NOT_REGISTERED."""
    if result.registered or allow_failure:
        return 0
    c = result.confidence
    why = ("no confidence was measured" if c is None else
           f"overlap {c.overlap:.2f}, descriptor fitness {c.descriptor_fitness:.3f} are below the calibrated thresholds "
           "(unrelated clouds or too little overlap)")
    print(f"omnisense: not registered: {why}; --allow-failure to accept", file=sys.stderr)
    return NOT_REGISTERED
