"""The coarse real-sound set and model (omnisense.train.real_sounds): the generator, the metrics, the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from omnisense.train.real_sounds import CLASSES, logistic_regression, macro_f1


def test_macro_f1_by_hand():
    truth = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1 -> 0.8; class 2: tp 0 -> 0
    assert macro_f1(truth, pred, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(truth, truth, 3) == 1.0


def test_logistic_regression_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 5)) + np.eye(3, 5)[y] * 4
    predict = logistic_regression(x[:200], y[:200], 3)
    assert (predict(x[200:]) == y[200:]).mean() > 0.9


@pytest.mark.slow
def test_generator_and_the_shipped_model_against_the_baseline(sample_data, tmp_path):
    for source in ("sonic-pi-samples", "chuck-data", "opensoundscape-birds", "pocketsphinx-speech", "asterisk-prompts",
                   "opencv-samples"):
        sample_data(source)
    from omnisense.train.real_sounds import evaluate_real_sounds, make_real_sounds

    summary = make_real_sounds(tmp_path / "rs", size="tiny")
    assert summary["per_class"] == {c: (2 if c == "bird" else 4) for c in CLASSES}
    result = evaluate_real_sounds(["audio_cnn_small_real_sounds", "audio_cnn_small_stats_real_sounds"],
                                  tmp_path / "rs")
    assert result["classes"] == list(CLASSES) and result["files"]["test"] >= 5
    assert set(result["models"]) == {"audio_cnn_small_real_sounds", "audio_cnn_small_stats_real_sounds"}
    for record in [*result["models"].values(), result["logreg_fbank_stats"]]:
        for split in ("val", "test"):
            assert 0.0 <= record[split]["macro_f1"] <= 1.0 and 0.0 <= record[split]["accuracy"] <= 1.0
    for record in result["models"].values():  # the tiny set's test files were partly training files
        assert record["test"]["accuracy"] > 1 / len(CLASSES)
