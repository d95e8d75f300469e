"""Running a detector on one scan: input checks, filtering that is counted, ground sanity, JSON and BEV plot.

Input policy (documented and counted, never silent):
- an empty scan, or one with no finite point, raises `PointCloudValueError`;
- points with a NaN or infinite coordinate are dropped (`non_finite`); a NaN or infinite intensity is set
  to 0 (`bad_intensity`);
- intensities above 1 are taken to be 8-bit (0-255) or 16-bit values and divided by 255 or 65535
  (`intensity_rescaled`), since the detectors were trained on intensities in [0, 1];
- points outside the detector's point range are dropped (`out_of_range`); if none is left, the scan
  raises `PointCloudValueError` (the scan is probably not in the sensor frame);
- a box whose bottom lies more than 0.3 m below the local ground (the 2nd percentile of point heights
  within 1 m around its footprint) is lifted onto it (`lifted_to_ground`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception3d._errors import PointCloudValueError
from perception3d._io import atomic_write
from perception3d.detection.boxes import boxes_to_corners_bev

__all__ = ["ScanSpec", "prepare_points", "detect_points", "boxes_to_json", "plot_bev"]


@dataclass(frozen=True)
class ScanSpec:
    """A detector's input: points `(N, 4)` x, y, z, intensity in [0, 1], sensor frame, metres, inside `point_range`
    `[x0, y0, z0, x1, y1, z1]` (the detector's own range, recorded with its weights)."""

    point_range: tuple[float, ...]
    voxel_size: tuple[float, ...] | None = None  # recorded for the reader; the model holds its own
    point_channels: int = 4  # x, y, z, intensity (+ Waymo's elongation: 5); missing columns are zeros

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScanSpec":
        unknown = sorted(set(d) - {"point_range", "voxel_size", "point_channels"})
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        point_range = tuple(float(v) for v in d["point_range"])
        if len(point_range) != 6:
            raise ValueError(f"point_range needs 6 numbers, got {len(point_range)}")
        voxel = d.get("voxel_size")
        channels = int(d.get("point_channels", 4))
        if channels < 4:
            raise ValueError(f"point_channels must be at least 4 (x, y, z, intensity), got {channels}")
        return cls(point_range, tuple(float(v) for v in voxel) if voxel is not None else None, channels)


def prepare_points(points: np.ndarray, point_range: tuple[float, ...], channels: int = 4
                   ) -> tuple[np.ndarray, dict[str, int]]:
    """Apply the input policy above: `(N, >=3)` -> `(K, channels)` float32 and the counts of what was changed.

    Columns beyond the input's (intensity of an xyz scan, Waymo's elongation of a KITTI scan) are zeros.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] == 0:
        raise PointCloudValueError(f"empty scan (shape {points.shape})")
    if points.shape[1] < 3:
        raise PointCloudValueError(f"points need x, y, z columns, got shape {points.shape}")
    if points.shape[1] < channels:
        points = np.concatenate([points, np.zeros((len(points), channels - points.shape[1]), points.dtype)], 1)
    points = points[:, :channels].astype(np.float32)
    counts = {"input": int(len(points))}
    finite = np.isfinite(points[:, :3]).all(1)
    counts["non_finite"] = int((~finite).sum())
    points = points[finite]
    if len(points) == 0:
        raise PointCloudValueError("no point has finite coordinates")
    bad_i = ~np.isfinite(points[:, 3])
    counts["bad_intensity"] = int(bad_i.sum())
    points[bad_i, 3] = 0
    counts["intensity_rescaled"] = 0
    top = float(points[:, 3].max())
    if top > 1.0:
        points[:, 3] /= 255.0 if top <= 255.0 else 65535.0
        counts["intensity_rescaled"] = int(len(points))
    points[:, 3] = np.clip(points[:, 3], 0, 1)
    x0, y0, z0, x1, y1, z1 = point_range
    inr = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1) \
        & (points[:, 2] >= z0) & (points[:, 2] < z1)
    counts["out_of_range"] = int((~inr).sum())
    points = points[inr]
    if len(points) == 0:
        raise PointCloudValueError(f"no point inside the detector's range {list(point_range)} m "
                                   "(is the scan in the sensor frame, metres?)")
    counts["used"] = int(len(points))
    return points, counts


def _lift_to_ground(boxes: torch.Tensor, points: np.ndarray) -> tuple[torch.Tensor, int]:
    lifted = 0
    boxes = boxes.clone()
    for k in range(boxes.shape[0]):
        b = boxes[k].tolist()
        reach = 0.5 * math.hypot(b[3], b[4]) + 1.0
        near = points[(points[:, 0] - b[0]) ** 2 + (points[:, 1] - b[1]) ** 2 <= reach**2]
        if len(near) < 3:
            continue
        ground = float(np.percentile(near[:, 2], 2))
        bottom = b[2] - b[5] / 2
        if bottom < ground - 0.3:
            boxes[k, 2] += ground - bottom
            lifted += 1
    return boxes, lifted


@torch.no_grad()
def detect_points(model, points: np.ndarray, device: str = "cpu", spec: ScanSpec | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Detect on one scan `(N, >=3)`. Returns (`{"boxes" (K, 7), "scores" (K,), "labels" (K,)}` on the CPU, counts).

    `spec`: the weights' input spec (`meta.transforms()`); default: the model's own point range.
    """
    pts, counts = prepare_points(points, spec.point_range if spec is not None else model.geometry.point_range,
                                 channels=spec.point_channels if spec is not None else 4)
    model.eval()
    t = torch.from_numpy(pts).to(device)
    det = model.predict(t, torch.zeros(len(t), dtype=torch.long, device=device), 1)[0]
    det = {k: v.cpu() for k, v in det.items()}
    # the local ground from every finite input point: the range crop (its z limits above all) would shift the
    # 2nd percentile of the heights near a box
    xyz = np.asarray(points, dtype=np.float32)[:, :3]
    det["boxes"], counts["lifted_to_ground"] = _lift_to_ground(det["boxes"], xyz[np.isfinite(xyz).all(1)])
    for k, v in det.items():
        if not torch.isfinite(v.float()).all():
            raise PointCloudValueError(f"the detector produced non-finite {k}")
    return det, counts


def boxes_to_json(det: dict[str, torch.Tensor], class_names: tuple[str, ...]) -> list[dict]:
    """`[{"label", "score", "center": [x, y, z], "size": [dx, dy, dz], "heading"}]`, sensor frame, metres, radians."""
    out = []
    for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        out.append({"label": class_names[int(label)], "score": round(float(score), 4),
                    "center": [round(v, 3) for v in box[:3]], "size": [round(v, 3) for v in box[3:6]],
                    "heading": round(box[6], 4)})
    return out


_COLORS = {"Car": "#e41a1c", "Pedestrian": "#ff7f00", "Cyclist": "#00a0ff"}


def plot_bev(path: str | Path, points: np.ndarray, det: dict[str, torch.Tensor], class_names: tuple[str, ...],
             extent: float | None = None, gt_boxes: np.ndarray | None = None, title: str = "") -> Path:
    """A bird's-eye view: points coloured by height, predicted boxes by class (a tick marks the heading),
    optional ground truth dashed in black. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    pts = points[np.isfinite(points[:, :3]).all(1)]
    if extent is None:
        extent = float(np.percentile(np.abs(pts[:, :2]), 99)) if len(pts) else 40.0
    keep = (np.abs(pts[:, 0]) <= extent) & (np.abs(pts[:, 1]) <= extent)
    pts = pts[keep]
    fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
    if len(pts):
        z = pts[:, 2]
        ax.scatter(pts[:, 0], pts[:, 1], s=0.3, c=np.clip(z, np.percentile(z, 1), np.percentile(z, 99)),
                   cmap="viridis", linewidths=0)
    if gt_boxes is not None and len(gt_boxes):
        for c in boxes_to_corners_bev(torch.as_tensor(gt_boxes, dtype=torch.float64)).numpy():
            ax.plot(*np.vstack([c, c[:1]]).T, color="black", lw=0.9, ls="--")
    corners = boxes_to_corners_bev(det["boxes"].double()).numpy() if len(det["boxes"]) else []
    for c, box, label, score in zip(corners, det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist()):
        color = _COLORS.get(class_names[int(label)], "white")
        ax.plot(*np.vstack([c, c[:1]]).T, color=color, lw=1.2)
        front = (c[0] + c[3]) / 2
        ax.plot([box[0], front[0]], [box[1], front[1]], color=color, lw=1.0)
    for name, color in _COLORS.items():
        ax.plot([], [], color=color, label=name)
    if gt_boxes is not None:
        ax.plot([], [], color="black", ls="--", label="ground truth")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, forward)")
    ax.set_ylabel("y (m, left)")
    ax.set_title(title or f"{len(det['boxes'])} detections")
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)
