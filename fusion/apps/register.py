"""`omnisense register SOURCE TARGET`: the rigid transform that maps SOURCE into TARGET's frame.

RoITr (the shipped `roitr_small_cgal` weights, or `--weights`) with local-to-global registration, or the
classical FPFH + RANSAC (`--method fpfh`); optional point-to-plane ICP (`--refine icp`). Writes result.json:
{"transform": 4x4 row-major, "fitness", "inlier_rmse", "num_correspondences", "method", "runtime_s", ...}
and, with --plot, a PNG of both clouds before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "register two point clouds (RoITr, or FPFH + RANSAC) and write the 4x4 transform"
SHIPPED = Path(__file__).resolve().parents[1] / "shipped" / "roitr_small_cgal.safetensors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="SOURCE cloud: .ply .pcd .xyz .npy .bin (KITTI) .las .laz")
    parser.add_argument("target", type=Path, help="TARGET cloud, same formats")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--method", choices=["roitr", "fpfh"], default="roitr")
    parser.add_argument("--refine", choices=["none", "icp"], default="none")
    parser.add_argument("--pose", choices=["verified", "lgr"], default="verified",
                        help="RoITr's pose: LGR with its hypotheses verified by the point descriptors (default), or "
                             "LGR choosing by inlier count as in the paper")
    parser.add_argument("--voxel-size", type=float, help="voxel size in the clouds' unit")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG of both clouds before and after")


def read_cloud(path: Path):
    """float64 [N, 3] absolute coordinates of a cloud file (LAS origins added back)."""
    import numpy as np

    from perception3d.io import read_points

    data = read_points(path)
    return data.xyz.astype(np.float64) + data.origin


def load_roitr(weights: Path | None = None, device: str = "cpu"):
    """A RoITr model with `weights` (default: the shipped roitr_small_cgal), in eval mode."""
    from fusion._errors import WeightsError
    from fusion._weights import load_model_weights, load_weights
    from perception3d.models import VARIANTS

    path = Path(weights) if weights is not None else SHIPPED
    if not path.exists():
        raise WeightsError(path, "RoITr weights not found (pass --weights, or use --method fpfh)")
    state, meta = load_weights(path)
    variant = meta.get("variant", "roitr_small")
    if variant not in VARIANTS:
        raise WeightsError(path, f"its metadata names an unknown variant {variant!r}")
    model = VARIANTS[variant](**meta.get("model_kwargs", {}))  # e.g. {"shape_features": true}
    load_model_weights(model, state)
    return model.to(device).eval()


def register(source, target, *, method: str = "roitr", model=None, voxel_size: float | None = None,
             refine: str = "none", pose: str = "verified", seed: int = 0, device: str = "cpu") -> dict:
    """Register two clouds [N, 3] (float64); returns result.json's content (without the file names)."""
    import time

    import numpy as np

    from perception3d.registration.classical import evaluate_alignment, fpfh_ransac, icp_refine
    from perception3d.registration.pipeline import register_roitr

    start = time.perf_counter()
    if method == "fpfh":
        result = fpfh_ransac(source, target, voxel_size=voxel_size, seed=seed)
    else:
        result = register_roitr(model if model is not None else load_roitr(device=device), source, target,
                                voxel_size=voxel_size, verify=pose == "verified", seed=seed, device=device)
    transform = result.transform
    if refine == "icp":
        transform = icp_refine(source, target, transform, result.voxel_size)
    fitness, rmse = evaluate_alignment(source, target, transform, 1.5 * result.voxel_size)
    return {"transform": np.asarray(transform, dtype=np.float64).tolist(), "fitness": fitness, "inlier_rmse": rmse,
            "num_correspondences": int(len(result.src_corr)), "method": method if refine == "none" else f"{method}+icp",
            "runtime_s": time.perf_counter() - start, "voxel_size": result.voxel_size,
            **({"pose": pose} if method == "roitr" else {})}


