"""Outlier exposure for the rejection rules: the generated outliers (`omnisense.train.outliers`) and how the
calibration (`omnisense.train.rejection.calibrate`) learns from them and chooses a rule without the held-out sets."""

from __future__ import annotations

import numpy as np
import pytest

from omnisense.train.outliers import SHAPE_OUTLIER_KINDS, SOUND_OUTLIER_KINDS, audio_outliers, shape_outliers
from omnisense.train.rejection import calibrate


def test_shape_outliers_are_seeded_clouds_of_every_kind():
    first = list(shape_outliers(len(SHAPE_OUTLIER_KINDS), seed=3))
    again = list(shape_outliers(len(SHAPE_OUTLIER_KINDS), seed=3))
    assert [name.split("-")[0] for name, _ in first] == list(SHAPE_OUTLIER_KINDS)
    for (name, xyz), (_, same) in zip(first, again):
        assert xyz.ndim == 2 and xyz.shape[1] == 3 and len(xyz) >= 512 and np.isfinite(xyz).all(), name
        assert np.array_equal(xyz, same), name


def test_scene_scans_hold_a_ground_and_several_objects_not_one_shape():
    """A scene scan is never a lone procedural object: much of it lies on one flat ground, and a whole scan (not a
    2,048-point crop) has objects standing on it."""
    scans = [xyz for name, xyz in shape_outliers(7 * 8, seed=0) if name.startswith("scene_scan")]
    assert any(len(xyz) > 2048 for xyz in scans)
    for xyz in scans:
        z = xyz[:, 2]
        ground = np.abs(z - np.quantile(z, 0.05)) < 0.02
        assert ground.mean() > 0.2
        if len(xyz) > 2048:
            assert ground.mean() < 0.98 and np.ptp(z[~ground]) > 0.05


@pytest.mark.parametrize("vocabulary", sorted(SOUND_OUTLIER_KINDS))
def test_audio_outliers_are_seeded_sounds(vocabulary):
    sounds = list(audio_outliers(vocabulary, len(SOUND_OUTLIER_KINDS[vocabulary]), sample_rate=16000, seed=1))
    assert [name.split("-")[0] for name, _ in sounds] == list(SOUND_OUTLIER_KINDS[vocabulary])
    for name, x in sounds:
        assert x.ndim == 1 and 0.3 * 16000 <= len(x) <= 6 * 16000 and np.isfinite(x).all(), name
        assert 0 < np.abs(x).max() <= 0.9 + 1e-6, name
    assert np.array_equal(sounds[0][1], next(audio_outliers(vocabulary, 1, seed=1))[1])


def test_real_sound_outliers_leave_out_the_real_sound_vocabulary():
    """The coarse real-sound model knows speech, noise and birds: its generated outliers are electronic sounds only,
    none of the speech-like, noise or chirp generators the instrument model's outliers use."""
    assert not set(SOUND_OUTLIER_KINDS["real-sounds"]) & set(SOUND_OUTLIER_KINDS["instruments"])
    with pytest.raises(ValueError, match="no generated outliers"):
        next(audio_outliers("birds", 1))


def _synthetic_sets(seed: int = 0) -> dict:
    """Sets for `calibrate`: 2 classes in a 6-d feature space and 4 input statistics; the out-of-vocabulary files
    (10 sources of 2 files each) lie along a feature direction the training data never takes, at half the offset of
    the generated outliers along it, and look like the training data in their statistics."""
    rng = np.random.default_rng(seed)

    def rows(prefix: str, n: int, offset: float = 0.0, label: str | None = None) -> list:
        out = []
        for i in range(n):
            c = i % 2
            f = np.r_[np.eye(2)[c] * 3, np.zeros(4)] + rng.normal(0, 0.3, 6)
            f[5] += offset
            logits = np.r_[2.0, 0.0][[c, 1 - c]] + rng.normal(0, 0.1, 2)
            name = label or f"{prefix}{i // 2:02d}/file{i % 2}"
            out.append((["a", "b"][c] if prefix == "fit" else name, logits, f, rng.normal(0, 1, 4)))
        return out

    return {"fit": rows("fit", 200), "calibration": rows("cal", 100), "test": rows("test", 100),
            "ood": rows("src", 20, offset=1.5), "aux": rows("aux", 60, offset=3.0)}


