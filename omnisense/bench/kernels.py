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
    parser.add_argument("--input", type=Path, metavar="SCAN",
                        help="a scan to use instead (.bin, .npy, .pcd, .ply, .las, ...; a capture or log, "
                             ".pcap .osf .bag .mcap: its first sweep)")
    parser.add_argument("--points", type=int, default=100_000, help="points of the synthetic sweep (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sweep and the features")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per row (median reported)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="features and weights of the attention rows (the papers train in float16 on GPUs)")
    parser.add_argument("--thread-rows", default="1,all", metavar="N,N",
                        help="torch thread counts of the stage-against-peer rows ('all': the cores this process may use)")


# --------------------------------------------------------------------------------------------------
# The frame


def run(args: argparse.Namespace):
    from typing import Any

    import torch

    from omnisense.bench._common import BenchReport, base_context, load_average, thread_rows
    from omnisense.bench._kernels import (GRID, PILLAR, POINT_RANGE, PaddedWindowLayer, _row, _spconv_row,
                                          padded_windows, pillarise, read_scan, synthetic_sweep)
    from perception3d.kernels import flat_window_partitions, sinusoidal_position_embedding
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
    spconv_rows = rows[-2:]
    for row in rows:
        row["threads"] = torch.get_num_threads()
    load_start = load_average()
    counts_of_threads = thread_rows(getattr(args, "thread_rows", "1,all"))
    if device != "cpu":  # one row: threads do not change a GPU's figures
        counts_of_threads = [torch.get_num_threads()]
    peer_rows = _stage_rows(points, coords, flat_parts["x"], sets, counts_of_threads, device=device, dtype=dtype,
                            repeat=repeat, seed=args.seed)

    def ratio(a, b):
        return None if a.get("ms") in (None, 0) or b.get("ms") in (None, 0) else round(a["ms"] / b["ms"], 2)

    ratios = {
        "flattened-window speed-up over padded windows (target >= 3)": ratio(pad_flat, flat),
        "DSVT set layer speed-up over padded windows (target >= 3)": ratio(pad_set, ours_set),
        "flattened-window layer / SDPA alone (GPU target <= 2)": ratio(flat, sdpa_flat),
        "DSVT set layer / SDPA alone (GPU target <= 2)": ratio(ours_set, sdpa_set),
    }
    for spconv_row, ours in zip(spconv_rows, (flat, ours_set)):
        ratios[f"{spconv_row['layer']} / ours (same width)"] = ratio(spconv_row, ours)
    context = base_context(device)
    context.update({"dtype": args.dtype, "input": source, "points": int(points.shape[0]), "pillars": m,
                    "grid": f"{GRID} x {GRID}, {PILLAR} m pillars over [-74.88, 74.88] m", **ratios,
                    "thread_rows": counts_of_threads, "load_average_start": load_start,
                    "load_average_end": load_average()})
    rows += peer_rows
    notes = [
        "layer rows: one layer's forward in inference mode on the frame's pillars (attention + FFN + norms; "
        "the spconv row is the convolution alone); index rows: the per-frame sort/partition that all layers share",
        "peak_MiB on the CPU: the running sum of torch allocations during one call, per op (profiler); on CUDA: max_memory_allocated",
        "job rows: each stage taking turns with its peer at each thread count; ratio = job / peer, met: ratio <= target; "
        "attention core = the gathers into groups, SDPA and the gather back (the layer minus its dense projections)",
    ]
    return BenchReport(title=f"sparse attention kernels on one frame ({device})", rows=rows, context=context, notes=notes)


def _stage_rows(points, coords, part, sets, counts_of_threads, *, device, dtype, repeat, seed):
    """The attention core against SDPA alone on the same groups (FlatFormer groups, DSVT sets), and voxel
    assignment against spconv's PointToVoxel, at each thread count."""
    import torch

    from omnisense.bench._common import torch_threads
    from omnisense.bench._kernels import PILLAR, POINT_RANGE, peer_row, voxel_assignment_row
    from perception3d.detection.encoders import VoxelGrid
    from perception3d.kernels._attention import grouped_sdpa

    gen = torch.Generator().manual_seed(seed)
    m = coords.shape[0]
    cases = []
    for name, partition, c in (("flattened windows (FlatFormer)", part, 128), ("DSVT sets", sets, 192)):
        h, g, length = 8, partition.num_groups, partition.group_size
        qk = torch.randn(m, 2 * c, generator=gen).to(device, dtype)
        v = torch.randn(m, c, generator=gen).to(device, dtype)
        # the floor: the same groups already gathered, as equal-size dense tensors; three of them, as SDPA
        # reads three (one tensor as q, k and v reads a third of the memory)
        q = [torch.randn(g, h, length, c // h, generator=gen).to(device, dtype) for _ in range(3)]
        mask = None if partition.key_padding_mask is None else ~partition.key_padding_mask[:, None, None, :]
        cases.append((name, partition, qk, v, q, mask, h, f"{g} groups x {length}, C {c}, {h} heads"))
    xyz = torch.from_numpy(points[:, :3].copy()).to(device)
    pts = torch.cat([xyz, torch.zeros_like(xyz[:, :1])], 1)
    grid = VoxelGrid(POINT_RANGE, (PILLAR, PILLAR, POINT_RANGE[5] - POINT_RANGE[2]))
    inside = ((pts[:, :3] >= torch.tensor(POINT_RANGE[:3], device=device))
              & (pts[:, :3] < torch.tensor(POINT_RANGE[3:], device=device))).all(1)
    pts = pts[inside].contiguous()
    rows = []
    for threads in counts_of_threads:
        with torch_threads(threads):
            for name, partition, qk, v, q, mask, h, detail in cases:
                rows.append(peer_row(
                    f"attention core, {name}", "SDPA alone on the same groups",
                    lambda: grouped_sdpa(qk, v, partition, h),
                    lambda: torch.nn.functional.scaled_dot_product_attention(*q, attn_mask=mask),
                    threads=threads, device=device, repeat=repeat, target=1.3, detail=detail))
            rows.append(voxel_assignment_row(pts, grid, threads=threads, device=device, repeat=repeat))
    return rows