def plot_registration(source, target, transform, path: Path, title: str = "") -> Path:
    """Two 3D panels: the clouds as given (source red, target blue) and after moving the source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fusion._io import write_bytes_atomic
    from perception3d.registration.metrics import transform_points

    rng = np.random.default_rng(0)

    def thin(p):
        return p[rng.choice(len(p), min(len(p), 6000), replace=False)]

    src, tgt = thin(np.asarray(source)), thin(np.asarray(target))
    fig = plt.figure(figsize=(11, 5.2))
    for i, (name, s) in enumerate((("before", src), ("after", transform_points(src, transform)))):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        ax.scatter(*tgt.T, s=0.6, c="tab:blue", label="target")
        ax.scatter(*s.T, s=0.6, c="tab:red", label="source")
        ax.set_title(name)
        ax.set_axis_off()
        both = np.concatenate([tgt, s])
        centre, half = both.mean(0), np.ptp(both, axis=0).max() / 2
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        if i == 0:
            ax.legend(loc="upper left", markerscale=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    from fusion._io import write_json_atomic

    from perception3d.registration.pipeline import check_points

    source = check_points(read_cloud(args.source), str(args.source))
    target = check_points(read_cloud(args.target), str(args.target))
    if args.voxel_size is not None and not args.voxel_size > 0:
        from perception3d import PointCloudValueError

        raise PointCloudValueError(f"--voxel-size must be positive, got {args.voxel_size}")
    model = load_roitr(args.weights) if args.method == "roitr" else None
    result = register(source, target, method=args.method, model=model, voxel_size=args.voxel_size,
                      refine=args.refine, pose=args.pose)
    result = {**result, "source": str(args.source), "target": str(args.target)}
    write_json_atomic(args.output, result)
    print(f"{result['method']}: fitness {result['fitness']:.3f}, inlier RMSE {result['inlier_rmse']:.4g}, "
          f"{result['num_correspondences']} correspondences, {result['runtime_s']:.2f} s -> {args.output}")
    if args.plot:
        plot_registration(source, target, result["transform"], args.plot,
                          f"{args.source.name} -> {args.target.name} ({result['method']})")
        print(f"plot: {args.plot}")
    return 0


def demo(ctx):
    """Demo part: the CGAL kitten scan against a rotated (uniform SO(3)), partial, noisy copy of itself."""
    import numpy as np

    import fusion
    from fusion._demo import DemoSection
    from perception3d.registration.metrics import extent, rotation_error, translation_error
    from perception3d.registration.pairs import make_pair

    cgal = Path(fusion.sample_data("cgal"))
    scan = read_cloud(next(cgal.rglob("points_3/kitten.xyz")))
    source, target, gt = make_pair(scan, np.random.default_rng(ctx.seed))
    rows, images = [], []
    methods = [("fpfh", None)]
    if SHIPPED.exists():
        methods.insert(0, ("roitr", load_roitr(device=ctx.device)))
    for method, model in methods:
        for refine in ("none", "icp"):
            r = register(source, target, method=method, model=model, refine=refine, seed=ctx.seed, device=ctx.device)
            t = np.array(r["transform"])
            rre, rte = rotation_error(t, gt), translation_error(t, gt)
            ok = rre < 5 and rte < 0.05 * extent(target)
            rows.append(f"| {r['method']} | {rre:.2f} | {rte / extent(target) * 100:.2f}% | "
                        f"{r['num_correspondences']} | {r['runtime_s']:.2f} | {'yes' if ok else 'no'} |")
            if refine == "icp":
                images.append(plot_registration(source, target, t, ctx.out / f"kitten_{method}.png",
                                                f"kitten scan, {r['method']}: RRE {rre:.1f} deg"))
    note = "" if SHIPPED.exists() else "\n\nNo shipped RoITr weights in this install: only FPFH + RANSAC ran."
    markdown = ("The CGAL kitten scan (real, 5,210 points) against a copy of itself under a uniform random "
                "rotation, cropped to two partial views with noise and thinning.\n\n"
                "| method | RRE (deg) | RTE (% of extent) | correspondences | time (s) | registered |\n"
                "|---|---|---|---|---|---|\n" + "\n".join(rows) + note)
    summary = "; ".join(f"{row.split('|')[1].strip()} {'ok' if row.rstrip('| ').endswith('yes') else 'failed'}"
                        for row in rows)
    return DemoSection("3D registration (RoITr, FPFH + RANSAC)", markdown, images, f"kitten: {summary}")