def test_calibration_learns_from_generated_outliers_and_chooses_without_the_held_out_half():
    sets = _synthetic_sets()
    exposed = calibrate(sets, outliers=True)
    assert exposed["kinds"]["feature_detector"]["ood_test_rejected"] >= 0.9
    assert exposed["kinds"]["feature_detector"]["test_accepted"] >= 0.9
    weight = exposed["feature_detector_weight"]
    assert np.abs(weight).argmax() == 5 and weight[5] < 0  # the direction out-of-vocabulary inputs take
    chosen = calibrate(sets, choose=True)
    best = chosen["kinds"][chosen["best"]]
    assert chosen["quantile"] in (0.01, 0.02, 0.03, 0.04, 0.05) and best["calibration_left_out_accepted"] >= 0.95
    # the choice reads the calibration set and the validation half only: moving the held-out half's and the test
    # set's features anywhere changes no choice and no threshold
    moved = {**sets, "ood": [(n, lg, f + 5.0 * (n in chosen["ood_test_files"]), st) for n, lg, f, st in sets["ood"]],
             "test": [(n, lg, f * 0 + 9, st) for n, lg, f, st in sets["test"]]}
    again = calibrate(moved, choose=True)
    assert (again["best"], again["quantile"], again["outliers"]) == (chosen["best"], chosen["quantile"],
                                                                      chosen["outliers"])
    assert again["kinds"][again["best"]]["threshold"] == best["threshold"]


def test_mlp_detector_rejects_outliers_on_both_sides_of_the_training_statistics():
    """Generated outliers lie on both sides of the training data in one input statistic, the real ones too: the
    detector with a hidden layer learns the band, a logistic regression cannot."""
    sets = _synthetic_sets(2)
    rng = np.random.default_rng(7)

    def shifted(rows: list) -> list:
        return [(n, lg, f - np.r_[0, 0, 0, 0, 0, f[5] - rng.normal(0, 0.3)],
                 st + np.r_[rng.choice([-5.0, 5.0]), 0, 0, 0]) for n, lg, f, st in rows]

    sets["ood"], sets["aux"] = shifted(sets["ood"]), shifted(sets["aux"])
    linear = calibrate(sets, outliers=True)["kinds"]["detector"]
    network = calibrate(sets, outliers=True, mlp=True)
    assert calibrate(sets, choose=True, mlp=True)["kinds"]  # the MLP form competes in the choice
    assert not calibrate(sets, choose=True)["mlp"]
    assert network["detector_hidden_weight"].shape == (32, 4)
    assert network["kinds"]["detector"]["ood_test_rejected"] >= 0.9 > linear["ood_test_rejected"]
    assert network["kinds"]["detector"]["test_accepted"] >= 0.9


def test_detector_scores_on_the_validation_half_are_out_of_fold():
    """Each validation file is scored by a detector fitted without it: a file that alone looks out of vocabulary in
    a way no other file does is not rejected by having been learnt."""
    from omnisense.train.rejection import score_table, split_ood

    sets = _synthetic_sets(1)
    rng = np.random.default_rng(5)
    odd = np.r_[np.zeros(4), 8.0, 0.0]  # only this file moves along feature 4
    sets["ood"] = [(n, l, (f - np.r_[0, 0, 0, 0, 0, 1.5] + odd) if n == "src00/file0" else f - np.r_[0, 0, 0, 0, 0, 1.5]
                    + rng.normal(0, 0.01, 6), s) for n, l, f, s in sets["ood"]]
    is_val = split_ood([row[0] for row in sets["ood"]])
    assert is_val[[row[0] for row in sets["ood"]].index("src00/file0")]
    table = score_table(sets)
    i = [row[0] for row in sets["ood"]].index("src00/file0")
    in_sample = table["feature_detector_weight"] @ (sets["ood"][i][2] / np.linalg.norm(sets["ood"][i][2]))
    in_sample += table["feature_detector_bias"]
    assert table["scores"]["ood"]["feature_detector"][i] > in_sample
