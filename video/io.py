"""Video decoding and writing: decord as the fast backend, PyAV as the fallback.

decord (0.6, unmaintained since 2021) is fast at random access but mis-seeks on some codecs and
containers (VP8/WebM, dmlc/decord#91), cannot decode AV1 in its wheels, and over-reports frame
counts of truncated files (dmlc/decord#373). So:

- the container is opened once with PyAV to read its streams (an audio-only file or a file PyAV cannot
  open is rejected here, with the file and the reason);
- AV1/VP8/VP9 streams and Matroska/WebM containers go to PyAV, the rest to decord when it is installed;
- the frame count is *probed*, never taken from the header: decord's count is checked by decoding the
  last frame (and bisected down when that fails); PyAV decodes the stream once and keeps every frame's
  presentation time, so its count is exactly what decodes.

Frames are `uint8` arrays `[N, H, W, 3]` (RGB), timestamps are seconds from the stream start.
decord and av are imported inside functions.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from video._errors import MediaFileError, VideoValueError
from video._io import atomic_write

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
# Codecs and containers that decord 0.6 cannot decode or seeks wrongly in.
_PYAV_CODECS = {"av1", "libdav1d", "libaom-av1", "vp8", "vp9"}
_PYAV_FORMATS = {"matroska", "webm", "matroska,webm"}
# Within this many frames a forward target is reached by decoding on, not by seeking.
_SEEK_GAP = 48
# Environment override of the backend choice, e.g. OMNISENSE_VIDEO_BACKEND=pyav.
BACKEND_ENV = "OMNISENSE_VIDEO_BACKEND"


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about its file; `num_frames` is the decodable count, not the header's."""

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str

    @property
    def duration(self) -> float:
        """Seconds covered by the decodable frames."""
        return self.num_frames / self.fps if self.fps > 0 else 0.0


