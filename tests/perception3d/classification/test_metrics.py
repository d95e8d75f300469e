"""OA, mean class accuracy, confusion, voting and part mIoU against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d.classification import confusion_matrix, mean_class_accuracy, overall_accuracy, part_miou, vote_predict


def test_oa_and_macc_differ_on_imbalanced_data():
    target = np.array([0, 0, 0, 0, 1, 2])
    pred = np.array([0, 0, 0, 0, 0, 2])
    assert overall_accuracy(pred, target) == pytest.approx(5 / 6)
    assert mean_class_accuracy(pred, target, 3) == pytest.approx((1 + 0 + 1) / 3)
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[4, 0, 0], [1, 0, 0], [0, 0, 1]]


def test_macc_ignores_absent_classes_and_takes_tensors():
    target = torch.tensor([1, 1, 3])
    pred = torch.tensor([1, 0, 3])
    assert mean_class_accuracy(pred, target, 5) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError):
        overall_accuracy([], [])


def test_part_miou_by_hand():
    parts_of = {0: (0, 1), 1: (2, 3, 4)}
    target = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 3, 3]])
    # shape 0: part 0 IoU 1/2, part 1 IoU 2/3 -> 7/12; shape 1: parts 2, 3 IoU 1, part 4 absent in both -> 1.
    out = part_miou(pred, target, np.array([0, 1]), parts_of)
    assert out["instance_miou"] == pytest.approx((7 / 12 + 1) / 2)
    assert out["class_miou"] == pytest.approx((7 / 12 + 1) / 2)
    out = part_miou(np.concatenate([pred, pred[1:]]), np.concatenate([target, target[1:]]), np.array([0, 1, 1]), parts_of)
    assert out["instance_miou"] == pytest.approx((7 / 12 + 2) / 3)
    assert out["class_miou"] == pytest.approx((7 / 12 + 1) / 2)


def test_vote_predict_averages_augmented_copies():
    calls = []

    def model(x):
        calls.append(x.clone())
        # logits: the x-extent decides the class, so scaling changes the vote
        ext = x[..., 0].amax(1) - x[..., 0].amin(1)
        return torch.stack([ext, -ext], dim=-1) * 10

    pts = torch.rand(2, 50, 3)
    single = vote_predict(model, pts, num_votes=1)
    torch.testing.assert_close(single, model(pts).softmax(-1))
    calls.clear()
    g = torch.Generator().manual_seed(0)
    voted = vote_predict(model, pts, num_votes=4, num_points=20, generator=g)
    assert len(calls) == 4 and all(c.shape == (2, 20, 3) for c in calls)
    seen = list(calls)
    expected = torch.stack([model(c).softmax(-1) for c in seen]).mean(0)
    torch.testing.assert_close(voted, expected)
    torch.testing.assert_close(voted.sum(-1), torch.ones(2))
    with pytest.raises(ValueError):
        vote_predict(model, pts, num_points=60)
