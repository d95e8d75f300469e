"""From two raw clouds to a transform with RoITr: voxel grid, normals, canonical scale, matching, pose.

RoITr's radii (matching 5 cm, geometric sigma_d 0.2 m, LGR acceptance 10 cm) are metres at the 3DMatch scale,
where clouds are voxelised at 2.5 cm. Any input is brought to that scale: with a voxel size V in the input's
unit, coordinates are multiplied by 0.025 / V, so an object scan (millimetre voxels) and a lidar sweep (0.3 m
voxels) both reach the network at 2.5 cm point spacing; the transform is mapped back to the input unit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from perception3d._errors import PointCloudValueError

CANONICAL_VOXEL = 0.025  # metres, the 3DMatch voxel size RoITr was designed for
LGR_ACCEPTANCE = 4 * CANONICAL_VOXEL  # GeoTransformer / RoITr on 3DMatch: 0.1 m
LGR_FINAL_RADIUS = CANONICAL_VOXEL  # extension: tighter final refinement (docs/registration.md)
LGR_GLOBAL_SAMPLES = 3000  # extension: random correspondence triplets join LGR's hypotheses (88% -> 94%)
LGR_CONSENSUS_SEEDS = 100  # extension: SC2-PCR consensus-set hypotheses (docs/registration.md)
# extension: LGR's hypotheses chosen and refined by descriptor agreement (perception3d/registration/verify.py)
VERIFY_CELL = 2 * CANONICAL_VOXEL
DENSE_RADII = (3 * CANONICAL_VOXEL, 2 * CANONICAL_VOXEL, CANONICAL_VOXEL)
VERIFY_TOP_K = 8
VERIFY_DENSE_TOP = 1
VERIFY_CANDIDATE_RADII = (LGR_ACCEPTANCE,)
DENSE_ITERATIONS = 3
VERIFY_SAMPLE = 512
NORMAL_NEIGHBOURS = 33  # official: open3d KNN=33


def check_points(points: np.ndarray, name: str, min_points: int = 16) -> np.ndarray:
    """A finite [N, 3] float array with at least `min_points` points, or PointCloudValueError naming `name`."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise PointCloudValueError(f"{name}: expected an [N, 3] array of points, got shape {arr.shape}")
    arr = arr[:, :3].astype(np.float64)
    if arr.shape[0] == 0:
        raise PointCloudValueError(f"{name}: the cloud is empty")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(1).sum())
        raise PointCloudValueError(f"{name}: {bad} point(s) have NaN or infinite coordinates")
    if np.abs(arr).max() > 1e9:  # perception3d.io.MAX_ABS_COORDINATE: no distance computed afterwards means anything
        far = int((np.abs(arr) > 1e9).any(1).sum())
        raise PointCloudValueError(f"{name}: {far} point(s) have a coordinate beyond 1e9 (corrupt values)")
    if arr.shape[0] < min_points:
        raise PointCloudValueError(f"{name}: {arr.shape[0]} points is too few to register (need >= {min_points})")
    if np.ptp(arr, axis=0).max() <= 0:
        raise PointCloudValueError(f"{name}: all points coincide")
    return arr


