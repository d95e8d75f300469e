"""`video.overlay.write_recognition_overlay`: labels drawn on every frame, the input's count, size and rate."""

from __future__ import annotations

import numpy as np
import pytest

from video.io import VideoReader, write_video
from video.overlay import _lines, write_recognition_overlay
from video.recognition.inference import Recognition


def _video(path, t=20, h=96, w=128):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, h, w, 3), dtype=np.uint8), t, 0)
    return write_video(path, frames, 10.0)


def _result(video):
    clip = {"start_s": 0.5, "end_s": 1.2, "frame_indices": [5, 7, 9, 11], "top1": "rise", "prob": 0.7,
            "topk": [{"class": "rise", "probability": 0.7}, {"class": "fall", "probability": 0.2}]}
    return Recognition(video=str(video), frames=20, fps=10.0, backend="pyav", clips=[clip],
                       topk=[{"class": "rise", "probability": 0.6}, {"class": "fall", "probability": 0.3}])


def test_overlay_keeps_count_size_and_draws_labels(tmp_path):
    video = _video(tmp_path / "in.mp4")
    out = write_recognition_overlay(tmp_path / "out.mp4", video, _result(video))
    src, dst = VideoReader(video), VideoReader(out)
    assert len(dst) == len(src) == 20
    assert (dst.info.width, dst.info.height) == (src.info.width, src.info.height)
    assert dst.fps == pytest.approx(src.fps)
    a, b = src.get_frames(np.arange(20)).astype(int), dst.get_frames(np.arange(20)).astype(int)
    assert np.abs(a[:, :20, :60] - b[:, :20, :60]).mean() > 20  # the label box, top left
    assert np.abs(a[:, -20:, -20:] - b[:, -20:, -20:]).mean() < 8  # the rest is the input


def test_clip_frames_show_the_clip_and_the_rest_the_mean():
    result = _result("x")
    assert _lines(result, 7)[0].startswith("clip 1/1") and _lines(result, 7)[1][0]["probability"] == 0.7
    assert _lines(result, 0)[0].startswith("whole video") and _lines(result, 0)[1][0]["probability"] == 0.6


def test_odd_sizes_are_kept(tmp_path):
    import av

    frames = np.random.default_rng(1).integers(0, 255, (6, 49, 65, 3), dtype=np.uint8)
    video = tmp_path / "odd.mp4"
    with av.open(str(video), mode="w") as c:  # write_video refuses odd sizes; x264 4:4:4 takes them
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 65, 49, "yuv444p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    out = VideoReader(write_recognition_overlay(tmp_path / "o.mp4", video, _result(video)))
    assert len(out) == 6 and (out.info.width, out.info.height) == (65, 49)


def test_a_rejected_video_says_so_outside_its_clips():
    result = _result("x")
    result.topk, result.label, result.known = [], "none of the known classes", False
    caption, rows = _lines(result, 0)
    assert caption.endswith(": none of the known classes") and rows == []
    assert _lines(result, 7)[1][0]["class"] == "rise"  # a clip still shows its own raw top-k
