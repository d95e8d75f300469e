"""scatter_mean / scatter_max against per-segment loops in float64, with gradients."""

from __future__ import annotations

import pytest
import torch

from perception3d.ops import scatter_count, scatter_max, scatter_mean, scatter_sum

CASES = {  # (N, C, size, seed)
    "empty": (0, 3, 4, 0),
    "single-point": (1, 2, 1, 1),
    "some-empty-segments": (20, 4, 9, 2),
    "many": (500, 8, 37, 3),
}


def _inputs(n, c, size, seed, dropped=True):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, c, generator=g, dtype=torch.float64)
    index = torch.randint(0, size, (n,), generator=g)
    if dropped and n > 2:
        index[::5] = -1  # points voxelize dropped
    return src, index


def _loop_mean(src, index, size):
    out = torch.zeros(size, src.shape[1], dtype=src.dtype)
    for s in range(size):
        rows = src[index == s]
        if len(rows):
            out[s] = rows.mean(0)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_scatter_mean_forward_and_gradcheck(case):
    src, index = _inputs(*CASES[case])
    size = CASES[case][2]
    torch.testing.assert_close(scatter_mean(src, index, size), _loop_mean(src, index, size))
    torch.testing.assert_close(scatter_sum(src, index, size)[0],
                               src[index == 0].sum(0) if bool((index == 0).any()) else torch.zeros(src.shape[1], dtype=src.dtype))
    assert scatter_count(index, size).tolist() == [int((index == s).sum()) for s in range(size)]
    if 0 < src.shape[0] <= 50:  # gradcheck is one column per input element: keep it small
        x = src.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda t: scatter_mean(t, index, size), (x,))


@pytest.mark.parametrize("case", list(CASES))
def test_scatter_max_forward_argmax_and_gradient(case):
    src, index = _inputs(*CASES[case])
    size = CASES[case][2]
    x = src.clone().requires_grad_()
    values, argmax = scatter_max(x, index, size)
    for s in range(size):
        rows = torch.nonzero(index == s)[:, 0]
        if len(rows) == 0:
            assert bool((values[s] == 0).all()) and bool((argmax[s] == -1).all())
            continue
        best, pos = src[rows].max(0)
        torch.testing.assert_close(values[s], best)
        assert torch.equal(argmax[s], rows[pos])
    if src.shape[0]:
        weights = torch.arange(values.numel(), dtype=torch.float64).reshape(values.shape) + 1
        (values * weights).sum().backward()
        expected = torch.zeros_like(src)
        for s in range(size):
            for ch in range(src.shape[1]):
                if argmax[s, ch] >= 0:
                    expected[argmax[s, ch], ch] += weights[s, ch]
        torch.testing.assert_close(x.grad, expected)


def test_scatter_max_ties_go_to_the_first_row():
    src = torch.tensor([[1.0], [3.0], [3.0], [2.0]], requires_grad=True)
    values, argmax = scatter_max(src, torch.tensor([0, 0, 0, 1]), 2)
    assert argmax[:, 0].tolist() == [1, 3]
    values.sum().backward()
    assert src.grad[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
