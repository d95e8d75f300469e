"""FlatFormer: snake sort keys, equal-size groups without cross-sample padding, the layer stack, the backbone."""

from __future__ import annotations

import math

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.kernels import (
    FlatFormer,
    equal_size_groups,
    flat_window_keys,
    flat_window_partitions,
    flatformer,
    scatter_to_bev,
    sinusoidal_position_embedding,
)
from perception3d.kernels.flatformer import ORDERINGS, sort_tokens


def dense_coords(nx: int, ny: int, batch: int = 1) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    one = torch.stack([torch.zeros(nx * ny, dtype=torch.long), torch.zeros(nx * ny, dtype=torch.long),
                       y.flatten(), x.flatten()], dim=1)
    return torch.cat([one.clone().index_fill_(1, torch.tensor([0]), b) for b in range(batch)])


def window_of(coords, ordering, w):
    shift = w // 2 if ordering.endswith("_shift") else 0
    return (coords[:, 3] + shift) // w, (coords[:, 2] + shift) // w


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_sort_visits_windows_in_a_snake(ordering):
    """On a dense grid, consecutive windows in the order are neighbours along the ordering's axis, each
    window's cells are one contiguous run, and consecutive cells inside a window are 4-neighbours."""
    nx, ny, w = 20, 14, 4
    coords = dense_coords(nx, ny)
    keys = flat_window_keys(coords, sparse_shape=(nx, ny), window_shape=(w, w), ordering=ordering)
    assert keys.min() >= 0 and keys.unique().numel() == keys.numel()
    order = sort_tokens(coords, keys)
    c = coords[order]
    wx, wy = window_of(c, ordering, w)
    win = wy * 100 + wx
    change = torch.nonzero(win[1:] != win[:-1]).flatten()
    assert len(torch.unique(win)) == len(change) + 1  # every window is contiguous
    for i in change.tolist():
        dx, dy = (wx[i + 1] - wx[i]).abs().item(), (wy[i + 1] - wy[i]).abs().item()
        if ordering.startswith("x"):  # along x inside a row of windows, one step in y between rows
            assert (dx, dy) in {(1, 0), (0, 1)}
        else:
            assert (dx, dy) in {(0, 1), (1, 0)}
    same = torch.nonzero(win[1:] == win[:-1]).flatten()
    step = (c[same + 1, 2:] - c[same, 2:]).abs().sum(1)
    assert (step == 1).all()
    # the row-major direction: x orderings move along x between windows more often than along y
    moves_x = sum(int((wx[i + 1] != wx[i]).item()) for i in change.tolist())
    assert (moves_x > len(change) / 2) == ordering.startswith("x")


def test_samples_stay_contiguous_and_in_order(make_coords):
    coords = make_coords([50, 0, 20, 70])
    perm = torch.randperm(coords.shape[0])
    coords = coords[perm]
    for ordering in ORDERINGS:
        keys = flat_window_keys(coords, sparse_shape=(64, 64), window_shape=(4, 4), ordering=ordering)
        batch = coords[sort_tokens(coords, keys), 0]
        assert (batch[1:] >= batch[:-1]).all()


def brute_force_groups(order, batch, group_size):
    """Per sample: chunks of the sorted tokens; keys of the last chunk are the sample's last
    `group_size` tokens when it has that many, else all its tokens."""
    groups = []  # (queries, keys)
    for b in torch.unique(batch).tolist():
        tokens = [t for t in order.tolist() if batch[t] == b]
        n = len(tokens)
        for start in range(0, n, group_size):
            queries = tokens[start:start + group_size]
            keys = queries if len(queries) == group_size or n < group_size else tokens[n - group_size:]
            groups.append((sorted(queries), sorted(keys)))
    return groups


GROUP_CASES = {
    "one-sample": [37],
    "sample-smaller-than-group": [5],
    "small-first-sample": [3, 40],
    "small-middle-sample": [40, 2, 33],
    "exact-multiples": [16, 32],
    "with-empty-sample": [20, 0, 18],
    "single-tokens": [1, 1],
}


