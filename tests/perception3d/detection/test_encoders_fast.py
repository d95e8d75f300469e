"""The detector's per-voxel inference paths against the layers as written (issue #19)."""

import pytest
import torch

from perception3d.detection.encoders import DynamicVFE, VoxelGrid, _occupied_cells, _scatter_mean, dynamic_voxelize

GRID = VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (0.5, 0.5, 4.0))


def _cloud(n: int, seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([10.0, 10.0, 5.0]) - torch.tensor([5.0, 5.0, 2.5])  # some outside
    pts = torch.cat([xyz, torch.rand(n, 1, generator=g)], 1)
    return pts, torch.randint(0, batch, (n,), generator=g)


def _unique_voxelize(points, batch_index, grid):
    """What dynamic_voxelize computed before: torch.unique of the cell keys."""
    nx, ny, nz = grid.shape
    cell = torch.floor((points[:, :3] - torch.tensor(grid.point_range[:3])) / torch.tensor(grid.voxel_size)).long()
    inside = ((cell >= 0) & (cell < torch.tensor([nx, ny, nz]))).all(1)
    key = ((batch_index * nz + cell[:, 2]) * ny + cell[:, 1]) * nx + cell[:, 0]
    uniq, inverse = torch.unique(key[inside], return_inverse=True)
    p2v = torch.full_like(key, -1)
    p2v[inside] = inverse
    coords = torch.stack([uniq // (nx * ny * nz), uniq // (nx * ny) % nz, uniq // nx % ny, uniq % nx], 1)
    return coords, p2v


@pytest.mark.parametrize("grid", [GRID, VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (0.5, 0.5, 0.5)),
                                  VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (0.002, 0.002, 0.5))],
                         ids=["pillars", "voxels", "huge-grid-falls-back-to-unique"])
def test_dynamic_voxelize_equals_unique(grid):
    pts, bi = _cloud(3000, 0, batch=3)
    coords, p2v = dynamic_voxelize(pts, bi, grid)
    ref_coords, ref_p2v = _unique_voxelize(pts, bi, grid)
    assert torch.equal(coords, ref_coords) and torch.equal(p2v, ref_p2v)
    assert (p2v == -1).any()  # the cloud reaches outside the range


def test_dynamic_voxelize_single_point():
    coords, p2v = dynamic_voxelize(torch.tensor([[0.1, 0.1, 0.0, 1.0]]), torch.zeros(1, dtype=torch.long), GRID)
    assert coords.tolist() == [[0, 0, 8, 8]] and p2v.tolist() == [0]


def test_dynamic_voxelize_range_edges_and_non_finite_points():
    """The per-axis range test on floored floats: the low edge is in, the high edge out, NaN and inf are out."""
    nan, inf = float("nan"), float("inf")
    pts = torch.tensor([[-4.0, -4.0, -2.0, 0], [3.999, 3.999, 1.999, 0], [4.0, 0.0, 0.0, 0], [0.0, 0.0, 2.0, 0],
                        [nan, 0.0, 0.0, 0], [0.0, inf, 0.0, 0], [0.0, 0.0, -inf, 0], [-4.001, 0.0, 0.0, 0]])
    coords, p2v = dynamic_voxelize(pts, torch.zeros(len(pts), dtype=torch.long), GRID)
    assert coords.tolist() == [[0, 0, 0, 0], [0, 0, 15, 15]] and p2v.tolist() == [0, 1, -1, -1, -1, -1, -1, -1]


@pytest.mark.parametrize("cells,count", [(1, 5), (7, 20), (8, 3), (9, 40), (1000, 0), (1000, 30), (219_024, 20_000)])
def test_occupied_cells_equals_unique(cells, count):
    """Word-at-a-time scan of the occupancy grid: every cell count (multiple of 8 or not), sparse and dense, the
    spare cell `cells` (points outside) never listed, the first and last cells included."""
    g = torch.Generator().manual_seed(cells + count)
    key = torch.cat([torch.randint(0, cells + 1, (count,), generator=g), torch.tensor([0, cells - 1, cells])])
    assert torch.equal(_occupied_cells(key, cells), torch.unique(key[key < cells]))


def test_dynamic_voxelize_empty():
    coords, p2v = dynamic_voxelize(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), GRID, 2)
    assert coords.shape == (0, 4) and p2v.shape == (0,)


def _vfe(filters, halve, seed=0, **kw):
    torch.manual_seed(seed)
    vfe = DynamicVFE(in_channels=4, filters=filters, grid=GRID, halve=halve, **kw)
    for layer in vfe.pfn_layers:  # BatchNorm statistics far from the identity, so folding them matters
        n = layer.norm.num_features
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.2, 3)
        layer.norm.weight.data.uniform_(0.5, 2)
        layer.norm.bias.data.uniform_(-1, 1)
        assert n > 0
    return vfe.eval()


def _reference(vfe, pts, bi):
    coords, p2v = dynamic_voxelize(pts, bi, vfe.grid)
    keep = p2v >= 0
    pts, idx = pts[keep], p2v[keep]
    mean = _scatter_mean(pts[:, :3], idx, coords.shape[0])
    centre = (coords[:, [3, 2, 1]].float() + 0.5) * torch.tensor(vfe.grid.voxel_size) + torch.tensor(vfe.grid.point_range[:3])
    return vfe._forward_reference(pts, idx, mean, centre), coords


