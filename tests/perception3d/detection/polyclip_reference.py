"""An independent float64 reference for rotated-box overlap: Sutherland-Hodgman clipping in pure Python.

Written separately from `perception3d.detection.boxes` (different algorithm: clip one polygon by the
half-planes of the other) so that the two can check each other.
"""

from __future__ import annotations

import math


def corners(box):
    """Counter-clockwise BEV corners of `[x, y, z, dx, dy, dz, heading]` as a list of (x, y)."""
    x, y, _, dx, dy, _, h = (float(v) for v in box)
    c, s = math.cos(h), math.sin(h)
    out = []
    for sx, sy in ((0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5)):
        lx, ly = sx * dx, sy * dy
        out.append((x + c * lx - s * ly, y + s * lx + c * ly))
    return out


def clip(subject, clipper):
    """Clip polygon `subject` by the convex counter-clockwise polygon `clipper`."""
    output = list(subject)
    n = len(clipper)
    for i in range(n):
        ax, ay = clipper[i]
        bx, by = clipper[(i + 1) % n]

        def side(p):
            return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)

        inp, output = output, []
        if not inp:
            break
        prev = inp[-1]
        for cur in inp:
            sc, sp = side(cur), side(prev)
            if sc >= 0:
                if sp < 0:
                    output.append(_cross(prev, cur, sp, sc))
                output.append(cur)
            elif sp >= 0:
                output.append(_cross(prev, cur, sp, sc))
            prev = cur
    return output


def _cross(p, q, sp, sq):
    t = sp / (sp - sq)
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def area(poly):
    s = 0.0
    for i in range(len(poly)):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % len(poly)]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def iou_bev(a, b):
    inter = area(clip(corners(a), corners(b)))
    return inter / (a[3] * a[4] + b[3] * b[4] - inter)


def iou_3d(a, b):
    inter_bev = area(clip(corners(a), corners(b)))
    zo = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    inter = inter_bev * zo
    return inter / (a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter)
