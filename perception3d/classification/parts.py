"""A procedural part-segmentation set: composite objects whose every point carries the label of its part.

Six categories in the manner of ShapeNetPart (global part labels, each category owning its own range), built
from the surface primitives of `perception3d.classification.shapes` with proportions drawn per sample:

| category | parts (global labels) |
|---|---|
| mug | body 0, handle 1 |
| table | top 2, legs 3 |
| chair | seat 4, back 5, legs 6 |
| lamp | base 7, pole 8, shade 9 |
| airplane | fuselage 10, wings 11, tail 12 |
| rocket | body 13, nose 14, fins 15 |

Every sample is put upright with a random yaw, normalised to the unit sphere, and degraded as the
classification set is, minus the outliers (a point spread over the bounding box has no part): Gaussian noise
(sigma up to 0.02), with probability 0.3 a single-view partial scan, with probability 0.3 an occluding ball.
Labels follow their points through every step. Everything is numpy and seeded.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from perception3d.classification.shapes import (
    _box,
    _box_area,
    _cone_side,
    _cylinder_side,
    _disk,
    _legs,
    _sphere,
    _torus,
    _yaw,
    normalize_unit_sphere,
    visible_mask,
)

__all__ = ["PART_CATEGORIES", "PARTS_OF", "PART_NAMES", "make_part_sample", "make_part_split"]

Rng = np.random.Generator
Part = tuple[float, Callable[[int], np.ndarray], int]  # (area, sampler(count) -> points [count, 3], part label)

PART_CATEGORIES: tuple[str, ...] = ("mug", "table", "chair", "lamp", "airplane", "rocket")
PART_NAMES: tuple[str, ...] = (
    "mug/body", "mug/handle", "table/top", "table/legs", "chair/seat", "chair/back", "chair/legs",
    "lamp/base", "lamp/pole", "lamp/shade", "airplane/fuselage", "airplane/wings", "airplane/tail",
    "rocket/body", "rocket/nose", "rocket/fins",
)
PARTS_OF: dict[int, tuple[int, ...]] = {
    c: tuple(i for i, name in enumerate(PART_NAMES) if name.split("/")[0] == category)
    for c, category in enumerate(PART_CATEGORIES)
}


def _compose_labelled(rng: Rng, n: int, parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """n points over the parts in proportion to area: (points [n, 3], part labels [n])."""
    areas = np.array([a for a, _, _ in parts], dtype=np.float64)
    counts = rng.multinomial(n, areas / areas.sum())
    points = np.concatenate([sample(int(c)) for (_, sample, _), c in zip(parts, counts)], axis=0)
    labels = np.concatenate([np.full(int(c), label) for (_, _, label), c in zip(parts, counts)])
    return points, labels.astype(np.int64)


def _mug(rng: Rng) -> list[Part]:
    r, h = rng.uniform(0.3, 0.6), rng.uniform(0.5, 1.2)
    hr = rng.uniform(0.15, 0.3) * h + 0.05
    tube = rng.uniform(0.03, 0.07)

    def handle(c: int) -> np.ndarray:
        ring = _torus(rng, c, hr, tube, arc=np.pi)  # half ring bulging out of the side at x = r
        return np.stack([r + ring[:, 1], ring[:, 2], ring[:, 0]], axis=1)

    return [
        (2 * np.pi * r * h * 2, lambda c: _cylinder_side(rng, c, r * rng.uniform(0.93, 1.0), h), 0),
        (np.pi * r * r, lambda c: _disk(rng, c, r, -h / 2), 0),
        (np.pi * hr * tube * 2 * np.pi, handle, 1),
    ]


def _table(rng: Rng) -> list[Part]:
    sx, sy = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.4)
    top_t, height, leg = rng.uniform(0.04, 0.12), rng.uniform(0.5, 1.2), rng.uniform(0.04, 0.12)
    top = np.array([sx, sy, top_t])
    parts = [(_box_area(top), lambda c: _box(rng, c, top) + np.array([0, 0, height / 2]), 2)]
    return parts + [(a, s, 3) for a, s in _legs(rng, sx, sy, height / 2 - top_t / 2, -height / 2, leg)]


def _chair(rng: Rng) -> list[Part]:
    s = rng.uniform(0.5, 0.9)
    seat_h, back_h = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.9)
    t, leg = rng.uniform(0.04, 0.1), rng.uniform(0.04, 0.08)
    seat, back = np.array([s, s, t]), np.array([s, t, back_h])
    parts = [
        (_box_area(seat), lambda c: _box(rng, c, seat), 4),
        (_box_area(back), lambda c: _box(rng, c, back) + np.array([0, s / 2 - t / 2, back_h / 2]), 5),
    ]
    return parts + [(a, f, 6) for a, f in _legs(rng, s, s, -t / 2, -seat_h, leg)]


def _lamp(rng: Rng) -> list[Part]:
    base_r, base_t = rng.uniform(0.2, 0.45), rng.uniform(0.04, 0.12)
    pole_r, pole_h = rng.uniform(0.02, 0.05), rng.uniform(0.6, 1.4)
    shade_r, shade_h = rng.uniform(0.25, 0.55), rng.uniform(0.2, 0.5)
    z0 = -pole_h / 2
    shade_z = pole_h / 2 + shade_h / 2 - rng.uniform(0.0, 0.5) * shade_h  # the shade sits over the pole's top
    truncate = rng.uniform(0.2, 0.6)  # the shade is a cone cut at this fraction of its height from the apex

    def shade(c: int) -> np.ndarray:
        pts = _cone_side(rng, 2 * c + 8, shade_r, shade_h)
        pts = pts[pts[:, 2] <= shade_h / 2 - truncate * shade_h][:c]  # drop the apex: a lampshade
        while len(pts) < c:
            more = _cone_side(rng, c, shade_r, shade_h)
            pts = np.concatenate([pts, more[more[:, 2] <= shade_h / 2 - truncate * shade_h]])[:c]
        return pts + np.array([0, 0, shade_z])

    return [
        (2 * np.pi * base_r * base_t + 2 * np.pi * base_r**2,
         lambda c: np.concatenate([_cylinder_side(rng, c - c // 2, base_r, base_t),
                                   _disk(rng, c // 2, base_r, base_t / 2)]) + np.array([0, 0, z0 - base_t / 2]), 7),
        (2 * np.pi * pole_r * pole_h, lambda c: _cylinder_side(rng, c, pole_r, pole_h), 8),
        (np.pi * shade_r * np.hypot(shade_r, shade_h) * (1 - truncate**2), shade, 9),
    ]


def _airplane(rng: Rng) -> list[Part]:
    length, radius = rng.uniform(1.4, 2.2), rng.uniform(0.08, 0.16)
    span, chord, wing_t = rng.uniform(1.2, 2.2), rng.uniform(0.2, 0.45), rng.uniform(0.02, 0.05)
    wing_x = rng.uniform(-0.1, 0.15) * length
    fin_h, fin_c = rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.3)
    stab_span = rng.uniform(0.4, 0.8)
    axes = np.array([length / 2, radius, radius])
    wing = np.array([chord, span, wing_t])
    fin = np.array([fin_c, wing_t, fin_h])
    stab = np.array([fin_c * 0.8, stab_span, wing_t])
    tail_x = -0.38 * length  # where the tapering fuselage is still about half its radius thick
    # A fuselage along x (an elongated ellipsoid), wings across y, a fin and a stabiliser at the tail, both
    # rooted on the fuselage's axis.
    return [
        (2 * np.pi * radius * length * 0.8, lambda c: _sphere(rng, c, 1.0) * axes, 10),
        (_box_area(wing), lambda c: _box(rng, c, wing) + np.array([wing_x, 0, 0]), 11),
        (_box_area(fin), lambda c: _box(rng, c, fin) + np.array([tail_x, 0, fin_h / 2]), 12),
        (_box_area(stab), lambda c: _box(rng, c, stab) + np.array([tail_x, 0, 0]), 12),
    ]


def _rocket(rng: Rng) -> list[Part]:
    r, h = rng.uniform(0.12, 0.25), rng.uniform(1.0, 1.8)
    nose_h = rng.uniform(1.2, 3.0) * r
    fin_h, fin_w, fin_t = rng.uniform(0.2, 0.45), rng.uniform(0.12, 0.3), rng.uniform(0.02, 0.04)
    count = int(rng.choice([3, 4]))
    fin = np.array([fin_w, fin_t, fin_h])
    parts: list[Part] = [
        (2 * np.pi * r * h, lambda c: _cylinder_side(rng, c, r, h), 13),
        (np.pi * r * np.hypot(r, nose_h), lambda c: _cone_side(rng, c, r, nose_h) + np.array([0, 0, h / 2 + nose_h / 2]), 14),
    ]
    for i in range(count):
        a = 2 * np.pi * i / count
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        centre = np.array([r + fin_w / 2, 0, -h / 2 + fin_h / 2])
        parts.append((_box_area(fin), lambda c, rot=rot, centre=centre: (_box(rng, c, fin) + centre) @ rot.T, 15))
    return parts


_MAKERS: dict[str, Callable[[Rng], list[Part]]] = {
    "mug": _mug, "table": _table, "chair": _chair, "lamp": _lamp, "airplane": _airplane, "rocket": _rocket,
}
assert tuple(_MAKERS) == PART_CATEGORIES


def _degrade_labelled(rng: Rng, points: np.ndarray, labels: np.ndarray, n: int, *, partial_prob: float = 0.3,
                      occlusion_prob: float = 0.3, max_noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Partial view, occlusion, resampling to n points and noise, keeping each point's label."""
    keep = np.arange(len(points))
    if rng.random() < partial_prob:
        view = rng.normal(size=3)
        view[2] = abs(view[2]) * 0.5
        visible = visible_mask(points[keep], view)
        if visible.sum() >= n // 4:
            keep = keep[visible]
    if rng.random() < occlusion_prob:
        centre = points[keep][rng.integers(len(keep))]
        outside = np.linalg.norm(points[keep] - centre, axis=1) > rng.uniform(0.15, 0.35)
        if outside.sum() >= n // 4:
            keep = keep[outside]
    keep = keep[rng.choice(len(keep), n, replace=len(keep) < n)]
    pts = points[keep] + rng.normal(scale=rng.uniform(0, max_noise), size=(n, 3))
    return normalize_unit_sphere(pts), labels[keep]


def make_part_sample(rng: Rng, category: int, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """One sample of `category`: (points [num_points, 3] float32, global part labels [num_points] int64)."""
    dense, labels = _compose_labelled(rng, 4 * num_points, _MAKERS[PART_CATEGORIES[category]](rng))
    dense = normalize_unit_sphere(dense @ _yaw(rng).T)
    points, labels = _degrade_labelled(rng, dense, labels, num_points)
    return points.astype(np.float32), labels


def make_part_split(seed: int, per_category: int, num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_category` samples of each category, shuffled: (points [S, N, 3], parts [S, N], categories [S])."""
    rng = np.random.default_rng(seed)
    categories = np.repeat(np.arange(len(PART_CATEGORIES)), per_category)
    rng.shuffle(categories)
    samples = [make_part_sample(rng, int(c), num_points) for c in categories]
    points = np.stack([p for p, _ in samples])
    parts = np.stack([label for _, label in samples])
    return points, parts, categories.astype(np.int64)
