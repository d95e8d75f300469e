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


def test_knn_score_is_the_distance_to_the_nearest_bank_entry_of_unit_features(rej):
    bank = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised on use: (1, 0) and (0, 1)
    logits = torch.zeros(2)
    near = rej.rejection_score(logits, "knn", features=torch.tensor([5.0, 0.0]), feature_bank=bank)
    between = rej.rejection_score(logits, "knn", features=torch.tensor([1.0, 1.0]), feature_bank=bank)
    assert float(near) == pytest.approx(0.0, abs=1e-6)
    assert float(between) == pytest.approx(-(2 - 2 ** 0.5) ** 0.5, abs=1e-5)  # |(1,1)/sqrt2 - (1,0)|
    rule = rej.Rejection.from_dict({"score": "knn", "threshold": -0.5, "feature_bank": bank.tolist()})
    assert rule.needs_features and not rule.needs_inputs
    assert rule.accepts(rule.scores_of(logits, torch.tensor([0.1, 4.0])))
    assert not rule.accepts(rule.scores_of(logits, torch.tensor([-1.0, -1.0])))


def test_detector_with_a_hidden_layer_is_a_small_relu_network_over_standardised_statistics(rej):
    mean, var = [1.0, 0.0], [4.0, 1.0]
    layer = {"detector_hidden_weight": [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], "detector_hidden_bias": [0.0, 0.0, -1.0]}
    rule = rej.Rejection.from_dict({"score": "detector", "threshold": 0.0, "input_mean": mean, "input_var": var,
                                    "detector_weight": [-1.0, -1.0, 0.5], "detector_bias": 1.0, **layer})
    (near,) = rule.scores_of(torch.zeros(3), stats=torch.tensor([2.0, 0.0]))  # z = (0.5, 0): relu -> (0.5, 0, 0)
    assert near == pytest.approx(0.5)
    (far_left,) = rule.scores_of(torch.zeros(3), stats=torch.tensor([-5.0, 0.0]))  # z = (-3, 0): (0, 3, 0)
    (far_right,) = rule.scores_of(torch.zeros(3), stats=torch.tensor([7.0, 0.0]))  # z = (3, 0): (3, 0, 0)
    assert far_left == far_right == pytest.approx(-2.0)  # rejected on both sides: no linear rule does that
    assert rule.accepts((near,)) and not rule.accepts((far_left,))
    assert rej.Rejection.from_dict(rule.to_dict()).scores_of(torch.zeros(3), stats=torch.tensor([2.0, 0.0])) == (near,)
    with pytest.raises(ValueError, match="detector_hidden_weight"):  # output weights must match the hidden units
        rej.Rejection.from_dict({"score": "detector", "threshold": 0.0, "input_mean": mean, "input_var": var,
                                 "detector_weight": [1.0, 1.0], "detector_bias": 0.0, **layer})


def test_feature_detector_score_is_a_logistic_regression_over_unit_features(rej):
    rule = rej.Rejection.from_dict({"score": "feature_detector", "threshold": 0.0,
                                    "feature_detector_weight": [2.0, -1.0], "feature_detector_bias": 0.25})
    assert rule.needs_features and not rule.needs_inputs
    (value,) = rule.scores_of(torch.zeros(3), torch.tensor([0.0, 5.0]))  # unit (0, 1): -1 + 0.25
    assert value == pytest.approx(-0.75)
    (scaled,) = rule.scores_of(torch.zeros(3), torch.tensor([30.0, 40.0]))  # unit (0.6, 0.8): 1.2 - 0.8 + 0.25
    assert scaled == pytest.approx(0.65, abs=1e-6)
    assert rule.accepts((scaled,)) and not rule.accepts((value,))
    with pytest.raises(ValueError, match="feature detector has 2 weights"):
        rule.scores_of(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="feature_detector_weight"):
        rej.Rejection.from_dict({"score": "feature_detector", "threshold": 0.0, "feature_detector_weight": [1.0]})
    restored = rej.Rejection.from_dict(rule.to_dict())
    assert restored.scores_of(torch.zeros(3), torch.tensor([30.0, 40.0])) == (scaled,)


def test_detector_score_is_a_logistic_regression_over_standardised_statistics(rej):
    mean, var = [1.0, 0.0], [4.0, 1.0]
    rule = rej.Rejection.from_dict({"score": "detector", "threshold": 0.0, "input_mean": mean, "input_var": var,
                                    "detector_weight": [-1.0, 2.0], "detector_bias": 0.5})
    assert rule.needs_inputs and not rule.needs_features
    (value,) = rule.scores_of(torch.zeros(3), stats=torch.tensor([3.0, 1.0]))  # z = (1, 1)
    assert value == pytest.approx(-1.0 + 2.0 + 0.5)
    assert not rule.accepts(rule.scores_of(torch.zeros(3), stats=torch.tensor([9.0, 0.0])))
    with pytest.raises(ValueError, match="recalibrate"):
        rule.scores_of(torch.zeros(3), stats=torch.tensor([1.0, 2.0, 3.0]))  # statistics of another version
    with pytest.raises(ValueError, match="detector_weight"):
        rej.Rejection.from_dict({"score": "detector", "threshold": 0.0, "input_mean": mean, "input_var": var,
                                 "detector_weight": [1.0], "detector_bias": 0.0})
    with pytest.raises(ValueError, match="feature_bank"):
        rej.Rejection.from_dict({"score": "knn", "threshold": 0.0})


def test_cloud_statistics_tell_a_line_scan_from_a_surface():
    g = torch.Generator().manual_seed(0)
    sphere = torch.randn(1024, 3, generator=g)
    sphere = sphere / sphere.norm(dim=1, keepdim=True)
    rings = torch.linspace(-0.6, 0.6, 4).repeat_interleave(256)  # 4 scan lines of 256 points on a cylinder
    angle = torch.linspace(0, 6.283, 256).repeat(4)
    scan = torch.stack([angle.cos(), angle.sin(), rings], 1) * 0.8
    s_sphere, s_scan = (p3d_rejection.input_statistics(c[None]) for c in (sphere, scan))
    assert s_sphere.shape == (31,) and torch.isfinite(s_sphere).all()
    linearity, planarity = 16, 18
    assert s_scan[linearity] > s_sphere[linearity] + 0.2  # neighbourhoods along a scan line are linear
    assert s_sphere[planarity] > s_scan[planarity]


def test_waveform_statistics_tell_a_steady_tone_from_noise():
    t = torch.arange(16000) / 16000
    tone = 0.5 * torch.sin(2 * torch.pi * 220 * t)
    noise = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    s_tone, s_noise = video_rejection.waveform_statistics(tone), video_rejection.waveform_statistics(noise)
    harmonicity, flatness = 2, 5
    assert s_tone.shape == (16,) and torch.isfinite(s_tone).all() and torch.isfinite(s_noise).all()
    assert s_tone[harmonicity] > 0.8 > 0.3 > s_noise[harmonicity]
    assert s_noise[flatness] > s_tone[flatness] + 5  # white noise is flat, a tone is one line
    assert torch.isfinite(video_rejection.waveform_statistics(torch.zeros(10))).all()  # shorter than one frame
    clips = torch.randn(2, 100, 128)
    assert video_rejection.input_statistics(clips).shape == (14,)
    assert video_rejection.input_statistics(clips, tone).shape == (30,)
