"""Labelled synthetic action clips that need time to be told apart, written as real MP4 files.

Each clip shows one object (a shape with an off-centre marker, random colours) over a textured
background that drifts, with camera shake and, sometimes, an occluding bar. The class is the object's
motion. Classes come in mirrored pairs whose single frames are drawn from the same distribution
(positions, sizes and angles are centred on a random midpoint), so one frame cannot tell them apart:

    slide_left / slide_right, rise / fall, rotate_cw / rotate_ccw, approach / leave (grows and moves
    down / shrinks and moves up), bounce / stay.

Every clip also records its shape (circle, square, triangle, ell, arrow) and, per frame, the object's
state as drawn (centre, radius, orientation of its marker) and its colour: static, single-frame labels
that the ViViT recipe uses to pre-train its spatial encoder on single frames (an image task: what the
object is and where it is in this one frame; no frame carries its action). Recording them draws nothing
from the random generator, so the clips are the same with or without them. Videos go through H.264 in
MP4, so training exercises decoding.

Layout written by `make_actions(out, seed=, size=)` (Kinetics-style: a folder per class plus lists):
    out/classes.txt                       one class name per line, in label order
    out/{train,val,test}.csv              header `path,label,shape`; path relative to out, label a class name
    out/videos/<class>/<split>_<n>.mp4
    out/attributes/<split>.npz            per clip, in list order: `shape` [N] (index into SHAPES),
                                          `colour` [N, 3] in [0, 1], and per frame [N, F]: `cx`, `cy`,
                                          `radius` (pixels of the frame) and `angle` (radians)
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from video._io import write_bytes_atomic, write_text_atomic

CLASSES = ("slide_left", "slide_right", "rise", "fall", "rotate_cw", "rotate_ccw", "approach", "leave", "bounce", "stay")
SHAPES = ("circle", "square", "triangle", "ell", "arrow")
# per class: (train, val, test) clips
SIZES = {"tiny": (3, 1, 1), "small": (90, 20, 20), "full": (400, 60, 60)}


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of a shape in its own unit frame (u right, v down, radius about 1)."""
    if shape == "circle":
        return u * u + v * v < 0.8
    if shape == "square":
        return (np.abs(u) < 0.75) & (np.abs(v) < 0.75)
    if shape == "triangle":
        return (v < 0.7) & (v > -0.9 + 1.8 * np.abs(u))
    if shape == "ell":
        return ((np.abs(u) < 0.8) & (v > 0.3) & (v < 0.8)) | ((u > -0.8) & (u < -0.3) & (np.abs(v) < 0.8))
    if shape == "arrow":
        return ((np.abs(v) < 0.22) & (u > -0.85) & (u < 0.15)) | ((u >= 0.15) & (u < 0.9) & (np.abs(v) < (0.9 - u) * 1.1))
    raise ValueError(shape)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured texture `float32 [size, size, 3]` in [0, 1]: a few random gratings plus grain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.zeros((size, size, 3), np.float32)
    base = rng.uniform(0.2, 0.8, 3)
    for _ in range(4):
        freq = rng.uniform(1, 6)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
        img += wave[..., None] * rng.uniform(-0.035, 0.035, 3)
    img += base + rng.normal(0, 0.015, (size, size, 3))
    return np.clip(img, 0, 1)


