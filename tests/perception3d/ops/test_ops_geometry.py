"""Point pair features, normals, rotations and transforms."""

from __future__ import annotations

import math

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.ops import (
    estimate_normals,
    make_transform,
    point_pair_features,
    random_rotation,
    rotation_from_euler,
    transform_points,
)


def test_ppf_known_values():
    ppf = point_pair_features(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]),
                              torch.tensor([2.0, 0.0, 0.0]), torch.tensor([-1.0, 0.0, 0.0]))
    torch.testing.assert_close(ppf, torch.tensor([2.0, 0.5, 1.0, 0.5]))


def test_ppf_is_rotation_and_translation_invariant():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    n = torch.nn.functional.normalize(torch.randn(2, 50, 3, generator=g, dtype=torch.float64), dim=-1)
    T = make_transform(random_rotation(1, g, dtype=torch.float64)[0], torch.randn(3, generator=g, dtype=torch.float64))
    R = T[:3, :3]
    before = point_pair_features(p[0], n[0], p[1], n[1])
    after = point_pair_features(transform_points(p[0], T), n[0] @ R.T, transform_points(p[1], T), n[1] @ R.T)
    torch.testing.assert_close(before, after)


def test_ppf_gradient_is_finite_for_a_point_paired_with_itself():
    p = torch.tensor([[0.3, 0.1, 0.2]], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    ppf = point_pair_features(p, n, p, n)
    assert ppf.tolist() == [[0.0, 0.0, 0.0, 0.0]]
    ppf.sum().backward()
    assert bool(torch.isfinite(p.grad).all()) and bool(torch.isfinite(n.grad).all())


@pytest.mark.parametrize("backend", ["reference", "open3d"])
def test_normals_of_a_noisy_plane(backend):
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(400, 2, generator=g) * 2 - 1
    z = 0.3 * xy[:, 0] - 0.2 * xy[:, 1] + 2.0 + 1e-3 * torch.randn(400, generator=g)
    pts = torch.cat([xy, z[:, None]], 1)
    normals = estimate_normals(pts, k=16, backend=backend)
    true = torch.nn.functional.normalize(torch.tensor([-0.3, 0.2, 1.0]), dim=0)
    assert bool(((normals @ true).abs() > 0.995).all())
    # oriented toward the viewpoint (the origin, under the plane): every normal points down
    assert bool(((normals @ true) < 0).all())
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(400))


def test_normals_backends_agree_on_a_sphere():
    g = torch.Generator().manual_seed(2)
    pts = torch.nn.functional.normalize(torch.randn(1000, 3, generator=g), dim=-1) * 3
    a = estimate_normals(pts, k=20, viewpoint=None, backend="reference")
    b = estimate_normals(pts, k=20, viewpoint=None, backend="open3d")
    assert bool(((a * b).sum(-1).abs() > 0.999).all())
    assert bool(((a * pts / 3).sum(-1).abs() > 0.99).all())


def test_normals_reject_too_few_points():
    with pytest.raises(PointCloudValueError):
        estimate_normals(torch.zeros(2, 3))


def test_random_rotation_is_a_reproducible_rotation():
    r1 = random_rotation(64, torch.Generator().manual_seed(3), dtype=torch.float64)
    r2 = random_rotation(64, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(r1, r2)
    torch.testing.assert_close(r1 @ r1.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r1), torch.ones(64, dtype=torch.float64))


def test_random_rotation_is_haar_uniform():
    # for the Haar measure on SO(3): E[R] = 0, E[tr R] = 0 and E[(tr R)^2] = 1
    r = random_rotation(20000, torch.Generator().manual_seed(4), dtype=torch.float64)
    trace = r.diagonal(dim1=1, dim2=2).sum(-1)
    assert r.mean(0).abs().max() < 0.03
    assert abs(float(trace.mean())) < 0.03
    assert abs(float((trace ** 2).mean()) - 1.0) < 0.05


def test_transform_points_and_euler():
    R = rotation_from_euler(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64), "zyx")
    T = make_transform(R, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    out = transform_points(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), T)
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0, 3.0]], dtype=torch.float64))
    batched = transform_points(torch.ones(2, 5, 3, dtype=torch.float64), torch.stack([T, torch.eye(4, dtype=torch.float64)]))
    torch.testing.assert_close(batched[1], torch.ones(5, 3, dtype=torch.float64))