def _probe_container(path: Path) -> tuple[str, str, float, int, int]:
    """Open with PyAV and read (codec, container format, fps, width, height) of the first video stream."""
    import av

    if not path.is_file():
        raise MediaFileError(path, "no such file")
    if path.stat().st_size == 0:
        raise MediaFileError(path, "empty file")
    check_media_content(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise MediaFileError(path, f"no video stream (streams: {', '.join(kinds)})")
            stream = container.streams.video[0]
            if container.format.name in _STILL_FORMATS or container.format.name.endswith("_pipe"):
                raise MediaFileError(path, f"a still image ({container.format.name}), not a video")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            return (stream.codec_context.name, container.format.name, fps,
                    stream.codec_context.width, stream.codec_context.height)
    except MediaFileError:
        raise
    except Exception as err:  # av.error.* for truncated or non-media files
        raise MediaFileError(path, f"cannot open as a video: {err}") from None


# FFmpeg demuxers of single images: a JPEG named .mp4 opens as a one-frame "video" through these.
_STILL_FORMATS = {"image2", "gif", "apng", "webp_pipe", "jpeg_pipe", "png_pipe", "bmp_pipe", "tiff_pipe"}
# Magic bytes of contents that are never a video, whatever the extension says.
_NOT_MEDIA_MAGIC = ((b"\x93NUMPY", "a NumPy .npy array"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"),
                    (b"GIF8", "a GIF image"), (b"ply\n", "a PLY point cloud"), (b"PK\x03\x04", "a zip archive"),
                    (b"LASF", "a LAS point cloud"))


def check_media_content(path: str | Path) -> None:
    """Refuse a file whose first bytes say it is not audio or video (format by content, not by extension).

    Raises:
        MediaFileError: e.g. "content is a JPEG image, not a video or audio file".
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise MediaFileError(path, f"cannot read ({err.strerror or err})") from None
    for magic, what in _NOT_MEDIA_MAGIC:
        if head.startswith(magic):
            raise MediaFileError(path, f"content is {what}, not a video or audio file")


class VideoReader:
    """Random access to the frames of one video file.

    Args:
        path: the video file.
        backend: "auto" (decord where it is safe, else PyAV), "decord" or "pyav"; the environment
            variable OMNISENSE_VIDEO_BACKEND overrides "auto".
        num_threads: decoder threads (1 inside DataLoader workers).

    Raises:
        MediaFileError: a missing, empty, truncated or audio-only file, or one with no decodable frame.
    """

    def __init__(self, path: str | Path, *, backend: str = "auto", num_threads: int = 1):
        if backend not in BACKENDS:
            raise VideoValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.path = Path(path)
        self.num_threads = num_threads
        codec, fmt, fps, width, height = _probe_container(self.path)
        if backend == "auto":
            backend = os.environ.get(BACKEND_ENV, "auto")
        if backend == "auto":
            backend = "pyav" if (codec in _PYAV_CODECS or fmt in _PYAV_FORMATS or not _has_decord()) else "decord"
        self._impl: _DecordImpl | _PyAVImpl
        if backend == "decord":
            try:
                self._impl = _DecordImpl(self.path, num_threads)
            except MediaFileError as err:
                log.warning("decord cannot read %s (%s); falling back to PyAV", self.path, err.reason)
                backend = "pyav"
        if backend == "pyav":
            self._impl = _PyAVImpl(self.path, num_threads)
        if self._impl.num_frames == 0:
            raise MediaFileError(self.path, "no decodable frames")
        self.info = VideoInfo(self.path, self._impl.num_frames, self._impl.fps or fps, width, height, codec, backend)

    @property
    def backend(self) -> str:
        return self.info.backend

    @property
    def fps(self) -> float:
        return self.info.fps

    def __len__(self) -> int:
        return self.info.num_frames

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode frames by index (any order, repeats allowed).

        Returns:
            `uint8` array `[len(indices), H, W, 3]`, RGB.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise VideoValueError("no frame indices given")
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"{self.path}: frame index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        unique, inverse = np.unique(idx, return_inverse=True)
        frames = self._impl.get_sorted(unique)
        return frames[inverse]

    def __getitem__(self, index: int) -> np.ndarray:
        """One frame `[H, W, 3]`; negative indices count from the end."""
        if index < 0:
            index += len(self)
        return self.get_frames([index])[0]

    def timestamps(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Presentation times of frames, in seconds from the stream start: `float64 [N]`."""
        times = self._impl.times
        return times if indices is None else times[np.asarray(indices, dtype=np.int64)]

    def close(self) -> None:
        """Release the decoder (also done when the reader is garbage-collected)."""
        self._impl.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"VideoReader({str(i.path)!r}, frames={i.num_frames}, fps={i.fps:.3g}, {i.width}x{i.height}, {i.codec}, {i.backend})"


def _has_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


class _DecordImpl:
    def __init__(self, path: Path, num_threads: int):
        import decord

        try:
            self.vr = decord.VideoReader(str(path), num_threads=num_threads, ctx=decord.cpu(0))
        except Exception as err:
            raise MediaFileError(path, f"decord cannot open it: {err}") from None
        self.path = path
        self.fps = float(self.vr.get_avg_fps())
        self.num_frames = self._probe_count(len(self.vr))
        ts = self.vr.get_frame_timestamp(np.arange(self.num_frames)) if self.num_frames else np.zeros((0, 2))
        self.times = np.asarray(ts, dtype=np.float64).reshape(-1, 2)[:, 0]

    def _decodes(self, i: int) -> bool:
        try:
            self.vr.seek(0)
            self.vr.get_batch([i]).asnumpy()
            return True
        except Exception:
            return False

    def _probe_count(self, header: int) -> int:
        """The header's count when its last frame decodes, else the largest prefix that does (bisection)."""
        if header <= 0:
            return 0
        if self._decodes(header - 1):
            return header
        lo, hi = 0, header - 1  # invariant: frames < lo decode (lo may be 0), frame hi does not
        if not self._decodes(0):
            return 0
        lo = 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._decodes(mid):
                lo = mid + 1
            else:
                hi = mid
        log.warning("%s: header says %d frames, %d decode", self.path, header, lo)
        return lo

    def close(self) -> None:
        self.vr = None

    def get_sorted(self, idx: np.ndarray) -> np.ndarray:
        try:
            return self.vr.get_batch(idx.tolist()).asnumpy()
        except Exception as err:
            raise MediaFileError(self.path, f"decord failed to decode frames: {err}") from None


class _PyAVImpl:
    def __init__(self, path: Path, num_threads: int):
        import av

        self.path = path
        self.num_threads = num_threads
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO" if num_threads != 1 else "SLICE"
        tb = self.stream.time_base or Fraction(1, 1)
        self.time_base = float(tb)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        # One decoding pass: the real count and every frame's pts (the header may lie).
        pts: list[int | None] = []
        try:
            for frame in self.container.decode(self.stream):
                pts.append(frame.pts)
        except Exception as err:  # truncated tail: keep what decoded
            log.warning("%s: decoding stopped after %d frames: %s", path, len(pts), err)
        self.num_frames = len(pts)
        self.seekable = all(p is not None for p in pts) and len(set(pts)) == len(pts)
        start = self.stream.start_time or 0
        if self.seekable:
            self.pts = np.asarray(pts, dtype=np.int64)
            self.times = (self.pts - start) * self.time_base
        else:
            self.pts = np.zeros(0, dtype=np.int64)
            self.times = np.arange(self.num_frames, dtype=np.float64) / (self.fps or 1.0)

    def _start(self, i: int):
        """A frame iterator positioned at the keyframe at or before frame i (from the start when unseekable)."""
        if self.seekable:
            self.container.seek(int(self.pts[i]), stream=self.stream, backward=True, any_frame=False)
        else:
            self._reopen()
        return self.container.decode(self.stream)

    def close(self) -> None:
        self.container.close()

    def _reopen(self) -> None:
        import av

        self.container.close()
        self.container = av.open(str(self.path))
        self.stream = self.container.streams.video[0]

    def get_sorted(self, idx: np.ndarray) -> np.ndarray:
        """Frames at sorted unique indices: seek once per far-apart group, decode forward within one."""
        out: list[np.ndarray] = []
        pts_to_index = {int(p): k for k, p in enumerate(self.pts)}
        frames, pos, target = None, -1, -1
        try:
            for target in idx.tolist():
                if frames is None or target - pos > _SEEK_GAP:
                    frames, pos = self._start(target), -1
                while pos < target:
                    frame = next(frames)
                    pos = pts_to_index.get(frame.pts, pos + 1) if self.seekable else pos + 1
                if pos != target:  # the seek landed past the target: decode from the start instead
                    self.seekable = False
                    frames, pos = self._start(0), -1
                    while pos < target:
                        frame, pos = next(frames), pos + 1
                out.append(frame.to_ndarray(format="rgb24"))
        except StopIteration:
            raise MediaFileError(self.path, f"PyAV ran out of frames before frame {target}") from None
        except MediaFileError:
            raise
        except Exception as err:
            raise MediaFileError(self.path, f"PyAV failed to decode frame {target}: {err}") from None
        return np.stack(out)


def read_video(path: str | Path, *, backend: str = "auto") -> tuple[np.ndarray, float]:
    """Decode every frame of a (short) video: `uint8 [T, H, W, 3]` and its fps."""
    reader = VideoReader(path, backend=backend)
    return reader.get_frames(np.arange(len(reader))), reader.fps


def write_video(path: str | Path, frames: np.ndarray, fps: float, *, codec: str = "libx264",
                crf: int = 18) -> Path:
    """Encode RGB frames to a video file (H.264 in MP4 by default), atomically.

    Args:
        path: output file; written to a temporary name beside it, then renamed.
        frames: `uint8 [T, H, W, 3]`, RGB; H and W even (4:2:0 chroma).
        fps: frames per second (may be fractional).
        codec: an encoder PyAV knows ("libx264", "libsvtav1", "mpeg4", ...).
        crf: constant rate factor of x264 (lower is better quality).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise VideoValueError(f"frames must be uint8 [T>0, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise VideoValueError(f"height and width must be even for 4:2:0 video, got {h}x{w}")
    path = Path(path)

    def encode(tmp: Path) -> None:
        # the container format follows the target's extension; a path without one is written as MP4
        with av.open(str(tmp), mode="w", format=None if path.suffix else "mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return atomic_write(path, encode)
