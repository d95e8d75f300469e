"""Shared fixtures of the video tests: small encoded videos and broken files, written once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def ramp_frames(t: int = 40, h: int = 64, w: int = 96) -> np.ndarray:
    """Frames that write their own index (t < 64) in binary as six 16-pixel bands, robust to compression."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        for bit in range(6):
            if i >> bit & 1:
                frames[i, 32:, 16 * bit:16 * bit + 16] = 255
        frames[i, 4:20, i:i + 10, 1] = 255
    return frames


def frame_index(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(6) if frame[40:, 16 * bit + 4:16 * bit + 12].mean() > 128)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    import av

    from video.io import write_video

    root = tmp_path_factory.mktemp("media")
    write_video(root / "ramp.mp4", ramp_frames(), 25)
    data = (root / "ramp.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "junk.mp4").write_bytes(b"not a video" * 50)
    with av.open(str(root / "audio_only.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    # moov first (faststart), so a cut file still opens: the header promises frames the payload lacks
    with av.open(str(root / "faststart.mp4"), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for frame in ramp_frames(60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = (root / "faststart.mp4").read_bytes()
    (root / "zero_frames.mp4").write_bytes(data[: data.index(b"mdat") + 4])
    (root / "cut_tail.mp4").write_bytes(data[: int(len(data) * 0.6)])
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # the CI box has 2 cores shared with other jobs: one intra-op thread avoids oversubscription
    import torch

    torch.set_num_threads(1)
