import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch

from video import MediaFileError
from video.audio.datasets import (
    EVENT_CLASSES,
    AudioClipDataset,
    _mix_at_snr,
    csv_items,
    folder_items,
    make_audio_events,
    make_prefix_like,
    prefix_items,
    split_by_file,
)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    out = tmp_path_factory.mktemp("events")
    summary = make_audio_events(out, seed=3, size="tiny")
    return out, summary


def test_generator_layout_and_determinism(events, tmp_path):
    out, summary = events
    assert summary["classes"] == list(EVENT_CLASSES)
    items, names = folder_items(out / "train")
    assert names == sorted(EVENT_CLASSES) and len(items) == 3 * len(EVENT_CLASSES)
    wave, sr = sf.read(out / "train" / "tone" / "0000.wav")
    assert sr == 16_000 and wave.shape == (16_000,) and 0.25 < np.abs(wave).max() <= 0.95
    rows = (out / "mixtures" / "labels.csv").read_text().splitlines()
    assert rows[0] == "filename,labels" and all(len(r.split(",")[1].split(";")) >= 2 for r in rows[1:])
    again = tmp_path / "again"
    make_audio_events(again, seed=3, size="tiny")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(out / "test" / "chirp_up" / "0001.wav") == digest(again / "test" / "chirp_up" / "0001.wav")


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_mixing_hits_the_requested_snr(snr_db):
    rng = np.random.default_rng(0)
    signal, noise = rng.standard_normal(8000), 3 * rng.standard_normal(8000)
    mixed = _mix_at_snr(signal, noise, snr_db)
    residual = mixed - signal
    measured = 20 * np.log10(np.sqrt(np.mean(signal**2)) / np.sqrt(np.mean(residual**2)))
    assert measured == pytest.approx(snr_db, abs=1e-6)


def test_csv_and_prefix_layouts(tmp_path, events):
    out, _ = events
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = ["filename,fold,target,category"]
    for i, name in enumerate(["tone", "rhythm"]):
        for fold in (1, 2):
            src = out / "train" / name / f"000{fold}.wav"
            (audio / f"{name}{fold}.wav").write_bytes(src.read_bytes())
            rows.append(f"{name}{fold}.wav,{fold},{i},{name}")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("\n".join(rows))
    items, names = csv_items(tmp_path / "meta" / "esc50.csv", folds=(2,))
    assert names == ["tone", "rhythm"] and [it.label for it in items] == [0, 1]
    (tmp_path / "meta" / "bad.csv").write_text("filename,fold,target,category\nmissing.wav,1,0,x\n")
    with pytest.raises(MediaFileError, match="missing"):
        csv_items(tmp_path / "meta" / "bad.csv")

    root = make_prefix_like(tmp_path / "prefix", seed=0, classes=("bd", "sn"), per_class=3)
    (root / "misc_other.wav").write_bytes((root / "bd_0.wav").read_bytes())  # an unknown prefix is skipped
    items, names = prefix_items(root, classes=("bd", "sn"))
    assert names == ["bd", "sn"] and len(items) == 6


def test_split_by_file_is_stratified_and_disjoint(events):
    items, _ = folder_items(events[0] / "train")
    split = split_by_file(items, test_fraction=0.34, val_fraction=0.34, seed=1)
    paths = [set(it.path for it in split[s]) for s in ("train", "val", "test")]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])
    assert sum(map(len, paths)) == len(items)
    for label in range(len(EVENT_CLASSES)):  # 3 files per class: one in each split
        assert [sum(it.label == label for it in split[s]) for s in ("train", "val", "test")] == [1, 1, 1]


def test_clip_dataset_eval_is_deterministic_and_train_augments(events):
    items, names = folder_items(events[0] / "val")
    evaluation = AudioClipDataset(items, names, clip_frames=80)
    x, y = evaluation[0]
    assert x.shape == (80, 128) and isinstance(y, int)
    assert torch.equal(evaluation[0][0], x)
    assert abs(float(torch.cat([f.reshape(-1) for f in evaluation.fbanks]).sub(evaluation.mean).div(2 * evaluation.std).mean())) < 1e-3
    train = AudioClipDataset(items, names, clip_frames=80, train=True, samples_per_file=3, mean=evaluation.mean,
                             std=evaluation.std)
    assert len(train) == 3 * len(items)
    assert not torch.equal(train[0][0], train[0][0])


def test_file_statistics_rows_are_the_same_in_training_data_and_at_inference(events):
    """One preprocessing: an evaluation clip of the dataset equals the first clip `AudioSpec.features_of` cuts, the
    whole file's mean and std rows included; the rows are the file's, whichever crop a training clip is."""
    from video.audio.frontend import file_statistics, kaldi_fbank
    from video.audio.inference import AudioSpec
    from video.audio.io import load_audio

    out, _ = events
    items, names = folder_items(out / "train")
    data = AudioClipDataset(items[:3], names, clip_frames=40, file_statistics=True)
    spec = AudioSpec(target_frames=40, mean=data.mean, std=data.std, file_statistics=True)
    wave, _ = load_audio(items[0].path, 16000)
    clips = spec.features_of(wave)
    assert clips.shape[1:] == (42, 128) and data[0][0].shape == (42, 128)
    torch.testing.assert_close(data[0][0], clips[0])
    fbank = kaldi_fbank(wave)
    rows = file_statistics(fbank)
    torch.testing.assert_close(clips[:, 40], ((rows[0] - data.mean) / (2 * data.std)).expand(len(clips), -1))
    torch.testing.assert_close(clips[:, 41], (fbank.std(0) / (2 * data.std)).expand(len(clips), -1))
    train = AudioClipDataset(items[:3], names, clip_frames=40, file_statistics=True, train=True, gain_db=0.0,
                             noise_prob=0.0)
    torch.testing.assert_close(train[0][0][40:], clips[0, 40:])  # no gain: the same rows for a random crop
    assert AudioClipDataset(items[:3], names, clip_frames=40)[0][0].shape == (40, 128)
