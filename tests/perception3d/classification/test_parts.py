"""The procedural part set: labels belong to their category, follow their points, and round-trip through files."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d import PointCloudFileError
from perception3d.classification import PART_CATEGORIES, PART_NAMES, PARTS_OF, make_part_split, read_parts, write_parts
from perception3d.classification.parts import _MAKERS, _compose_labelled, make_part_sample
from perception3d.classification.shapes import partial_view, visible_mask


def test_parts_of_partition_the_labels():
    every = sorted(p for parts in PARTS_OF.values() for p in parts)
    assert every == list(range(len(PART_NAMES)))
    for c, parts in PARTS_OF.items():
        assert all(PART_NAMES[p].startswith(PART_CATEGORIES[c] + "/") for p in parts)


@pytest.mark.parametrize("category", PART_CATEGORIES)
def test_every_part_is_sampled_before_degradation(category):
    rng = np.random.default_rng(0)
    points, labels = _compose_labelled(rng, 4096, _MAKERS[category](rng))
    assert points.shape == (4096, 3) and np.isfinite(points).all()
    assert set(np.unique(labels)) == set(PARTS_OF[PART_CATEGORIES.index(category)])


def test_labels_follow_their_points():
    """Parts are spatially coherent after yaw, partial view, occlusion, resampling and noise: a point's nearest
    neighbour mostly carries its label (shuffled labels would agree about a third of the time at best)."""
    rng = np.random.default_rng(1)
    agree = []
    for c in range(len(PART_CATEGORIES)):
        points, labels = make_part_sample(rng, c, 512)
        assert set(np.unique(labels)) <= set(PARTS_OF[c])
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        agree.append(np.mean(labels[d.argmin(1)] == labels))
    assert min(agree) > 0.85, agree


def test_split_is_seeded_and_balanced():
    a = make_part_split(3, 2, 128)
    b = make_part_split(3, 2, 128)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    points, parts, categories = a
    assert points.shape == (12, 128, 3) and parts.shape == (12, 128)
    assert np.bincount(categories).tolist() == [2] * len(PART_CATEGORIES)
    assert np.abs(np.linalg.norm(points, axis=-1).max(axis=1) - 1).max() < 1e-5  # unit sphere


def test_write_and_read_round_trip(tmp_path):
    summary = write_parts(tmp_path, seed=0, size="tiny")
    assert summary["train_samples"] == 18 and summary["parts"] == 16
    test = read_parts(tmp_path, "test")
    assert test.points.shape == (12, 256, 3) and test.parts.shape == (12, 256)
    assert test.classes == PART_CATEGORIES
    for c, parts in zip(test.labels, test.parts):
        assert set(np.unique(parts)) <= set(PARTS_OF[int(c)])


def test_read_parts_errors_name_the_file(tmp_path):
    with pytest.raises(PointCloudFileError, match="omnisense data make parts"):
        read_parts(tmp_path, "train")
    (tmp_path / "train.npz").write_bytes(b"not an npz")
    with pytest.raises(PointCloudFileError, match="not a parts split"):
        read_parts(tmp_path, "train")


def test_visible_mask_is_partial_view():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    view = np.array([0.3, -1.0, 0.4])
    mask = visible_mask(points, view)
    assert 0 < mask.sum() < len(points)
    assert np.array_equal(points[mask], partial_view(points, view))