@pytest.mark.parametrize("case", sorted(GROUP_CASES))
def test_groups_match_brute_force(case, make_coords):
    sizes = GROUP_CASES[case]
    g = 16
    coords = make_coords(sizes)
    coords = coords[torch.randperm(coords.shape[0])]
    keys = flat_window_keys(coords, sparse_shape=(64, 64), window_shape=(4, 4), ordering="x")
    order = sort_tokens(coords, keys)
    part = equal_size_groups(order, coords[:, 0], len(sizes), g)
    assert part.index.shape == (sum(math.ceil(n / g) for n in sizes), g)
    got = []
    for grp in range(part.num_groups):
        queries = sorted(torch.nonzero(part.token_slot // g == grp).flatten().tolist())
        slots = part.index[grp]
        if part.key_padding_mask is not None:
            slots = slots[~part.key_padding_mask[grp]]
        got.append((queries, sorted(set(slots.tolist()))))
        assert len(torch.unique(coords[part.index[grp], 0])) == 1  # never two samples in a group
    assert got == brute_force_groups(order, coords[:, 0], g)
    # a token's output slot holds the token itself
    assert (part.index.flatten()[part.token_slot] == torch.arange(coords.shape[0])).all()
    assert (part.key_padding_mask is None) == all(n == 0 or n >= g for n in sizes)


def test_position_embedding_formula():
    coords = torch.tensor([[0, 0, 7, 3]])
    pe = sinusoidal_position_embedding(coords, 10, temperature=100.0)
    # channels // 4 * 2 = 4 frequencies per axis: pairs (sin, cos) at T^0 and T^(2/4)
    f = [1.0, 1.0, 100 ** 0.5, 100 ** 0.5]
    expect = [math.sin(3 / f[0]), math.cos(3 / f[1]), math.sin(3 / f[2]), math.cos(3 / f[3]),
              math.sin(7 / f[0]), math.cos(7 / f[1]), math.sin(7 / f[2]), math.cos(7 / f[3]), 0.0, 0.0]
    torch.testing.assert_close(pe[0], torch.tensor(expect), rtol=1e-6, atol=1e-6)


CROSS_SAMPLE_CASES = {
    "first-sample-smaller-than-group": [5, 60],
    "second-sample-smaller-than-group": [60, 5],
    "both-small": [3, 4],
    "both-large": [45, 70],
    "three-samples": [40, 7, 33],
}


@pytest.mark.parametrize("case,backend", [(case, "sdpa") for case in sorted(CROSS_SAMPLE_CASES)]
                         + [("three-samples", "reference")])
def test_no_cross_sample_attention(case, backend, make_coords, use_backend):
    """Perturbing every other sample (features and positions) leaves sample 0's output unchanged."""
    sizes = CROSS_SAMPLE_CASES[case]
    model = flatformer("tiny").double()
    use_backend(model, backend)
    coords = make_coords(sizes)
    feats = torch.randn(coords.shape[0], 32, dtype=torch.float64)
    out = model(feats, coords, len(sizes))
    other = coords[:, 0] > 0
    coords2 = torch.cat([coords[~other], make_coords([0] + sizes[1:], seed=7)])
    feats2 = feats.clone()
    feats2[other] = torch.randn(int(other.sum()), 32, dtype=torch.float64) * 5
    out2 = model(feats2, coords2, len(sizes))
    torch.testing.assert_close(out2[~other], out[~other], rtol=0, atol=1e-12)
    assert not torch.allclose(out2[other], out[other])


def test_official_padding_would_leak():
    """The check above can fail: padding a small sample the official way (copies one group earlier)
    pulls in the previous sample's tokens, which our groups never do."""
    g, sizes = 16, [20, 5]
    start_p = [0, 32]  # padded starts
    # official flat2win for sample 1: slots [32 + 5, 48) copy slots 16 earlier, i.e. [21, 32) -> sample 0's padding
    copied = [s - g for s in range(start_p[1] + sizes[1], start_p[1] + g)]
    assert any(s < start_p[1] for s in copied)
    coords = torch.cat([torch.zeros(20, 4, dtype=torch.long), torch.ones(5, 4, dtype=torch.long)])
    coords[:, 1:] = 0
    coords[:20, 3] = torch.arange(20)
    coords[20:, 3] = torch.arange(5)
    part = flat_window_partitions(coords, 2, sparse_shape=(64, 64), window_shape=(4, 4), group_size=g)["x"]
    for grp in range(part.num_groups):
        keys = part.index[grp][~part.key_padding_mask[grp]] if part.key_padding_mask is not None else part.index[grp]
        assert len(torch.unique(coords[keys, 0])) == 1


@pytest.mark.parametrize("sizes", [[0], [1], [1, 0, 2], [20, 3]], ids=["empty", "one-token", "tiny-samples", "mixed"])
def test_backbone_sdpa_matches_reference(sizes, make_coords, use_backend):
    torch.manual_seed(0)
    model = flatformer("tiny").double()
    coords = make_coords(sizes)
    feats = torch.randn(coords.shape[0], 32, dtype=torch.float64, requires_grad=True)
    results = {}
    for backend in ("sdpa", "reference"):
        use_backend(model, backend)
        model.zero_grad()
        feats.grad = None
        out = model(feats, coords, len(sizes))
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
        results[backend] = (out.detach(), feats.grad, {n: p.grad for n, p in model.named_parameters()})
    fast, ref = results["sdpa"], results["reference"]
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-10, atol=1e-10)
    if coords.shape[0]:
        torch.testing.assert_close(fast[1], ref[1], rtol=1e-9, atol=1e-9)
        for name, grad in fast[2].items():
            torch.testing.assert_close(grad, ref[2][name], rtol=1e-8, atol=1e-9, msg=name)


def test_every_parameter_gets_a_gradient(make_coords):
    model = flatformer("tiny")
    coords = make_coords([50, 30])
    out = model(torch.randn(80, 32), coords, 2)
    assert out.shape == (80, 32) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_batch_equals_separate_samples(make_coords):
    model = flatformer("tiny").eval()
    sizes = [45, 7, 30]
    coords = make_coords(sizes)
    feats = torch.randn(coords.shape[0], 32)
    together = model(feats, coords, 3)
    start = 0
    for n in sizes:
        one = coords[start:start + n].clone()
        one[:, 0] = 0
        alone = model(feats[start:start + n], one, 1)
        torch.testing.assert_close(alone, together[start:start + n], rtol=1e-5, atol=1e-5)
        start += n


def test_token_order_does_not_matter(make_coords):
    model = flatformer("tiny").eval()
    coords = make_coords([60, 25])
    feats = torch.randn(85, 32)
    perm = torch.randperm(85)
    torch.testing.assert_close(model(feats, coords, 2)[perm], model(feats[perm], coords[perm], 2), rtol=1e-5, atol=1e-5)


def test_named_configs_build():
    model = flatformer("waymo")
    assert isinstance(model, FlatFormer) and len(model.block_list) == 2
    assert model.window_shape == (13, 13) and model.group_size == 144
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 16  # 8 post-norm layers
    with pytest.raises(PointCloudValueError):
        flatformer("nope")


def test_bad_input_raises():
    model = flatformer("tiny")
    with pytest.raises(PointCloudValueError):
        model(torch.randn(4, 31), torch.zeros(4, 4, dtype=torch.long), 1)
    with pytest.raises(PointCloudValueError, match="outside the grid"):
        model(torch.randn(2, 32), torch.tensor([[0, 0, 1, 1], [1, 0, 1, 1]]), 1)


def test_scatter_to_bev():
    feats = torch.arange(6, dtype=torch.float32).view(3, 2)
    coords = torch.tensor([[0, 0, 1, 2], [1, 0, 0, 0], [1, 0, 3, 1]])
    bev = scatter_to_bev(feats, coords, 2, (4, 3))
    assert bev.shape == (2, 2, 4, 3)
    assert bev[0, :, 1, 2].tolist() == [0, 1] and bev[1, :, 0, 0].tolist() == [2, 3]
    assert bev[1, :, 3, 1].tolist() == [4, 5] and bev.abs().sum() == feats.sum()


def test_parameter_names_follow_the_official_checkpoint():
    """`middle_encoder.` keys of an mmdet3d FlatFormer checkpoint load by name (no converter needed)."""
    import re

    pattern = re.compile(r"block_list\.\d\.block\.[0-3]\.(attn\.attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))"
                         r"|(fc1|fc2|norm1|norm2)\.(weight|bias))")
    keys = list(flatformer("waymo").state_dict())
    assert keys and all(pattern.fullmatch(k) for k in keys), [k for k in keys if not pattern.fullmatch(k)]
    assert len(keys) == 2 * 4 * 12