@pytest.mark.parametrize("filters,halve", [([32, 64], False), ([64, 64], True), ([16], True), ([16, 16, 32], False),
                                           ([16, 32, 32], True)], ids=["flatformer", "dsvt", "one", "three", "three-halve"])
def test_folded_vfe_equals_layers_as_written(filters, halve):
    vfe = _vfe(filters, halve)
    pts, bi = _cloud(4000, 1)
    with torch.no_grad():
        feats, coords = vfe(pts, bi)
        ref, ref_coords = _reference(vfe, pts, bi)
    assert torch.equal(coords, ref_coords)
    assert torch.allclose(feats, ref, atol=1e-5, rtol=1e-5)


def test_folded_vfe_float64_is_exact():
    vfe = _vfe([32, 64], False).double()
    pts, bi = _cloud(2000, 2)
    pts = pts.double()
    with torch.no_grad():
        assert torch.allclose(vfe(pts, bi)[0], _reference(vfe, pts, bi)[0], atol=1e-12, rtol=1e-12)


def test_folded_vfe_gradients_match():
    vfe = _vfe([16, 32], False)
    pts, bi = _cloud(1500, 3)
    out = vfe(pts, bi)[0].square().sum()
    grads = torch.autograd.grad(out, list(vfe.parameters()), allow_unused=True)
    ref = _reference(vfe, pts, bi)[0].square().sum()
    ref_grads = torch.autograd.grad(ref, list(vfe.parameters()), allow_unused=True)
    for g, r in zip(grads, ref_grads):
        assert (g is None) == (r is None)
        if g is not None:
            assert torch.allclose(g, r, atol=1e-3, rtol=1e-4)


def test_training_mode_runs_the_layers_as_written():
    vfe = _vfe([16, 32], True).train()
    pts, bi = _cloud(1500, 4)
    torch.manual_seed(0)
    out = vfe(pts, bi)[0]
    ref_vfe = _vfe([16, 32], True).train()
    ref = _reference(ref_vfe, pts, bi)[0]
    assert torch.equal(out, ref)


def test_points_per_voxel_cap_keeps_the_first_points():
    vfe = _vfe([16, 32], False, max_points_per_voxel=2)
    pts, bi = _cloud(3000, 5, batch=1)
    with torch.no_grad():
        feats, coords = vfe(pts, bi)
        _, p2v = dynamic_voxelize(pts, bi, vfe.grid)
        seen: dict[int, int] = {}
        rows = []
        for i, v in enumerate(p2v.tolist()):
            if v >= 0 and seen.get(v, 0) < 2:
                seen[v] = seen.get(v, 0) + 1
                rows.append(i)
        capped = pts[torch.tensor(rows)]
        vfe.max_points_per_voxel = None
        ref, ref_coords = vfe(capped, bi[torch.tensor(rows)])
    assert torch.equal(coords, ref_coords) and torch.allclose(feats, ref, atol=1e-5)
    assert max(seen.values()) == 2 and len(rows) < int((p2v >= 0).sum())


@pytest.mark.parametrize("batch,nz", [(1, 1), (3, 1), (2, 4)])
def test_scatter_to_bev_equals_dense_assignment(batch, nz):
    from perception3d.detection.encoders import scatter_to_bev

    g = torch.Generator().manual_seed(batch * 10 + nz)
    nx, ny, c = 7, 5, 6
    cells = torch.randperm(batch * nz * ny * nx, generator=g)[:30]
    coords = torch.stack([cells // (nz * ny * nx), cells // (ny * nx) % nz, cells // nx % ny, cells % nx], 1)
    feats = torch.randn(30, c, generator=g, requires_grad=True)
    out = scatter_to_bev(feats, coords, batch, (nx, ny, nz))
    ref = torch.zeros(batch, nz, ny, nx, c)
    ref[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = feats.detach()
    ref = ref.permute(0, 4, 1, 2, 3).reshape(batch, c * nz, ny, nx)  # channel c * nz + z
    assert torch.equal(out.detach(), ref)
    out.sum().backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


@pytest.mark.parametrize("style", ["second", "resnet"])
def test_bev_backbone_eval_upsampling_equals_transposed_conv(style):
    from perception3d.detection.encoders import BEVBackbone

    torch.manual_seed(0)
    net = BEVBackbone(in_channels=8, layer_nums=[1, 1, 1], layer_strides=[1, 2, 2], num_filters=[8, 12, 16],
                      upsample_strides=[1, 2, 4], num_upsample_filters=[4, 4, 4], style=style).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 16, 24)
    with torch.no_grad():
        fast = net(x)
        outs, h = [], x
        for block, deblock in zip(net.blocks, net.deblocks):  # the levels as written
            if style == "resnet":
                h = block(h)
            else:
                for conv in block:
                    y = conv(h)
                    h = y + h if y.shape == h.shape else y
            outs.append(deblock(h))
        ref = torch.cat(outs, 1)
    assert torch.allclose(fast, ref, atol=1e-5)
