"""`omnisense register SOURCE TARGET`: the rigid transform that maps SOURCE into TARGET's frame.

RoITr (the shipped `roitr_small_cgal` weights, or `--weights`) with local-to-global registration, or the
classical FPFH + RANSAC (`--method fpfh`); optional point-to-plane ICP (`--refine icp`). Writes result.json:
{"transform": 4x4 row-major, "fitness", "inlier_rmse", "num_correspondences", "method", "runtime_s", ...}
and, with --plot, a PNG of both clouds before and after. The work is `perception3d.registration.register`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "register two point clouds (RoITr, or FPFH + RANSAC) and write the 4x4 transform"
DEFAULT_WEIGHTS = "roitr_small_cgal"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="SOURCE cloud: .ply .pcd .xyz .npy .bin (KITTI) .las .laz")
    parser.add_argument("target", type=Path, help="TARGET cloud, same formats")
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
    parser.add_argument("--view", type=Path, help="interactive 3D view (self-contained HTML) before and after")
    parser.add_argument("--save-aligned", type=Path, help="PLY of the registered source and the target, a colour each")


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

    source, target = (read_cloud(p, k, args.topic) for p, k in zip((args.source, args.target), args.frames))
    model, spec = None, RegistrationSpec()
    if args.method == "roitr":
        model, meta = load_model(args.weights, task="registration")
        spec = meta.transforms()
    result = register(source, target, model=model, method=args.method, refine=args.refine, pose=args.pose,
                      voxel_size=args.voxel_size, spec=spec)
    record = {**result.to_dict(), "source": str(args.source), "target": str(args.target), "frames": list(args.frames),
              **({"weights": str(args.weights)} if model is not None else {})}
    write_json_atomic(args.output, record)
    print(f"{result.method}: fitness {result.fitness:.3f}, inlier RMSE {result.inlier_rmse:.4g}, "
          f"{result.num_correspondences} correspondences, {result.runtime_s:.2f} s -> {args.output}")
    if args.plot:
        plot_registration(source, target, result.transform, args.plot,
                          f"{args.source.name} -> {args.target.name} ({result.method})")
        print(f"plot: {args.plot}")
    if getattr(args, "view", None):
        from perception3d.registration.view import write_registration_view
        print(f"view: {write_registration_view(args.view, source, target, result.transform, title=result.method)}")
    if getattr(args, "save_aligned", None):
        from perception3d.registration.view import write_aligned_ply
        print(f"aligned: {write_aligned_ply(args.save_aligned, source, result.transform, target)}")
    return 0
