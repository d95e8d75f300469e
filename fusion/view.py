"""Pictures of a multi-sensor recording and its fusion: an interactive 3D view and an overlay video.

    write_recording_view("view.html", "recording/", result)          # plotly, plotly.js embedded
    write_fusion_overlay("overlay.mp4", "recording/", result)        # the views side by side, scores as bars

The view shows the room (the manifest's `room` [x, y, z] size when it has one, else the box around the lidar points
and the cameras), the lidar points of every sweep coloured by their time on the common clock (a slider shows one
second's sweeps at a time), and the cameras at their positions where the manifest gives them. The overlay plays the
views side by side on the first view's frame times, each view showing its frame nearest in true time, with the fused
frame scores as a bar chart beside them.
plotly, PIL and PyAV are imported inside the functions.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fusion._errors import FileProblem
from fusion._io import atomic_write, write_text_atomic

__all__ = ["recording_figure", "write_fusion_overlay", "write_recording_view"]

MAX_VIEW_POINTS = 40_000  # lidar points drawn
ROOM_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def _manifest(recording: str | Path) -> tuple[dict[str, Any], Path]:
    path = Path(recording)
    if path.is_dir():
        if (path / "recording.json").exists():
            path = path / "recording.json"
        else:  # a folder of videos: no positions, a lidar/ folder maybe
            return {"sensors": ([{"name": "lidar", "kind": "lidar", "path": "lidar"}]
                                if (path / "lidar").is_dir() else [])}, path
    if not path.exists():
        raise FileProblem(path, "no such file or folder")
    try:
        return json.loads(path.read_text()), path.parent
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileProblem(path, f"not a JSON manifest: {exc}") from None


def recording_figure(recording: str | Path, result: dict[str, Any] | None = None, *,
                     max_points: int = MAX_VIEW_POINTS):
    """The plotly figure of a recording: 3 traces (room, lidar points over time, cameras; a recording without a
    lidar or without camera positions has fewer) and a slider that shows the sweeps of one time window at a time.

    Args:
        recording: a folder with `recording.json`, the manifest, or a folder of videos with a `lidar/` folder.
        result: optional `fuse_recording` result; its sequence labels go into the title.
        max_points: lidar points drawn (a seeded random subset).
    """
    import plotly.graph_objects as go

    from fusion.streams import _clock, read_lidar_folder

    manifest, base = _manifest(recording)
    points, times = [], []
    for s in manifest.get("sensors", []):
        if s.get("kind") == "lidar":
            stamps, sweeps = read_lidar_folder(base / s["path"])
            true = _clock(s.get("clock"), base / "recording.json", s.get("name", "lidar")).to_true(stamps)
            points += [p[:, :3] for p in sweeps]
            times += [np.full(len(p), t) for p, t in zip(sweeps, true)]
    cams = [(s["name"], s["camera"]["position"]) for s in manifest.get("sensors", [])
            if s.get("kind") == "video" and isinstance(s.get("camera"), dict) and "position" in s["camera"]]
    xyz = np.concatenate(points) if points else np.zeros((0, 3))
    t = np.concatenate(times) if times else np.zeros(0)
    total = len(xyz)
    if total > max_points:
        keep = np.sort(np.random.default_rng(0).choice(total, max_points, replace=False))
        xyz, t = xyz[keep], t[keep]
    fig = go.Figure()
    if "room" in manifest:
        lo, hi = np.zeros(3), np.asarray(manifest["room"], dtype=float)
    else:
        known = np.concatenate([xyz, np.asarray([p for _, p in cams], dtype=float).reshape(-1, 3)])
        lo, hi = (known.min(0), known.max(0)) if len(known) else (np.zeros(3), np.ones(3))
    corners = np.array([[x, y, z] for z in (lo[2], hi[2]) for y in (lo[1], hi[1]) for x in (lo[0], hi[0])])
    xs, ys, zs = [], [], []
    for a, b in ROOM_EDGES:
        for axis, out in zip(range(3), (xs, ys, zs)):
            out += [corners[a, axis], corners[b, axis], None]
    fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name="room", line={"color": "#555", "width": 3},
                               hoverinfo="skip"))
    def lidar(keep):
        """The lidar trace (trace 1) with the points `keep`, one colour scale for every time window."""
        p = xyz[keep].astype(np.float32)
        return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name="lidar points",
                            marker={"size": 1.5, "color": t[keep].astype(np.float32), "colorscale": "Plasma",
                                    "cmin": float(t.min()), "cmax": float(t.max()),
                                    "colorbar": {"title": "time (s)", "len": 0.6}, "opacity": 0.7},
                            hovertemplate="%{marker.color:.1f} s<extra></extra>")

    sliders, frames = [], []
    if len(xyz):
        fig.add_trace(lidar(slice(None)))
        # a slider over time: all sweeps, or those of one window (1 s, or wider to keep at most 30 steps)
        span = float(t.max() - t.min())
        if span > 0:
            width = max(1.0, float(np.ceil(span / 30)))
            edges = np.arange(np.floor(t.min()), t.max() + width, width)
            frames.append(go.Frame(name="all", data=[lidar(slice(None))], traces=[1]))
            for a, b in zip(edges[:-1], edges[1:]):
                frames.append(go.Frame(name=f"{a:g} to {b:g} s", data=[lidar((t >= a) & (t < b))], traces=[1]))
            sliders = [{"active": 0, "currentvalue": {"prefix": "lidar sweeps: "}, "pad": {"t": 10},
                        "steps": [{"label": f.name, "method": "animate",
                                   "args": [[f.name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                                       "transition": {"duration": 0}}]} for f in frames]}]
    if cams:
        pos = np.asarray([p for _, p in cams], dtype=float)
        fig.add_trace(go.Scatter3d(x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="markers+text", name="cameras",
                                   text=[n for n, _ in cams], textposition="top center",
                                   marker={"size": 6, "color": "#1f77b4", "symbol": "diamond"}))
    labels = ""
    if result is not None:
        labels = f"; sequence labels: {', '.join(result.get('sequence_labels', [])) or 'none'}"
    count = (f"all {total:,} lidar points" if len(xyz) == total
             else f"{len(xyz):,} of {total:,} lidar points (random subset)")
    fig.update_layout(title={"text": f"{Path(recording).name}: room, lidar over time, cameras{labels}"
                                     f"<br><sup>{count}; {len(cams)} camera positions known</sup>"},
                      scene={"aspectmode": "data", "xaxis": {"title": "x (m)"}, "yaxis": {"title": "y (m)"},
                             "zaxis": {"title": "z (m)"}},
                      legend={"itemsizing": "constant", "x": 0.02, "y": 0.98},
                      margin={"l": 0, "r": 0, "b": 60 if sliders else 0, "t": 70}, sliders=sliders)
    fig.frames = frames
    return fig


def write_recording_view(path: str | Path, recording: str | Path, result: dict[str, Any] | None = None, *,
                         max_points: int = MAX_VIEW_POINTS) -> Path:
    """Write the recording view (see `recording_figure`) as one HTML file with plotly.js embedded, atomically."""
    fig = recording_figure(recording, result, max_points=max_points)
    html = fig.to_html(include_plotlyjs=True, full_html=True, default_height="100vh", auto_play=False,
                       config={"responsive": True, "displaylogo": False})
    # phones: the page's own width, and no margin around the full-height plot
    html = html.replace("<head>", "<head><meta name='viewport' content='width=device-width, initial-scale=1'>"
                        "<style>body{margin:0}</style>", 1)
    return write_text_atomic(path, html)


# ------------------------------------------------------------------------------------------------ overlay video

TILE = 192  # pixels: each view is scaled to this height (the synthetic cameras are 64 x 64)
CHART_WIDTH = 280


def write_fusion_overlay(path: str | Path, recording: str | Path, result: dict[str, Any], *, tile: int = TILE,
                         threshold: float = 0.5) -> Path:
    """An MP4 of the views side by side with the fused frame scores as a running bar chart.

    The output has the first view's frames (its count, its frame rate); every other view shows its frame nearest
    in true time (black with "no frame" when none is within one frame period), the chart the scores of the
    nearest grid step, bars at or above `threshold` filled. Each view is scaled to `tile` pixels high.

    Args:
        path: the output video (H.264 in MP4), written atomically.
        recording: what `fuse_recording` read.
        result: its result (`classes`, `times`, `frame_scores`).
    """
    from PIL import Image, ImageDraw, ImageFont

    from fusion.streams import read_recording

    rec = read_recording(recording, frame_size=None, with_audio=False)
    views = rec.of_kind("video")
    if not views:
        raise FileProblem(Path(recording), "no camera views to draw")
    classes = list(result["classes"])
    grid = np.asarray(result["times"], dtype=float)
    scores = np.asarray(result["frame_scores"], dtype=float).reshape(len(grid), len(classes))
    ref = views[0]
    out_times = ref.true_times
    fps = float(len(out_times) - 1) / float(out_times[-1] - out_times[0]) if len(out_times) > 1 else 10.0
    widths = [int(round(v.data.shape[2] * tile / v.data.shape[1])) for v in views]
    width = sum(widths) + CHART_WIDTH
    width += width % 2
    height = tile + 24  # a caption row under the views
    height += height % 2  # 4:2:0 chroma needs even sizes
    font = ImageFont.load_default(size=13)

    def nearest(times: np.ndarray, t: float, tolerance: float) -> int | None:
        i = int(np.abs(times - t).argmin())
        return i if abs(times[i] - t) <= tolerance else None

    def frames():
        for k, t in enumerate(out_times):
            canvas = Image.new("RGB", (width, height), (20, 20, 20))
            draw = ImageDraw.Draw(canvas)
            x = 0
            for v, w in zip(views, widths):
                period = float(np.median(np.diff(v.true_times))) if len(v.times) > 1 else 1.0
                i = k if v is ref else nearest(v.true_times, t, period)
                if i is not None:
                    canvas.paste(Image.fromarray(v.data[i]).resize((w, tile), Image.NEAREST), (x, 0))
                else:
                    draw.text((x + 8, tile // 2), "no frame", fill=(200, 200, 200), font=font)
                draw.text((x + 4, tile + 4), v.name, fill=(230, 230, 230), font=font)
                x += w
            g = int(np.abs(grid - t).argmin()) if len(grid) else None
            draw.text((x + 8, 4), f"t = {t:5.1f} s   frame scores", fill=(230, 230, 230), font=font)
            row = (height - 28) / max(len(classes), 1)
            for c, name in enumerate(classes):
                y = 24 + c * row
                s = float(scores[g, c]) if g is not None else 0.0
                bar = int((CHART_WIDTH - 120) * s)
                color = (80, 200, 120) if s >= threshold else (90, 120, 170)
                draw.rectangle([x + 90, y + 2, x + 90 + max(bar, 1), y + row - 3], fill=color)
                draw.text((x + 6, y), name[:12], fill=(230, 230, 230), font=font)
                draw.text((x + 94 + bar, y), f"{s:.2f}", fill=(230, 230, 230), font=font)
            tx = x + 90 + int((CHART_WIDTH - 120) * threshold)
            draw.line([tx, 22, tx, height - 4], fill=(220, 80, 80), width=1)
            yield np.asarray(canvas)

    return _encode(path, frames(), fps, width, height)


def _encode(path: str | Path, frames, fps: float, width: int, height: int) -> Path:
    """Stream RGB frames into an H.264 MP4, atomically (the frames are never all in memory)."""
    import av

    def write(tmp: Path) -> None:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "20", "preset": "veryfast"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return atomic_write(path, write)
