"""The pieces of `waymo_eval` that the official-op fixture (tests/parity/test_waymo_eval_official.py) checks only
in aggregate: difficulty levels, the PR-curve interpolation, LEVEL_1 scoring and the matching."""

import math

import numpy as np
import pytest
import torch

from perception3d._errors import Perception3DError
from perception3d.detection.evaluation import waymo_average_precision, waymo_eval, waymo_level

CAR = torch.tensor([[3.0, -2.0, -1.0, 4.5, 2.0, 1.6, 0.4]], dtype=torch.float64)


def _frame(boxes, scores, num_points, gt_boxes=CAR):
    det = {"boxes": boxes, "scores": torch.tensor(scores, dtype=torch.float64),
           "labels": torch.zeros(len(scores), dtype=torch.long)}
    gt = {"boxes": gt_boxes, "labels": torch.zeros(len(gt_boxes), dtype=torch.long),
          "num_points": torch.tensor(num_points)}
    return det, gt


def test_levels_from_points_and_the_labels_own_level():
    assert waymo_level(np.array([0, 1, 5, 6, 100])).tolist() == [0, 2, 2, 1, 1]
    assert waymo_level(np.array([0, 3, 100, 100]), np.array([2, 0, 2, 0])).tolist() == [0, 2, 2, 1]


def test_the_interpolation_takes_the_real_precision_down_to_recall_zero():
    # one operating point: the fake (recall 0, precision 1) is replaced by the precision above it
    assert waymo_average_precision(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    assert waymo_average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(0.5)
    # a gap wider than the recall delta carries the higher recall's precision down in 0.05 steps, and the last
    # step to the lower point is a trapezoid: 0.5 over [0.55, 1], 0.05 * (0.5 + 1) / 2, then 1 over [0, 0.5]
    assert waymo_average_precision(np.array([1.0, 0.5]), np.array([0.5, 1.0])) == pytest.approx(
        0.5 * 0.45 + 0.05 * 1.5 / 2 + 0.5, abs=1e-6)
    assert waymo_average_precision(np.array([]), np.array([])) == 0.0


def test_a_match_on_a_level_2_box_is_a_true_positive_at_level_1():
    det, gt = _frame(CAR, [0.9], [3])  # the only car has 3 points: LEVEL_2
    out = waymo_eval([det], [gt], ("Car",))
    assert out["Car/L1/AP"] == pytest.approx(100) and out["Car/L2/AP"] == pytest.approx(100)
    # missed, it counts against LEVEL_2 only
    two = torch.cat([CAR, CAR + torch.tensor([20.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)])
    det, gt = _frame(CAR, [0.9], [100, 3], gt_boxes=two)
    out = waymo_eval([det], [gt], ("Car",))
    assert out["Car/L1/AP"] == pytest.approx(100) and out["Car/L2/AP"] == pytest.approx(50)


def test_boxes_without_points_are_left_out():
    det, gt = _frame(CAR, [0.9], [0])
    out = waymo_eval([det], [gt], ("Car",))
    assert math.isnan(out["Car/L2/AP"]) and math.isnan(out["L2/mAP"])


def test_hungarian_matching_maximises_the_summed_iou():
    # two cars side by side; the higher-scored detection overlaps both, the lower one only the first: greedy
    # matching in score order gives the first car to the high score and leaves the low one unmatched, the
    # Hungarian assignment (largest summed IoU) finds both
    # (IoU: high / first 0.633, high / second 0.569, low / first 0.739, low / second 0.212)
    gts = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.6, 0.0], [0.0, 1.0, 0.0, 4.0, 2.0, 1.6, 0.0]], dtype=torch.float64)
    dets = torch.tensor([[0.0, 0.45, 0.0, 4.0, 2.0, 1.6, 0.0], [0.0, -0.3, 0.0, 4.0, 2.0, 1.6, 0.0]],
                        dtype=torch.float64)
    det, gt = _frame(dets, [0.9, 0.8], [100, 100], gt_boxes=gts)
    out = waymo_eval([det], [gt], ("Car",), iou_thresholds={"Car": 0.5})
    assert out["Car/L1/AP"] == pytest.approx(100)


def test_heading_weighting_and_the_flip():
    flipped = CAR.clone()
    flipped[0, 6] += math.pi
    det, gt = _frame(flipped, [0.9], [100])
    out = waymo_eval([det], [gt], ("Car",))
    assert out["Car/L1/AP"] == pytest.approx(100) and out["Car/L1/APH"] == pytest.approx(0, abs=1e-4)


def test_missing_point_counts_is_one_clear_error():
    det, gt = _frame(CAR, [0.9], [100])
    del gt["num_points"]
    with pytest.raises(Perception3DError, match="num_points"):
        waymo_eval([det], [gt], ("Car",))
