"""Geometry: point pair features, normals, rotations and rigid transforms (rotations through roma)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError
from perception3d.ops._backend import choose


def _safe_norm(v: Tensor) -> Tensor:
    """`|v|` over the last axis with a zero (not NaN) gradient at v = 0."""
    sq = (v * v).sum(-1)
    positive = sq > 0
    return torch.where(positive, sq, torch.ones_like(sq)).sqrt() * positive


def _angle(a: Tensor, b: Tensor) -> Tensor:
    """Angle between vectors in [0, pi] as atan2(|a x b|, a.b); 0 (with a finite gradient) when one is zero."""
    cross = _safe_norm(torch.linalg.cross(a, b, dim=-1))
    dot = (a * b).sum(-1)
    degenerate = (cross == 0) & (dot == 0)
    return torch.atan2(cross, torch.where(degenerate, torch.ones_like(dot), dot))


def point_pair_features(p_i: Tensor, n_i: Tensor, p_j: Tensor, n_j: Tensor) -> Tensor:
    """The rotation-invariant point pair feature of RoITr (and PPFNet): `Tensor[..., 4]`.

    With d = p_j - p_i: (|d|, angle(n_i, d) / pi, angle(n_j, d) / pi, angle(n_i, n_j) / pi), each angle
    atan2(|a x b|, a.b). Inputs broadcast against each other: `[..., 3]` points and unit normals.
    """
    d = p_j - p_i
    return torch.stack([_safe_norm(d), _angle(n_i, d) / math.pi, _angle(n_j, d) / math.pi,
                        _angle(n_i, n_j) / math.pi], dim=-1)


def estimate_normals(points: Tensor, k: int = 30, *, viewpoint: Tensor | tuple[float, float, float] | None = (0.0, 0.0, 0.0),
                     backend: str | None = None) -> Tensor:
    """Unit normals by PCA of each point's k nearest neighbours (the point itself included).

    Args:
        points: `Tensor[N, 3]`, N >= 3.
        k: neighbourhood size (RoITr uses open3d's KNN with 33).
        viewpoint: normals are flipped to face this point (RoITr orients toward the sensor at the origin);
            None leaves the sign as the solver returns it.
        backend: None (environment), 'auto', 'reference' (kNN + eigh in torch, any device) or 'open3d' (CPU).

    Returns:
        `Tensor[N, 3]` unit normals, same dtype and device as points.
    """
    if points.dim() != 2 or points.shape[1] != 3 or not points.is_floating_point():
        raise PointCloudValueError(f"estimate_normals: expected float points [N, 3], got {tuple(points.shape)}")
    if points.shape[0] < 3:
        raise PointCloudValueError(f"estimate_normals: need at least 3 points, got {points.shape[0]}")
    if not bool(torch.isfinite(points).all()):
        raise PointCloudValueError("estimate_normals: NaN or infinite coordinates")
    k = min(k, points.shape[0])
    name = choose("estimate_normals", backend, points.device, cpu=("open3d",), gpu=(),
                  available=("reference", "open3d"))
    with torch.no_grad():
        if name == "open3d":
            normals = _normals_open3d(points, k)
        else:  # an explicit 'reference' keeps the kNN on its reference too
            normals = _normals_torch(points, k, "reference" if backend == "reference" else None)
    if viewpoint is not None:
        view = torch.as_tensor(viewpoint, dtype=points.dtype, device=points.device)
        flip = ((view - points) * normals).sum(-1) < 0
        normals = torch.where(flip.unsqueeze(-1), -normals, normals)
    return normals


def _normals_torch(points: Tensor, k: int, knn_backend: str | None) -> Tensor:
    from perception3d.ops.neighbors import gather_points, knn

    x = points.double() if points.dtype != torch.float64 else points
    _, idx = knn(x[None], x[None], k, backend=knn_backend)
    nbr = gather_points(x[None], idx)[0]  # [N, k, 3]
    centred = nbr - nbr.mean(dim=1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / k  # [N, 3, 3]
    # scaled by the trace (same eigenvectors), non-finite or zero ones replaced: eigh never sees them
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    ok = torch.isfinite(cov).all(-1).all(-1)[..., None, None] & torch.isfinite(trace) & (trace > 0)
    cov = torch.where(ok, cov / torch.where(ok, trace, torch.ones_like(trace)), torch.eye(3, dtype=cov.dtype, device=cov.device) / 3)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues: column 0 is the normal
    return vecs[..., 0].to(points.dtype)


def _normals_open3d(points: Tensor, k: int) -> Tensor:
    import numpy as np
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.detach().double().numpy()))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    normals = torch.from_numpy(np.asarray(pc.normals).copy()).to(points.dtype)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def random_rotation(n: int, generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> Tensor:
    """`Tensor[n, 3, 3]` rotations drawn uniformly on SO(3) (Haar measure).

    A normalised 4-D Gaussian is a uniform unit quaternion; roma turns it into a matrix. Reproducible
    given the generator.
    """
    import roma

    quat = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return roma.unitquat_to_rotmat(quat).to(dtype=dtype, device=device)


def rotation_from_euler(angles: Tensor, convention: str = "zyx", degrees: bool = False) -> Tensor:
    """`Tensor[..., 3, 3]` from Euler angles `[..., 3]` (roma's convention names, e.g. 'zyx' as RoITr)."""
    import roma

    return roma.euler_to_rotmat(convention, angles, degrees=degrees)


def make_transform(rotation: Tensor, translation: Tensor) -> Tensor:
    """`Tensor[..., 4, 4]` homogeneous transform from `rotation [..., 3, 3]` and `translation [..., 3]`."""
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(*top.shape[:-2], 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def transform_points(points: Tensor, T: Tensor) -> Tensor:
    """Apply a rigid (or any affine) transform: `points [..., N, 3]`, `T [4, 4]` or `[..., 4, 4]` -> `[..., N, 3]`."""
    if T.shape[-2:] != (4, 4) or points.shape[-1] != 3:
        raise PointCloudValueError(f"transform_points: expected points [..., N, 3] and T [..., 4, 4], got "
                                   f"{tuple(points.shape)} and {tuple(T.shape)}")
    rotation = T[..., :3, :3]
    translation = T[..., :3, 3]
    return points @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)
