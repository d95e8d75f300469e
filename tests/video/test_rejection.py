"""Open-set answers (video.rejection, and its twin perception3d.classification.rejection): the rule, the answer."""

from __future__ import annotations

import pytest
import torch

from perception3d.classification import rejection as p3d_rejection
from video import rejection as video_rejection


@pytest.fixture(params=[video_rejection, p3d_rejection], ids=["video", "perception3d"])
def rej(request):
    return request.param


def test_scores_order_confident_above_flat(rej):
    confident, flat = torch.tensor([8.0, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.05])
    for kind in ("max_softmax", "energy"):
        assert rej.rejection_score(confident, kind) > rej.rejection_score(flat, kind)
    mean, var = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.1, 0.1])
    near = rej.rejection_score(confident, "mahalanobis", features=torch.tensor([0.9, 0.1]), feature_mean=mean,
                               feature_var=var)
    far = rej.rejection_score(confident, "mahalanobis", features=torch.tensor([5.0, 5.0]), feature_mean=mean,
                              feature_var=var)
    assert near > far and float(near) == pytest.approx(-0.1)  # ((0.1^2 + 0.1^2) / 0.1) / 2 dims


def test_answer_rejects_below_threshold_and_no_reject_gives_top_k(rej):
    rule = rej.Rejection.from_dict({"score": "max_softmax", "threshold": 0.9})
    logits = torch.tensor([1.0, 0.5, 0.0])
    probs = logits.softmax(-1)
    answer = rej.open_set_answer(logits, probs, ["a", "b", "c"], topk=2, rejection=rule, vocabulary="letters")
    assert answer["label"] == rej.NONE_OF_THE_KNOWN and not answer["known"] and answer["top"] == []
    assert answer["vocabulary"] == "letters" and answer["rejection"]["applied"]
    assert answer["rejection"]["value"][0] == pytest.approx(float(probs.max()), abs=1e-6)
    raw = rej.open_set_answer(logits, probs, ["a", "b", "c"], topk=2, rejection=rule, reject=False)
    assert raw["known"] and raw["label"] == "a" and [r["class"] for r in raw["top"]] == ["a", "b"]
    confident = torch.tensor([9.0, 0.0, 0.0])
    assert rej.open_set_answer(confident, confident.softmax(-1), ["a", "b", "c"], topk=1, rejection=rule)["known"]


def test_combined_rule_needs_every_score(rej):
    mean, var = [[4.0, 0.0]], [1.0, 1.0]
    rule = rej.Rejection.from_dict({"score": "energy+mahalanobis", "threshold": [3.0, -1.0],
                                    "feature_mean": mean, "feature_var": var})
    logits = torch.tensor([4.0, 0.0])
    assert rule.accepts(rule.scores_of(logits, torch.tensor([4.0, 0.5])))
    assert not rule.accepts(rule.scores_of(logits, torch.tensor([-4.0, 0.0])))  # far from the class mean
    assert not rule.accepts(rule.scores_of(torch.tensor([0.1, 0.0]), torch.tensor([4.0, 0.0])))  # weak logits


def test_bad_rules_are_refused(rej):
    assert rej.Rejection.from_dict({}) is None
    with pytest.raises(ValueError, match="unknown rejection score"):
        rej.Rejection.from_dict({"score": "entropy", "threshold": 0.5})
    with pytest.raises(ValueError, match="needs feature_mean"):
        rej.Rejection.from_dict({"score": "mahalanobis", "threshold": 0.5})
    with pytest.raises(ValueError, match="threshold"):
        rej.Rejection.from_dict({"score": "energy+max_softmax", "threshold": 0.5})


def test_captured_features_reads_the_classifier_input(rej):
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    x = torch.randn(4, 3)
    with rej.captured_features(model) as rows:
        model(x)
    assert len(rows) == 1 and torch.allclose(rows[0], model[1](model[0](x)))
    model(x)
    assert len(rows) == 1  # the hook is gone
