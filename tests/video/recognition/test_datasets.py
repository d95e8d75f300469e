from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from video.recognition import (CLASSES, VideoClipDataset, VideoRecognizer, make_actions, read_list,
                               read_something_something, scan_class_folders)
from video.recognition.metrics import confusion_matrix, evaluate, mean_class_accuracy, topk_accuracy
from video.recognition.synthetic import render_clip
from video.transforms import ClipTransform


@pytest.fixture(scope="module")
def actions(tmp_path_factory):
    out = tmp_path_factory.mktemp("actions")
    summary = make_actions(out, seed=0, size="tiny")
    assert summary["train_clips"] == 3 * len(CLASSES)
    return out


def test_generator_writes_decodable_kinetics_layout(actions):
    samples, names = read_list(actions / "train.csv")
    assert names == list(CLASSES) and len(samples) == 30
    assert sorted({s.label for s in samples}) == list(range(10))
    folder_samples, folder_names = scan_class_folders(actions / "videos")
    assert folder_names == sorted(CLASSES) and len(folder_samples) == 50


def test_generator_records_per_frame_attributes(actions):
    from video.recognition.synthetic import SHAPES, load_attributes

    attrs = load_attributes(actions, "train")
    samples, _ = read_list(actions / "train.csv")
    assert attrs["cx"].shape == attrs["angle"].shape == (len(samples), 24) and attrs["colour"].shape == (len(samples), 3)
    rows = (actions / "train.csv").read_text().splitlines()[1:]
    assert [SHAPES[i] for i in attrs["shape"]] == [r.split(",")[2] for r in rows]
    # recording them draws nothing from the generator: the same clip with and without
    drawn = {}
    a = render_clip("approach", "square", np.random.default_rng(5), attributes=drawn)
    b = render_clip("approach", "square", np.random.default_rng(5))
    assert np.array_equal(a, b) and drawn["radius"][-1] > drawn["radius"][0]
    # the object is drawn where the attributes say: a square's centre pixel has the object's colour
    for i in (0, 12, 23):
        x, y = int(round(drawn["cx"][i])), int(round(drawn["cy"][i]))
        assert np.abs(a[i, y, x] / 255.0 - drawn["colour"]).max() < 0.02


def test_generator_is_seeded():
    a = render_clip("rotate_cw", "ell", np.random.default_rng(3))
    b = render_clip("rotate_cw", "ell", np.random.default_rng(3))
    assert np.array_equal(a, b) and a.shape == (24, 80, 80, 3)


@pytest.mark.parametrize("a,b,key,sign", [("slide_left", "slide_right", "cx", 1), ("rise", "fall", "cy", 1),
                                          ("rotate_ccw", "rotate_cw", "angle", 1), ("leave", "approach", "radius", 1)])
def test_mirrored_classes_are_the_same_motion_reversed(a, b, key, sign):
    # same seed: class b's first frame is class a's last one, so single frames cannot separate them
    from video.recognition.synthetic import _trajectory

    t = np.linspace(0, 1, 24)
    for seed in range(5):
        ta = _trajectory(a, t, np.random.default_rng(seed), 80)
        tb = _trajectory(b, t, np.random.default_rng(seed), 80)
        assert np.sign(tb[key][-1] - tb[key][0]) == sign and np.sign(ta[key][-1] - ta[key][0]) == -sign
        np.testing.assert_allclose(ta[key][::-1], tb[key], atol=2.5)  # up to a small per-frame wobble


def test_list_formats(tmp_path, actions):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "space.txt").write_text("a.mp4 3\nb.mp4 1\n")
    samples, names = read_list(tmp_path / "space.txt")
    assert [s.label for s in samples] == [3, 1] and samples[0].path == tmp_path / "a.mp4"
    (tmp_path / "comma.txt").write_text("x/a b.mp4,jump\nc.mp4,run\n")
    samples, names = read_list(tmp_path / "comma.txt")
    assert names == ["jump", "run"] and samples[0].path.name == "a b.mp4"


def test_something_something(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something from left to right": "1",
                                                      "Holding something": "0"}))
    (tmp_path / "train.json").write_text(json.dumps([
        {"id": "42", "template": "Pushing [something] from left to right", "label": "pushing a pen from left to right"}]))
    samples, names = read_something_something(tmp_path / "train.json", tmp_path / "labels.json", tmp_path / "v")
    assert names == ["Holding something", "Pushing something from left to right"]
    assert samples[0].label == 1 and samples[0].path.name == "42.webm"


def test_clip_dataset_train_and_multiview(actions):
    samples, _ = read_list(actions / "train.csv")
    t = ClipTransform(crop_size=48, jitter_scales=(56, 64), crop_scale=(0.5, 1.0), flip_prob=0.0, test_short_side=56)
    ds = VideoClipDataset(samples, clip_len=8, frame_interval=2, transform=t)
    clip, label = ds[0]
    assert clip.shape == (3, 8, 48, 48) and clip.dtype == torch.uint8 and label == 0
    for sampling in ("uniform", "dense", "segment"):
        ds = VideoClipDataset(samples, clip_len=8, frame_interval=2, train=False, transform=t, num_clips=2,
                              num_crops=3, sampling=sampling)
        views, _ = ds[5]
        assert views.shape == (6, 3, 8, 48, 48)


def test_bad_samples_are_skipped_and_counted(actions, tmp_path):
    samples, _ = read_list(actions / "train.csv")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(samples[0].path.read_bytes()[:300])
    from video.recognition.datasets import VideoSample

    ds = VideoClipDataset([VideoSample(broken, 7), samples[1]], transform=ClipTransform(crop_size=32, jitter_scales=(40, 48)))
    with pytest.warns(UserWarning, match="skipping unreadable video"):
        clip, label = ds[0]
    assert ds.skipped == 1 and label == samples[1].label and broken in ds.bad


def test_metrics():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 1, 1, 2])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(0.5)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(0.75)
    assert mean_class_accuracy(scores, labels) == pytest.approx((1 + 0.5 + 0) / 3)
    assert confusion_matrix(scores, labels, 3).sum() == 4
    assert set(evaluate(scores, labels)) == {"top1", "top5", "mean_class_accuracy"}


def test_recognizer_averages_probabilities():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :2]

    rec = VideoRecognizer(Fixed())
    views = torch.zeros(1, 2, 3, 1, 1, 1)
    views[0, 0, :2, 0, 0, 0] = torch.tensor([10.0, 0.0])
    views[0, 1, :2, 0, 0, 0] = torch.tensor([0.0, 1.0])
    p = rec(views).exp()[0]
    expected = (torch.tensor([10.0, 0.0]).softmax(-1) + torch.tensor([0.0, 1.0]).softmax(-1)) / 2
    torch.testing.assert_close(p, expected)
    assert torch.equal(rec(views[:, 0]), views[:, 0].flatten(1)[:, :2])
