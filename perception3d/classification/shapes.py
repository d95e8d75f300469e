"""A procedural shape-classification set: parametric objects sampled to points, with the faults of real scans.

Twelve classes of objects built from surface primitives, each with proportions drawn per sample, so that
classes overlap in their simple statistics (a squat cylinder and a box, a capsule and an ellipsoid, a mug
and a bowl, a cone and a pyramid share their extents and differ in local structure). Every sample is then
put upright with a random yaw, normalised to the unit sphere, and degraded:
Gaussian noise (sigma up to 0.02), with probability 0.3 a partial view (only the points facing a random
viewpoint, a crude single-scan visibility), with probability 0.3 an occluding ball removing a region,
and with probability 0.3 up to 3% outliers spread over the bounding box.

Surface sampling is area-weighted across primitives and uniform within each (the ellipsoid and the torus
up to a stretch factor). Everything is numpy, seeded: the same seed gives the same set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["CLASSES", "Degradation", "make_shape", "make_split", "normalize_unit_sphere"]

CLASSES: tuple[str, ...] = (
    "box", "cylinder", "cone", "ellipsoid", "torus", "capsule",
    "pyramid", "table", "mug", "bowl", "dumbbell", "chair",
)

Rng = np.random.Generator


# ---- surface primitives: each returns (points [n, 3], area) sampled uniformly on the surface ----------

def _box(rng: Rng, n: int, size: np.ndarray) -> np.ndarray:
    """n points on the surface of an axis-aligned box of side lengths `size`, centred at the origin."""
    sx, sy, sz = size
    areas = np.array([sy * sz, sy * sz, sx * sz, sx * sz, sx * sy, sx * sy])
    face = rng.choice(6, size=n, p=areas / areas.sum())
    pts = (rng.random((n, 3)) - 0.5) * size
    axis = face // 2
    sign = np.where(face % 2 == 0, -0.5, 0.5)
    pts[np.arange(n), axis] = sign * size[axis]
    return pts


def _box_area(size: np.ndarray) -> float:
    sx, sy, sz = size
    return float(2 * (sx * sy + sy * sz + sx * sz))


def _cylinder_side(rng: Rng, n: int, radius: float, height: float) -> np.ndarray:
    theta = rng.random(n) * 2 * np.pi
    z = (rng.random(n) - 0.5) * height
    return np.stack([radius * np.cos(theta), radius * np.sin(theta), z], axis=1)


def _disk(rng: Rng, n: int, radius: float, z: float, inner: float = 0.0) -> np.ndarray:
    r = np.sqrt(rng.uniform(inner**2, radius**2, n))
    theta = rng.random(n) * 2 * np.pi
    return np.stack([r * np.cos(theta), r * np.sin(theta), np.full(n, z)], axis=1)


def _cone_side(rng: Rng, n: int, radius: float, height: float) -> np.ndarray:
    """Lateral surface of a cone with its base at z = -height / 2 and its apex at z = +height / 2."""
    t = np.sqrt(rng.random(n))  # distance from the apex, uniform in area
    theta = rng.random(n) * 2 * np.pi
    return np.stack([t * radius * np.cos(theta), t * radius * np.sin(theta), height / 2 - t * height], axis=1)


def _sphere(rng: Rng, n: int, radius: float, z_min: float = -1.0) -> np.ndarray:
    """Points on a sphere (or the cap z / radius >= z_min of it): uniform since area is uniform in z."""
    z = rng.uniform(z_min, 1.0, n)
    theta = rng.random(n) * 2 * np.pi
    r = np.sqrt(1 - z**2)
    return radius * np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)


def _torus(rng: Rng, n: int, major: float, minor: float, arc: float = 2 * np.pi) -> np.ndarray:
    """A torus (or the part of it with angle < arc about z), area-uniform by rejection on the tube angle."""
    out = np.empty((0, 3))
    while len(out) < n:
        m = 2 * n
        u = rng.random(m) * arc
        v = rng.random(m) * 2 * np.pi
        keep = rng.random(m) < (major + minor * np.cos(v)) / (major + minor)
        u, v = u[keep], v[keep]
        ring = major + minor * np.cos(v)
        out = np.concatenate([out, np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], axis=1)])
    return out[:n]


def _compose(rng: Rng, n: int, parts: list[tuple[float, Callable[[int], np.ndarray]]]) -> np.ndarray:
    """Sample n points over several parts, each `(area, sampler(count) -> points)`, in proportion to area."""
    areas = np.array([a for a, _ in parts], dtype=np.float64)
    counts = rng.multinomial(n, areas / areas.sum())
    return np.concatenate([sample(int(c)) for (_, sample), c in zip(parts, counts)], axis=0)


# ---- the classes ------------------------------------------------------------------------------------

def _make_box(rng: Rng, n: int) -> np.ndarray:
    size = rng.uniform(0.4, 1.6, 3)
    return _box(rng, n, size)


def _make_cylinder(rng: Rng, n: int) -> np.ndarray:
    r, h = rng.uniform(0.25, 0.8), rng.uniform(0.3, 1.8)
    return _compose(rng, n, [
        (2 * np.pi * r * h, lambda c: _cylinder_side(rng, c, r, h)),
        (np.pi * r * r, lambda c: _disk(rng, c, r, -h / 2)),
        (np.pi * r * r, lambda c: _disk(rng, c, r, h / 2)),
    ])


def _make_cone(rng: Rng, n: int) -> np.ndarray:
    r, h = rng.uniform(0.3, 0.9), rng.uniform(0.5, 1.8)
    slant = np.hypot(r, h)
    return _compose(rng, n, [
        (np.pi * r * slant, lambda c: _cone_side(rng, c, r, h)),
        (np.pi * r * r, lambda c: _disk(rng, c, r, -h / 2)),
    ])


def _make_ellipsoid(rng: Rng, n: int) -> np.ndarray:
    axes = rng.uniform(0.35, 1.0, 3)
    return _sphere(rng, n, 1.0) * axes


def _make_torus(rng: Rng, n: int) -> np.ndarray:
    major = rng.uniform(0.5, 0.8)
    minor = rng.uniform(0.12, 0.4) * major
    return _torus(rng, n, major, minor)


def _make_capsule(rng: Rng, n: int) -> np.ndarray:
    r, h = rng.uniform(0.2, 0.5), rng.uniform(0.3, 1.4)
    cap = lambda c, z, s: _sphere(rng, c, r, 0.0) * np.array([1, 1, s]) + np.array([0, 0, z])  # noqa: E731
    return _compose(rng, n, [
        (2 * np.pi * r * h, lambda c: _cylinder_side(rng, c, r, h)),
        (2 * np.pi * r * r, lambda c: cap(c, h / 2, 1.0)),
        (2 * np.pi * r * r, lambda c: cap(c, -h / 2, -1.0)),
    ])


def _make_pyramid(rng: Rng, n: int) -> np.ndarray:
    a, b, h = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.6)
    apex = np.array([0.0, 0.0, h / 2])
    corners = np.array([[-a / 2, -b / 2, -h / 2], [a / 2, -b / 2, -h / 2], [a / 2, b / 2, -h / 2], [-a / 2, b / 2, -h / 2]])

    def triangle(c: int, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
        u, v = rng.random(c), rng.random(c)
        flip = u + v > 1
        u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
        return p0 + u[:, None] * (p1 - p0) + v[:, None] * (p2 - p0)

    parts = [(a * b, lambda c: (rng.random((c, 3)) - 0.5) * np.array([a, b, 0]) + np.array([0, 0, -h / 2]))]
    for i in range(4):
        p1, p2 = corners[i], corners[(i + 1) % 4]
        area = 0.5 * np.linalg.norm(np.cross(p1 - apex, p2 - apex))
        parts.append((area, lambda c, p1=p1, p2=p2: triangle(c, apex, p1, p2)))
    return _compose(rng, n, parts)


def _legs(rng: Rng, sx: float, sy: float, z_top: float, z_bottom: float, thick: float) -> list:
    parts = []
    height = z_top - z_bottom
    for dx in (-1, 1):
        for dy in (-1, 1):
            offset = np.array([dx * (sx / 2 - thick), dy * (sy / 2 - thick), (z_top + z_bottom) / 2])
            size = np.array([thick, thick, height])
            parts.append((_box_area(size), lambda c, o=offset, s=size: _box(rng, c, s) + o))
    return parts


def _make_table(rng: Rng, n: int) -> np.ndarray:
    sx, sy = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.4)
    top_t, height = rng.uniform(0.04, 0.12), rng.uniform(0.5, 1.2)
    leg = rng.uniform(0.04, 0.12)
    top = np.array([sx, sy, top_t])
    parts = [(_box_area(top), lambda c: _box(rng, c, top) + np.array([0, 0, height / 2]))]
    parts += _legs(rng, sx, sy, height / 2 - top_t / 2, -height / 2, leg)
    return _compose(rng, n, parts)


def _make_chair(rng: Rng, n: int) -> np.ndarray:
    s = rng.uniform(0.5, 0.9)
    seat_h, back_h = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.9)
    t, leg = rng.uniform(0.04, 0.1), rng.uniform(0.04, 0.08)
    seat = np.array([s, s, t])
    back = np.array([s, t, back_h])
    parts = [
        (_box_area(seat), lambda c: _box(rng, c, seat)),
        (_box_area(back), lambda c: _box(rng, c, back) + np.array([0, s / 2 - t / 2, back_h / 2])),
    ]
    parts += _legs(rng, s, s, -t / 2, -seat_h, leg)
    return _compose(rng, n, parts)


def _make_mug(rng: Rng, n: int) -> np.ndarray:
    r, h = rng.uniform(0.3, 0.6), rng.uniform(0.5, 1.2)
    hr = rng.uniform(0.15, 0.3) * h + 0.05
    tube = rng.uniform(0.03, 0.07)

    def handle(c: int) -> np.ndarray:
        ring = _torus(rng, c, hr, tube, arc=np.pi)  # half ring in the xy plane, y >= 0
        # Stand it in the xz plane, bulging out of the mug's side at x = r.
        return np.stack([r + ring[:, 1], ring[:, 2], ring[:, 0]], axis=1)

    return _compose(rng, n, [
        (2 * np.pi * r * h * 2, lambda c: _cylinder_side(rng, c, r * rng.uniform(0.93, 1.0), h)),  # in and out
        (np.pi * r * r, lambda c: _disk(rng, c, r, -h / 2)),
        (np.pi * hr * tube * 2 * np.pi, handle),
    ])


def _make_bowl(rng: Rng, n: int) -> np.ndarray:
    r = rng.uniform(0.5, 1.0)
    depth = rng.uniform(0.35, 1.0)  # fraction of the hemisphere kept, as a z range
    flat = rng.uniform(0.5, 1.0)  # vertical squash
    pts = _sphere(rng, n, r, z_min=-1.0)
    pts = pts[pts[:, 2] <= -r * (1 - depth)] if depth < 1 else pts[pts[:, 2] <= 0]
    while len(pts) < n:  # top up to n points
        more = _sphere(rng, n, r)
        pts = np.concatenate([pts, more[more[:, 2] <= -r * (1 - depth)]])
    return pts[:n] * np.array([1, 1, flat])


def _make_dumbbell(rng: Rng, n: int) -> np.ndarray:
    r_ball, r_bar, length = rng.uniform(0.2, 0.45), rng.uniform(0.05, 0.15), rng.uniform(0.6, 1.6)
    if rng.random() < 0.5:  # discs instead of balls
        w = rng.uniform(0.05, 0.2)
        end = lambda c, z: _compose(rng, c, [  # noqa: E731
            (2 * np.pi * r_ball * w, lambda k: _cylinder_side(rng, k, r_ball, w) + np.array([0, 0, z])),
            (2 * np.pi * r_ball**2, lambda k: _disk(rng, k, r_ball, z + w / 2 * rng.choice([-1, 1]))),
        ])
        area = 2 * np.pi * r_ball * w + 2 * np.pi * r_ball**2
    else:
        end = lambda c, z: _sphere(rng, c, r_ball) + np.array([0, 0, z])  # noqa: E731
        area = 4 * np.pi * r_ball**2
    return _compose(rng, n, [
        (2 * np.pi * r_bar * length, lambda c: _cylinder_side(rng, c, r_bar, length)),
        (area, lambda c: end(c, length / 2)),
        (area, lambda c: end(c, -length / 2)),
    ])


_MAKERS: dict[str, Callable[[Rng, int], np.ndarray]] = {
    "box": _make_box, "cylinder": _make_cylinder, "cone": _make_cone, "ellipsoid": _make_ellipsoid,
    "torus": _make_torus, "capsule": _make_capsule, "pyramid": _make_pyramid, "table": _make_table,
    "mug": _make_mug, "bowl": _make_bowl, "dumbbell": _make_dumbbell, "chair": _make_chair,
}
assert tuple(_MAKERS) == CLASSES


# ---- degradation -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Degradation:
    """How samples are degraded after normalisation (probabilities per sample, magnitudes in unit-sphere units)."""

    max_noise: float = 0.02
    partial_prob: float = 0.3
    occlusion_prob: float = 0.3
    outlier_prob: float = 0.3
    max_outlier_fraction: float = 0.03


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale so the farthest point is at distance 1: [N, 3] -> [N, 3]."""
    centred = points - points.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    return centred / max(radius, 1e-12)


