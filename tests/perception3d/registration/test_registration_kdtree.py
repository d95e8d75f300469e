"""The registration path's KD-tree queries (open3d, or torch without it) answer as scipy's cKDTree did."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from perception3d.ops import _backend
from perception3d.registration._kdtree import knn_within

CASES = {  # (N, Q, k, upper bound)
    "second-nearest": (3000, 500, 2, np.inf),
    "k8-bounded": (2000, 700, 8, 0.6),
    "k1-bounded": (1500, 400, 1, 0.3),
    "k-above-n": (5, 20, 8, 2.0),
    "single-point": (1, 3, 2, np.inf),
    "no-queries": (50, 0, 4, 1.0),
}


@pytest.fixture(params=["open3d", "torch"])
def search(request, monkeypatch):
    if request.param == "torch":
        monkeypatch.setitem(_backend._PRESENT, "open3d", False)
    return request.param


@pytest.mark.parametrize("case", list(CASES))
def test_knn_within_equals_ckdtree(case, search):
    n, q, k, bound = CASES[case]
    rng = np.random.default_rng(n + q)
    ref = rng.normal(size=(n, 3)) * [5.0, 2.0, 0.5] + [300.0, -20.0, 4.0]
    if n > 11:
        ref[10] = ref[11]  # a duplicate: distance 0 to its twin
    query = ref[rng.integers(0, n, q)] + rng.normal(scale=0.05, size=(q, 3))
    want_d, want_i = cKDTree(ref).query(query, k=k, distance_upper_bound=bound)
    got_d, got_i = knn_within(ref, query, k, bound)
    want_d, want_i = want_d.reshape(q, k), want_i.reshape(q, k)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-12, atol=0)
    # the same neighbours: equal indices, or the duplicated point's twin (the only tie in random float64)
    padded = np.concatenate([ref, np.full((1, 3), np.nan)])
    assert np.array_equal(padded[got_i], padded[want_i], equal_nan=True)
    assert (got_i[~np.isfinite(got_d)] == n).all() and got_i.dtype == np.int64
