"""Farthest point sampling as one Triton kernel (CUDA; also runs under TRITON_INTERPRET=1 on CPU tensors).

One program per sample, as the official pointnet2 kernel uses one thread block per sample: the n picks are
sequential, and each step sweeps the N points in blocks of BLOCK, updating the running min-distance and
keeping the first index of the largest one (ties go to the lower index, as torch.argmax and the reference).

Status: checked against the reference through Triton's interpreter on CPU (tests/perception3d/ops); the
compiled GPU kernel has NOT been run yet (the session that wrote it had no GPU), so `auto` does not pick
it: ask for it with `backend="triton"`, and run `pytest -m cuda` on a GPU before trusting it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fps_kernel(xyz_ptr, dist_ptr, out_ptr, N, n_pick, start, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    xyz = xyz_ptr + b * N * 3  # [N, 3] of this sample, contiguous
    dist = dist_ptr + b * N  # [N] running squared distance to the picked set (starts at +inf)
    out = out_ptr + b * n_pick
    offs = tl.arange(0, BLOCK)
    last = tl.full([], 0, tl.int64) + start
    for i in range(0, n_pick):
        tl.store(out + i, last)
        px = tl.load(xyz + last * 3)
        py = tl.load(xyz + last * 3 + 1)
        pz = tl.load(xyz + last * 3 + 2)
        best_val = tl.full([], -1.0, dist_ptr.dtype.element_ty)
        best_idx = tl.full([], 0, tl.int64)
        for s in range(0, N, BLOCK):
            idx = s + offs
            mask = idx < N
            dx = tl.load(xyz + idx * 3, mask=mask, other=0.0) - px
            dy = tl.load(xyz + idx * 3 + 1, mask=mask, other=0.0) - py
            dz = tl.load(xyz + idx * 3 + 2, mask=mask, other=0.0) - pz
            d = dx * dx + dy * dy + dz * dz
            new = tl.minimum(tl.load(dist + idx, mask=mask, other=-1.0), d)
            tl.store(dist + idx, new, mask=mask)
            new = tl.where(mask, new, -1.0)
            block_max = tl.max(new, axis=0)
            block_arg = tl.argmax(new, axis=0, tie_break_left=True).to(tl.int64) + s
            # strictly greater: an earlier block keeps a tie
            better = block_max > best_val
            best_idx = tl.where(better, block_arg, best_idx)
            best_val = tl.where(better, block_max, best_val)
        tl.debug_barrier()  # every thread's distance update lands before the next sweep reads it
        last = best_idx


def fps_triton(xyz: torch.Tensor, n: int, start: int, block: int = 1024) -> torch.Tensor:
    """`xyz: Tensor[B, N, 3]` (float32/float64) -> `LongTensor[B, n]`, the reference's picks."""
    xyz = xyz.contiguous()
    b, num, _ = xyz.shape
    dist = torch.full((b, num), float("inf"), dtype=xyz.dtype, device=xyz.device)
    out = torch.empty(b, n, dtype=torch.long, device=xyz.device)
    block = min(block, triton.next_power_of_2(max(num, 16)))
    _fps_kernel[(b,)](xyz, dist, out, num, n, start, BLOCK=block, num_warps=4 if block <= 1024 else 8)
    return out
