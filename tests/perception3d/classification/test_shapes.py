"""The procedural shape set: deterministic, balanced, normalised, and degraded as documented."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d.classification import CLASSES, Degradation, make_shape, make_split, normalize_unit_sphere
from perception3d.classification.shapes import partial_view

CLEAN = Degradation(max_noise=0.0, partial_prob=0.0, occlusion_prob=0.0, outlier_prob=0.0)


def test_same_seed_same_set_other_seed_other_set():
    a_pts, a_lab = make_split(3, 2, 128)
    b_pts, b_lab = make_split(3, 2, 128)
    c_pts, _ = make_split(4, 2, 128)
    np.testing.assert_array_equal(a_pts, b_pts)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.allclose(a_pts, c_pts)


def test_balanced_shapes_and_unit_sphere():
    pts, labels = make_split(0, 3, 200)
    assert pts.shape == (3 * len(CLASSES), 200, 3) and pts.dtype == np.float32
    assert np.bincount(labels).tolist() == [3] * len(CLASSES)
    radius = np.linalg.norm(pts - pts.mean(axis=1, keepdims=True), axis=-1).max(axis=1)
    np.testing.assert_allclose(radius, 1.0, atol=1e-5)
    assert np.isfinite(pts).all()


@pytest.mark.parametrize("name", CLASSES)
def test_every_class_is_a_surface_with_its_own_extent_statistics(name):
    rng = np.random.default_rng(0)
    pts = make_shape(rng, CLASSES.index(name), 512, CLEAN)
    assert pts.shape == (512, 3)
    # Clean samples are surfaces: the nearest neighbour is close (no stray points).
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(512) * 9
    assert np.median(d.min(axis=1)) < 0.1


def test_torus_has_a_hole_and_bowl_is_open():
    rng = np.random.default_rng(1)
    torus = make_shape(rng, CLASSES.index("torus"), 2000, CLEAN)
    r_xy = np.linalg.norm(torus[:, :2], axis=1)
    assert r_xy.min() > 0.1  # nothing on the axis
    bowl = make_shape(rng, CLASSES.index("bowl"), 2000, CLEAN)
    top = bowl[:, 2] > bowl[:, 2].max() - 0.05
    assert np.linalg.norm(bowl[top, :2], axis=1).min() > 0.3  # the rim only: no lid


def test_partial_view_keeps_the_side_facing_the_sensor():
    rng = np.random.default_rng(0)
    sphere = normalize_unit_sphere(rng.normal(size=(4000, 3)) / 1.0)
    sphere = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    visible = partial_view(sphere, np.array([1.0, 0.0, 0.0]))
    assert 0.2 * len(sphere) < len(visible) < 0.7 * len(sphere)
    # The back of the sphere (x < 0) is hidden from a sensor at +x, except in grid cells that hold no front
    # point (crude: about a tenth of the kept points at this density).
    assert (visible[:, 0] > -0.2).mean() > 0.85
    assert visible[:, 0].mean() > 0.35


def test_degradation_adds_outliers_and_noise():
    rng = np.random.default_rng(0)
    heavy = Degradation(max_noise=0.0, partial_prob=0.0, occlusion_prob=0.0, outlier_prob=1.0, max_outlier_fraction=0.2)
    clean = make_shape(np.random.default_rng(5), 0, 1000, CLEAN)
    dirty = make_shape(np.random.default_rng(5), 0, 1000, heavy)
    assert not np.allclose(clean, dirty)
    assert rng is not None
