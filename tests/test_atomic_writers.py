"""One atomic writer per package, one behaviour: the output appears whole or not at all, with mode 0o666 & ~umask.

perception3d, video and fusion each hold a copy of the same writer (they may not import each other);
omnisense re-exports fusion's. Every test runs over each copy.
"""

from __future__ import annotations

import importlib
import inspect
import os
import stat
from pathlib import Path

import numpy as np
import pytest

PACKAGES = ["perception3d", "video", "fusion"]
HELPERS = {
    "atomic_write": lambda io, path: io.atomic_write(path, lambda tmp: tmp.write_bytes(b"new")),
    "write_bytes_atomic": lambda io, path: io.write_bytes_atomic(path, b"new"),
    "write_text_atomic": lambda io, path: io.write_text_atomic(path, "new"),
}


class Boom(RuntimeError):
    pass


def _writer(package: str):
    return importlib.import_module(f"{package}._io")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test (`umask(0o022)`), restoring the previous one afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("helper", sorted(HELPERS))
@pytest.mark.parametrize("package", PACKAGES)
def test_new_file_gets_0644_under_umask_022(package, helper, tmp_path, umask):
    umask(0o022)
    path = HELPERS[helper](_writer(package), tmp_path / "sub" / "out.bin")
    assert path == tmp_path / "sub" / "out.bin"
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o644
    assert os.listdir(path.parent) == ["out.bin"]


@pytest.mark.parametrize("package", PACKAGES)
def test_mode_follows_the_umask(package, tmp_path, umask):
    umask(0o077)
    path = _writer(package).write_bytes_atomic(tmp_path / "private.bin", b"x")
    assert _mode(path) == 0o600


@pytest.mark.parametrize("package", PACKAGES)
def test_replacing_a_file_writes_the_new_content(package, tmp_path, umask):
    umask(0o022)
    path = tmp_path / "out.txt"
    path.write_text("old")
    _writer(package).write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def _fail_half_way(tmp: Path) -> None:
    tmp.write_bytes(b"half")
    raise Boom("the writer failed half-way")


@pytest.mark.parametrize("package", PACKAGES)
def test_failed_write_leaves_no_target_and_no_temporary(package, tmp_path, umask):
    umask(0o022)
    with pytest.raises(Boom):
        _writer(package).atomic_write(tmp_path / "out.ply", _fail_half_way)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_failed_write_leaves_the_earlier_version_unchanged(package, tmp_path, umask):
    umask(0o022)
    path = tmp_path / "out.ply"
    path.write_bytes(b"earlier")
    path.chmod(0o640)
    with pytest.raises(Boom):
        _writer(package).atomic_write(path, _fail_half_way)
    assert path.read_bytes() == b"earlier"
    assert _mode(path) == 0o640
    assert os.listdir(tmp_path) == ["out.ply"]


@pytest.mark.parametrize("package", PACKAGES)
def test_failed_rename_leaves_no_temporary(package, tmp_path, umask):
    umask(0o022)
    (tmp_path / "taken").mkdir()  # a folder where the file should go: os.replace fails
    with pytest.raises(OSError):
        _writer(package).write_bytes_atomic(tmp_path / "taken", b"new")
    assert os.listdir(tmp_path) == ["taken"]
    assert os.listdir(tmp_path / "taken") == []


@pytest.mark.parametrize("name", ["_default_mode", "atomic_write", "write_bytes_atomic", "write_text_atomic"])
def test_the_copies_are_the_same_code(name):
    sources = {package: inspect.getsource(getattr(_writer(package), name)) for package in PACKAGES}
    assert len(set(sources.values())) == 1, f"{name} differs between {sorted(sources)}: keep the copies equal"


def test_the_application_uses_the_fusion_writer():
    import fusion._io
    import omnisense._io

    for name in omnisense._io.__all__:
        assert getattr(omnisense._io, name) is getattr(fusion._io, name)


# ---- the package writers that go through them


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".xyz", ".npy", ".bin"])
def test_write_points_makes_0644_files(suffix, tmp_path, umask):
    from perception3d.io import read_points, write_points

    umask(0o022)
    xyz = np.random.default_rng(0).random((20, 3))
    path = write_points(tmp_path / f"cloud{suffix}", xyz)
    assert _mode(path) == 0o644
    assert os.listdir(tmp_path) == [f"cloud{suffix}"]
    np.testing.assert_allclose(read_points(path).xyz, xyz, atol=1e-5)


def test_write_pair_list_makes_a_0644_file(tmp_path, umask):
    from perception3d.registration.pairs import PairEntry, read_pair_list, write_pair_list

    umask(0o022)
    path = tmp_path / "pairs.csv"
    write_pair_list(path, [PairEntry(tmp_path / "a.ply", tmp_path / "b.ply", np.eye(4))])
    assert _mode(path) == 0o644
    assert len(read_pair_list(path)) == 1


@pytest.mark.parametrize("name", ["clip.mp4", "clip"])
def test_write_video_makes_0644_files(name, tmp_path, umask):
    pytest.importorskip("av")
    from video.io import read_video, write_video

    umask(0o022)
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)  # x264 output at 16x16 does not decode back
    path = write_video(tmp_path / name, frames, fps=10)
    assert _mode(path) == 0o644
    assert os.listdir(tmp_path) == [name]
    assert len(read_video(path)[0]) == 4


def test_write_video_that_fails_leaves_nothing(tmp_path, umask):
    av = pytest.importorskip("av")
    from video.io import write_video

    umask(0o022)
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises((av.error.FFmpegError, ValueError)):
        write_video(tmp_path / "clip.mp4", frames, fps=10, codec="no-such-codec")
    assert os.listdir(tmp_path) == []
