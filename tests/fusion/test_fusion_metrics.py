"""mAP_C, mAP_S and frame mAP against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.metrics import average_precision, frame_map, map_class, map_sample


def test_average_precision_by_hand():
    # ranking: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg) -> precisions at hits 1/1, 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0.1, 0.9]), np.array([1, 0])) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.array([0.3, 0.2]), np.array([0, 0])))


def test_map_class_and_sample_by_hand():
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.6], [0.4, 0.3, 0.7]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    # class 0: ranks 0.9(+) 0.4(+) 0.1 -> 1; class 1: 0.8(+) 0.3(+) 0.2 -> 1; class 2: no positive, skipped
    assert map_class(scores, targets) == pytest.approx(100.0)
    # sample 0: 0.9(+) -> 1; sample 1: 0.8(+) -> 1; sample 2: 0.7(-) 0.4(+) 0.3(+) -> (1/2 + 2/3)/2
    assert map_sample(scores, targets) == pytest.approx(100 * (1 + 1 + (0.5 + 2 / 3) / 2) / 3)


def test_frame_map_pools_frames_and_ignores_padding():
    scores = np.array([[[0.9], [0.2]], [[0.5], [0.95]]])
    targets = np.array([[[1], [0]], [[0], [1]]])
    valid = np.array([[True, True], [True, False]])
    # valid frames: 0.9(+), 0.2(-), 0.5(-) -> AP 1; with the padded 0.95(+) it would still be 1, so flip it:
    assert frame_map(scores, targets, valid) == pytest.approx(100.0)
    targets2 = np.array([[[0], [1]], [[0], [0]]])  # only positive is 0.2: ranked 3rd of 3 valid -> 1/3
    assert frame_map(scores, targets2, valid) == pytest.approx(100 / 3)
    assert frame_map(scores, targets2) == pytest.approx(100 / 4)  # the 0.95 negative counts when not padding


def test_shape_errors():
    with pytest.raises(ValueError):
        frame_map(np.zeros((2, 3)), np.zeros((2, 3)))
