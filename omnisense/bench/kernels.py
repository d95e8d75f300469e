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
from pathlib import Path

HELP = "flattened-window and DSVT set attention against padded-window attention, spconv and SDPA alone (issue #3)"

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


def run(args: argparse.Namespace):
    from typing import Any

    import torch

    from omnisense.bench._common import BenchReport, base_context
    from omnisense.bench._kernels import (GRID, PILLAR, POINT_RANGE, PaddedWindowLayer, _row, _spconv_row,
                                          padded_windows, pillarise, read_scan, synthetic_sweep)
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
