from __future__ import annotations

import numpy as np
import pytest

from tests.video.conftest import frame_index, ramp_frames
from video import MediaFileError
from video._errors import VideoValueError
from video.io import VideoReader, read_video, write_video


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_random_access_returns_the_asked_frames(media_dir, backend):
    reader = VideoReader(media_dir / "ramp.mp4", backend=backend)
    assert len(reader) == 40 and reader.fps == pytest.approx(25)
    asked = [33, 0, 7, 7, 39, 12]
    frames = reader.get_frames(asked)
    assert frames.shape == (6, 64, 96, 3) and frames.dtype == np.uint8
    assert [frame_index(f) for f in frames] == asked
    assert frame_index(reader[-1]) == 39


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_timestamps_are_seconds(media_dir, backend):
    reader = VideoReader(media_dir / "ramp.mp4", backend=backend)
    np.testing.assert_allclose(reader.timestamps([0, 1, 25]), [0.0, 0.04, 1.0], atol=1e-6)


def test_backends_agree(media_dir):
    a = VideoReader(media_dir / "ramp.mp4", backend="decord").get_frames(range(0, 40, 3))
    b = VideoReader(media_dir / "ramp.mp4", backend="pyav").get_frames(range(0, 40, 3))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_av1_goes_to_pyav(tmp_path):
    write_video(tmp_path / "a.mkv", ramp_frames(12), 25, codec="libsvtav1")
    reader = VideoReader(tmp_path / "a.mkv")
    assert reader.backend == "pyav" and len(reader) == 12


def test_backend_env_override(media_dir, monkeypatch):
    monkeypatch.setenv("OMNISENSE_VIDEO_BACKEND", "pyav")
    assert VideoReader(media_dir / "ramp.mp4").backend == "pyav"


@pytest.mark.parametrize("name,reason", [
    ("truncated.mp4", "cannot open"), ("junk.mp4", "cannot open"), ("audio_only.wav", "no video stream"),
    ("zero_frames.mp4", "no decodable frames"), ("missing.mp4", "no such file"),
])
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_bad_files_raise_media_file_error(media_dir, name, reason, backend):
    with pytest.raises(MediaFileError, match=reason) as info:
        VideoReader(media_dir / name, backend=backend)
    assert info.value.path.name == name


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_frame_count_is_probed_not_read_from_header(media_dir, backend):
    reader = VideoReader(media_dir / "cut_tail.mp4", backend=backend)
    assert 0 < len(reader) < 60  # the header says 60
    frames = reader.get_frames([0, len(reader) - 1])
    assert frame_index(frames[1]) == len(reader) - 1


def test_out_of_range_index(media_dir):
    with pytest.raises(IndexError):
        VideoReader(media_dir / "ramp.mp4").get_frames([40])


def test_write_is_atomic_and_roundtrips(tmp_path):
    out = write_video(tmp_path / "sub" / "x.mp4", ramp_frames(10), 12.5)
    frames, fps = read_video(out)
    assert frames.shape == (10, 64, 96, 3) and fps == pytest.approx(12.5)
    assert [p.name for p in out.parent.iterdir()] == ["x.mp4"]


@pytest.mark.parametrize("frames", [np.zeros((2, 63, 64, 3), np.uint8), np.zeros((2, 64, 64), np.uint8),
                                    np.zeros((0, 64, 64, 3), np.uint8), np.zeros((2, 64, 64, 3), np.float32)])
def test_write_rejects_bad_frames(tmp_path, frames):
    with pytest.raises(VideoValueError):
        write_video(tmp_path / "x.mp4", frames, 25)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_reader_as_context_manager(media_dir, backend):
    with VideoReader(media_dir / "ramp.mp4", backend=backend) as reader:
        assert frame_index(reader[3]) == 3
