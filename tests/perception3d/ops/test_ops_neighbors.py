"""Parity of the neighbour ops (every backend) against independent brute-force float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.ops import (
    ball_query,
    farthest_point_sample,
    farthest_point_sample_ragged,
    gather_points,
    knn,
    knn_ragged,
    offsets_from_sizes,
    three_nn_interpolate,
    three_nn_interpolate_ragged,
)

KNN_BACKENDS = ["reference", "torch", "open3d", "scipy"]
BALL_BACKENDS = ["reference", "scipy"]
FPS_BACKENDS = ["reference", "open3d"]


def _cloud(*shape: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, 3, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


def _brute_d2(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    q, r = q.double(), r.double()
    return (q[..., :, None, :] - r[..., None, :, :]).pow(2).sum(-1)


# ---------------------------------------------------------------- kNN

KNN_CASES = {  # (B, M, N, k)
    "single-point": (1, 1, 1, 1),
    "fewer-refs-than-k": (1, 5, 2, 4),
    "b2": (2, 37, 100, 8),
    "b3-k16": (3, 64, 500, 16),
    "k1-large": (1, 200, 2000, 1),
    "no-queries": (4, 0, 10, 4),
}


@pytest.mark.parametrize("backend", KNN_BACKENDS)
@pytest.mark.parametrize("case", list(KNN_CASES))
def test_knn_matches_brute_force_float64(case, backend):
    b, m, n, k = KNN_CASES[case]
    q, r = _cloud(b, m, seed=1), _cloud(b, n, seed=2)
    dist2, idx = knn(q, r, k, backend=backend)
    assert dist2.shape == idx.shape == (b, m, k)
    if m == 0:
        return
    ref_d2, ref_idx = _brute_d2(q, r).sort(dim=-1, stable=True)
    kk = min(k, n)
    # float64 random points have no ties: the indices must be identical
    assert torch.equal(idx[..., :kk], ref_idx[..., :kk])
    torch.testing.assert_close(dist2[..., :kk], ref_d2[..., :kk], rtol=0, atol=1e-12)
    # fewer references than k: the extra slots repeat the farthest neighbour
    assert torch.equal(idx[..., kk:], ref_idx[..., kk - 1:kk].expand(-1, -1, k - kk))


@pytest.mark.parametrize("backend", KNN_BACKENDS)
def test_knn_float32_up_to_ties(backend):
    q, r = _cloud(2, 300, seed=3, dtype=torch.float32), _cloud(2, 3000, seed=4, dtype=torch.float32)
    dist2, idx = knn(q, r, 10, backend=backend)
    ref_d2 = _brute_d2(q, r).sort(dim=-1).values[..., :10]
    # the chosen neighbours are at the k smallest distances, whatever ties were broken how
    chosen = (q.double()[:, :, None] - gather_points(r.double(), idx)).pow(2).sum(-1)
    torch.testing.assert_close(chosen, ref_d2, rtol=1e-5, atol=1e-6)
    assert dist2.dtype == torch.float32 and bool((dist2[..., 1:] >= dist2[..., :-1]).all())


@pytest.mark.parametrize("backend", KNN_BACKENDS)
def test_knn_dist2_gradients_match_float64_formula(backend):
    q = _cloud(2, 20, seed=5).requires_grad_()
    r = _cloud(2, 50, seed=6).requires_grad_()
    dist2, idx = knn(q, r, 4, backend=backend)
    weights = torch.linspace(0.5, 2.0, dist2.numel(), dtype=torch.float64).reshape(dist2.shape)
    (dist2 * weights).sum().backward()
    # analytic: d/dq |q - r_j|^2 = 2 (q - r_j), and the opposite on r_j
    diff = q.detach()[:, :, None] - gather_points(r.detach(), idx)  # [B, M, k, 3]
    gq = (2 * diff * weights[..., None]).sum(2)
    gr = torch.zeros_like(r).scatter_add_(1, idx.reshape(2, -1, 1).expand(-1, -1, 3),
                                          (-2 * diff * weights[..., None]).reshape(2, -1, 3))
    torch.testing.assert_close(q.grad, gq)
    torch.testing.assert_close(r.grad, gr)


def test_knn_rejects_queries_without_references():
    with pytest.raises(PointCloudValueError):
        knn(_cloud(1, 3, seed=0), _cloud(1, 0, seed=0), 2)


RAGGED_CASES = {  # (query sizes, ref sizes, k)
    "b1": ([7], [30], 4),
    "b2-one-smaller-than-k": ([5, 6], [2, 40], 4),
    "b4-empty-sample": ([3, 0, 9, 1], [10, 0, 25, 1], 5),
    "b5-single-points": ([1, 1, 1, 1, 1], [1, 3, 1, 8, 2], 3),
}


@pytest.mark.parametrize("backend", KNN_BACKENDS)
@pytest.mark.parametrize("case", list(RAGGED_CASES))
def test_knn_ragged_stays_inside_each_sample(case, backend):
    q_sizes, r_sizes, k = RAGGED_CASES[case]
    q, r = _cloud(sum(q_sizes), seed=7), _cloud(sum(r_sizes), seed=8)
    qo, ro = offsets_from_sizes(q_sizes), offsets_from_sizes(r_sizes)
    dist2, idx = knn_ragged(q, qo, r, ro, k, backend=backend)
    assert dist2.shape == idx.shape == (sum(q_sizes), k)
    for b in range(len(q_sizes)):
        qs, rs = slice(int(qo[b]), int(qo[b + 1])), slice(int(ro[b]), int(ro[b + 1]))
        if qs.stop == qs.start:
            continue
        mine = idx[qs]
        assert bool(((mine >= rs.start) & (mine < rs.stop)).all()), "an index points into another sample"
        ref_d2, ref_idx = _brute_d2(q[qs], r[rs]).sort(dim=-1, stable=True)
        kk = min(k, rs.stop - rs.start)
        assert torch.equal(mine[:, :kk] - rs.start, ref_idx[:, :kk])
        torch.testing.assert_close(dist2[qs, :kk], ref_d2[:, :kk], rtol=0, atol=1e-12)


def test_knn_ragged_rejects_sample_without_references():
    with pytest.raises(PointCloudValueError, match="sample 1"):
        knn_ragged(_cloud(4, seed=0), offsets_from_sizes([2, 2]), _cloud(3, seed=1), offsets_from_sizes([3, 0]), 2)


# ---------------------------------------------------------------- ball query

def _brute_ball(q, r, radius, count):
    d2 = _brute_d2(q, r)
    out = torch.empty(*q.shape[:2], count, dtype=torch.long)
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            inside = [j for j in range(r.shape[1]) if d2[b, i, j] < radius ** 2][:count]
            if not inside:
                inside = [int(d2[b, i].argmin())]
            out[b, i] = torch.tensor(inside + [inside[0]] * (count - len(inside)))
    return out


BALL_CASES = {  # (B, M, N, radius, count)
    "single-point": (1, 1, 1, 0.5, 4),
    "b2": (2, 30, 200, 0.3, 8),
    "sparse-many-empty": (3, 40, 150, 0.05, 16),
    "count-above-n": (2, 10, 20, 5.0, 32),
    "no-queries": (2, 0, 5, 0.1, 4),
}


@pytest.mark.parametrize("backend", BALL_BACKENDS)
@pytest.mark.parametrize("case", list(BALL_CASES))
def test_ball_query_matches_brute_force(case, backend):
    b, m, n, radius, count = BALL_CASES[case]
    q, r = _cloud(b, m, seed=11), _cloud(b, n, seed=12)
    idx = ball_query(q, r, radius, count, backend=backend)
    assert idx.shape == (b, m, count)
    if m:
        assert torch.equal(idx, _brute_ball(q, r, radius, count))


@pytest.mark.parametrize("backend", BALL_BACKENDS)
def test_ball_query_float32_same_as_reference(backend):
    q, r = _cloud(2, 100, seed=13, dtype=torch.float32), _cloud(2, 1000, seed=14, dtype=torch.float32)
    assert torch.equal(ball_query(q, r, 0.2, 12, backend=backend), ball_query(q, r, 0.2, 12, backend="reference"))


# ---------------------------------------------------------------- farthest point sampling

def _brute_fps(x: torch.Tensor, n: int, start: int) -> torch.Tensor:
    out = []
    for cloud in x.double().numpy():
        picks, dist = [start], np.full(len(cloud), np.inf)
        for _ in range(n - 1):
            dist = np.minimum(dist, ((cloud - cloud[picks[-1]]) ** 2).sum(1))
            picks.append(int(dist.argmax()))
        out.append(picks[:n])
    return torch.tensor(out, dtype=torch.long).reshape(x.shape[0], n)


FPS_CASES = {  # (B, N, n, start)
    "single-point": (1, 1, 1, 0),
    "b2": (2, 100, 10, 0),
    "b3-start": (3, 500, 64, 7),
    "all-points": (1, 50, 50, 0),
    "nothing": (2, 20, 0, 0),
}


@pytest.mark.parametrize("backend", FPS_BACKENDS)
@pytest.mark.parametrize("case", list(FPS_CASES))
def test_fps_matches_brute_force(case, backend):
    b, num, n, start = FPS_CASES[case]
    x = _cloud(b, num, seed=21)
    idx = farthest_point_sample(x, n, start=start, backend=backend)
    assert idx.shape == (b, n)
    assert torch.equal(idx, _brute_fps(x, n, start))
    if n:
        assert bool((idx[:, 0] == start).all())
        assert all(len(set(row)) == n for row in idx.tolist())


def test_fps_rejects_more_picks_than_points():
    with pytest.raises(PointCloudValueError):
        farthest_point_sample(_cloud(1, 5, seed=0), 6)


@pytest.mark.parametrize("backend", FPS_BACKENDS)
def test_fps_ragged_picks_inside_each_sample(backend):
    sizes, counts = [10, 1, 30, 0], [3, 1, 8, 0]
    x = _cloud(sum(sizes), seed=22)
    offsets = offsets_from_sizes(sizes)
    idx, new_offsets = farthest_point_sample_ragged(x, offsets, counts, backend=backend)
    assert new_offsets.tolist() == [0, 3, 4, 12, 12]
    for b in range(len(sizes)):
        mine = idx[new_offsets[b]:new_offsets[b + 1]]
        a = int(offsets[b])
        if counts[b]:
            expected = _brute_fps(x[None, a:a + sizes[b]], counts[b], 0)[0] + a
            assert torch.equal(mine, expected)


# ---------------------------------------------------------------- interpolation and gather

def _brute_interp(unknown, known, feats):
    d = _brute_d2(unknown, known).sqrt()
    k = min(3, known.shape[1])
    dk, ik = d.sort(dim=-1)
    recip = 1.0 / (dk[..., :k] + 1e-8)
    w = recip / recip.sum(-1, keepdim=True)
    return (gather_points(feats.double(), ik[..., :k]) * w[..., None]).sum(2)


INTERP_CASES = {"one-known": (2, 7, 1), "two-known": (1, 5, 2), "b3": (3, 20, 10)}


@pytest.mark.parametrize("backend", KNN_BACKENDS)
@pytest.mark.parametrize("case", list(INTERP_CASES))
def test_three_nn_interpolate_forward(case, backend):
    b, n, m = INTERP_CASES[case]
    unknown, known = _cloud(b, n, seed=31), _cloud(b, m, seed=32)
    feats = torch.randn(b, m, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(33))
    out = three_nn_interpolate(unknown, known, feats, backend=backend)
    torch.testing.assert_close(out, _brute_interp(unknown, known, feats))


@pytest.mark.parametrize("wrt", ["feats", "unknown", "known"])
def test_three_nn_interpolate_gradcheck(wrt):
    unknown, known = _cloud(2, 6, seed=34), _cloud(2, 8, seed=35)
    feats = torch.randn(2, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(36))
    args = {"unknown": unknown, "known": known, "feats": feats}
    args[wrt] = args[wrt].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: three_nn_interpolate(**{**args, wrt: x}, backend="reference"),
                                    (args[wrt],))


def test_three_nn_interpolate_at_a_known_point_is_finite():
    known = _cloud(1, 4, seed=37).requires_grad_()
    feats = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    out = three_nn_interpolate(known.detach()[:, :1].clone().requires_grad_(), known, feats)
    torch.testing.assert_close(out[0, 0], feats[0, 0].detach(), rtol=0, atol=1e-6)
    out.sum().backward()
    assert bool(torch.isfinite(known.grad).all()) and bool(torch.isfinite(feats.grad).all())


def test_gather_points_forward_and_gradcheck():
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[[0, 5], [5, 5], [1, 2]], [[3, 3], [0, 4], [2, 1]]])
    out = gather_points(x, idx)
    assert out.shape == (2, 3, 2, 3)
    assert torch.equal(out[1, 1, 1], x[1, 4])
    assert torch.autograd.gradcheck(lambda t: gather_points(t, idx), (x,))


@pytest.mark.parametrize("backend", KNN_BACKENDS)
def test_three_nn_interpolate_ragged_matches_per_sample(backend):
    u_sizes, k_sizes = [6, 0, 9, 4], [10, 3, 2, 1]
    unknown, known = _cloud(sum(u_sizes), seed=41), _cloud(sum(k_sizes), seed=42)
    feats = torch.randn(sum(k_sizes), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(43))
    uo, ko = offsets_from_sizes(u_sizes), offsets_from_sizes(k_sizes)
    out = three_nn_interpolate_ragged(unknown, uo, known, ko, feats, backend=backend)
    for b in range(4):
        us, ks = slice(int(uo[b]), int(uo[b + 1])), slice(int(ko[b]), int(ko[b + 1]))
        if us.stop > us.start:
            expected = _brute_interp(unknown[None, us], known[None, ks], feats[None, ks])[0]
            torch.testing.assert_close(out[us], expected)


def test_three_nn_interpolate_ragged_gradcheck():
    unknown, known = _cloud(7, seed=44), _cloud(6, seed=45)
    uo, ko = offsets_from_sizes([3, 4]), offsets_from_sizes([4, 2])
    feats = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f, u: three_nn_interpolate_ragged(u, uo, known, ko, f, backend="reference"),
        (feats, unknown.clone().requires_grad_()))


@pytest.mark.parametrize("n", [1, 7, 512, 1300])
def test_sq_dist_table_equals_scipy_cdist_bit_for_bit(n):
    """The FPS distance table (built in row blocks, no scipy import) against the scipy cdist it replaced."""
    import numpy as np
    from scipy.spatial.distance import cdist

    from perception3d.ops.neighbors import _sq_dist_table

    cloud = np.random.default_rng(n).normal(size=(n, 3)) * [4.0, 1.0, 0.3] + [50.0, -3.0, 1.0]
    assert np.array_equal(_sq_dist_table(cloud), cdist(cloud, cloud, "sqeuclidean"))
