"""The interactive view of a detection: one self-contained HTML file (plotly, plotly.js embedded).

    write_detection_view("view.html", points, det, meta.classes, score_threshold=0.3)

The sweep coloured by height (a button switches to intensity when the sweep has it), the boxes with
`score >= score_threshold` as 3D wireframes coloured by class (a tick marks the heading), each labelled with its
class and score, optional ground-truth boxes dashed. The title states the threshold, how many boxes pass it and how
many points are drawn of how many. `write_boxes_ply` writes the same wireframes as a line-set PLY.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perception3d._view import MAX_VIEW_POINTS, line_segments, shown, thin, write_html

__all__ = ["detection_figure", "write_boxes_ply", "write_detection_view"]

CLASS_COLORS = {"Car": "#e41a1c", "Pedestrian": "#ff7f00", "Cyclist": "#00a0ff"}
OTHER_COLORS = ("#984ea3", "#4daf4a", "#a65628", "#f781bf", "#999999")
# the 12 edges of a box over `boxes_to_corners_3d`'s corners (bottom 0-3, top 4-7), then the heading tick
EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def class_color(name: str, index: int) -> str:
    return CLASS_COLORS.get(name, OTHER_COLORS[index % len(OTHER_COLORS)])


def box_segments(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wireframe segments of `(K, 7)` boxes: `(K * 13, 3)` starts and ends: 12 edges and a heading tick each,
    from the box centre at mid-height to the middle of its front face."""
    from perception3d.detection.boxes import boxes_to_corners_3d

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if not len(boxes):
        return np.zeros((0, 3)), np.zeros((0, 3))
    corners = boxes_to_corners_3d(torch.from_numpy(boxes)).numpy()  # (K, 8, 3)
    a = corners[:, [e[0] for e in EDGES]]
    b = corners[:, [e[1] for e in EDGES]]
    front = (corners[:, 0] + corners[:, 3] + corners[:, 4] + corners[:, 7]) / 4  # the +dx face
    a = np.concatenate([a, boxes[:, None, :3]], 1)
    b = np.concatenate([b, front[:, None]], 1)
    return a.reshape(-1, 3), b.reshape(-1, 3)


