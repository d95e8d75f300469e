"""`omnisense recognize` and `omnisense bench video` on small inputs (a random tiny model, a generated clip)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from omnisense.models import load_model
from omnisense.weights import WeightsMeta, save_weights
from video.io import write_video
from omnisense.models import VARIANTS
from video.recognition import CLASSES, render_clip


@pytest.fixture(scope="module")
def clip_and_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("recognize")
    video = write_video(root / "clip.mp4", render_clip("rise", "arrow", np.random.default_rng(0)), 12.0)
    torch.manual_seed(0)
    net = VARIANTS["uniformer_tiny"](num_classes=len(CLASSES))
    meta = WeightsMeta(task="recognition", model={"variant": "uniformer_tiny", "kwargs": {"num_classes": len(CLASSES)}},
                       classes=list(CLASSES),
                       input={"clip_len": 8, "frame_interval": 2, "fps": 12.0, "short_side": 72, "crop_size": 64})
    weights = save_weights(root / "w.safetensors", net.state_dict(), meta)
    return video, weights


def test_recognize_writes_topk_records_for_a_folder(clip_and_weights, tmp_path, capsys):
    from omnisense.cli import main

    video, weights = clip_and_weights
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(video.read_bytes())
    (folder / "bad.mp4").write_bytes(b"nope" * 10)
    out = tmp_path / "r.jsonl"
    assert main(["recognize", str(folder), "--weights", str(weights), "--topk", "3", "--clips", "2",
                 "--output", str(out), "--device", "cpu"]) == 2
    bad, result = [json.loads(line) for line in out.read_text().splitlines()]  # sorted: bad.mp4 first
    assert result["schema"] == "omnisense.recognition/1" and result["input"] == str(folder / "clip.mp4")
    assert len(result["top"]) == 3 and len(result["clips"]) == 2 and result["frames"] == 24
    probs = [r["probability"] for r in result["top"]]
    assert probs == sorted(probs, reverse=True) and all(r["class"] in CLASSES for r in result["top"])
    assert bad["schema"] == "omnisense.error/1" and "bad.mp4" in bad["error"]
    assert "1 ok, 1 failed" in capsys.readouterr().err


def test_recognize_scales_the_stride_to_the_frame_rate(clip_and_weights, tmp_path):
    from video.recognition.inference import recognize

    video, weights = clip_and_weights
    net, meta = load_model(weights)
    fast = write_video(tmp_path / "fast.mp4", render_clip("rise", "arrow", np.random.default_rng(0), num_frames=48), 24.0)
    result = recognize(net, fast, meta.classes, meta.transforms())
    assert np.diff(result.clips[0]["frame_indices"]).tolist() == [4] * 7  # stride 2 at 12 fps -> 4 at 24 fps


def test_recognize_rejects_bad_video(clip_and_weights, tmp_path):
    from video import MediaFileError
    from video.recognition.inference import InputSpec, recognize

    _, weights = clip_and_weights
    net, meta = load_model(weights)
    (tmp_path / "bad.mp4").write_bytes(b"nope" * 10)
    with pytest.raises(MediaFileError):
        recognize(net, tmp_path / "bad.mp4", meta.classes, InputSpec())


def test_bench_decoding_rows(clip_and_weights):
    from omnisense.bench.video import bench_decoding

    video, _ = clip_and_weights
    rows = bench_decoding(video, clip_len=4, interval=2, clips=2)
    assert [r["name"] for r in rows] == ["decord", "pyav"] and all(r["clips_per_s"] > 0 for r in rows)


def test_bench_video_runs_small_models(clip_and_weights):
    from omnisense.bench import video as bench

    video, _ = clip_and_weights
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--input", str(video), "--frames", "8", "--size", "64", "--repeat", "1",
                              "--decode-clips", "1", "--clip-len", "4", "--models", "uniformer_tiny", "vivit_tiny"])
    args.device = "cpu"
    report = bench.run(args)
    assert {r["name"] for r in report.rows} == {"decord", "pyav", "uniformer_tiny", "vivit_tiny"}


@pytest.mark.parametrize("rule,known", [
    ({"score": "max_softmax", "threshold": 1.01}, False),  # no softmax reaches 1.01: always rejected
    ({"score": "max_softmax", "threshold": 0.0}, True),
    ({"score": "input_stats", "threshold": -1e9, "input_mean": [0.0] * 12, "input_var": [1.0] * 12}, True),
])
def test_recognize_answers_none_of_the_known_classes_under_its_rule(clip_and_weights, rule, known):
    from video.recognition.inference import recognize
    from video.rejection import NONE_OF_THE_KNOWN, Rejection

    video, weights = clip_and_weights
    model, meta = load_model(str(weights), task="recognition")
    result = recognize(model, video, meta.classes, meta.transforms(), topk=3, rejection=Rejection.from_dict(rule),
                       vocabulary="synthetic actions")
    assert result.known == known and result.vocabulary == "synthetic actions"
    assert (result.label == NONE_OF_THE_KNOWN) == (not known) and (len(result.topk) == 3) == known
    raw = recognize(model, video, meta.classes, meta.transforms(), topk=3, rejection=Rejection.from_dict(rule),
                    reject=False)
    assert raw.known and len(raw.topk) == 3 and raw.rejection["applied"] is False


def test_recognize_records_carry_the_open_set_answer_and_no_reject(clip_and_weights, tmp_path, capsys):
    """Through the batch runner: the `omnisense.recognition/1` record of weights with a rule that always rejects."""
    import shutil

    from omnisense.cli import main
    from omnisense.weights import update_meta
    from video.rejection import NONE_OF_THE_KNOWN

    video, weights = clip_and_weights
    strict = tmp_path / "strict.safetensors"
    shutil.copy(weights, strict)
    shutil.copy(weights.with_suffix(".json"), strict.with_suffix(".json"))
    update_meta(strict, rejection={"score": "max_softmax", "threshold": 1.01}, vocabulary="synthetic actions")
    out, raw = tmp_path / "r.jsonl", tmp_path / "raw.jsonl"
    assert main(["recognize", str(video), "--weights", str(strict), "--topk", "3", "--output", str(out)]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["label"] == NONE_OF_THE_KNOWN and record["known"] is False and record["top"] == []
    assert record["vocabulary"] == "synthetic actions" and record["rejection"]["threshold"] == [1.01]
    assert f"{NONE_OF_THE_KNOWN} (vocabulary: synthetic actions" in capsys.readouterr().err
    assert main(["recognize", str(video), "--weights", str(strict), "--topk", "3", "--output", str(raw),
                 "--no-reject"]) == 0
    (record,) = [json.loads(line) for line in raw.read_text().splitlines()]
    assert record["known"] and len(record["top"]) == 3 and record["label"] == record["top"][0]["class"]
    assert record["rejection"]["applied"] is False