def _voxel_keys(points: np.ndarray, voxel: float, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """One int64 per point naming its voxel (row-major over the occupied box): 1-D keys sort ~10x faster
    than `np.unique(axis=0)` on [N, 3] rows. `bounds`: the cloud's per-axis (min, max), when the caller
    already has them (the cells' range follows from them: floor is monotone)."""
    low, high = bounds if bounds is not None else (points.min(0), points.max(0))
    first = np.floor(low / voxel).astype(np.int64)
    dims = np.floor(high / voxel).astype(np.int64) - first + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0 ** 62:
        raise PointCloudValueError(f"voxel size {voxel:g} is too small for a cloud of extent {np.ptp(points, 0)}")
    cells = np.floor(points / voxel).astype(np.int64) - first
    return (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Mean of the points in each occupied voxel of side `voxel` -> [M, 3]."""
    _, inverse, counts = np.unique(_voxel_keys(points, voxel), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    # One bincount per axis: the same sums as `np.add.at` (float64, added in point order, so bit for bit), 10-20 ms
    # less on a 100k-point sweep (the np.unique sort above is most of what is left).
    sums = np.stack([np.bincount(inverse, weights=points[:, j], minlength=counts.shape[0]) for j in range(3)], 1)
    return sums / counts[:, None]


def point_spacing(points: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """Median distance from a point to its nearest neighbour (on a seeded sample of at most `sample` points)."""
    rng = np.random.default_rng(seed)
    query = points if len(points) <= sample else points[rng.choice(len(points), sample, replace=False)]
    from perception3d.registration._kdtree import knn_within

    dist = knn_within(points, query, 2)[0][:, 1]  # the first is the point itself (or a duplicate of it)
    dist = dist[dist > 0]
    return float(np.median(dist)) if dist.size else 0.0


def _count_occupied(keys: np.ndarray) -> int:
    """Distinct values of non-negative int64 keys. Over a key range of at most a few times the key count, one
    pass marks the occupied cells (no sort); wider ranges (fine voxels) fall back to `np.unique`."""
    span = int(keys.max()) + 1 if keys.size else 0
    if span <= max(8 * keys.size, 1 << 16):
        seen = np.zeros(span, dtype=bool)
        seen[keys] = True
        return int(np.count_nonzero(seen))
    return len(np.unique(keys))


def auto_voxel_size(points: np.ndarray, target_points: int) -> float:
    """The voxel size that leaves about `target_points` points (bisection on a log scale).

    Never below the cloud's own point spacing: a cloud with fewer than `target_points` points keeps its
    resolution (a smaller voxel would only shrink the radii that are multiples of it below the spacing).
    """
    bounds = points.min(0), points.max(0)
    extent = float((bounds[1] - bounds[0]).max())
    lo, hi = max(extent / 4000.0, point_spacing(points)), extent / 2.0

    def count(voxel: float) -> int:
        return _count_occupied(_voxel_keys(points, voxel, bounds))

    if lo >= hi or count(lo) <= target_points:
        return min(lo, hi)
    for _ in range(18):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if count(mid) > target_points else (lo, mid)
    return hi


def oriented_normals(points: Tensor, k: int = NORMAL_NEIGHBOURS) -> Tensor:
    """PCA normals [N, 3] flipped to point away from the cloud's centroid.

    Deviation: the official code orients normals toward the camera at the origin, which 3DMatch fragments
    (in camera frame) provide; arbitrary inputs have no known viewpoint, and the centroid moves with the
    cloud, so this choice keeps normals (and hence PPFs) invariant to any rigid motion of the input.
    """
    from perception3d.ops.geometry import estimate_normals

    normals = estimate_normals(points, k=min(k, points.shape[0]), viewpoint=None)
    outward = points - points.mean(0, keepdim=True)
    sign = torch.where((normals * outward).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(points.dtype)
    return normals * sign


@dataclass
class Prepared:
    """A cloud ready for RoITr: canonical-scale points [N, 3] and normals [N, 3]; `scale` = canonical / input."""

    points: Tensor
    normals: Tensor
    scale: float


def prepare(points: np.ndarray, voxel_size: float, *, max_points: int | None = None,
            seed: int = 0, rng: np.random.Generator | None = None, device: str | torch.device = "cpu") -> Prepared:
    """Voxelise, optionally subsample to `max_points` (seeded), scale to canonical units, estimate normals.

    The subsample draws from `rng` when given (a training set's per-item generator), else from a generator seeded
    with `seed`; the kept points stay in voxel order.
    """
    pts = voxel_downsample(points, voxel_size)
    if max_points is not None and len(pts) > max_points:
        rng = np.random.default_rng(seed) if rng is None else rng
        pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
    scale = CANONICAL_VOXEL / voxel_size
    t = torch.as_tensor(pts * scale, dtype=torch.float32, device=device)
    return Prepared(t, oriented_normals(t), scale)


@dataclass
class RegistrationResult:
    """transform: [4, 4] float64 mapping SOURCE into TARGET's frame, in the input unit.

    tgt_corr, src_corr: [C, 3] correspondences in the input unit (the raw clouds' frames); corr_scores [C].
    """

    transform: np.ndarray
    tgt_corr: np.ndarray
    src_corr: np.ndarray
    corr_scores: np.ndarray
    method: str
    runtime_s: float
    voxel_size: float


def lgr_transform(matches, seed: int = 0, descriptors=None) -> Tensor:
    """LGR on a RoITr matching (`RoITr.match`'s output) in canonical units -> [4, 4] source -> target.

    With `descriptors` (`RoITr.forward`'s output for the same pair) the winner is chosen and refined by descriptor
    agreement (`perception3d.registration.verify`, an extension); without, by inlier count as in the paper.
    """
    from perception3d.registration.pose import lgr_hypotheses, refine_on_inliers
    from perception3d.registration.verify import verify

    tc, sc, cs = matches.tgt_corr, matches.src_corr, matches.corr_scores
    hyps, inliers = lgr_hypotheses(tc, sc, cs, matches.corr_patch, acceptance_radius=LGR_ACCEPTANCE,
                                   global_samples=LGR_GLOBAL_SAMPLES, consensus_seeds=LGR_CONSENSUS_SEEDS, seed=seed)

    def refine(t: Tensor, radii: tuple[float, ...] = (LGR_ACCEPTANCE, LGR_FINAL_RADIUS)) -> Tensor:
        return refine_on_inliers(t, tc, sc, cs, radii=radii)

    if descriptors is None or sc.shape[0] < 3:
        return refine(hyps[inliers.argmax()])
    d = descriptors
    return verify(hyps, inliers, lambda t: refine(t, VERIFY_CANDIDATE_RADII), d.src_points, d.src_point_feats,
                  d.tgt_points, d.tgt_point_feats, cell=VERIFY_CELL, radii=DENSE_RADII, iterations=DENSE_ITERATIONS,
                  top_k=VERIFY_TOP_K, dense_top=VERIFY_DENSE_TOP, sample=VERIFY_SAMPLE, seed=seed)


@torch.inference_mode()
def register_roitr(model, source: np.ndarray, target: np.ndarray, *, voxel_size: float | None = None,
                   num_points: int = 2048, estimator: str = "lgr", verify: bool = True, seed: int = 0,
                   device: str | torch.device = "cpu") -> RegistrationResult:
    """Register SOURCE [N, 3] to TARGET [M, 3] with a RoITr model; returns the source -> target transform.

    Args:
        voxel_size: in the clouds' unit; default: the size that leaves about `num_points` target points.
        num_points: at most this many points per cloud reach the network (seeded random subsample).
        estimator: "lgr" (local-to-global registration, default) or "ransac" (open3d, on correspondences).
        verify: LGR's winner chosen and refined by descriptor agreement (`lgr_transform`); False: by inlier
            count, as in the paper.
    """
    from perception3d.registration.pose import ransac_on_correspondences, refine_on_inliers

    start = time.perf_counter()
    source = check_points(source, "SOURCE")
    target = check_points(target, "TARGET")
    # Centre both clouds on the target's centroid: georeferenced coordinates would lose precision in float32.
    centre = target.mean(0)
    source, target = source - centre, target - centre
    if voxel_size is None:
        voxel_size = auto_voxel_size(target, num_points)
    if voxel_size <= 0:
        raise PointCloudValueError(f"voxel size must be positive, got {voxel_size}")
    src = prepare(source, voxel_size, max_points=num_points, seed=seed, device=device)
    tgt = prepare(target, voxel_size, max_points=num_points, seed=seed + 1, device=device)
    for name, p in (("SOURCE", src), ("TARGET", tgt)):
        if p.points.shape[0] < 16:
            raise PointCloudValueError(f"{name}: only {p.points.shape[0]} points left at voxel size {voxel_size:g}; "
                                       "use a smaller --voxel-size")
    model.eval()
    out = model(src.points, src.normals, tgt.points, tgt.normals)
    m = model.match(out)
    if estimator == "lgr":
        t = lgr_transform(m, seed=seed, descriptors=out if verify else None).double().cpu().numpy()
    elif estimator == "ransac":
        t = ransac_on_correspondences(m.tgt_corr.cpu().numpy(), m.src_corr.cpu().numpy(),
                                      distance=2 * CANONICAL_VOXEL, seed=seed)
        # Polished as LGR ends (score-weighted Procrustes on its inliers, then the tight radius): open3d's model is
        # fitted to a 3-point sample and its unweighted inliers (bench recall 58% -> 94% with the polish).
        t = torch.tensor(t, dtype=m.src_corr.dtype, device=m.src_corr.device)
        t = refine_on_inliers(t, m.tgt_corr, m.src_corr, m.corr_scores,
                              radii=(LGR_ACCEPTANCE, LGR_FINAL_RADIUS)).double().cpu().numpy()
    else:
        raise ValueError(f"unknown estimator {estimator!r}: use 'lgr' or 'ransac'")
    t = t.copy()
    t[:3, 3] /= src.scale  # canonical -> input unit (both clouds share the scale)
    t[:3, 3] += centre - t[:3, :3] @ centre  # undo the centring: x_t = R (x_s - c) + t' + c
    return RegistrationResult(t, m.tgt_corr.cpu().double().numpy() / tgt.scale + centre,
                              m.src_corr.cpu().double().numpy() / src.scale + centre, m.corr_scores.cpu().numpy(),
                              "roitr", time.perf_counter() - start, float(voxel_size))
