"""The ops on a CUDA GPU against the CPU float64 results (run with -m cuda on a GPU machine).

Not run in the session that wrote them (no GPU there): unverified until a GPU run.
"""

from __future__ import annotations

import pytest
import torch

from perception3d.ops import (
    ball_query,
    farthest_point_sample,
    knn,
    knn_ragged,
    offsets_from_sizes,
    scatter_max,
    scatter_mean,
    three_nn_interpolate,
    voxelize,
)

pytestmark = pytest.mark.cuda  # tests/conftest.py skips these without a GPU


def _cloud(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, 3, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("backend", ["auto", "reference", "torch"])
@pytest.mark.parametrize("b,m,n,k", [(1, 1, 1, 1), (2, 300, 5000, 16), (3, 64, 10, 16)])
def test_knn_cuda(backend, b, m, n, k):
    q, r = _cloud(b, m, seed=1), _cloud(b, n, seed=2)
    d_cpu, i_cpu = knn(q, r, k, backend="reference")
    d_gpu, i_gpu = knn(q.cuda(), r.cuda(), k, backend=backend)
    assert torch.equal(i_gpu.cpu(), i_cpu)
    torch.testing.assert_close(d_gpu.cpu(), d_cpu)


def test_knn_ragged_cuda():
    q, r = _cloud(20, seed=3), _cloud(40, seed=4)
    qo, ro = offsets_from_sizes([5, 15]), offsets_from_sizes([3, 37])
    d_cpu, i_cpu = knn_ragged(q, qo, r, ro, 8, backend="reference")
    d_gpu, i_gpu = knn_ragged(q.cuda(), qo.cuda(), r.cuda(), ro.cuda(), 8)
    assert torch.equal(i_gpu.cpu(), i_cpu)


@pytest.mark.parametrize("b,m,n,radius,count", [(1, 1, 1, 0.5, 4), (2, 200, 3000, 0.2, 32), (2, 50, 100, 0.05, 8)])
def test_ball_query_cuda(b, m, n, radius, count):
    q, r = _cloud(b, m, seed=5), _cloud(b, n, seed=6)
    assert torch.equal(ball_query(q.cuda(), r.cuda(), radius, count).cpu(), ball_query(q, r, radius, count, backend="reference"))


@pytest.mark.parametrize("backend", ["auto", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,n,picks,start", [(1, 1, 1, 0), (2, 5000, 512, 3), (4, 100, 100, 0), (1, 70000, 64, 9)])
def test_fps_cuda(backend, dtype, b, n, picks, start):
    x = _cloud(b, n, seed=7).to(dtype)
    got = farthest_point_sample(x.cuda(), picks, start=start, backend=backend).cpu()
    assert torch.equal(got, farthest_point_sample(x, picks, start=start, backend="reference"))


def test_interpolate_and_scatter_cuda():
    unknown, known = _cloud(2, 50, seed=8), _cloud(2, 20, seed=9)
    feats = torch.randn(2, 20, 4, dtype=torch.float64, requires_grad=True)
    feats_gpu = feats.detach().cuda().requires_grad_()
    out = three_nn_interpolate(unknown, known, feats)
    out_gpu = three_nn_interpolate(unknown.cuda(), known.cuda(), feats_gpu)
    torch.testing.assert_close(out_gpu.cpu(), out.detach())
    out.sum().backward()
    out_gpu.sum().backward()
    torch.testing.assert_close(feats_gpu.grad.cpu(), feats.grad)
    src, index = torch.randn(100, 3, dtype=torch.float64), torch.randint(-1, 7, (100,))
    torch.testing.assert_close(scatter_mean(src.cuda(), index.cuda(), 7).cpu(), scatter_mean(src, index, 7))
    values, arg = scatter_max(src.cuda(), index.cuda(), 7)
    ref_values, ref_arg = scatter_max(src, index, 7)
    torch.testing.assert_close(values.cpu(), ref_values)
    assert torch.equal(arg.cpu(), ref_arg)


def test_voxelize_cuda():
    g = torch.Generator().manual_seed(10)
    points = torch.rand(2000, 4, generator=g) * 4 - 2
    batch = torch.randint(0, 3, (2000,), generator=g)
    kwargs = dict(voxel_size=(0.25, 0.25, 0.5), point_range=(-2, -2, -2, 2, 2, 2), max_points_per_voxel=5, max_voxels=200)
    cpu, gpu = voxelize(points, batch, **kwargs), voxelize(points.cuda(), batch.cuda(), **kwargs)
    assert torch.equal(gpu.coords.cpu(), cpu.coords)
    assert torch.equal(gpu.point_to_voxel.cpu(), cpu.point_to_voxel)
    assert torch.equal(gpu.num_points.cpu(), cpu.num_points)
