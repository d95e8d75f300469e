import math

import numpy as np
import pytest
import torch

from perception3d.detection import evaluation as E
from perception3d.detection.head import (HeadGeometry, PostProcessConfig, build_targets, center_head_loss,
                                         decode_boxes, gaussian_focal_loss, gaussian_radius, post_process)

GEOM = HeadGeometry((-12.8, -12.8, -4.0, 12.8, 12.8, 2.0), (0.4, 0.4), 2)


def _boxes():
    return torch.tensor([[3.1, -2.3, -1.0, 4.2, 1.8, 1.5, 0.4],
                         [-5.0, 6.2, -0.8, 0.6, 0.7, 1.7, -2.0],
                         [0.7, 8.9, -0.9, 1.8, 0.6, 1.7, 3.0]])


def _perfect_preds(targets, num_classes=3):
    """Head outputs that encode the targets exactly."""
    h, w = GEOM.shape
    b = targets.heatmap.shape[0]
    hm = torch.full((b, num_classes, h, w), -20.0)
    hm[targets.heatmap == 1] = 20.0
    out = {"hm": hm}
    for name, sl in (("center", slice(0, 2)), ("center_z", slice(2, 3)), ("dim", slice(3, 6)), ("rot", slice(6, 8))):
        t = torch.zeros(b, sl.stop - sl.start, h * w)
        for i in range(b):
            m = targets.mask[i]
            t[i][:, targets.inds[i][m]] = targets.codes[i][m][:, sl].T
        out[name] = t.reshape(b, -1, h, w)
    out["iou"] = torch.ones(b, 1, h, w)
    return out


def test_targets_decode_round_trip():
    boxes, labels = _boxes(), torch.tensor([0, 1, 2])
    t = build_targets([boxes], [labels], GEOM, 3)
    assert int(t.mask.sum()) == 3 and t.heatmap.max() == 1
    assert (t.heatmap == 1).sum() == 3
    preds = _perfect_preds(t)
    dec, scores, lab, iou = decode_boxes(preds, GEOM, 3)
    order = dec[0, :, 0].argsort()
    ref = boxes[boxes[:, 0].argsort()]
    assert torch.allclose(dec[0][order], ref, atol=1e-4)
    out = post_process(preds, GEOM, PostProcessConfig())
    assert len(out[0]["boxes"]) == 3
    losses = center_head_loss(preds, t, GEOM)
    assert losses["loc"].item() < 1e-5 and losses["iou"].item() < 1e-4 and losses["iou_reg"].item() < 1e-4
    assert losses["hm"].item() < 1e-3


def test_focal_loss_prefers_peaks():
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 3, 3] = 1
    good = torch.full_like(target, -5.0)
    good[0, 0, 3, 3] = 5.0
    assert gaussian_focal_loss(good, target) < gaussian_focal_loss(torch.zeros_like(target), target) / 10


def test_gaussian_radius_grows_with_size():
    assert 0 < gaussian_radius(2, 2) < gaussian_radius(10, 10)


def _det(boxes, scores, labels):
    return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def test_kitti_ap_perfect_and_empty():
    gt_boxes = _boxes()
    gt = {"boxes": gt_boxes, "labels": torch.tensor([0, 1, 2]), "difficulty": torch.tensor([0, 0, 1]),
          "num_points": torch.tensor([100, 100, 3])}
    perfect = E.kitti_eval([_det(gt_boxes, [0.9, 0.8, 0.7], [0, 1, 2])], [gt], ("Car", "Pedestrian", "Cyclist"))
    # the devkit samples precision at score thresholds spaced by recall: one object gives one sample point,
    # point 0, which R11 counts (100 / 11) and R40 does not
    assert perfect["Car/3d_R11/easy"] == pytest.approx(100 / 11) and perfect["Car/3d_R40/easy"] == 0
    assert perfect["Cyclist/3d_R11/moderate"] == pytest.approx(100 / 11)
    assert perfect["Cyclist/3d_R11/easy"] == 0  # no easy cyclist: nothing to score (the devkit prints 0)
    many = E.kitti_eval([_det(gt_boxes, [0.9, 0.8, 0.7], [0, 1, 2])] * 80, [gt] * 80, ("Car",))
    assert many["Car/3d_R40/easy"] == pytest.approx(100) and many["Car/bev_R11/easy"] == pytest.approx(100)
    empty = E.kitti_eval([_det(torch.zeros(0, 7), [], [])], [gt], ("Car", "Pedestrian", "Cyclist"))
    assert empty["Car/3d_R40/easy"] == 0 and empty["Car/3d_R11/easy"] == 0
    w = E.waymo_eval([_det(gt_boxes, [0.9, 0.8, 0.7], [0, 1, 2])], [gt], ("Car", "Pedestrian", "Cyclist"))
    assert w["L1/mAP"] == pytest.approx(100) and w["L2/mAPH"] == pytest.approx(100)


def test_ap_ranking_and_heading():
    gt_boxes = _boxes()[:1].repeat(2, 1)
    gt_boxes[1, 0] += 10
    gt = {"boxes": gt_boxes, "labels": torch.tensor([0, 0]), "difficulty": torch.tensor([0, 0]),
          "num_points": torch.tensor([50, 50])}
    fp = gt_boxes[:1].clone()
    fp[0, 1] += 5
    # a false positive ranked above both true positives: thresholds at the two true positives' scores, precision
    # 1/2 then 2/3, made monotone (2/3, 2/3); R40 reads point 1, R11 point 0 (the devkit's sampling)
    dets = _det(torch.cat([fp, gt_boxes]), [0.9, 0.8, 0.7], [0, 0, 0])
    ap = E.kitti_eval([dets], [gt], ("Car",))
    assert ap["Car/3d_R40/easy"] == pytest.approx(100 * (2 / 3) / 40)
    assert ap["Car/3d_R11/easy"] == pytest.approx(100 * (2 / 3) / 11)
    flipped = gt_boxes.clone()
    flipped[:, 6] += math.pi
    w = E.waymo_eval([_det(flipped, [0.9, 0.8], [0, 0])], [gt], ("Car",))
    assert w["Car/L1/AP"] == pytest.approx(100) and w["Car/L1/APH"] == pytest.approx(0, abs=1e-4)


def test_ignored_ground_truth_does_not_count():
    gt_boxes = _boxes()[:2]
    gt = {"boxes": gt_boxes, "labels": torch.tensor([0, 0]), "difficulty": torch.tensor([0, -1])}
    dets = _det(gt_boxes, [0.9, 0.95], [0, 0])  # the higher score sits on the ignored box: not a false positive
    assert E.kitti_eval([dets], [gt], ("Car",))["Car/3d_R11/hard"] == pytest.approx(100 / 11)
