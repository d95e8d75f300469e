"""Dataset layouts (MultiSensor-Home, MM-Office) on tiny files, and the synthetic generator read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion._errors import FileProblem
from fusion.recordings import CLASSES, make_recording, read_mm_office, read_multisensor_home
from fusion.streams import read_recording


def test_multisensor_home_json(tmp_path):
    (tmp_path / "01").mkdir()
    for v in range(1, 6):
        (tmp_path / "01" / f"00-View{v}-Part1.mp4").write_bytes(b"")
    entry = {f"video_url_{v}": f"01/00-View{v}-Part1.mp4" for v in range(1, 6)}
    entry["tricks"] = [{"start": 1.0, "end": 4.5, "channel": 0, "labels": ["Sitdown"]},
                       {"start": 3.0, "end": 9.0, "labels": ["UsePhone"]}]
    (tmp_path / "train.json").write_text(json.dumps([entry]))
    [e] = read_multisensor_home(tmp_path / "train.json")
    assert [p.name for p in e.videos] == [f"00-View{v}-Part1.mp4" for v in range(1, 6)]
    assert e.labels() == ["Sitdown", "UsePhone"]
    entry["video_url_3"] = "01/missing.mp4"
    (tmp_path / "bad.json").write_text(json.dumps([entry]))
    with pytest.raises(FileProblem, match="missing.mp4"):
        read_multisensor_home(tmp_path / "bad.json")
    entry["video_url_3"] = "01/00-View3-Part1.mp4"
    entry["tricks"][0]["end"] = 0.5
    (tmp_path / "bad2.json").write_text(json.dumps([entry]))
    with pytest.raises(FileProblem, match="malformed"):
        read_multisensor_home(tmp_path / "bad2.json")


def test_mm_office_layout(tmp_path):
    lab = tmp_path / "label" / "trainlabel"
    lab.mkdir(parents=True)
    (tmp_path / "label" / "testlabel").mkdir()
    names = ["eat", "tele", "chat", "meeting", "takeout", "prepare", "handout", "enter", "exit", "stand up",
             "sit down", "phone"]
    (lab / "classinfo.csv").write_text("index,eventname,description\n" +
                                       "".join(f"{i},{n},d\n" for i, n in enumerate(names)))
    (lab / "recinfo.csv").write_text("recid,sceneid,patternid\n7,5,1\n12,3,6\n")
    header = "sceneid,patternid,division," + ",".join(f"class{k}" for k in range(1, 13)) + "\n"
    rows = ["5,1,0," + ",".join("1" if k in (3, 7) else "0" for k in range(12)),
            "5,1,1," + ",".join("1" if k == 11 else "0" for k in range(12)),
            "3,6,0," + ",".join("1" if k == 0 else "0" for k in range(12))]
    (lab / "eventinfo.csv").write_text(header + "\n".join(rows) + "\n")
    (tmp_path / "label" / "testlabel" / "recid012.csv").write_text(
        "index,eventclass,starttime,endtime\n0,0,6,14\n1,-1,20,35\n")
    for kind, ext, n in (("video", "mp4", 4), ("audio", "wav", 8)):
        for split, rec, div in (("train", 7, 0), ("train", 7, 1), ("test", 12, 0)):
            d = tmp_path / kind / split
            d.mkdir(parents=True, exist_ok=True)
            for s in range(n):
                (d / f"split3_id{s:02d}_s5_recid{rec:03d}_{div}.{ext}").write_bytes(b"")
    clips = read_mm_office(tmp_path)
    assert [(c.split, c.recid, c.division) for c in clips] == [("test", 12, 0), ("train", 7, 0), ("train", 7, 1)]
    test, a, b = clips
    assert len(a.videos) == 4 and len(a.audios) == 8
    assert a.weak == ["meeting", "enter"] and b.weak == ["phone"] and test.weak == ["eat"]
    assert test.strong == [{"label": "eat", "start": 6.0, "end": 14.0}]
    (tmp_path / "video" / "train" / "oops.mp4").write_bytes(b"")
    with pytest.raises(FileProblem, match="oops"):
        read_mm_office(tmp_path)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec")
    manifest = make_recording(out, seed=5, duration=4.0, n_cameras=3)
    return out, manifest


def test_generated_recording_reads_back_and_aligns(recording):
    out, manifest = recording
    rec = read_recording(out)
    assert rec.classes == CLASSES and rec.tricks == manifest["tricks"]
    kinds = sorted(s.kind for s in rec.streams)
    assert kinds == ["audio", "audio", "audio", "lidar", "video", "video", "video"]
    for spec in manifest["sensors"]:
        s = rec.stream(spec["name"])
        assert s.clock.offset == pytest.approx(spec["clock"]["offset"])
        if spec["kind"] == "video":
            assert s.data.shape[1:] == (64, 64, 3) and len(s.person) == len(s.data)
            fps = spec["fps"]
            # sensor timestamps sit on the camera's frame clock k / fps (dropped frames leave gaps)
            k = s.times * fps
            assert np.abs(k - np.round(k)).max() < 0.02 * fps
            audio = rec.stream(spec["name"] + "/audio")
            assert audio.rate == 16000 and abs(len(audio.data) / 16000 - s.times[-1]) < 0.5
    grid = rec.grid(2.5)
    aligned = rec.align(grid)
    for spec in manifest["sensors"]:
        s = rec.stream(spec["name"])
        v = aligned.valid[spec["name"]]
        assert v.mean() > 0.6
        err = np.abs(s.true_times[aligned.index[spec["name"]][v]] - grid[v])
        assert err.max() <= 0.2 + 1e-6  # within half a grid period
    labels = rec.frame_labels(grid)
    assert labels.shape == (len(grid), len(CLASSES)) and labels.sum() > 0


def test_folder_of_videos_without_manifest(recording, tmp_path):
    out, _ = recording
    for name in ("cam1.mp4", "cam2.mp4"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    rec = read_recording(tmp_path)
    assert [s.name for s in rec.of_kind("video")] == ["cam1", "cam2"] and len(rec.of_kind("audio")) == 2
    (tmp_path / "cam3.mp4").write_bytes(b"not a video")
    with pytest.raises(FileProblem, match="cam3"):
        read_recording(tmp_path)


def test_lights_off_darkens_every_camera_but_not_the_lidar(tmp_path):
    """Seed 7 (5 s, 2 cameras): the lights go off at ~2.8 s, a LieDown happens, two occluders stand in the room."""
    manifest = make_recording(tmp_path, seed=7, duration=5.0, n_cameras=2)
    off = manifest["lights_off"]
    assert off[1] - off[0] > 1.0 and manifest["occluders"] == 2
    assert "LieDown" in {lab for tr in manifest["tricks"] for lab in tr["labels"]}
    rec = read_recording(tmp_path)
    for cam in rec.of_kind("video"):
        t = cam.true_times
        dark, lit = (t >= off[0] + 0.1) & (t < off[1] - 0.1), (t < off[0] - 0.1) | (t >= off[1] + 0.1)
        assert dark.any() and lit.any()
        assert cam.data[dark].mean() < 0.3 * cam.data[lit].mean()
        person = np.asarray(cam.person)
        assert person[dark].max() <= 0.2  # the person detector mostly fails in the dark
    lidar = rec.of_kind("lidar")[0]
    counts = np.array([len(s) for s in lidar.data])
    t = lidar.true_times
    assert counts[(t >= off[0]) & (t < off[1])].mean() > 0.8 * counts[t < off[0]].mean()
