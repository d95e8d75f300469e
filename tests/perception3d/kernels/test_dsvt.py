"""DSVT: window partition, dynamic set partition (Eq. 3) against a brute force, pooling, the backbone."""

from __future__ import annotations

import math

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.kernels import DSVT, dsvt, pooling_index, set_partition, window_partition


def brute_force_sets(coords, window_shape, shift, sparse_shape, tau, axis):
    """Eq. 3 in plain Python: per window (in window-id order), voxels sorted along the axis order,
    S = ceil(N / tau) sets, slot k of set j = sorted[floor((j * tau + k) * N / (S * tau))]."""
    wx, wy, wz = window_shape
    sx, sy, sz = shift
    if sparse_shape[2] == wz:
        sz = 0
    mx, my, mz = (math.ceil(n / w) + 1 for n, w in zip(sparse_shape, window_shape))
    windows: dict[int, list] = {}
    for i, (b, z, y, x) in enumerate(coords.tolist()):
        x, y, z = x + sx, y + sy, z + sz
        wid = b * mx * my * mz + (x // wx) * my * mz + (y // wy) * mz + z // wz
        inner = (y % wy, x % wx, z % wz) if axis == 0 else (x % wx, y % wy, z % wz)
        windows.setdefault(wid, []).append((inner, i))
    sets, masks, first = [], [], {}
    for wid in sorted(windows):
        voxels = [i for _, i in sorted(windows[wid])]
        n = len(voxels)
        s = math.ceil(n / tau)
        for j in range(s):
            row = [voxels[(j * tau + k) * n // (s * tau)] for k in range(tau)]
            for k, v in enumerate(row):
                first.setdefault(v, len(sets) * tau + k)
            sets.append(row)
            masks.append([False] + [row[k] == row[k - 1] for k in range(1, tau)])
    return sets, masks, [first[i] for i in range(coords.shape[0])]


SET_CASES = {
    "pillars-shift0-y": dict(sizes=[150, 20], grid=(32, 32, 1), window=(8, 8, 1), shift=(0, 0, 0), tau=12, axis=0),
    "pillars-shift1-x": dict(sizes=[150, 20], grid=(32, 32, 1), window=(16, 16, 1), shift=(4, 4, 0), tau=12, axis=1),
    "voxels-3d-y": dict(sizes=[200], grid=(24, 24, 8), window=(6, 6, 8), shift=(3, 3, 0), tau=10, axis=0),
    "voxels-3d-x-zshift": dict(sizes=[120, 60], grid=(24, 24, 8), window=(6, 6, 2), shift=(3, 3, 1), tau=7, axis=1),
    "single-voxel": dict(sizes=[1], grid=(16, 16, 1), window=(4, 4, 1), shift=(0, 0, 0), tau=8, axis=0),
    "tau-1": dict(sizes=[30], grid=(16, 16, 1), window=(4, 4, 1), shift=(2, 2, 0), tau=1, axis=1),
}


@pytest.mark.parametrize("case", sorted(SET_CASES))
def test_set_partition_matches_brute_force(case, make_coords):
    c = SET_CASES[case]
    coords = make_coords(c["sizes"], grid=c["grid"])
    coords = coords[torch.randperm(coords.shape[0])]
    win, in_win = window_partition(coords, sparse_shape=c["grid"], window_shape=c["window"], shift=c["shift"])
    part = set_partition(win, in_win, window_shape=c["window"], set_size=c["tau"], axis=c["axis"])
    sets, masks, first = brute_force_sets(coords, c["window"], c["shift"], c["grid"], c["tau"], c["axis"])
    assert part.index.tolist() == sets
    assert part.key_padding_mask.tolist() == masks
    assert part.token_slot.tolist() == first


@pytest.mark.parametrize("n,sets,masked", [(5, 1, 31), (37, 2, 35), (100, 3, 8), (36, 1, 0), (144, 4, 0)])
def test_set_counts_and_masked_slots(n, sets, masked):
    """S = ceil(N / tau) sets and S * tau - N masked repeats (the figures checked against the official code)."""
    coords = torch.zeros(n, 4, dtype=torch.long)
    coords[:, 2], coords[:, 3] = torch.arange(n) // 12, torch.arange(n) % 12
    win, in_win = window_partition(coords, sparse_shape=(24, 24, 1), window_shape=(12, 12, 1), shift=(0, 0, 0))
    part = set_partition(win, in_win, window_shape=(12, 12, 1), set_size=36, axis=0)
    assert part.index.shape == (sets, 36)
    assert int(part.key_padding_mask.sum()) == masked
    assert not part.key_padding_mask[:, 0].any()
    assert sorted(part.index[~part.key_padding_mask].tolist()) == list(range(n))  # every voxel unmasked once


def test_window_partition_drops_z_shift_for_full_height_windows():
    coords = torch.tensor([[0, 5, 1, 1], [1, 5, 1, 1]])
    win, in_win = window_partition(coords, sparse_shape=(24, 24, 8), window_shape=(12, 12, 8), shift=(6, 6, 4))
    assert in_win[0].tolist() == [5, 7, 7]  # z not shifted
    assert win[0] != win[1]  # same cell, different samples, different windows
    _, in_win = window_partition(coords, sparse_shape=(24, 24, 8), window_shape=(12, 12, 2), shift=(6, 6, 1))
    assert in_win[0].tolist() == [0, 7, 7]


def test_pooling_index(make_coords):
    coords = make_coords([80, 40], grid=(16, 16, 8))
    pool = pooling_index(coords, sparse_shape=(16, 16, 8), stride=(1, 1, 4))
    assert pool.volume == 4
    expect = torch.stack([coords[:, 0], coords[:, 1] // 4, coords[:, 2], coords[:, 3]], 1)
    assert (pool.coords[pool.pool_index] == expect).all()
    assert len(torch.unique(pool.coords, dim=0)) == pool.coords.shape[0]
    assert (pool.index_in_pool == coords[:, 1] % 4).all()


@pytest.mark.parametrize("config", ["pillar_tiny", "voxel_tiny"])
@pytest.mark.parametrize("sizes", [[2], [90, 5], [40, 1, 0, 30]], ids=["two-voxels", "two-samples", "four-samples"])
def test_backbone_sdpa_matches_reference(config, sizes, make_coords, use_backend):
    """Forward, input gradients and weight gradients of the whole backbone, float64, training mode."""
    torch.manual_seed(0)
    model = dsvt(config).double()
    # a 16 x 16 corner of the grid: few windows, so the group-by-group reference stays quick
    coords = make_coords(sizes, grid=(16, 16, model.sparse_shapes[0][2]))
    feats = torch.randn(coords.shape[0], 32, dtype=torch.float64, requires_grad=True)
    results = {}
    for backend in ("sdpa", "reference"):
        use_backend(model, backend)
        model.zero_grad()
        feats.grad = None
        out, out_coords = model(feats, coords, len(sizes))
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
        results[backend] = (out.detach(), out_coords, feats.grad, {n: p.grad for n, p in model.named_parameters()})
    fast, ref = results["sdpa"], results["reference"]
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-10, atol=1e-10)
    assert torch.equal(fast[1], ref[1])
    torch.testing.assert_close(fast[2], ref[2], rtol=1e-9, atol=1e-9)
    for name, grad in fast[3].items():
        if grad is None:
            assert ref[3][name] is None, name
        else:
            torch.testing.assert_close(grad, ref[3][name], rtol=1e-8, atol=1e-9, msg=name)


@pytest.mark.parametrize("config", ["pillar_tiny", "voxel_tiny"])
def test_no_cross_sample_attention(config, make_coords):
    """In eval mode (BatchNorm in its running statistics) sample 0 ignores every other sample."""
    model = dsvt(config).double().eval()
    grid = model.sparse_shapes[0]
    coords = make_coords([3, 70, 20], grid=grid)
    feats = torch.randn(coords.shape[0], 32, dtype=torch.float64)
    out, out_coords = model(feats, coords, 3)
    other = coords[:, 0] > 0
    feats2 = feats.clone()
    feats2[other] += torch.randn(int(other.sum()), 32, dtype=torch.float64) * 3
    out2, out_coords2 = model(feats2, coords, 3)
    keep = out_coords[:, 0] == 0
    assert torch.equal(out_coords, out_coords2)
    torch.testing.assert_close(out2[keep], out[keep], rtol=0, atol=1e-12)
    assert not torch.allclose(out2[~keep], out[~keep])


@pytest.mark.parametrize("config", ["pillar_tiny", "voxel_tiny"])
def test_batch_equals_separate_samples(config, make_coords):
    model = dsvt(config).eval()
    grid = model.sparse_shapes[0]
    sizes = [60, 9, 33]
    coords = make_coords(sizes, grid=grid)
    feats = torch.randn(coords.shape[0], 32)
    together, together_coords = model(feats, coords, 3)
    start = 0
    for b, n in enumerate(sizes):
        one = coords[start:start + n].clone()
        one[:, 0] = 0
        alone, alone_coords = model(feats[start:start + n], one, 1)
        mine = together_coords[:, 0] == b
        assert torch.equal(alone_coords[:, 1:], together_coords[mine, 1:])
        torch.testing.assert_close(alone, together[mine], rtol=1e-5, atol=1e-5)
        start += n


@pytest.mark.parametrize("faithful", [True, False], ids=["official-index", "fixed-index"])
def test_every_parameter_gets_a_gradient(faithful, make_coords):
    model = dsvt("voxel_tiny", faithful_pos_embed_index=faithful)
    coords = make_coords([100, 50], grid=model.sparse_shapes[0])
    out, out_coords = model(torch.randn(150, 32), coords, 2)
    assert out.shape == (out_coords.shape[0], 32) and torch.isfinite(out).all()
    assert out_coords.shape[0] < 150 and (out_coords[:, 1] < 2).all()  # z pooled 8 -> 2
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_pos_embed_index_flag_changes_the_shifted_blocks(make_coords):
    torch.manual_seed(0)
    a = dsvt("pillar_tiny").eval()
    b = dsvt("pillar_tiny", faithful_pos_embed_index=False).eval()
    b.load_state_dict(a.state_dict())
    coords = make_coords([80], grid=(64, 64, 1))
    feats = torch.randn(80, 32)
    assert not torch.allclose(a(feats, coords, 1)[0], b(feats, coords, 1)[0])


def test_empty_and_single_voxel(make_coords):
    model = dsvt("voxel_tiny").eval()
    out, coords = model(torch.zeros(0, 32), torch.zeros(0, 4, dtype=torch.long), 2)
    assert out.shape == (0, 32) and coords.shape == (0, 4)
    out, coords = model(torch.randn(1, 32), torch.tensor([[1, 5, 3, 4]]), 2)
    assert out.shape == (1, 32) and coords.tolist() == [[1, 1, 3, 4]] and torch.isfinite(out).all()


def test_mask_empty_pool_slots_changes_pooling(make_coords):
    torch.manual_seed(0)
    a = dsvt("voxel_tiny").eval()
    b = dsvt("voxel_tiny", mask_empty_slots=True).eval()
    b.load_state_dict(a.state_dict())
    coords = make_coords([60], grid=(64, 64, 8))
    feats = torch.randn(60, 32)
    assert not torch.allclose(a(feats, coords, 1)[0], b(feats, coords, 1)[0])


def test_named_configs():
    p = dsvt("pillar_waymo")
    assert p.window_shapes == [((12, 12, 1), (24, 24, 1))] and p.set_size == [36] and len(p.stage_0) == 4
    v = dsvt("voxel_waymo")
    assert v.sparse_shapes == [(468, 468, 32), (468, 468, 8), (468, 468, 2), (468, 468, 1)]
    assert v.set_size == [48] * 4 and v.num_stages == 4
    assert sum(p.numel() for p in p.parameters()) > 1_000_000
    with pytest.raises(PointCloudValueError):
        dsvt("nope")
    with pytest.raises(PointCloudValueError):
        DSVT(sparse_shape=(8, 8, 1), window_shape=[(4, 4, 1)], d_model=[32, 32])


def test_coords_outside_the_grid_raise():
    model = dsvt("pillar_tiny")
    with pytest.raises(PointCloudValueError, match="outside the grid"):
        model(torch.randn(2, 32), torch.tensor([[0, 0, 1, 64], [0, 0, 1, 1]]), 1)


@pytest.mark.parametrize("config", ["pillar_waymo", "voxel_waymo"])
def test_parameter_names_follow_the_official_checkpoint(config):
    """`backbone_3d.` keys of an OpenPCDet DSVT checkpoint load by name (no converter needed)."""
    import re

    pattern = re.compile(
        r"input_layer\.posembed_layers\.\d\.\d\.[01]\.position_embedding_head\.(0|1|3)\."
        r"(weight|bias|running_mean|running_var|num_batches_tracked)"
        r"|stage_\d\.\d\.encoder_list\.[01]\.(win_attn\.(self_attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))"
        r"|(linear1|linear2|norm1|norm2)\.(weight|bias))|norm\.(weight|bias))"
        r"|residual_norm_stage_\d\.\d\.(weight|bias)"
        r"|stage_\d_reduction\.(pos_embedding|norm\.(weight|bias)|self_attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias)))")
    keys = list(dsvt(config).state_dict())
    assert keys and all(pattern.fullmatch(k) for k in keys), [k for k in keys if not pattern.fullmatch(k)]


def test_checkpointing_gives_the_same_gradients(make_coords):
    torch.manual_seed(0)
    plain = dsvt("pillar_tiny").double()
    ckpt = dsvt("pillar_tiny", use_checkpoint=True).double()
    ckpt.load_state_dict(plain.state_dict())
    coords = make_coords([60, 20], grid=(32, 32, 1))
    feats = torch.randn(80, 32, dtype=torch.float64)
    grads = []
    for model in (plain, ckpt):
        out, _ = model(feats, coords, 2)
        out.square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-9, atol=1e-10, msg=name)
