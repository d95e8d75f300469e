"""`omnisense bench kernels`: our flattened-window (FlatFormer) and set (DSVT) attention layers on a
real-sized lidar frame, against a naive padded-window attention layer with the same windows
(SST-style: every window padded to the largest window's token count), a spconv SubMConv3d layer of
the same width, and SDPA alone on the same number of equal-size groups (the floor of the design).

The default frame is synthetic: about 100k points of a 64-beam sweep (ground plane and boxes),
pillarised on the 468 x 468 grid of the papers (0.32 m pillars over [-74.88, 74.88] m).
`--input` takes a scan instead, in any format `perception3d.read_points` reads (KITTI `.bin`,
`.npy`, `.pcd`, `.ply`, `.las`, ...).

Every layer row times one layer's forward (inference mode) on the same pillars; the index rows time
the per-frame index work (sort and partition), which every layer of a backbone shares.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

HELP = "flattened-window and DSVT set attention against padded-window attention, spconv and SDPA alone (issue #3)"

POINT_RANGE = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
PILLAR = 0.32
GRID = 468


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, metavar="SCAN", help="a scan to use instead (.bin, .npy, .pcd, .ply, .las, ...)")
    parser.add_argument("--points", type=int, default=100_000, help="points of the synthetic sweep (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sweep and the features")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per row (median reported)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="features and weights of the attention rows (the papers train in float16 on GPUs)")


# --------------------------------------------------------------------------------------------------
# The frame


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
    from fusion.bench._common import measure

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


def run(args: argparse.Namespace):
    from fusion.bench._common import BenchReport, base_context
    from perception3d.kernels import GroupAttention, flat_window_partitions, sinusoidal_position_embedding
    from perception3d.kernels.dsvt import DSVTEncoderLayer, set_partition, window_partition
    from perception3d.kernels.flatformer import FlatWindowLayer

    device = args.device
    repeat = max(1, int(args.repeat))
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    if args.input is not None:
        points = read_scan(args.input)
        source = str(args.input)
    else:
        points = synthetic_sweep(args.points, seed=args.seed)
        source = f"synthetic 64-beam sweep, seed {args.seed}"
    coords = pillarise(points).to(device)
    m = coords.shape[0]
    if m == 0:
        from perception3d import PointCloudValueError

        raise PointCloudValueError(f"no point of {source} falls in {POINT_RANGE}")
    gen = torch.Generator().manual_seed(args.seed)
    rows: list[dict[str, Any]] = []

    # FlatFormer: C = 128, 8 heads, windows 13 x 13, groups of 144 (the released Waymo config).
    c_flat, g = 128, 144
    rows.append(_row("flattened-window index: 4 orderings + embedding (per frame)", lambda: (
        flat_window_partitions(coords, 1, sparse_shape=(GRID, GRID), window_shape=(13, 13), group_size=g),
        sinusoidal_position_embedding(coords, c_flat)), device=device, repeat=repeat, detail="sort keys, groups"))
    flat_parts = flat_window_partitions(coords, 1, sparse_shape=(GRID, GRID), window_shape=(13, 13), group_size=g)
    part = flat_parts["x"]
    x128 = torch.randn(m, c_flat, generator=gen).to(device, dtype)
    pe = sinusoidal_position_embedding(coords, c_flat).to(device, dtype)
    flat_layer = FlatWindowLayer(c_flat, 8, backend="sdpa").to(device, dtype).eval()
    flat = _row("ours: flattened-window layer (FlatFormer)", lambda: flat_layer(x128, pe, part), device=device,
                repeat=repeat, detail=f"{part.num_groups} groups x {g}, C {c_flat}, 8 heads")
    rows.append(flat)

    index, mask, slot = padded_windows(coords, 13)
    pad_flat_layer = PaddedWindowLayer(c_flat, 8, 2 * c_flat).to(device, dtype).eval()
    pad_flat = _row("baseline: padded windows 13 x 13 (same width)", lambda: pad_flat_layer(x128, pe, index, mask, slot),
                    device=device, repeat=repeat, detail=f"{index.shape[0]} windows x {index.shape[1]} (largest)")
    rows.append(pad_flat)
    h, d = 8, c_flat // 8
    q = torch.randn(part.num_groups, h, g, d, generator=gen).to(device, dtype)
    sdpa_flat = _row("floor: SDPA alone on the same groups", lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q),
                     device=device, repeat=repeat, detail=f"[{part.num_groups}, {h}, {g}, {d}]")
    rows.append(sdpa_flat)

    # DSVT-P: C = 192, 8 heads, FFN 384, windows 12 x 12, sets of 36 (dsvt_plain_1f_onestage).
    c_set, tau = 192, 36

    def dsvt_index():
        out = []
        for window, shift in (((12, 12, 1), (0, 0, 0)), ((24, 24, 1), (6, 6, 0))):
            win, in_win = window_partition(coords, sparse_shape=(GRID, GRID, 1), window_shape=window, shift=shift)
            out += [set_partition(win, in_win, window_shape=window, set_size=tau, axis=a) for a in (0, 1)]
        return out

    rows.append(_row("DSVT set index: 2 shifts x 2 axes (per frame)", dsvt_index, device=device, repeat=repeat,
                     detail="window partition, Eq. 3 sets, masks"))
    win, in_win = window_partition(coords, sparse_shape=(GRID, GRID, 1), window_shape=(12, 12, 1), shift=(0, 0, 0))
    sets = set_partition(win, in_win, window_shape=(12, 12, 1), set_size=tau, axis=0)
    x192 = torch.randn(m, c_set, generator=gen).to(device, dtype)
    pos192 = torch.randn(m, c_set, generator=gen).to(device, dtype)
    set_layer = DSVTEncoderLayer(c_set, 8, 384, backend="sdpa").to(device, dtype).eval()
    ours_set = _row("ours: DSVT set layer", lambda: set_layer(x192, pos192, sets), device=device, repeat=repeat,
                    detail=f"{sets.num_groups} sets x {tau}, C {c_set}, 8 heads")
    rows.append(ours_set)
    index, mask, slot = padded_windows(coords, 12)
    pad_set_layer = PaddedWindowLayer(c_set, 8, 384).to(device, dtype).eval()
    pad_set = _row("baseline: padded windows 12 x 12 (same width)", lambda: pad_set_layer(x192, pos192, index, mask, slot),
                   device=device, repeat=repeat, detail=f"{index.shape[0]} windows x {index.shape[1]} (largest)")
    rows.append(pad_set)
    h, d = 8, c_set // 8
    q = torch.randn(sets.num_groups, h, tau, d, generator=gen).to(device, dtype)
    set_mask = ~sets.key_padding_mask[:, None, None, :]
    sdpa_set = _row("floor: SDPA alone on the same sets (masked)",
                    lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=set_mask),
                    device=device, repeat=repeat, detail=f"[{sets.num_groups}, {h}, {tau}, {d}]")
    rows.append(sdpa_set)

    rows.append(_spconv_row(coords, c_flat, device=device, repeat=repeat))
    rows.append(_spconv_row(coords, c_set, device=device, repeat=repeat))

    def ratio(a, b):
        return None if a.get("ms") in (None, 0) or b.get("ms") in (None, 0) else round(a["ms"] / b["ms"], 2)

    ratios = {
        "flattened-window speed-up over padded windows (target >= 3)": ratio(pad_flat, flat),
        "DSVT set layer speed-up over padded windows (target >= 3)": ratio(pad_set, ours_set),
        "flattened-window layer / SDPA alone (GPU target <= 2)": ratio(flat, sdpa_flat),
        "DSVT set layer / SDPA alone (GPU target <= 2)": ratio(ours_set, sdpa_set),
    }
    for spconv_row, ours in ((rows[-2], flat), (rows[-1], ours_set)):
        ratios[f"{spconv_row['layer']} / ours (same width)"] = ratio(spconv_row, ours)
    context = base_context(device)
    context.update({"dtype": args.dtype, "input": source, "points": int(points.shape[0]), "pillars": m,
                    "grid": f"{GRID} x {GRID}, {PILLAR} m pillars over [-74.88, 74.88] m", **ratios})
    notes = [
        "layer rows: one layer's forward in inference mode on the frame's pillars (attention + FFN + norms; "
        "the spconv row is the convolution alone); index rows: the per-frame sort/partition that all layers share",
        "peak_MiB on the CPU: the running sum of torch allocations during one call, per op (profiler); on CUDA: max_memory_allocated",
    ]
    return BenchReport(title=f"sparse attention kernels on one frame ({device})", rows=rows, context=context, notes=notes)
