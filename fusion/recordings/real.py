"""A multi-view recording built from real footage, for running `omnisense fuse` end to end on real video.

The sample data has no synchronised multi-view footage, so this cuts one: OpenCV's `vtest.avi` (a fixed camera over
a plaza with pedestrians walking, 768 x 576, 10 fps, no audio) is split into three overlapping vertical crops
(left, centre, right), each written as its own mp4 "view". People walk from one view's field into the next, as
between real cameras with partly overlapping fields of view. To exercise the stream alignment on real frames,
the views are re-timed: the centre view is kept at 5 fps (every other frame), and the right view starts 1.0 s
late with its own clock starting at 0 (manifest clock offset 1.0 s). What it is not: several physical cameras
(the views share one lens, exposure and clock by construction), and it has no audio or lidar.

With a person detector (`video.people.HogPersonDetector`, the default of the `vtest-views` generator when OpenCV is
installed) each view's frames carry per-frame person scores in the manifest, as MultiTSF's human-centric module is
trained with.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np

from fusion._io import atomic_write, write_json_atomic

__all__ = ["make_vtest_recording", "make_vtest_views"]


def _write(path: Path, frames: list[np.ndarray], times: list[float]) -> None:
    import av

    h, w = frames[0].shape[:2]

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"crf": "23", "preset": "veryfast", "x264-params": "bframes=0"}
            for img, t in zip(frames, times):
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts, f.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)

    atomic_write(path, encode)


def make_vtest_views(out: Path, *, source: Path, seconds: float = 30.0, person_detector=None) -> Path:
    """Write `out/{left,centre,right}.mp4` + `out/recording.json` from vtest.avi; returns the manifest path.

    `person_detector` (frames uint8 [N, H, W, 3] -> [N] scores): per-frame person scores of each view, written to
    the manifest (`fusion.people.person_scores` at 2.5 Hz)."""
    from fusion.people import person_scores
    from fusion.streams import read_video_frames

    frames, times = read_video_frames(source, max_frames=int(seconds * 10))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    crops = {"left": slice(0, 384), "centre": slice(192, 576), "right": slice(384, 768)}
    sensors = []
    for name, cols in crops.items():
        view = [np.ascontiguousarray(f[::2, cols][:, ::2]) for f in frames]  # 288 x 192 per view
        t = list(times - times[0])
        clock = {"scale": 1.0, "offset": 0.0}
        if name == "centre":
            view, t = view[::2], t[::2]
        if name == "right":
            view, t = view[10:], [x - 1.0 for x in t[10:]]
            clock["offset"] = 1.0
        _write(out / f"{name}.mp4", view, t)
        sensors.append({"name": name, "kind": "video", "path": f"{name}.mp4", "clock": clock})
        if person_detector is not None:
            scores = person_scores(np.stack(view), np.asarray(t), person_detector)
            sensors[-1]["person"] = [round(float(x), 4) for x in scores]
    manifest = {"format": "omnisense-recording", "version": 1, "sensors": sensors, "tricks": [],
                "note": "three crops of OpenCV's vtest.avi (one real camera), re-timed; no audio, no lidar"}
    write_json_atomic(out / "recording.json", manifest)
    return out / "recording.json"


def make_vtest_recording(out: Path, *, source: Path, seed: int = 0, size: str = "small") -> dict:
    """The `vtest-views` generator (`omnisense data make vtest-views --out DIR`): `make_vtest_views` of the first
    8 s (tiny), 30 s (small) or the whole 79.5 s (full) of `source` (OpenCV's vtest.avi, sample data
    "opencv-samples"), with HOG person scores when OpenCV is installed. `seed` is unused (nothing is random)."""
    seconds = {"tiny": 8.0, "small": 30.0, "full": 80.0}
    if size not in seconds:
        raise ValueError(f"size must be one of {sorted(seconds)}, got {size!r}")
    from video._errors import VideoError
    from video.people import HogPersonDetector

    try:

        detector = HogPersonDetector()
    except VideoError:  # no OpenCV: the views without person scores, as before
        detector = None
    manifest = make_vtest_views(Path(out), source=Path(source), seconds=seconds[size], person_detector=detector)
    return {"manifest": manifest.name, "views": ["left", "centre", "right"], "seconds": seconds[size],
            "source": "opencv-samples: examples/data/vtest.avi",
            "person_scores": "HOG (opencv)" if detector is not None else "none (OpenCV not installed)"}
