"""`omnisense bench registration`: RoITr against FPFH + RANSAC on real scans, in one run.

Each real scan (the CGAL kitten, bunny and hippo scans and the octomap corridor scan) gives `--pairs` pairs:
two partial views (view-dependent crops keeping 60-90% of the points, thinned, with noise) with the source
under a uniform random SO(3) rotation (`perception3d.registration.pairs.make_pair`). Both methods see the
same pairs at the same voxel size. A pair counts as registered when RRE < 5 degrees and RTE < 5% of the
target's extent. `--scans autzen` adds a real airborne lidar tile (laspy's autzen_trim.laz, US survey feet):
two overlapping windows of it (`overlapping_crops`: 3/4 of the tile each, sharing 2/3 of each), the source under
a uniform SO(3) rotation. Each pair's overlap (share of the source within 2 voxels of the target under the truth)
is reported. `--json` also lists every pair (`details`: scan, pair index, method, RRE, RTE / extent, registered,
IR, overlap, seconds). `--estimators lgr` is the pipeline's default pose (LGR with its hypotheses verified by the
point descriptors), `lgr-inliers` LGR with the paper's choice by inlier count, `ransac` open3d's RANSAC on
RoITr's correspondences. Time per pair is wall time for the whole registration (voxel grid, normals or features,
matching, pose), on the chosen device.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "RoITr against FPFH + RANSAC on real scans: recall and time per pair (issue #4)"
SCANS = ("kitten", "bunny", "hippo1", "hippo2", "corridor")
OUTDOOR = ("autzen",)  # not in the default set: the benchmark is the four object / indoor scans


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=int, default=10, help="pairs per scan (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights",
                        help="RoITr weights: shipped name or .safetensors file (default: roitr_small_cgal; --lidar "
                             "and --odometry: chosen by the target's extent as `omnisense register` does, "
                             "roitr_small_lidar for sweeps)")
    parser.add_argument("--num-points", type=int,
                        help="points per cloud after the voxel grid (default: the weights' spec: 2048; --lidar: "
                             "the spec's choice by extent, 8192 for sweeps)")
    parser.add_argument("--scans", nargs="+", choices=SCANS + OUTDOOR, default=list(SCANS),
                        help="scans (default: the object and corridor scans; 'autzen' is a real outdoor lidar tile)")
    parser.add_argument("--estimators", nargs="+", choices=["lgr", "lgr-inliers", "ransac"], default=["lgr"],
                        help="RoITr pose estimators to measure (default: lgr; lgr-inliers: LGR's winner by inlier "
                             "count, as in the paper, instead of by descriptor agreement)")
    parser.add_argument("--refine", choices=["none", "icp"], default="none",
                        help="refine every method's result with point-to-plane ICP (timed with it)")
    parser.add_argument("--rotated", action="store_true",
                        help="the rotated variant (RoITr's Rotated 3DMatch): each cloud of the same pairs also under "
                             "its own uniform SO(3) rotation")
    parser.add_argument("--lidar", action="store_true",
                        help="spinning-lidar sweeps instead: real Ouster pairs and simulated pairs along a trajectory, "
                             "full and low overlap (a 90-degree sector of the source), RRE < 2 deg and RTE < 0.2 m, "
                             "RoITr and FPFH + RANSAC each with and without ICP")
    parser.add_argument("--odometry", action="store_true",
                        help="sweep sequences (the OS-1-128 capture with its poses, a simulated drive) chained into "
                             "poses by RoITr + ICP and FPFH + RANSAC + ICP, against KISS-ICP (pip install kiss-icp), "
                             "as recorded and with every sweep turned by a uniform random rotation")
    parser.add_argument("--rotations", type=int, default=2,
                        help="--lidar: uniform SO(3) rotations per base pair and overlap (default 2)")
    parser.add_argument("--sim-scenes", type=int, default=3,
                        help="--lidar: simulated scenes, one pair of consecutive sweeps each (default 3)")


def scan_paths(names=SCANS) -> dict[str, Path]:
    """The files of the named scans (only their sources are fetched)."""
    import omnisense

    paths: dict[str, Path] = {}
    if {"kitten", "bunny", "hippo1", "hippo2"} & set(names):
        cgal = Path(omnisense.sample_data("cgal"))
        files = {"kitten": "points_3/kitten.xyz", "bunny": "meshes/bunny00.off", "hippo1": "points_3/hippo1.ply",
                 "hippo2": "points_3/hippo2.ply"}
        paths.update({name: next(cgal.rglob(pattern)) for name, pattern in files.items()})
    if "corridor" in names:
        paths["corridor"] = Path(omnisense.sample_data("octomap-corridor")) / "scan.dat"
    if "autzen" in names:
        paths["autzen"] = Path(omnisense.sample_data("laspy-samples")) / "autzen_trim.laz"
    return {n: paths[n] for n in names}


def load_scan(path: Path):
    """The scan's points [N, 3]: a mesh's vertices (the bunny's are the range-scan points), text, PLY."""
    if path.suffix == ".dat":
        from omnisense.train.registration import load_base_cloud

        return load_base_cloud(path)
    from omnisense.commands.register import read_cloud

    return read_cloud(path)


OUSTER_SEQUENCE = "osfs/OS-1-128_v2.3.0_1024x10_lb_n3.osf"
OUSTER_POSES = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3_poses_kitti.txt"
OUSTER_SINGLES = {"OS-0-32": "pcaps/OS-0-32-U1_v2.2.0_1024x10.pcap", "OS-2-128": "pcaps/OS-2-128-U1_v2.3.0_1024x10.pcap"}
SIM_STEP = (1.5, 0.1, 0.03)  # metres forward, metres left, radians of yaw between simulated sweeps (15 m/s at 10 Hz)


def lidar_bases(sim_scenes: int = 3, *, seed: int = 0) -> list[tuple]:
    """Base sweep pairs before rotation and cropping: (name, sensor, source [N, 3], target [M, 3], transform [4, 4]
    source -> target), metres, sensor frames.

    Real: the OS-1-128 capture's consecutive sweeps (1 -> 0, 2 -> 1) and 2 -> 0, from its KITTI poses; the OS-0-32
    and OS-2-128 single sweeps against a thinned, noisy copy of themselves (`self_pair_copy`). Simulated: per scene,
    two sweeps of the detection simulator (64 beams), the second `SIM_STEP` further along.
    """
    import numpy as np

    import omnisense
    from perception3d.detection.simulator import simulate_frame
    from perception3d.registration.pairs import self_pair_copy
    from perception3d.sensors import read_kitti_poses, read_sweep, relative_pose

    root = Path(omnisense.sample_data("ouster-samples"))
    poses = read_kitti_poses(root / OUSTER_POSES)
    sweeps = [read_sweep(root / OUSTER_SEQUENCE, k).xyz.astype(np.float64) for k in range(3)]
    bases = [(f"OS-1-128 {s}->{t}", "OS-1-128", sweeps[s], sweeps[t], relative_pose(poses, s, t))
             for s, t in ((1, 0), (2, 1), (2, 0))]
    for sensor, rel in OUSTER_SINGLES.items():
        sweep = read_sweep(root / rel, 0).xyz.astype(np.float64)
        bases.append((f"{sensor} copy", sensor, *self_pair_copy(sweep, np.random.default_rng([seed, 5, len(bases)]))))
    for k in range(sim_scenes):
        frames = [simulate_frame(np.random.default_rng([seed, 6, k]), sensor=sensor)
                  for sensor in ((0.0, 0.0, 0.0), SIM_STEP)]
        pose = [np.asarray(f.meta["sensor_pose"]) for f in frames]
        bases.append((f"sim {k} 1->0", "simulated", frames[1].points[:, :3].astype(np.float64),
                      frames[0].points[:, :3].astype(np.float64), np.linalg.inv(pose[0]) @ pose[1]))
    return bases


def run(args: argparse.Namespace):
    if getattr(args, "odometry", False):
        return run_odometry(args)
    if getattr(args, "lidar", False):
        return run_lidar(args)
    args.num_points = args.num_points or 2048  # the object scans: the shipped weights' spec
    import time

    import numpy as np
    import torch
    from tqdm import tqdm

    from omnisense.bench._common import BenchReport, base_context
    from omnisense.models import load_model
    from scipy.spatial import cKDTree

    from perception3d.registration import metrics
    from perception3d.registration.classical import fpfh_ransac, icp_refine
    from perception3d.registration.confidence import measure
    from perception3d.registration.pairs import make_pair, overlapping_crops, rotate_pair
    from perception3d.registration.pipeline import auto_voxel_size, register_roitr

    model, _ = load_model(args.weights or "roitr_small_cgal", device=args.device, task="registration")
    methods = [*(f"roitr+{e}" for e in args.estimators), "fpfh+ransac"]
    suffix = "+icp" if args.refine == "icp" else ""
    paths = scan_paths(args.scans)
    # Warm-up (imports, first-call allocations) outside the timings, for both methods.
    warm_src, warm_tgt, _ = make_pair(load_scan(paths[args.scans[0]]), np.random.default_rng(12345))
    register_roitr(model, warm_src, warm_tgt, num_points=args.num_points, device=args.device)
    fpfh_ransac(warm_src, warm_tgt, num_points=args.num_points)
    results: dict[tuple[str, str], list[dict]] = {}
    total = len(args.scans) * args.pairs
    with tqdm(total=total, desc="pairs", mininterval=10) as bar:
        for scan in args.scans:
            cloud = load_scan(paths[scan])
            rng = np.random.default_rng([args.seed, (SCANS + OUTDOOR).index(scan)])
            for i in range(args.pairs):
                src, tgt, gt = (overlapping_crops if scan in OUTDOOR else make_pair)(cloud, rng)
                if args.rotated:  # its own generator: the rotated run keeps the same pairs
                    src, tgt, gt = rotate_pair(src, tgt, gt, np.random.default_rng([args.seed, 99, i]))
                voxel = auto_voxel_size(tgt, args.num_points)
                ext = metrics.extent(tgt)
                near = cKDTree(tgt).query(metrics.transform_points(src, gt), distance_upper_bound=2 * voxel)[0]
                overlap = float(np.isfinite(near).mean())
                for method in methods:
                    start = time.perf_counter()
                    if method.startswith("roitr"):
                        estimator = method.split("+")[1]
                        r = register_roitr(model, src, tgt, voxel_size=voxel, num_points=args.num_points,
                                           estimator=estimator.split("-")[0], verify=estimator == "lgr", seed=i,
                                           device=args.device)
                    else:
                        r = fpfh_ransac(src, tgt, voxel_size=voxel, seed=i)
                    if args.refine == "icp":
                        r.transform = icp_refine(src, tgt, r.transform, voxel)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    seconds = time.perf_counter() - start
                    rre, rte = metrics.rotation_error(r.transform, gt), metrics.translation_error(r.transform, gt)
                    conf = measure(src, tgt, r.transform, voxel, src_corr=r.src_corr, tgt_corr=r.tgt_corr, seed=i)
                    # FPFH's correspondences are RANSAC's own inlier set: their ratio says nothing comparable.
                    ir = (None if method == "fpfh+ransac"
                          else metrics.inlier_ratio(r.src_corr, r.tgt_corr, gt, 4 * voxel))
                    results.setdefault((scan, method), []).append(
                        {"pair": i, "rre": rre, "rte": rte / ext, "ok": rre < 5 and rte < 0.05 * ext, "s": seconds,
                         "ir": ir, "overlap": overlap, "confidence": conf.to_dict()})
                bar.update(1)

    rows = []
    for method in methods:
        for scan in [*args.scans, "all"]:
            rs = [r for (s, m), v in results.items() if m == method and scan in (s, "all") for r in v]
            rows.append({
                "method": method + suffix, "scan": scan, "pairs": len(rs),
                "recall_%": 100 * float(np.mean([r["ok"] for r in rs])),
                "median_RRE_deg": float(np.median([r["rre"] for r in rs])),
                "median_RTE_%extent": 100 * float(np.median([r["rte"] for r in rs])),
                "inlier_ratio_%": None if rs[0]["ir"] is None else 100 * float(np.mean([r["ir"] for r in rs])),
                "s_per_pair": float(np.mean([r["s"] for r in rs])),
                "overlap_%_min_mean_max": "/".join(f"{100 * f([r['overlap'] for r in rs]):.0f}"
                                                   for f in (np.min, np.mean, np.max)),
            })
    overall = {r["method"]: r for r in rows if r["scan"] == "all"}
    main, fpfh = methods[0] + suffix, "fpfh+ransac" + suffix
    speed = overall[fpfh]["s_per_pair"] / overall[main]["s_per_pair"]
    context = {**base_context(args.device), "pairs_per_scan": args.pairs, "seed": args.seed, "rotated": args.rotated,
               "points_per_cloud": args.num_points, "weights": str(args.weights or "roitr_small_cgal"),
               "roitr_speedup_vs_fpfh": round(speed, 3)}
    seen = [s for s in args.scans if s == "corridor"]  # the corridor scan is one of the training clouds
    notes = [
        "registered: RRE < 5 deg and RTE < 5% of the target's extent; uniform SO(3) rotations, partial overlap"
        + ("; rotated variant: both clouds also under their own SO(3) rotation" if args.rotated else ""),
        f"{main} recall {overall[main]['recall_%']:.1f}% vs {fpfh} {overall[fpfh]['recall_%']:.1f}%;"
        f" {main} is {speed:.2f}x the speed of {fpfh} per pair",
        "kitten, bunny and hippo are held out of RoITr's training clouds; "
        + (f"{', '.join(seen)} was among them (other crops and rotations)" if seen else "no scan here was trained on"),
        "overlap: share of the source within 2 voxels of the target under the truth (min/mean/max over the pairs)",
        "inlier ratio (RoITr): share of its correspondences within 4 voxels of the truth (the IR of the protocol)",
    ]
    details = [{"scan": scan, "method": method + suffix, **r} for (scan, method), rs in results.items() for r in rs]
    return BenchReport("Registration: RoITr vs FPFH + RANSAC on real scans", rows, context, notes, details)


def run_lidar(args: argparse.Namespace):
    """`--lidar`: every base pair (`lidar_bases`) under `--rotations` uniform SO(3) rotations, at full overlap and
    with the source cut to a 90-degree sector; RoITr and FPFH + RANSAC, each then refined by ICP (timed as the
    estimate plus the refinement)."""
    import time

    import numpy as np
    import torch
    from tqdm import tqdm

    from omnisense.bench._common import BenchReport, base_context
    from omnisense.models import load_model
    from perception3d.registration import metrics
    from perception3d.registration.classical import fpfh_ransac, icp_refine
    from perception3d.registration.confidence import measure
    from perception3d.registration.pairs import sweep_pair
    from perception3d.registration.pipeline import auto_voxel_size, register_roitr

    from omnisense.commands.register import weights_for
    from perception3d.registration import RegistrationSpec

    bases = lidar_bases(args.sim_scenes, seed=args.seed)
    weights = weights_for(bases[0][3], args.weights or "auto")
    model, meta = load_model(weights, device=args.device, task="registration")
    spec, fpfh_spec = meta.transforms(), RegistrationSpec()
    # Warm-up (imports, first-call allocations) outside the timings, for both methods.
    warm = sweep_pair(*bases[0][2:], np.random.default_rng(12345))
    register_roitr(model, warm[0], warm[1], num_points=args.num_points or 2048, device=args.device)
    fpfh_ransac(warm[0], warm[1], num_points=args.num_points or 2048)
    details = []
    with tqdm(total=len(bases) * 2 * args.rotations, desc="pairs", mininterval=10) as bar:
        for b, (name, sensor, source, target, transform) in enumerate(bases):
            for overlap in ("full", "low"):
                for i in range(args.rotations):
                    rng = np.random.default_rng([args.seed, b, i, overlap == "low"])
                    src, tgt, gt = sweep_pair(source, target, transform, rng, sector=90.0 if overlap == "low" else None)
                    for method in ("roitr", "fpfh"):
                        start = time.perf_counter()
                        # Each method at the size `omnisense register` gives it: the weights' spec for RoITr,
                        # the default spec for FPFH (8192 points for sweeps).
                        points = args.num_points or (spec if method == "roitr" else fpfh_spec).points_for(tgt)
                        voxel = auto_voxel_size(tgt, points)
                        if method == "roitr":
                            r = register_roitr(model, src, tgt, voxel_size=voxel, num_points=points,
                                               seed=i, device=args.device)
                        else:
                            r = fpfh_ransac(src, tgt, voxel_size=voxel, num_points=points, seed=i)
                        if args.device.startswith("cuda"):
                            torch.cuda.synchronize()
                        seconds = time.perf_counter() - start
                        start = time.perf_counter()
                        refined = icp_refine(src, tgt, r.transform, voxel)
                        icp_seconds = time.perf_counter() - start
                        for est, s, label in ((r.transform, seconds, method), (refined, seconds + icp_seconds,
                                                                               f"{method}+icp")):
                            rre, rte = metrics.rotation_error(est, gt), metrics.translation_error(est, gt)
                            conf = measure(src, tgt, est, voxel, src_corr=r.src_corr, tgt_corr=r.tgt_corr, seed=i)
                            details.append({"pair": name, "sensor": sensor, "case": overlap, "rotation": i,
                                            "method": label, "rre": rre, "rte": rte, "ok": rre < 2 and rte < 0.2,
                                            "s": s, "voxel": voxel, "points": points, "source_points": len(src),
                                            **conf.to_dict()})
                    bar.update(1)
    rows = []
    methods = ("roitr", "roitr+icp", "fpfh", "fpfh+icp")
    groups = [("real", lambda d: d["sensor"] != "simulated"), ("simulated", lambda d: d["sensor"] == "simulated"),
              ("all", lambda d: True)]
    for overlap in ("full", "low"):
        for group, keep in groups:
            for method in methods:
                rs = [d for d in details if d["method"] == method and d["case"] == overlap and keep(d)]
                if not rs:
                    continue
                rows.append({"method": method, "overlap": overlap, "sweeps": group, "pairs": len(rs),
                             "recall": round(float(np.mean([d["ok"] for d in rs])), 3),
                             "median_RRE_deg": float(np.median([d["rre"] for d in rs])),
                             "median_RTE_m": float(np.median([d["rte"] for d in rs])),
                             "s_per_pair": float(np.mean([d["s"] for d in rs])),
                             "registered_said": round(float(np.mean([d["registered"] for d in rs])), 3)})
    agree = float(np.mean([d["registered"] == d["ok"] for d in details]))
    context = {**base_context(args.device), "rotations": args.rotations, "sim_scenes": args.sim_scenes,
               "seed": args.seed, "points_per_cloud": args.num_points or "spec (by extent)",
               "weights": str(weights),
               "base_pairs": [b[0] for b in bases], "confidence_agrees_with_truth": round(agree, 3)}
    notes = [
        "registered: RRE < 2 deg and RTE < 0.2 m; each base pair under uniform SO(3) rotations (and a translation of up "
        "to 10 m per axis); low overlap: the source cut to a random 90-degree azimuth sector",
        "real: OS-1-128 consecutive sweeps with the capture's KITTI poses; OS-0-32 and OS-2-128 single sweeps against "
        "a copy of themselves (70% of the points, 2 cm noise); simulated: the detection simulator, 1.5 m apart; "
        "the three real sensors are held out of roitr_small_lidar's training (omnisense data make sweep-pairs)",
        "points per cloud: each method's `omnisense register` default (RoITr: the weights' spec; FPFH: 8192 for "
        "sweeps), each method's ICP on its own voxel grid",
        "time per pair: voxel size, the estimate and (+icp) the ICP refinement, wall time on a shared machine; the "
        "confidence measure (registered_said: the share the calibrated decision calls registered) is not timed",
    ]
    return BenchReport("Registration of lidar sweeps: RoITr vs FPFH + RANSAC, with and without ICP", rows, context,
                       notes, details)


SIM_DRIVE_STEP = (0.6, 0.04, 0.02)  # per sweep: 6 m/s at 10 Hz, within the simulator's free 2.5 m around the ego


def odometry_sequences(*, seed: int = 0, sim_sweeps: int = 4) -> dict[str, tuple[list, object]]:
    """name -> (sweeps [N, 3] in order, true poses [K, 4, 4] sweep k -> sweep 0's frame)."""
    import numpy as np

    import omnisense
    from perception3d.detection.simulator import simulate_frame
    from perception3d.sensors import read_kitti_poses, read_sweep

    root = Path(omnisense.sample_data("ouster-samples"))
    poses = read_kitti_poses(root / OUSTER_POSES)
    real = [read_sweep(root / OUSTER_SEQUENCE, k).xyz.astype(np.float64) for k in range(3)]
    frames = [simulate_frame(np.random.default_rng([seed, 9]), sensor=tuple(k * v for v in SIM_DRIVE_STEP))
              for k in range(sim_sweeps)]
    sim_poses = np.stack([np.asarray(f.meta["sensor_pose"]) for f in frames])
    return {"OS-1-128": (real, np.linalg.inv(poses[0]) @ poses[:3]),
            "simulated": ([f.points[:, :3].astype(np.float64) for f in frames], np.linalg.inv(sim_poses[0]) @ sim_poses)}


def _kiss_icp(sweeps):
    """KISS-ICP (kiss-icp on PyPI) over the sweeps, deskewing off (no per-point times here) -> [K, 4, 4]."""
    import numpy as np
    from kiss_icp.config import KISSConfig
    from kiss_icp.kiss_icp import KissICP

    config = KISSConfig()
    config.data.deskew = False
    config.mapping.voxel_size = config.data.max_range / 100.0
    odo, poses = KissICP(config=config), []
    for sweep in sweeps:
        odo.register_frame(np.asarray(sweep, np.float64), np.zeros(len(sweep)))
        poses.append(odo.last_pose.copy())
    return np.stack(poses)


def run_odometry(args: argparse.Namespace):
    """`--odometry`: each sequence as recorded (small motion) and with every sweep turned by its own uniform SO(3)
    rotation (large rotations); RoITr + ICP, FPFH + RANSAC + ICP and KISS-ICP; per-step relative pose errors."""
    import importlib.util
    import time

    import numpy as np

    from omnisense.bench._common import BenchReport, base_context
    from omnisense.models import load_model
    from perception3d.registration import metrics
    from perception3d.registration.odometry import register_sequence
    from perception3d.registration.pairs import uniform_rotation

    from omnisense.commands.register import weights_for

    sequences = odometry_sequences(seed=args.seed)
    weights = weights_for(next(iter(sequences.values()))[0][0], args.weights or "auto")
    model, meta = load_model(weights, device=args.device, task="registration")
    methods = {"roitr+icp": dict(model=model, method="roitr", refine="icp", spec=meta.transforms(), device=args.device),
               "fpfh+icp": dict(method="fpfh", refine="icp")}
    kiss = importlib.util.find_spec("kiss_icp") is not None
    rows, details = [], []
    for name, (sweeps, truth) in sequences.items():
        for motion in ("recorded", "rotated"):
            seq, gt = list(sweeps), truth.copy()
            if motion == "rotated":
                rng = np.random.default_rng([args.seed, 31])
                turns = [uniform_rotation(rng) for _ in seq]
                seq = [p @ r.T for p, r in zip(seq, turns)]  # sweep k in a frame turned by R_k
                for k, r in enumerate(turns):
                    inv = np.eye(4)
                    inv[:3, :3] = r.T
                    gt[k] = truth[k] @ inv
                gt = np.linalg.inv(gt[0]) @ gt
            runs = {}
            for label, kwargs in methods.items():
                start = time.perf_counter()
                odo = register_sequence(seq, seed=0, **kwargs)
                runs[label] = (odo.poses, time.perf_counter() - start, [s.registered for s in odo.steps])
            if kiss:
                start = time.perf_counter()
                runs["kiss-icp"] = (_kiss_icp(seq), time.perf_counter() - start, None)
            for label, (poses, seconds, said) in runs.items():
                steps = []
                for k in range(len(seq) - 1):
                    est = np.linalg.inv(poses[k]) @ poses[k + 1]
                    true = np.linalg.inv(gt[k]) @ gt[k + 1]
                    rre, rte = metrics.rotation_error(est, true), metrics.translation_error(est, true)
                    steps.append({"sequence": name, "motion": motion, "method": label, "step": f"{k + 1}->{k}",
                                  "rre": rre, "rte": rte, "ok": rre < 2 and rte < 0.2,
                                  "registered": None if said is None else bool(said[k])})
                details += steps
                rows.append({"sequence": name, "motion": motion, "method": label, "steps": len(steps),
                             "step_recall": round(float(np.mean([s["ok"] for s in steps])), 3),
                             "max_RRE_deg": max(s["rre"] for s in steps), "max_RTE_m": max(s["rte"] for s in steps),
                             "end_RTE_m": metrics.translation_error(poses[-1], gt[-1]),
                             "s_per_sweep": seconds / len(seq),
                             "registered_said": None if said is None else f"{sum(said)}/{len(said)}"})
    context = {**base_context(args.device), "seed": args.seed, "weights": str(weights), "kiss_icp": kiss}
    notes = ["a step succeeds when its relative pose is within 2 deg and 0.2 m of the truth's; end_RTE: the last "
             "pose's translation error", "rotated: each sweep turned by its own uniform SO(3) rotation (the sensor "
             "frames of a tumbling or re-mounted sensor), the truth turned with it; KISS-ICP assumes small motion",
             "OS-1-128: the capture's 3 sweeps and KITTI poses; simulated: one scene, 4 sweeps 0.6 m apart"]
    if not kiss:
        notes.append("KISS-ICP not installed: pip install kiss-icp==1.3.0 (the 'odometry' extra)")
    return BenchReport("Odometry: pairwise registration chained into poses vs KISS-ICP", rows, context, notes, details)
