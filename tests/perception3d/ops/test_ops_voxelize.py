"""voxelize (torch and spconv paths) against a per-point loop."""

from __future__ import annotations

import math

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.ops import scatter_mean, voxelize

RANGE = (-2.0, -2.0, -1.0, 2.0, 2.0, 1.0)


def _points(n: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([5.0, 5.0, 2.5]) - torch.tensor([2.5, 2.5, 1.25])
    feats = torch.randn(n, 2, generator=g)
    return torch.cat([xyz, feats], 1), torch.randint(0, max(batch, 1), (n,), generator=g)


def _loop_voxelize(points, batch_index, voxel_size, point_range, cap, max_voxels):
    """Per point, in input order: (b, z, y, x) and whether it is kept, spconv's hard-voxelisation rules."""
    grid = [round((point_range[a + 3] - point_range[a]) / voxel_size[a]) for a in range(3)]
    seen: dict[int, dict[tuple, int]] = {}
    cells = []
    for p, b in zip(points.tolist(), batch_index.tolist()):
        c = [math.floor((p[a] - point_range[a]) / voxel_size[a]) for a in range(3)]
        if not all(0 <= c[a] < grid[a] for a in range(3)):
            cells.append(None)
            continue
        key = (b, c[2], c[1], c[0])
        voxels = seen.setdefault(b, {})
        if key not in voxels:
            if max_voxels is not None and len(voxels) >= max_voxels:
                cells.append(None)
                continue
            voxels[key] = 0
        if cap is not None and voxels[key] >= cap:
            cells.append(None)
            continue
        voxels[key] += 1
        cells.append(key)
    return cells


CASES = {  # (N, B, voxel size, cap, max_voxels)
    "empty": (0, 1, (0.5, 0.5, 0.5), None, None),
    "single-point": (1, 1, (0.5, 0.5, 0.5), None, None),
    "dynamic-b2": (400, 2, (0.5, 0.5, 0.5), None, None),
    "pillars-b3": (400, 3, (0.4, 0.4, 2.0), None, None),
    "hard-cap": (600, 2, (1.0, 1.0, 1.0), 3, None),
    "hard-cap-max-voxels": (600, 3, (0.5, 0.5, 0.5), 4, 10),
}
METHODS = ["torch", "spconv"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(CASES))
def test_voxelize_matches_loop(case, method):
    n, batch, vsize, cap, max_voxels = CASES[case]
    if method == "spconv" and cap is None:
        cap = n + 1  # spconv is hard voxelisation only: a cap no voxel reaches
    points, batch_index = _points(n, batch, seed=list(CASES).index(case))
    vox = voxelize(points, batch_index, voxel_size=vsize, point_range=RANGE, max_points_per_voxel=cap,
                   max_voxels=max_voxels, method=method)
    expected = _loop_voxelize(points, batch_index, vsize, RANGE, cap, max_voxels)
    keys = sorted({c for c in expected if c is not None})
    assert vox.coords.tolist() == [list(k) for k in keys]
    assert vox.point_to_voxel.tolist() == [-1 if c is None else keys.index(c) for c in expected]
    assert vox.num_points.tolist() == [sum(c == k for c in expected) for k in keys]
    if "pillars" in case:
        assert vox.grid_size[2] == 1 and bool((vox.coords[:, 1] == 0).all())


def test_voxel_features_scatter_back():
    points, batch_index = _points(300, 2, seed=5)
    vox = voxelize(points, batch_index, voxel_size=(1.0, 1.0, 1.0), point_range=RANGE)
    mean = scatter_mean(points[:, :3], vox.point_to_voxel, len(vox))
    # each voxel's mean point lies inside that voxel
    cell = torch.floor((mean - torch.tensor(RANGE[:3])) / 1.0).long()
    assert torch.equal(cell[:, [2, 1, 0]], vox.coords[:, 1:])
    centres = vox.centers()
    assert bool(((centres - mean).abs() <= 0.5 + 1e-6).all())


def test_padded_keeps_input_order_and_caps():
    points = torch.tensor([[0.1, 0.1, 0.1, 1.0], [1.5, 0.1, 0.1, 2.0], [0.2, 0.2, 0.2, 3.0], [0.3, 0.1, 0.1, 4.0]])
    vox = voxelize(points, torch.zeros(4, dtype=torch.long), voxel_size=(1, 1, 1), point_range=(0, 0, 0, 2, 2, 2))
    padded = vox.padded(points[:, 3:])
    assert padded[:, :, 0].tolist() == [[1.0, 3.0, 4.0], [2.0, 0.0, 0.0]]
    assert vox.padded(points[:, 3:], max_points=2).shape == (2, 2, 1)


def test_voxelize_rejects_nan_points():
    points = torch.zeros(3, 3)
    points[1, 0] = float("nan")
    with pytest.raises(PointCloudValueError):
        voxelize(points, torch.zeros(3, dtype=torch.long), voxel_size=(1, 1, 1), point_range=(0, 0, 0, 1, 1, 1))
