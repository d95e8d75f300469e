"""The interactive view of a registration: one self-contained HTML file (plotly, plotly.js embedded).

    write_registration_view("view.html", source, target, result.transform)

Two linked 3D scenes: before (the source as given, red, and the target, blue) and after (the target and the
registered source, green), with optional correspondence lines. Big clouds are thinned for the browser, and the
title says how many points are shown of how many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception3d._view import MAX_VIEW_POINTS, line_segments, shown, thin, write_html

__all__ = ["registration_figure", "write_aligned_ply", "write_registration_view"]

COLORS = {"source": "#d62728", "target": "#1f77b4", "registered": "#2ca02c", "correspondence": "#7f7f7f"}
MAX_CORRESPONDENCES = 300  # lines drawn; more make a grey blur


def registration_figure(source: np.ndarray, target: np.ndarray, transform: np.ndarray, *, title: str = "",
                        correspondences: tuple[np.ndarray, np.ndarray] | None = None,
                        max_points: int = MAX_VIEW_POINTS):
    """The plotly figure of a registration.

    Args:
        source: `[N, 3]` SOURCE points; target: `[M, 3]` TARGET points, the same unit.
        transform: `[4, 4]` SOURCE -> TARGET.
        correspondences: optional matched pairs `([C, 3] source points, [C, 3] target points)`, drawn in the
            before scene (at most `MAX_CORRESPONDENCES`, a seeded subset).
        max_points: points drawn per cloud.

    Returns:
        A `plotly.graph_objects.Figure` with 4 traces (5 with correspondences).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from perception3d.registration.metrics import transform_points

    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    src, tgt = thin(source, max_points, seed=0), thin(target, max_points, seed=1)
    moved = transform_points(src, np.asarray(transform, dtype=np.float64))
    # georeferenced clouds (LAS: hundreds of km) lose centimetres in float32: draw them about a round origin
    origin = np.round(tgt.mean(0)) if len(tgt) and np.abs(tgt).max() > 1e4 else np.zeros(3)
    src, tgt, moved = src - origin, tgt - origin, moved - origin
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "scene"}]],
                        subplot_titles=("before", "after"), horizontal_spacing=0.01)

    def cloud(points, name, color, col, legend=True):
        points = points.astype(np.float32)  # plotly ships numpy arrays as binary: float32 halves the file
        fig.add_trace(go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name=name,
                                   legendgroup=name, showlegend=legend,
                                   marker={"size": 1.6, "color": color, "opacity": 0.8}), row=1, col=col)

    cloud(src, "source", COLORS["source"], 1)
    cloud(tgt, "target", COLORS["target"], 1)
    cloud(tgt, "target", COLORS["target"], 2, legend=False)
    cloud(moved, "registered source", COLORS["registered"], 2)
    if correspondences is not None:
        a, b = (np.asarray(c, dtype=np.float64) for c in correspondences)
        pick = thin(np.arange(len(a)), MAX_CORRESPONDENCES, seed=2)
        xs, ys, zs = line_segments(a[pick] - origin, b[pick] - origin)
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=f"correspondences ({len(pick)} of {len(a)})",
                                   line={"color": COLORS["correspondence"], "width": 1}), row=1, col=1)
    # one cube around both clouds in both scenes, so turning one view shows the same scale as the other
    both = np.concatenate([src, tgt, moved])
    lo, hi = both.min(0), both.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 or 1.0
    axes = {f"{k}axis": {"range": [centre[i] - half, centre[i] + half],
                         "title": f"{k} - {origin[i]:.0f}" if origin[i] else k} for i, k in enumerate("xyz")}
    scene = {**axes, "aspectmode": "cube"}
    count = f"{shown(len(src), len(source), 'source points')}, {shown(len(tgt), len(target), 'target points')}"
    fig.update_layout(scene=scene, scene2=scene, title={"text": (title + "<br>" if title else "") +
                                                        f"<sup>{count}; drag to turn, scroll to zoom</sup>"},
                      legend={"itemsizing": "constant", "orientation": "h"}, margin={"l": 0, "r": 0, "b": 0, "t": 80})
    return fig


def write_registration_view(path: str | Path, source: np.ndarray, target: np.ndarray, transform: np.ndarray, *,
                            title: str = "", correspondences: tuple[np.ndarray, np.ndarray] | None = None,
                            max_points: int = MAX_VIEW_POINTS) -> Path:
    """Write the registration view (see `registration_figure`) as a self-contained HTML file, atomically."""
    return write_html(registration_figure(source, target, transform, title=title, correspondences=correspondences,
                                          max_points=max_points), path)


def write_aligned_ply(path: str | Path, source: np.ndarray, transform: np.ndarray,
                      target: np.ndarray | None = None) -> Path:
    """The registered source as a PLY; with `target`, both clouds merged, coloured per cloud (registered source
    green, target blue), for MeshLab or CloudCompare. Written by open3d, atomically."""
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    from perception3d._io import atomic_write
    from perception3d.registration.metrics import transform_points

    moved = transform_points(np.asarray(source, dtype=np.float64), np.asarray(transform, dtype=np.float64))
    clouds = [(moved, COLORS["registered"])]
    if target is not None:
        clouds.append((np.asarray(target, dtype=np.float64), COLORS["target"]))
    xyz = np.concatenate([c for c, _ in clouds])
    rgb = np.concatenate([np.tile(_rgb(color), (len(c), 1)) for c, color in clouds])
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    pcd.colors = o3d.utility.Vector3dVector(rgb)

    def write(tmp: Path) -> None:
        if not o3d.io.write_point_cloud(str(tmp), pcd, write_ascii=False):
            raise OSError(f"open3d could not write {path}")

    return atomic_write(path, write)


def _rgb(color: str) -> np.ndarray:
    """'#2ca02c' -> [0.17, 0.63, 0.17]."""
    return np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
