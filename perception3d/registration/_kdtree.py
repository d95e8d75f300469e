"""Nearest-neighbour queries of the registration path on float64 numpy clouds, through open3d's KD-tree.

The registration call imports open3d anyway (normals, FPFH, the RoITr model's kNN); these queries used scipy's
cKDTree, and importing `scipy.spatial` cost 0.2-0.4 s of every process's first `register` call (scipy 1.17's
array-API layer walks numpy's namespace as it imports, importing `numpy.f2py` and more). The answers are
scipy's: the same float64 distances and the same indices up to ties (tested against cKDTree). Without open3d,
exact torch differences in chunks give the same answers.
"""

from __future__ import annotations

import numpy as np
import torch

from perception3d.ops._backend import has_module

_PAIR_BUDGET = 1 << 22  # query-reference pairs held at once by the torch fallback


def knn_within(ref: np.ndarray, query: np.ndarray, k: int, upper_bound: float = np.inf) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """The k nearest points of `ref` [N, 3] to each of `query` [Q, 3], nearest first, as scipy's
    `cKDTree(ref).query(query, k, distance_upper_bound=upper_bound)` answers: distances [Q, k] (inf where fewer
    than k points lie closer than `upper_bound`) and indices [Q, k] int64 (N there). Needs 1 <= k."""
    ref = np.ascontiguousarray(ref, np.float64)
    query = np.ascontiguousarray(query, np.float64)
    found = min(k, len(ref))
    if found == 0 or len(query) == 0:
        idx, d2 = np.zeros((len(query), found), np.int64), np.zeros((len(query), found))
    elif has_module("open3d"):
        from perception3d._open3d import knn_search

        idx, d2 = knn_search(ref, query, found)
    else:
        r, parts = torch.from_numpy(ref), []
        for chunk in torch.from_numpy(query).split(max(1, _PAIR_BUDGET // len(ref))):
            dist2 = ((chunk.unsqueeze(1) - r.unsqueeze(0)) ** 2).sum(-1)  # [q, N]
            parts.append(dist2.topk(found, dim=1, largest=False, sorted=True))
        idx = torch.cat([p.indices for p in parts]).numpy()
        d2 = torch.cat([p.values for p in parts]).numpy()
    far = ~(d2 < upper_bound * upper_bound)  # scipy compares squared distances, strictly
    dist = np.where(far, np.inf, np.sqrt(d2))
    idx = np.where(far, len(ref), idx)
    if found < k:  # scipy pads the missing neighbours the same way
        pad = k - found
        dist = np.concatenate([dist, np.full((len(query), pad), np.inf)], 1)
        idx = np.concatenate([idx, np.full((len(query), pad), len(ref), np.int64)], 1)
    return dist, idx
