"""Shared pieces of the interactive views (`registration.view`, `detection.view`): thinning a cloud for the
browser and writing one self-contained HTML file.

A view embeds plotly.js (about 4.6 MB), so it opens with no network. plotly is imported inside the functions:
the package imports without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception3d._io import write_text_atomic

# points drawn per cloud: WebGL stays fluid on a laptop up to a few hundred thousand; 30k keeps a phone usable
MAX_VIEW_POINTS = 30_000


def thin(points: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most `max_points` rows of `points`, a seeded random subset in the original order (all when fewer)."""
    points = np.asarray(points)
    if len(points) <= max_points:
        return points
    keep = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
    return points[keep]


def shown(kept: int, total: int, what: str) -> str:
    """"all 5,210 source points" or "30,000 of 120,000 lidar points"."""
    return f"all {total:,} {what}" if kept == total else f"{kept:,} of {total:,} {what} (random subset)"


def line_segments(starts: np.ndarray, ends: np.ndarray) -> tuple[list, list, list]:
    """x, y, z lists of many segments for ONE plotly line trace, each segment followed by a gap (None)."""
    xs: list = []
    ys: list = []
    zs: list = []
    for a, b in zip(np.asarray(starts, dtype=float).tolist(), np.asarray(ends, dtype=float).tolist()):
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
        zs += [a[2], b[2], None]
    return xs, ys, zs


def write_html(fig, path: str | Path) -> Path:
    """Write a plotly figure as one HTML file with plotly.js embedded (no network at view time), atomically."""
    html = fig.to_html(include_plotlyjs=True, full_html=True, default_height="100vh", auto_play=False,
                       config={"responsive": True, "displaylogo": False})
    # phones: the page's own width, and no margin around the full-height plot
    html = html.replace("<head>", "<head><meta name='viewport' content='width=device-width, initial-scale=1'>"
                        "<style>body{margin:0}</style>", 1)
    return write_text_atomic(path, html)