def detection_figure(points: np.ndarray, det: dict, class_names, *, score_threshold: float = 0.0,
                     gt_boxes: np.ndarray | None = None, title: str = "", max_points: int = MAX_VIEW_POINTS):
    """The plotly figure of a detection.

    Args:
        points: the sweep `(N, >=3)` x, y, z (metres, sensor frame) and optionally intensity.
        det: `{"boxes" (K, 7), "scores" (K,), "labels" (K,)}` (`detect_points`), tensors or arrays.
        class_names: the model's classes.
        score_threshold: boxes below it are not drawn.
        gt_boxes: optional `(G, 7)` ground truth, dashed black.
        max_points: points drawn.

    Returns:
        A `plotly.graph_objects.Figure`: the points, one wireframe trace per class with a box, one trace of score
        labels (when a box passes), the ground truth (when given).
    """
    import plotly.graph_objects as go

    pts = np.asarray(points, dtype=np.float32)
    pts = pts[np.isfinite(pts[:, :3]).all(1)]
    kept = thin(pts, max_points)
    boxes, scores, labels = (np.asarray(det[k].cpu() if torch.is_tensor(det[k]) else det[k])
                             for k in ("boxes", "scores", "labels"))
    keep = scores >= score_threshold
    boxes, scores, labels = boxes[keep].reshape(-1, 7), scores[keep], labels[keep].astype(int)
    z = kept[:, 2]
    lo, hi = (np.percentile(z, [1, 99]) if len(z) else (0.0, 1.0))
    fig = go.Figure()
    fig.add_trace(go.Scatter3d(x=kept[:, 0], y=kept[:, 1], z=kept[:, 2], mode="markers", name="points",
                               marker={"size": 1.3, "color": z, "colorscale": "Viridis", "cmin": lo, "cmax": hi,
                                       "colorbar": {"title": "height (m)", "len": 0.5}},
                               hoverinfo="skip"))
    for c, name in enumerate(class_names):
        mine = labels == c
        if not mine.any():
            continue
        xs, ys, zs = line_segments(*box_segments(boxes[mine]))
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=f"{name} ({int(mine.sum())})",
                                   line={"color": class_color(name, c), "width": 4}, hoverinfo="skip"))
    if len(boxes):
        tops = boxes[:, :3] + np.stack([np.zeros(len(boxes)), np.zeros(len(boxes)), boxes[:, 5] / 2 + 0.3], 1)
        fig.add_trace(go.Scatter3d(x=tops[:, 0], y=tops[:, 1], z=tops[:, 2], mode="text", name="scores",
                                   text=[f"{class_names[k]} {s:.2f}" for k, s in zip(labels, scores)],
                                   textfont={"size": 10, "color": [class_color(class_names[k], k) for k in labels]},
                                   showlegend=False))
    if gt_boxes is not None and len(gt_boxes):
        xs, ys, zs = line_segments(*box_segments(gt_boxes))
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=f"ground truth ({len(gt_boxes)})",
                                   line={"color": "black", "width": 2, "dash": "dash"}, hoverinfo="skip"))
    buttons = [{"label": "colour: height", "method": "restyle",
                "args": [{"marker.color": [z], "marker.cmin": lo, "marker.cmax": hi,
                          "marker.colorbar.title.text": "height (m)"}, [0]]}]
    if pts.shape[1] >= 4 and len(kept):
        intensity = kept[:, 3]
        ilo, ihi = np.percentile(intensity, [1, 99])
        buttons.append({"label": "colour: intensity", "method": "restyle",
                        "args": [{"marker.color": [intensity], "marker.cmin": ilo, "marker.cmax": max(ihi, ilo + 1e-6),
                                  "marker.colorbar.title.text": "intensity"}, [0]]})
    heading = (f"score threshold {score_threshold:.2f}: {len(boxes)} of {len(keep)} boxes shown; "
               f"{shown(len(kept), len(pts), 'points')}")
    fig.update_layout(
        title={"text": (title + "<br>" if title else "") + f"<sup>{heading}</sup>"},
        scene={"aspectmode": "data", "xaxis": {"title": "x (m, forward)"}, "yaxis": {"title": "y (m, left)"},
               "zaxis": {"title": "z (m)"}, "camera": {"eye": {"x": -0.8, "y": -0.8, "z": 0.65}}},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.0}],
        legend={"itemsizing": "constant", "x": 0.02, "y": 0.98}, margin={"l": 0, "r": 0, "b": 0, "t": 70})
    return fig


def write_detection_view(path: str | Path, points: np.ndarray, det: dict, class_names, *,
                         score_threshold: float = 0.0, gt_boxes: np.ndarray | None = None, title: str = "",
                         max_points: int = MAX_VIEW_POINTS) -> Path:
    """Write the detection view (see `detection_figure`) as a self-contained HTML file, atomically."""
    return write_html(detection_figure(points, det, class_names, score_threshold=score_threshold,
                                       gt_boxes=gt_boxes, title=title, max_points=max_points), path)


def write_boxes_ply(path: str | Path, det: dict, class_names, *, score_threshold: float = 0.0) -> Path:
    """The boxes with `score >= score_threshold` as a line-set PLY (ASCII: a `vertex` element and an `edge`
    element with a colour per edge, 12 edges per box and a heading tick), which MeshLab and CloudCompare open.
    No boxes make a valid file with no edges. Written atomically."""
    from perception3d._io import write_text_atomic

    boxes, scores, labels = (np.asarray(det[k].cpu() if torch.is_tensor(det[k]) else det[k])
                             for k in ("boxes", "scores", "labels"))
    keep = scores >= score_threshold
    boxes, labels = boxes[keep].reshape(-1, 7), labels[keep].astype(int)
    a, b = box_segments(boxes)
    per_box = len(EDGES) + 1
    rgb = [[int(color[i:i + 2], 16) for i in (1, 3, 5)]
           for color in (class_color(class_names[k], k) for k in labels) for _ in range(per_box)]
    lines = ["ply", "format ascii 1.0", "comment omnisense detections: box wireframes, a heading tick each",
             f"element vertex {2 * len(a)}", "property float x", "property float y", "property float z",
             f"element edge {len(a)}", "property int vertex1", "property int vertex2",
             "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    lines += [f"{x:.4f} {y:.4f} {z:.4f}" for x, y, z in np.concatenate([a, b]).tolist()]
    lines += [f"{i} {i + len(a)} {r} {g} {bl}" for i, (r, g, bl) in enumerate(rgb)]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def _rgb(color: str) -> list[float]:
    return [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
