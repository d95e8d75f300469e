import pytest
import torch

from video.audio import AudioValueError
from video.audio.metrics import accuracy, average_precision, mean_average_precision, mean_class_accuracy


def test_accuracy_top1_and_topk():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]])
    labels = torch.tensor([1, 1, 0])
    assert accuracy(logits, labels) == pytest.approx(1 / 3)
    assert accuracy(logits, labels, topk=2) == pytest.approx(1.0)
    assert mean_class_accuracy(logits, labels) == pytest.approx((0 + 0.5) / 2)


def test_average_precision_by_hand():
    # Ranking: pos, neg, pos, neg -> precision at the positives 1/1 and 2/3.
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    targets = torch.tensor([1, 0, 1, 0])
    assert average_precision(scores, targets) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(-scores, targets) == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_map_skips_classes_without_positives_and_is_one_when_perfect():
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    perfect = targets.float() + 0.01 * torch.rand(3, 3)
    value, per_class = mean_average_precision(perfect, targets)
    assert value == pytest.approx(1.0)
    assert per_class[2] is None
    random_value, _ = mean_average_precision(torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [0.5, 0.5, 0.5]]), targets)
    assert random_value < 1.0


def test_metrics_reject_bad_shapes():
    with pytest.raises(AudioValueError):
        accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AudioValueError):
        mean_average_precision(torch.zeros(3, 2), torch.zeros(3, 2))
