"""The recording view (plotly HTML) and the fusion overlay video, on a short generated recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion._errors import FileProblem
from fusion.recordings import make_recording
from fusion.streams import read_video_frames
from fusion.view import recording_figure, write_fusion_overlay, write_recording_view


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rec")
    make_recording(folder, seed=3, duration=2.0)
    return folder


def _result(folder, classes=("Walk", "Sit", "LieDown")):
    times = np.arange(0.0, 2.01, 0.4)
    scores = np.linspace(0, 1, len(times) * len(classes)).reshape(len(times), len(classes))
    return {"classes": list(classes), "times": times.tolist(), "frame_scores": scores.tolist(),
            "sequence_labels": ["Sit"]}


def test_figure_shows_room_lidar_over_time_and_cameras(recording):
    manifest = json.loads((recording / "recording.json").read_text())
    cams = [s for s in manifest["sensors"] if s["kind"] == "video"]
    fig = recording_figure(recording, _result(recording))
    assert [t.name for t in fig.data] == ["room", "lidar points", "cameras"]
    assert list(fig.data[2].text) == [c["name"] for c in cams]
    np.testing.assert_allclose(np.stack([fig.data[2].x, fig.data[2].y, fig.data[2].z], 1),
                               [c["camera"]["position"] for c in cams])
    total = sum(len(np.load(f)) for f in (recording / "lidar").glob("sweep_*.npy"))
    assert len(fig.data[1].x) == total and f"all {total:,} lidar points" in fig.layout.title.text
    times = np.asarray(fig.data[1].marker.color)
    assert times.min() < 0.5 and times.max() > 1.5  # coloured by the sweeps' times over the 2 s
    assert "sequence labels: Sit" in fig.layout.title.text


def test_time_slider_windows_partition_the_points(recording):
    fig = recording_figure(recording)
    names = [f.name for f in fig.frames]
    assert names[0] == "all" and names[1:3] == ["0 to 1 s", "1 to 2 s"]
    assert [s.label for s in fig.layout.sliders[0].steps] == names
    assert len(fig.frames[0].data[0].x) == len(fig.data[1].x)
    assert sum(len(f.data[0].x) for f in fig.frames[1:]) == len(fig.data[1].x)
    for f in fig.frames[1:]:
        lo, hi = (float(v) for v in f.name.removesuffix(" s").split(" to "))
        assert all(lo <= c < hi for c in f.data[0].marker.color)


def test_figure_thins_the_lidar_and_says_so(recording):
    fig = recording_figure(recording, max_points=200)
    assert len(fig.data[1].x) == 200 and "200 of" in fig.layout.title.text


def test_folder_without_manifest_has_no_cameras(tmp_path):
    (tmp_path / "lidar").mkdir()
    np.save(tmp_path / "lidar" / "timestamps.npy", np.array([0.0, 0.1]))
    for i in range(2):
        np.save(tmp_path / "lidar" / f"sweep_{i:06d}.npy", np.ones((5, 4), np.float32) * i)
    fig = recording_figure(tmp_path)
    assert [t.name for t in fig.data] == ["room", "lidar points"]


def test_view_html_and_bad_manifest(recording, tmp_path):
    assert len(write_recording_view(tmp_path / "v.html", recording).read_text()) > 3_000_000
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FileProblem, match="bad.json"):
        recording_figure(tmp_path / "bad.json")


def test_overlay_video_has_the_first_views_frames(recording, tmp_path):
    from video.io import VideoReader  # the project's own reader (tests may cross packages)

    manifest = json.loads((recording / "recording.json").read_text())
    first = next(s for s in manifest["sensors"] if s["kind"] == "video")
    frames, _ = read_video_frames(recording / first["path"])
    out = write_fusion_overlay(tmp_path / "o.mp4", recording, _result(recording), tile=96)
    reader = VideoReader(out)
    views = sum(s["kind"] == "video" for s in manifest["sensors"])
    assert len(reader) == len(frames)
    assert (reader.info.width, reader.info.height) == (views * 96 + 280, 96 + 24)
    frame = reader[len(reader) // 2]
    assert frame[:96, :96].std() > 5  # the first view is drawn, not a blank tile
