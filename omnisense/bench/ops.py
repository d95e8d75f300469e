"""`omnisense bench ops`: our kNN, ball query and FPS (reference and fast paths) against scipy and open3d.

The same random cloud goes to every implementation; each row gives the median time, the ratio to the peer
of that op (peer time / our time: above 1 means ours is faster) and whether the result agrees with the peer
(same indices up to ties).
"""

from __future__ import annotations

import argparse

HELP = "kNN, ball query and FPS against scipy cKDTree and open3d (issue #3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=16384, help="points in the cloud (default 16384)")
    parser.add_argument("--k", type=int, default=16, help="neighbours for kNN (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cloud")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per implementation (median; default 3)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and scipy (default: torch's default)")


def run(args: argparse.Namespace):
    import numpy as np
    import torch

    from omnisense.bench._common import BenchReport, base_context, measure
    from perception3d.ops import ball_query, farthest_point_sample, knn

    if args.threads:
        torch.set_num_threads(args.threads)
    n, k = args.points, args.k
    g = torch.Generator().manual_seed(args.seed)
    # a cloud of n points in a 10 m box, and n/4 queries drawn from it (FPS and ball-query centres)
    cloud = torch.rand(1, n, 3, generator=g) * 10
    m = max(1, n // 4)
    centres = cloud[:, torch.randperm(n, generator=g)[:m]]
    # radius for about 32 points on average: 32 = n * (4/3 pi r^3) / 1000
    radius = float((32 * 1000 / n * 3 / (4 * np.pi)) ** (1 / 3))
    count = 32
    rows: list[dict] = []
    notes = [f"kNN: k={k}, all {n} points query the cloud; ball query: {m} centres, radius {radius:.3f} m "
             f"(~32 inside), max_count {count}; FPS: {m} of {n} points."]

    def add(op, impl, device, timing, peer_ms, agrees):
        rows.append({"op": op, "impl": impl, "device": device, "ms": timing.ms,
                     "speedup_vs_peer": None if peer_ms is None else peer_ms / timing.ms, "agrees": agrees})

    # ---- kNN
    pts = cloud[0].double().numpy()
    peer_idx = {}

    def scipy_knn():
        from scipy.spatial import cKDTree

        peer_idx["knn"] = cKDTree(pts).query(pts, k=k, workers=torch.get_num_threads())[1]

    peer = measure(scipy_knn, repeat=args.repeat, warmup=1)
    add("knn", "scipy cKDTree (peer)", "cpu", peer, peer.ms, True)
    same = lambda idx: _agree(idx[0].cpu().numpy(), peer_idx["knn"])  # noqa: E731
    o3d_knn = _open3d_knn(pts, k)
    if o3d_knn is not None:
        t = measure(o3d_knn[0], repeat=args.repeat, warmup=1)
        add("knn", "open3d NearestNeighborSearch", "cpu", t, peer.ms, _agree(o3d_knn[1](), peer_idx["knn"]))
    for backend in ("scipy", "torch", "reference"):
        out = {}
        t = measure(lambda: out.__setitem__("r", knn(cloud, cloud, k, backend=backend)), repeat=args.repeat, warmup=1)
        add("knn", f"ours ({backend})", "cpu", t, peer.ms, same(out["r"][1]))

    # ---- ball query
    cen = centres[0].double().numpy()

    def scipy_ball():
        from scipy.spatial import cKDTree

        peer_idx["ball"] = cKDTree(pts).query_ball_point(cen, radius, return_sorted=True,
                                                         workers=torch.get_num_threads())

    peer = measure(scipy_ball, repeat=args.repeat, warmup=1)
    add("ball_query", "scipy query_ball_point (peer, unpadded lists)", "cpu", peer, peer.ms, True)
    first = np.array([(lst[:count] + [lst[0]] * (count - len(lst[:count]))) if lst else [-1] * count
                      for lst in peer_idx["ball"]])
    o3d_ball = _open3d_ball(pts, cen, radius, count)
    if o3d_ball is not None:
        t = measure(o3d_ball, repeat=args.repeat, warmup=1)
        add("ball_query", "open3d hybrid_search (nearest within r, other semantics)", "cpu", t, peer.ms, None)
    for backend in ("scipy", "reference"):
        out = {}
        t = measure(lambda: out.__setitem__("r", ball_query(centres, cloud, radius, count, backend=backend)),
                    repeat=args.repeat, warmup=1)
        mine = out["r"][0].numpy()
        has = first[:, 0] >= 0
        add("ball_query", f"ours ({backend})", "cpu", t, peer.ms, bool((mine[has] == first[has]).all()))

    # ---- farthest point sampling
    def open3d_fps():
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        return pc.farthest_point_down_sample(m, 0)

    try:
        peer = measure(open3d_fps, repeat=args.repeat, warmup=1)
        add("fps", "open3d farthest_point_down_sample (peer, unordered)", "cpu", peer, peer.ms, True)
        peer_ms = peer.ms
    except ImportError:
        peer_ms = None
        notes.append("open3d is not installed: no FPS peer")
    fps_ref = farthest_point_sample(cloud, m, backend="reference")
    backends = ("open3d", "reference") if peer_ms is not None else ("reference",)
    for backend in backends:
        out = {}
        t = measure(lambda: out.__setitem__("r", farthest_point_sample(cloud, m, backend=backend)), repeat=args.repeat, warmup=1)
        add("fps", f"ours ({backend})", "cpu", t, peer_ms, bool(torch.equal(out["r"], fps_ref)))

    # ---- ours on the GPU
    if args.device.startswith("cuda") and torch.cuda.is_available():
        gcloud, gcentres = cloud.cuda(), centres.cuda()
        ref_knn = knn(cloud, cloud, k, backend="scipy")[1]
        same_fps = lambda r: bool(torch.equal(r.cpu(), fps_ref))  # noqa: E731
        for name, impl, fn, check in (
            ("knn", "ours (cuda, torch)", lambda: knn(gcloud, gcloud, k, backend="torch"),
             lambda r: _agree(r[1][0].cpu().numpy(), ref_knn[0].numpy())),
            ("ball_query", "ours (cuda, reference)", lambda: ball_query(gcentres, gcloud, radius, count, backend="reference"),
             lambda r: bool(torch.equal(r.cpu(), ball_query(centres, cloud, radius, count, backend="scipy")))),
            ("fps", "ours (cuda, reference)", lambda: farthest_point_sample(gcloud, m, backend="reference"), same_fps),
            ("fps", "ours (cuda, triton)", lambda: farthest_point_sample(gcloud, m, backend="triton"), same_fps),
        ):
            out = {}
            try:
                t = measure(lambda: out.__setitem__("r", fn()), device="cuda", repeat=max(args.repeat, 5), warmup=2)
            except Exception as err:  # the Triton kernel had not run on a GPU when this was written: report it
                notes.append(f"{impl} {name}: {type(err).__name__}: {str(err)[:200]}")
                continue
            cpu_peer = next(r["ms"] for r in rows if r["op"] == name and "peer" in r["impl"])
            add(name, impl, "cuda", t, cpu_peer, check(out["r"]))
        notes.append("cuda rows: speedup_vs_peer compares with the CPU peer of the same op")

    context = base_context("cpu")
    context.update({"points": n, "k": k, "queries_ball_fps": m, "scipy_workers": torch.get_num_threads()})
    if args.device.startswith("cuda") and torch.cuda.is_available():
        context["cuda_device"] = torch.cuda.get_device_name()
    return BenchReport(title=f"perception3d.ops on {n} points", rows=rows, context=context, notes=notes)


def _agree(ours, peer) -> bool:
    """Same neighbour sets per query (order among equal distances may differ)."""
    import numpy as np

    return bool((np.sort(ours, axis=1) == np.sort(peer, axis=1)).mean() > 0.999)


def _open3d_knn(pts, k):
    try:
        import open3d as o3d
    except ImportError:
        return None
    tensor = o3d.core.Tensor(pts)
    result = {}

    def run():
        nns = o3d.core.nns.NearestNeighborSearch(tensor)
        nns.knn_index()
        result["idx"] = nns.knn_search(tensor, k)[0]

    run()
    return run, lambda: result["idx"].numpy()


def _open3d_ball(pts, centres, radius, count):
    try:
        import open3d as o3d
    except ImportError:
        return None
    tensor, queries = o3d.core.Tensor(pts), o3d.core.Tensor(centres)

    def run():
        nns = o3d.core.nns.NearestNeighborSearch(tensor)
        nns.hybrid_index(radius)
        return nns.hybrid_search(queries, radius, count)

    return run
