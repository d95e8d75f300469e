"""The measured pieces of `omnisense bench kernels`: a synthetic sweep, pillars, the padded-window baseline."""


from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

POINT_RANGE = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
PILLAR = 0.32
GRID = 468


def synthetic_sweep(num_points: int = 100_000, *, seed: int = 0) -> np.ndarray:
    """A 64-beam spinning-lidar sweep of a flat ground with boxes (cars, walls): float32 [N, 4] (x, y, z, intensity).

    Rays leave a sensor 1.8 m above the ground at 64 elevations from -24.9 to +2.0 degrees (HDL-64E
    style) and enough azimuths to give about `num_points` returns within 75 m; the nearest hit of
    the ground plane and the boxes wins, then `num_points` returns are drawn at random.
    """
    rng = np.random.default_rng(seed)
    elevation = np.deg2rad(np.linspace(-24.9, 2.0, 64))
    azimuths = max(64, int(math.ceil(2.2 * num_points / 64)))
    az = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)
    el, az = np.meshgrid(elevation, az, indexing="ij")
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    origin = np.array([0.0, 0.0, 1.8])
    best = np.full(d.shape[0], np.inf)
    down = d[:, 2] < 0
    best[down] = -origin[2] / d[down, 2]  # the ground plane z = 0
    # boxes: cars along two roads and walls of buildings, axis-aligned [x0, y0, z0, x1, y1, z1]
    boxes = []
    for _ in range(60):
        cx, cy = rng.uniform(-60, 60, 2)
        if abs(cx) < 3 and abs(cy) < 3:
            continue
        w, l = (4.5, 1.9) if rng.random() < 0.5 else (1.9, 4.5)
        boxes.append([cx - w / 2, cy - l / 2, 0.0, cx + w / 2, cy + l / 2, rng.uniform(1.4, 2.0)])
    for _ in range(16):
        cx, cy = rng.uniform(-70, 70, 2)
        if abs(cx) < 15 and abs(cy) < 15:
            continue
        w, l = rng.uniform(5, 25, 2)
        boxes.append([cx - w / 2, cy - l / 2, 0.0, cx + w / 2, cy + l / 2, rng.uniform(4, 12)])
    boxes = np.asarray(boxes, dtype=np.float32)
    t_box = np.full(d.shape[0], np.inf, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (1.0 / d).astype(np.float32)  # [R, 3]
        for chunk in range(0, d.shape[0], 32768):  # slab test, in chunks to bound memory
            part = inv[chunk:chunk + 32768, None, :]
            t0 = (boxes[None, :, :3] - origin.astype(np.float32)) * part  # [r, K, 3]
            t1 = (boxes[None, :, 3:] - origin.astype(np.float32)) * part
            near = np.nanmax(np.minimum(t0, t1), axis=2)
            far = np.nanmin(np.maximum(t0, t1), axis=2)
            hit = (far >= near) & (near > 0)
            t_box[chunk:chunk + 32768] = np.where(hit, near, np.inf).min(axis=1)
    best = np.minimum(best, t_box)
    best = best + rng.normal(0, 0.02, best.shape)
    keep = np.isfinite(best) & (best < 75.0)
    points = origin + d[keep] * best[keep, None]
    points[:, 2] -= 1.8  # sensor frame: the ground at z = -1.8 m
    if points.shape[0] > num_points:
        points = points[rng.choice(points.shape[0], num_points, replace=False)]
    intensity = rng.uniform(0, 1, (points.shape[0], 1))
    return np.concatenate([points, intensity], 1).astype(np.float32)


def read_scan(path: Path) -> np.ndarray:
    """A user's scan (any format `perception3d.read_points` reads: .bin, .npy, .pcd, .ply, .las, ...), or the
    first sweep of a capture or log (.pcap, .osf, .bag, .mcap: `fusion.logs`), as float32 [N, 3]; raises
    PointCloudFileError (FileProblem for a log) on a bad file."""
    from fusion.logs import is_log

    if is_log(path):
        from fusion.logs import read_scan as read_log_scan

        return np.ascontiguousarray(read_log_scan(path, frame=0)[:, :3], dtype=np.float32)
    from perception3d import read_points

    return read_points(path).xyz


def pillarise(points: np.ndarray) -> torch.Tensor:
    """The non-empty 0.32 m pillars of one frame on the 468 x 468 grid: LongTensor[M, 4] (batch, z, y, x)."""
    from perception3d import voxelize

    xyz = torch.from_numpy(np.ascontiguousarray(points[:, :3], dtype=np.float32))
    voxels = voxelize(xyz, torch.zeros(xyz.shape[0], dtype=torch.long), voxel_size=(PILLAR, PILLAR, 6.0),
                      point_range=POINT_RANGE)
    return voxels.coords.long()


# --------------------------------------------------------------------------------------------------
# The naive baseline: SST-style padded windows


class PaddedWindowLayer(torch.nn.Module):
    """The same post-norm layer, attention over whole windows padded to the largest window (naive SST).

    Tokens are gathered into `[windows, L_max, C]` with a key padding mask and attended with
    `nn.MultiheadAttention` (projections run on every padded slot), then scattered back.
    """

    def __init__(self, channels: int, num_heads: int, ffn: int) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.linear1 = torch.nn.Linear(channels, ffn)
        self.linear2 = torch.nn.Linear(ffn, channels)
        self.norm1 = torch.nn.LayerNorm(channels)
        self.norm2 = torch.nn.LayerNorm(channels)

    def forward(self, x, pos, index, key_padding_mask, token_slot):
        q = (x + pos)[index]  # [W, L_max, C]
        out = self.attn(q, q, x[index], key_padding_mask=key_padding_mask, need_weights=False)[0]
        out = out.reshape(-1, x.shape[1])[token_slot]
        x = self.norm1(x + out)
        return self.norm2(x + self.linear2(torch.nn.functional.gelu(self.linear1(x))))


def padded_windows(coords: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of `window` x `window` cells, each padded to the largest window's count:
    (index [W, L_max], key_padding_mask [W, L_max], token_slot [M])."""
    win = coords[:, 0] * (GRID * GRID) + (coords[:, 2] // window) * GRID + coords[:, 3] // window
    _, cwin = torch.unique(win, return_inverse=True)
    counts = torch.bincount(cwin)
    order = torch.sort(cwin, stable=True).indices
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=coords.device) - start[cwin[order]]
    lmax = int(counts.max())
    slot = cwin * lmax + rank
    index = torch.zeros(counts.numel() * lmax, dtype=torch.long, device=coords.device)
    index[slot] = torch.arange(coords.shape[0], device=coords.device)
    filled = torch.zeros_like(index, dtype=torch.bool)
    filled[slot] = True
    return index.view(-1, lmax), ~filled.view(-1, lmax), slot


# --------------------------------------------------------------------------------------------------
# Measuring


def _cpu_peak_bytes(fn: Callable[[], Any]) -> int | None:
    """Approximate peak of the bytes torch allocates on the CPU during one call, above what was live
    before it: the running sum of the profiler's allocations and frees, at the granularity of one op."""
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
        live = peak = 0
        for e in events:  # an op's own net bytes (children counted on their own), or a loose alloc/free
            live += e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
            peak = max(peak, live)
        return peak
    except Exception:  # noqa: BLE001: the profiler is a nicety here; a row without memory is still a row
        return None


def _row(name: str, fn: Callable[[], Any], *, device: str, repeat: int, detail: str) -> dict[str, Any]:
    from omnisense.bench._common import measure

    with torch.inference_mode():
        timing = measure(fn, device=device, warmup=2, repeat=repeat)
        peak = timing.peak_bytes if device.startswith("cuda") else _cpu_peak_bytes(fn)
    return {"layer": name, "ms": round(timing.ms, 3), "peak_MiB": None if peak is None else round(peak / 2**20, 1),
            "runs": timing.runs, "detail": detail}


def _spconv_row(coords: torch.Tensor, channels: int, *, device: str, repeat: int) -> dict[str, Any]:
    name = f"spconv SubMConv3d 3x3x3, {channels} -> {channels}"
    try:
        import spconv.pytorch as spconv

        conv = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key="subm").to(device).eval()
        feats = torch.randn(coords.shape[0], channels, device=device)
        tensor = spconv.SparseConvTensor(feats, coords.int().to(device), [1, GRID, GRID], 1)
        return _row(name, lambda: conv(tensor), device=device, repeat=repeat,
                    detail=f"{coords.shape[0]} pillars on 1 x {GRID} x {GRID}, float32, rulebook built each call")
    except Exception as error:  # noqa: BLE001: any failure of the optional peer becomes the row's note
        return {"layer": name, "ms": None, "peak_MiB": None, "runs": 0,
                "detail": f"spconv failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"}


# --------------------------------------------------------------------------------------------------
# Detector stages against their peers (shared by `bench detect` and `bench kernels`)


def peer_row(job: str, peer: str, fn: Callable[[], Any], peer_fn: Callable[[], Any] | None, *, threads: int,
             device: str, repeat: int, detail: str, target: float | None = None,
             peer_ms: float | None = None) -> dict[str, Any]:
    """One job timed against its peer, taking turns in the same run: `ratio` is job / peer (lower is better).
    A fixed floor (a time budget) comes as `peer_ms` with no `peer_fn`. `cpu_ms` and `cpu_ratio`: the same with
    the process CPU time of each call, the steadier figure on a shared machine at one thread."""
    from omnisense.bench._common import measure_interleaved

    fns = {"job": fn} if peer_fn is None else {"job": fn, "peer": peer_fn}
    with torch.inference_mode():
        t = measure_interleaved(fns, device=device, warmup=1 if peer_fn is None else 2, repeat=repeat,
                                max_seconds=120)
    ms = t["job"].ms
    peer_value = peer_ms if peer_fn is None else t["peer"].ms
    ratio = round(ms / peer_value, 2) if peer_value else None
    cpu = {k: round(v.cpu_seconds * 1e3, 3) for k, v in t.items()}
    return {"job": job, "threads": threads, "ms": round(ms, 3), "peer": peer,
            "peer_ms": None if peer_value is None else round(peer_value, 3), "ratio": ratio,
            "target": target, "met": None if ratio is None or target is None else ratio <= target,
            "cpu_ms": cpu["job"], "peer_cpu_ms": cpu.get("peer", peer_ms),
            "cpu_ratio": round(cpu["job"] / cpu.get("peer", peer_ms), 2) if cpu.get("peer", peer_ms) else None,
            "detail": detail}


def failed_row(job: str, peer: str, threads: int, error: Exception) -> dict[str, Any]:
    return {"job": job, "threads": threads, "ms": None, "peer": peer, "peer_ms": None, "ratio": None, "target": None,
            "met": None, "cpu_ms": None, "peer_cpu_ms": None, "cpu_ratio": None, "detail": f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"}


def voxel_assignment_row(points: torch.Tensor, grid, *, threads: int, device: str, repeat: int) -> dict[str, Any]:
    """Our dynamic voxel assignment (coords and point-to-voxel map) against spconv's `PointToVoxel`
    (`generate_voxel_with_id`: the same map plus padded per-voxel point lists) on the same points and grid."""
    from perception3d.detection.encoders import dynamic_voxelize

    job, peer = "voxel assignment (dynamic_voxelize)", "spconv PointToVoxel"
    bi = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    try:
        from spconv.pytorch.utils import PointToVoxel  # optional peer

        gen = PointToVoxel(vsize_xyz=list(grid.voxel_size), coors_range_xyz=list(grid.point_range),
                           num_point_features=points.shape[1], max_num_voxels=points.shape[0],
                           max_num_points_per_voxel=32, device=points.device)
        nx, ny, nz = grid.shape
        return peer_row(job, peer, lambda: dynamic_voxelize(points, bi, grid, 1),
                        lambda: gen.generate_voxel_with_id(points, empty_mean=False), threads=threads, device=device,
                        repeat=repeat, target=1.3,
                        detail=f"{points.shape[0]} points, {nx} x {ny} x {nz} grid; spconv caps 32 points per voxel")
    except Exception as error:  # noqa: BLE001: a missing or failing optional peer becomes the row's note
        return failed_row(job, peer, threads, error)


def nms_row(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thresholds: list[float], pre, post, *,
            threads: int, device: str, repeat: int) -> dict[str, Any]:
    """Our rotated per-class NMS against torchvision's axis-aligned NMS, per class with the same thresholds, on
    the boxes circumscribing the same rotated boxes (computed outside the timed call: the peer's floor)."""
    from perception3d.detection.boxes import boxes_to_corners_bev, nms_rotated_per_class

    job, peer = f"rotated NMS, {boxes.shape[0]} boxes, {len(thresholds)} classes", "torchvision nms (axis-aligned)"
    try:
        import torchvision

        corners = boxes_to_corners_bev(boxes)
        aabb = torch.cat([corners.amin(1), corners.amax(1)], 1)
        per_class = [torch.nonzero(labels == c).flatten() for c in range(len(thresholds))]

        def peer_fn():
            return [idx[torchvision.ops.nms(aabb[idx], scores[idx], thr)] for idx, thr in zip(per_class, thresholds)]

        return peer_row(job, peer, lambda: nms_rotated_per_class(boxes, scores, labels, thresholds, pre, post), peer_fn,
                        threads=threads, device=device, repeat=max(repeat, 9), target=3.0,
                        detail="the detector's own pre-NMS boxes of this frame; exact rotated BEV IoU vs axis-aligned")
    except Exception as error:  # noqa: BLE001
        return failed_row(job, peer, threads, error)
