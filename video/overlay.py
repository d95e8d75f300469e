"""The input video with the recognised actions drawn on it (mmaction2's demo output).

    result = recognize(model, "in.mp4", meta.classes, meta.transforms(), num_clips=4)
    write_recognition_overlay("overlay.mp4", "in.mp4", result)

Every frame of the input, at its size and frame rate: a frame inside a sampled clip's span shows that clip's top-k
labels and probabilities; a frame outside every clip shows the video's averaged top-k (or "none of the known
classes" when the weights' rejection rule turned the video's answer down). PIL draws the text, PyAV
encodes H.264 (4:4:4 when the width or height is odd, so the size stays the input's).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from video._io import atomic_write
from video.io import VideoReader

__all__ = ["write_recognition_overlay"]

CHUNK = 32  # frames decoded at once


def _lines(result, k: int) -> tuple[str, list[dict[str, Any]]]:
    """The caption and top-k rows shown on frame `k`."""
    for n, clip in enumerate(result.clips):
        idx = clip["frame_indices"]
        if min(idx) <= k <= max(idx) and "topk" in clip:
            return f"clip {n + 1}/{len(result.clips)} ({clip['start_s']:.1f}-{clip['end_s']:.1f} s)", clip["topk"]
    caption = f"whole video (mean of {len(result.clips)} clip(s))"
    if not result.topk and getattr(result, "label", ""):
        caption += f": {result.label}"
    return caption, result.topk


def draw_labels(frame: np.ndarray, caption: str, rows: list[dict[str, Any]]) -> np.ndarray:
    """`frame` `uint8 [H, W, 3]` with a caption and `{"class", "probability"}` rows (with bars) in a dark box, top left."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = frame.shape[:2]
    size = max(9, min(22, h // 18))
    font = ImageFont.load_default(size=size)
    image = Image.fromarray(frame)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    line = int(size * 1.35)
    box_w = min(w - 4, max(int(size * 17), int(draw.textlength(caption, font=font)) + 8))
    draw.rectangle([2, 2, 2 + box_w, 2 + line * (len(rows) + 1) + 4], fill=(0, 0, 0, 150))
    draw.text((6, 4), caption, fill=(255, 255, 255, 255), font=font)
    for r, row in enumerate(rows):
        y = 4 + line * (r + 1)
        bar = int((box_w - 8) * float(row["probability"]))
        draw.rectangle([6, y + line - 4, 6 + bar, y + line - 2], fill=(90, 200, 120, 255))
        draw.text((6, y), f"{row['probability']:.2f}  {row['class']}", fill=(255, 255, 255, 255), font=font)
    return np.asarray(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def write_recognition_overlay(path: str | Path, video: str | Path, result) -> Path:
    """Write `video` with `result`'s labels drawn on every frame (see the module docstring).

    Args:
        path: the output (H.264; MP4 unless the suffix names another container), written atomically.
        video: the video `result` was computed on.
        result: a `video.recognition.inference.Recognition`.

    Returns:
        `path`: as many frames as the input decodes to, at its size and frame rate.
    """
    import av

    reader = VideoReader(video)
    n, fps = len(reader), reader.fps or 25.0
    h, w = reader[0].shape[:2]
    path = Path(path)

    def write(tmp: Path) -> None:
        with av.open(str(tmp), mode="w", format=None if path.suffix else "mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
            stream.options = {"crf": "20", "preset": "veryfast"}
            for start in range(0, n, CHUNK):
                for k, frame in enumerate(reader.get_frames(np.arange(start, min(n, start + CHUNK))), start):
                    out = draw_labels(frame, *_lines(result, k))
                    for packet in stream.encode(av.VideoFrame.from_ndarray(out, format="rgb24")):
                        container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    try:
        return atomic_write(path, write)
    finally:
        reader.close()