def _trajectory(cls: str, t: np.ndarray, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Centre (x, y) in pixels, radius in pixels, angle in radians for times `t` in [0, 1]."""
    n = len(t)
    cx = np.full(n, rng.uniform(0.4, 0.6) * size)
    cy = np.full(n, rng.uniform(0.4, 0.6) * size)
    radius = np.full(n, rng.uniform(0.15, 0.21) * size)
    angle = np.full(n, rng.uniform(0, 2 * math.pi))
    travel = rng.uniform(0.4, 0.55) * size
    s = t - 0.5  # centred time: single frames of mirrored classes share one distribution
    if cls in ("slide_left", "slide_right"):
        cx = cx + (1 if cls == "slide_right" else -1) * travel * s
    elif cls in ("rise", "fall"):
        cy = cy + (1 if cls == "fall" else -1) * travel * s
    elif cls in ("rotate_cw", "rotate_ccw"):
        omega = rng.uniform(1.2, 2.2) * math.pi  # total turn over the clip: 216-396 degrees
        angle = angle + (1 if cls == "rotate_cw" else -1) * omega * s
    elif cls in ("approach", "leave"):
        growth = rng.uniform(0.6, 0.9)  # log-scale change over the clip
        sign = 1 if cls == "approach" else -1
        radius = radius * np.exp(sign * growth * s)
        cy = cy + sign * 0.15 * size * s
    elif cls == "bounce":
        bounces = rng.uniform(1.5, 2.5)
        height = rng.uniform(0.2, 0.3) * size
        cy = cy + height * (0.5 - np.abs(np.sin(math.pi * bounces * t + rng.uniform(0, math.pi))))
    elif cls == "stay":
        cy = cy + rng.normal(0, 0.01 * size, n)
    cx = cx + rng.normal(0, 0.005 * size, n)  # small wobble in every class
    return {"cx": cx, "cy": cy, "radius": radius, "angle": angle}


def render_clip(cls: str, shape: str, rng: np.random.Generator, *, num_frames: int = 24, size: int = 80,
                occlusion_prob: float = 0.25, shake: float = 1.0, attributes: dict[str, Any] | None = None) -> np.ndarray:
    """One clip `uint8 [num_frames, size, size, 3]` of `shape` doing `cls`.

    `attributes`, when given, is filled with the object's state as drawn in each frame (camera shake
    included): `cx`, `cy`, `radius` [num_frames] in pixels, `angle` [num_frames] radians, `colour` [3].
    """
    pad = 8
    tex = _texture(rng, size + 2 * pad + 32)
    drift = rng.uniform(-4, 4, 2) * size / 80  # background motion over the clip, pixels
    colour = rng.uniform(0, 1, 3)
    if np.abs(colour - tex.mean((0, 1))).max() < 0.45:  # keep the object visible against the texture
        colour = np.where(tex.mean((0, 1)) > 0.5, colour * 0.2, 0.8 + colour * 0.2)
    marker = 1.0 - colour
    t = np.linspace(0, 1, num_frames)
    traj = _trajectory(cls, t, rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    occluder = None
    if rng.random() < occlusion_prob:
        width = rng.uniform(0.08, 0.16) * size
        start = rng.uniform(0.1, 0.9) * size
        speed = rng.uniform(-0.3, 0.3) * size
        occluder = (rng.random() < 0.5, width, start, speed, rng.uniform(0.3, 0.7))
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    drawn = np.zeros((num_frames, 2), np.float32)
    for i in range(num_frames):
        jx, jy = rng.normal(0, shake, 2)
        drawn[i] = traj["cx"][i] + jx, traj["cy"][i] + jy
        ox = int(round(pad + 16 + drift[0] * t[i] + jx))
        oy = int(round(pad + 16 + drift[1] * t[i] + jy))
        img = tex[oy:oy + size, ox:ox + size].copy()
        c, s_ = math.cos(traj["angle"][i]), math.sin(traj["angle"][i])
        dx, dy = (xx - traj["cx"][i] - jx) / traj["radius"][i], (yy - traj["cy"][i] - jy) / traj["radius"][i]
        u, v = c * dx + s_ * dy, -s_ * dx + c * dy
        img[_shape_mask(shape, u, v)] = colour
        img[(u - 0.45) ** 2 + (v + 0.45) ** 2 < 0.05] = marker
        if occluder is not None:
            vertical, width, start, speed, grey = occluder
            pos = start + speed * t[i]
            band = np.abs((xx if vertical else yy) - pos) < width / 2
            img[band] = grey
        frames[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    if attributes is not None:
        attributes.update(cx=drawn[:, 0], cy=drawn[:, 1], radius=traj["radius"].astype(np.float32),
                          angle=traj["angle"].astype(np.float32), colour=colour.astype(np.float32))
    return frames


def make_actions(out: Path, *, seed: int = 0, size: str = "small", num_frames: int = 24, frame_size: int = 80,
                 fps: float = 12.0) -> dict[str, Any]:
    """Write the synthetic action set (see the module docstring) and return a summary.

    Args:
        out: output folder.
        seed: generator seed; the same seed gives the same clips.
        size: "tiny" (3/1/1 clips per class for train/val/test), "small" (90/20/20) or "full" (400/60/60).
        num_frames, frame_size, fps: clip length, frame height = width in pixels, frame rate.
    """
    from video.io import write_video

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts = dict(zip(("train", "val", "test"), SIZES[size]))
    summary: dict[str, Any] = {"classes": len(CLASSES), "frames": num_frames, "frame_size": frame_size, "fps": fps}
    for split, per_class in counts.items():
        rows = []
        attrs: dict[str, list] = {k: [] for k in ("shape", "colour", "cx", "cy", "radius", "angle")}
        for cls in CLASSES:
            for n in range(per_class):
                shape = SHAPES[int(rng.integers(len(SHAPES)))]
                clip_rng = np.random.default_rng(rng.integers(2**63))
                drawn: dict[str, Any] = {}
                frames = render_clip(cls, shape, clip_rng, num_frames=num_frames, size=frame_size, attributes=drawn)
                rel = f"videos/{cls}/{split}_{n:04d}.mp4"
                write_video(out / rel, frames, fps)
                rows.append((rel, cls, shape))
                attrs["shape"].append(SHAPES.index(shape))
                for k in ("colour", "cx", "cy", "radius", "angle"):
                    attrs[k].append(drawn[k])
        _write_csv(out / f"{split}.csv", rows)
        _write_npz(out / "attributes" / f"{split}.npz", {k: np.asarray(v) for k, v in attrs.items()})
        summary[f"{split}_clips"] = len(rows)
    write_text_atomic(out / "classes.txt", "".join(c + "\n" for c in CLASSES))
    summary["path"] = str(out)
    return summary


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_attributes(root: str | Path, split: str) -> dict[str, np.ndarray]:
    """The per-clip and per-frame attributes of a split written by `make_actions` (see the module docstring)."""
    path = Path(root) / "attributes" / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no attributes (data written before they were recorded? make it again)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    write_text_atomic(path, "path,label,shape\n" + "".join(f"{p},{label},{shape}\n" for p, label, shape in rows))
