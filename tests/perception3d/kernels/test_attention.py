"""GroupAttention: the SDPA path against the group-by-group reference, and backend selection."""

from __future__ import annotations

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.kernels import GroupAttention, GroupPartition, equal_size_groups, resolve_backend, set_partition
from perception3d.kernels.dsvt import window_partition
from perception3d.kernels.flatformer import flat_window_keys, sort_tokens


def test_backend_resolution(monkeypatch):
    monkeypatch.delenv("OMNISENSE_KERNEL_BACKEND", raising=False)
    assert resolve_backend("auto") == "sdpa"
    monkeypatch.setenv("OMNISENSE_KERNEL_BACKEND", "reference")
    assert resolve_backend("auto") == "reference"
    assert resolve_backend("sdpa") == "sdpa"  # an explicit choice wins over the variable
    monkeypatch.setenv("OMNISENSE_KERNEL_BACKEND", "cuda-magic")
    with pytest.raises(PointCloudValueError, match="OMNISENSE_KERNEL_BACKEND"):
        resolve_backend("auto")


def test_env_variable_switches_the_path(monkeypatch):
    """The variable reaches the module: a reference run calls the reference function."""
    import perception3d.kernels._attention as attention

    calls = []
    original = attention.group_attention_reference
    monkeypatch.setattr(attention, "group_attention_reference",
                        lambda *a: calls.append(1) or original(*a))
    attn = GroupAttention(8, 2)
    part = GroupPartition(torch.arange(4).view(1, 4), None, torch.arange(4))
    x = torch.randn(4, 8)
    monkeypatch.setenv("OMNISENSE_KERNEL_BACKEND", "sdpa")
    attn(x, None, part)
    assert not calls
    monkeypatch.setenv("OMNISENSE_KERNEL_BACKEND", "reference")
    attn(x, None, part)
    assert calls


def _flat_partition(coords, batch_size, group_size):
    keys = flat_window_keys(coords, sparse_shape=(64, 64), window_shape=(4, 4), ordering="y_shift")
    return equal_size_groups(sort_tokens(coords, keys), coords[:, 0], batch_size, group_size)


def _set_partition(coords, batch_size, group_size):
    win, in_win = window_partition(coords, sparse_shape=(64, 64, 1), window_shape=(16, 16, 1), shift=(8, 8, 0))
    return set_partition(win, in_win, window_shape=(16, 16, 1), set_size=group_size, axis=1)


PARTITIONS = {"flat": _flat_partition, "sets": _set_partition}
# (per-sample token counts, group size): one pytest parameter per case.
CASES = {
    "empty": ([], 8),
    "empty-samples": ([0, 0], 8),
    "one-token": ([1], 8),
    "one-token-per-sample": ([1, 1, 1], 8),
    "smaller-than-group": ([3], 16),
    "mixed-small-and-large": ([40, 3, 0, 17], 16),
    "exact-multiple": ([32, 16], 16),
    "batch-1": ([123], 16),
    "batch-2": ([77, 150], 16),
    "batch-5": ([60, 9, 31, 100, 2], 16),
}


@pytest.mark.parametrize("kind", sorted(PARTITIONS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_sdpa_matches_reference(kind, case, make_coords):
    sizes, group_size = CASES[case]
    coords = make_coords(sizes)
    part = PARTITIONS[kind](coords, len(sizes), group_size)
    m = coords.shape[0]
    torch.manual_seed(1)
    attn = GroupAttention(16, 4).double()
    with torch.no_grad():  # non-zero biases so that their gradients are tested too
        attn.in_proj_bias.normal_()
        attn.out_proj.bias.normal_()
    x = torch.randn(m, 16, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(m, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(m, 16, dtype=torch.float64)

    results = {}
    for backend in ("sdpa", "reference"):
        attn.backend = backend
        attn.zero_grad()
        x.grad = pos.grad = None
        out = attn(x, pos, part)
        (out * weight).sum().backward()
        grads = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in attn.named_parameters()}
        zeros = torch.zeros_like(x)
        results[backend] = (out.detach(), zeros if x.grad is None else x.grad.clone(),
                            zeros if pos.grad is None else pos.grad.clone(), grads)

    fast, ref = results["sdpa"], results["reference"]
    assert fast[0].shape == (m, 16)
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast[1], ref[1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast[2], ref[2], rtol=1e-10, atol=1e-10)
    for name in fast[3]:
        torch.testing.assert_close(fast[3][name], ref[3][name], rtol=1e-9, atol=1e-9, msg=name)
    if m:
        assert fast[1].abs().sum() > 0
    if max(sizes, default=0) > 1:  # with one token, attention is the identity on v: no gradient to pos
        assert fast[2].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_matches_reference_low_precision(dtype, make_coords):
    coords = make_coords([90, 5, 33])
    part = _flat_partition(coords, 3, 16)
    attn = GroupAttention(32, 4).to(dtype)
    x = torch.randn(coords.shape[0], 32).to(dtype)
    out_fast = attn(x, x, part)
    attn.backend = "reference"
    out_ref = attn(x, x, part)
    tol = 2e-5 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(out_fast.float(), out_ref.float(), rtol=tol, atol=tol)
