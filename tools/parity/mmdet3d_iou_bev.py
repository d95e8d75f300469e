"""An emulation, in plain Python, of the rotated BEV NMS that FlatFormer's official head runs (mit-han-lab/flatformer
@ 31dc5a9, mmdet3d v0.x): `CenterHead.get_task_detections` -> `multi_class_nms_gpu` (`mmdet3d/ops/iou3d/iou3d_utils.py`)
-> the `nms_gpu` op of `mmdet3d/ops/iou3d/src/iou3d_kernel.cu` / `iou3d.cpp`; written from that source, no code
copied.

The kernel's geometry (`box_overlap`, `check_in_box2d` with its 1e-5 margin, `intersection`, the angular sort about
the mean, `iou_bev` over max(union, 1e-8), and `nms_kernel` dropping a box whose IoU with a kept one is strictly
above the threshold) is the same, statement for statement, as OpenPCDet's BEV kernel, so it is taken from
tools/parity/openpcdet_iou_bev.py. What differs is the box handed to it: mmdet3d turns the decoded box
`[x, y, z, d0, d1, d2, r]` into `LiDARInstance3DBoxes.bev` = `[x, y, d0, d1, r]`, then `xywhr2xyxyr` =
`[x - d0/2, y - d1/2, x + d0/2, y + d1/2, r]`; the kernel turns that rectangle by -r about its centre, which is
how mmdet3d v0.x's own `LiDARInstance3DBoxes.corners` draw a box (`rotation_3d_in_axis` about z multiplies row
vectors by `[[cos, -sin], [sin, cos]]`), with (d0, d1, d2) = (w, l, h). So the kernel intersects the boxes' true
rectangles. In this project's convention (dx along the heading, turned by +heading) the same box is
`[x, y, z, l, w, h, -r - pi/2]` (mmdet3d's Waymo export: `heading = -(rotation_y + pi/2)`); `to_mmdet3d_v0` goes
back.

`multi_class_nms_gpu` runs class by class (0, 1, 2): the boxes of the class sorted by descending score, the first
`pre_max_sizes[c]` kept, the kernel's greedy NMS at `threshs[c]`, the first `post_max_sizes[c]` of those kept;
the classes' lists are concatenated in class order. (It then indexes the class's score-sorted boxes with indices
into its unsorted ones; the head hands it boxes already sorted by score (the coder's top-K), where the two agree.)

Used by tools/parity/flatformer.py in place of the compiled op, and by tests/parity to check
`perception3d.detection.head.class_nms(..., nms_convention="mmdet3d_bev")` on random boxes.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

_spec = importlib.util.spec_from_file_location("openpcdet_iou_bev", Path(__file__).with_name("openpcdet_iou_bev.py"))
_kernel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kernel)

box_overlap = _kernel.box_overlap
iou_bev = _kernel.iou_bev
nms = _kernel.nms


def official_bev_boxes(boxes):
    """`xywhr2xyxyr(LiDARInstance3DBoxes(boxes).bev)` for boxes `(N, 7+)` [x, y, z, d0, d1, d2, r, ...]:
    `[x - d0/2, y - d1/2, x + d0/2, y + d1/2, r]` (no angle change, no size swap)."""
    out = []
    for b in boxes:
        x, y, _, d0, d1, _, r = (float(v) for v in b[:7])
        out.append((x - d0 / 2, y - d1 / 2, x + d0 / 2, y + d1 / 2, r))
    return out


def to_mmdet3d_v0(boxes):
    """This project's boxes `[x, y, z, dx, dy, dz, heading]` as mmdet3d v0.x LiDAR boxes `[x, y, z, w, l, h, yaw]`:
    w = dy, l = dx, yaw = -heading - pi/2 (the same rectangle)."""
    out = []
    for b in boxes:
        x, y, z, dx, dy, dz, h = (float(v) for v in b[:7])
        out.append((x, y, z, dy, dx, dz, -h - math.pi / 2))
    return out


def lidar_v0_bev_corners(box):
    """The BEV corners mmdet3d v0.x draws for a LiDAR box [x, y, z, w, l, h, yaw]: the (w along x, l along y)
    rectangle's corners (x', y') turned to (x' cos + y' sin, -x' sin + y' cos), then moved to the centre."""
    x, y, _, w, l, _, r = (float(v) for v in box[:7])
    c, s = math.cos(r), math.sin(r)
    return [(x + px * c + py * s, y - px * s + py * c)
            for px, py in ((-w / 2, -l / 2), (w / 2, -l / 2), (w / 2, l / 2), (-w / 2, l / 2))]


def multi_class_nms(boxes, scores, labels, threshs, pre_max_sizes, post_max_sizes) -> list[int]:
    """Indices into `boxes` (sequences of decoded boxes, scores, integer labels) that `multi_class_nms_gpu` keeps,
    in its order: class 0's kept boxes by descending score, then class 1's, ..."""
    bev = official_bev_boxes(boxes)
    keep = []
    for c, thresh in enumerate(threshs):
        idx = [i for i, lab in enumerate(labels) if int(lab) == c]
        order = sorted(idx, key=lambda i: -float(scores[i]))[: pre_max_sizes[c]]  # stable for ties
        kept = nms([bev[i] for i in order], float(thresh))
        keep += [order[k] for k in kept][: post_max_sizes[c]]
    return keep