def partial_view(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Keep the points a sensor looking from `direction` (unit vector, from the object) would see."""
    return points[visible_mask(points, direction)]


def visible_mask(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Which of `points` [N, 3] a sensor looking from `direction` would see: bool [N].

    A crude single-scan visibility: project on the plane perpendicular to the view direction and keep,
    in each cell of a 32 x 32 grid, the points within 0.08 of the nearest depth there. A cell that holds no
    front point lets its back points through (about a tenth of the kept points at ~4 points per cell).
    """
    d = direction / np.linalg.norm(direction)
    helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    uv = np.stack([points @ e1, points @ e2], axis=1)
    depth = -(points @ d)  # smaller = closer to the sensor
    cells = np.clip(((uv + 1.0) / 2.0 * 32).astype(int), 0, 31)
    key = cells[:, 0] * 32 + cells[:, 1]
    nearest = np.full(32 * 32, np.inf)
    np.minimum.at(nearest, key, depth)
    return depth <= nearest[key] + 0.08


def _degrade(rng: Rng, points: np.ndarray, n: int, how: Degradation) -> np.ndarray:
    """Degrade a dense normalised sample and resample it to exactly n points."""
    if rng.random() < how.partial_prob:
        view = rng.normal(size=3)
        view[2] = abs(view[2]) * 0.5  # sensors look from around and above, rarely from below
        visible = partial_view(points, view)
        if len(visible) >= n // 4:
            points = visible
    if rng.random() < how.occlusion_prob:
        centre = points[rng.integers(len(points))]
        keep = np.linalg.norm(points - centre, axis=1) > rng.uniform(0.15, 0.35)
        if keep.sum() >= n // 4:
            points = points[keep]
    points = points[rng.choice(len(points), n, replace=len(points) < n)]
    points = points + rng.normal(scale=rng.uniform(0, how.max_noise), size=points.shape)
    if rng.random() < how.outlier_prob:
        count = int(rng.uniform(0, how.max_outlier_fraction) * n)
        which = rng.choice(n, count, replace=False)
        lo, hi = points.min(axis=0), points.max(axis=0)
        points[which] = rng.uniform(lo, hi, size=(count, 3))
    return normalize_unit_sphere(points)


def _yaw(rng: Rng) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def make_shape(rng: Rng, label: int, num_points: int, how: Degradation = Degradation()) -> np.ndarray:
    """One sample of class `label`: upright, random yaw, unit sphere, degraded: [num_points, 3] float32."""
    dense = _MAKERS[CLASSES[label]](rng, 4 * num_points)
    dense = normalize_unit_sphere(dense @ _yaw(rng).T)
    return _degrade(rng, dense, num_points, how).astype(np.float32)


def make_split(seed: int, per_class: int, num_points: int, how: Degradation = Degradation()
               ) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` samples of every class in a shuffled order: (points [S, N, 3] float32, labels [S] int64)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    rng.shuffle(labels)
    points = np.stack([make_shape(rng, int(label), num_points, how) for label in labels])
    return points, labels.astype(np.int64)
