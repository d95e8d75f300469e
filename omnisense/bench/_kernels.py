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
    """A user's scan (any format `perception3d.read_points` reads: .bin, .npy, .pcd, .ply, .las, ...) as
    float32 [N, 3]; raises PointCloudFileError on a bad file."""
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
