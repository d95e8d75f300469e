"""An emulation, in plain Python, of the rotated BEV NMS kernel that DSVT's official post-processing calls
(`pcdet/ops/ioubev_nms/src/iou3d_kernel.cu`: `box_overlap`, `iou_bev`, `nms_kernel`, and `nms_gpu` in
`iou3d.cpp`), written from that source's geometry; no code is copied.

Boxes are the kernel's `[x1, y1, x2, y2, angle]`: the axis-aligned rectangle [x1, x2] x [y1, y2], whose corners
the kernel turns about its centre with `(dx cos a + dy sin a, -dx sin a + dy cos a)`, i.e. by -angle. The
overlap polygon is the edge intersections (strict crossings) plus the corners of each box inside the other
(1e-5 margin), sorted by angle about their mean; IoU divides by max(union, 1e-8). NMS is greedy over boxes in
the given order (the caller sorts by score): a box is dropped when its IoU with a kept box exceeds the threshold.

Used by tools/parity/dsvt.py in place of the compiled op, and by tests/parity to check
`perception3d.detection.head.class_nms(..., nms_convention="openpcdet_bev")` on random boxes.
"""

from __future__ import annotations

import math

EPS = 1e-8


def _cross(a, b, o=(0.0, 0.0)):
    return (a[0] - o[0]) * (b[1] - o[1]) - (b[0] - o[0]) * (a[1] - o[1])


def _corners(box):
    x1, y1, x2, y2, angle = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c, s = math.cos(angle), math.sin(angle)
    out = []
    for px, py in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        dx, dy = px - cx, py - cy
        out.append((dx * c + dy * s + cx, -dx * s + dy * c + cy))
    return out


def _inside(box, p, margin=1e-5):
    x1, y1, x2, y2, angle = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c, s = math.cos(-angle), math.sin(-angle)
    rx = (p[0] - cx) * c + (p[1] - cy) * s + cx
    ry = -(p[0] - cx) * s + (p[1] - cy) * c + cy
    return x1 - margin < rx < x2 + margin and y1 - margin < ry < y2 + margin


def _intersection(p1, p0, q1, q0):
    if not (min(p0[0], p1[0]) <= max(q0[0], q1[0]) and min(q0[0], q1[0]) <= max(p0[0], p1[0])
            and min(p0[1], p1[1]) <= max(q0[1], q1[1]) and min(q0[1], q1[1]) <= max(p0[1], p1[1])):
        return None
    s1 = _cross(q0, p1, p0)
    s2 = _cross(p1, q1, p0)
    s3 = _cross(p0, q1, q0)
    s4 = _cross(q1, p1, q0)
    if not (s1 * s2 > 0 and s3 * s4 > 0):
        return None
    s5 = _cross(q1, p1, p0)
    if abs(s5 - s1) > EPS:
        return ((s5 * q0[0] - s1 * q1[0]) / (s5 - s1), (s5 * q0[1] - s1 * q1[1]) / (s5 - s1))
    a0, b0, c0 = p0[1] - p1[1], p1[0] - p0[0], p0[0] * p1[1] - p1[0] * p0[1]
    a1, b1, c1 = q0[1] - q1[1], q1[0] - q0[0], q0[0] * q1[1] - q1[0] * q0[1]
    d = a0 * b1 - a1 * b0
    return ((b0 * c1 - b1 * c0) / d, (a1 * c0 - a0 * c1) / d)


def box_overlap(a, b) -> float:
    ca, cb = _corners(a), _corners(b)
    ca.append(ca[0])
    cb.append(cb[0])
    pts = []
    for i in range(4):
        for j in range(4):
            p = _intersection(ca[i + 1], ca[i], cb[j + 1], cb[j])
            if p is not None:
                pts.append(p)
    for k in range(4):
        if _inside(a, cb[k]):
            pts.append(cb[k])
        if _inside(b, ca[k]):
            pts.append(ca[k])
    if not pts:
        return 0.0
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    pts.sort(key=lambda p: math.atan2(p[1] - my, p[0] - mx))
    area = sum(_cross((pts[k][0] - pts[0][0], pts[k][1] - pts[0][1]),
                      (pts[k + 1][0] - pts[0][0], pts[k + 1][1] - pts[0][1])) for k in range(len(pts) - 1))
    return abs(area) / 2


def iou_bev(a, b) -> float:
    sa = (a[2] - a[0]) * (a[3] - a[1])
    sb = (b[2] - b[0]) * (b[3] - b[1])
    s = box_overlap(a, b)
    return s / max(sa + sb - s, EPS)


def nms(boxes, thresh: float) -> list[int]:
    """Indices kept, in the given order; `boxes` a sequence of [x1, y1, x2, y2, angle] sorted by score."""
    boxes = [tuple(float(v) for v in b) for b in boxes]
    removed = [False] * len(boxes)
    keep = []
    for i, bi in enumerate(boxes):
        if removed[i]:
            continue
        keep.append(i)
        for j in range(i + 1, len(boxes)):
            if not removed[j] and iou_bev(bi, boxes[j]) > thresh:
                removed[j] = True
    return keep


def official_bev_boxes(boxes):
    """What `multi_classes_nms_mmdet` hands the kernel for boxes `(N, 7)` [x, y, z, dx, dy, dz, heading]:
    `[x - dx/2, y - dy/2, x + dx/2, y + dy/2, limit(pi/2 - heading)]` (no dx/dy swap)."""
    out = []
    for x, y, _, dx, dy, _, h in (tuple(float(v) for v in b) for b in boxes):
        a = -h + math.pi / 2
        a = (a + math.pi) % (2 * math.pi) - math.pi
        out.append((x - dx / 2, y - dy / 2, x + dx / 2, y + dy / 2, a))
    return out
