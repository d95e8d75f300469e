"""Synthetic multi-view, multi-modal recordings of one room, written as real files.

One scene: a room of 8 x 6 x 2.6 m with a desk (laptop), a sofa, a floor lamp and a door. One or two actors walk
between them and act. The classes (`CLASSES`) and what reveals each:

| class       | seen as                                   | heard as                               |
|-------------|-------------------------------------------|----------------------------------------|
| Walk        | legs apart, moving                        | quiet footsteps                        |
| Sit         | a lower silhouette on the sofa            | nothing                                |
| UseLaptop   | the laptop screen lit (small)             | quiet key clicks (near mics only)      |
| TurnOnLamp  | the lamp shade lit                        | a faint click and hum                  |
| PhoneCall   | a tiny lit phone by the head (1-2 px)     | ringing, then speech-like babble       |
| Vacuum      | a vacuum box beside the actor             | a loud motor, everywhere               |
| LieDown     | a low, long silhouette on the floor       | nothing                                |

LieDown happens in the middle of the room, which no camera is aimed at (the cameras see it at most at the edge
of their field of view): the lidar, which sees posture as height, is the sensor that carries it.

What makes it a multi-view problem (no single view sees everything, by construction and by chance):
- each camera is aimed at one station, so an actor elsewhere is outside its field of view;
- per recording and camera (p 0.35), a tall occluder (a shelf or a plant) stands between the camera and its
  station; it is a world object, so it also hides things from the other cameras and shows in the lidar;
- per recording (p 0.4), the room lights go off for 35-70 % of the recording: the cameras see a dark, noisy
  image (emissive things, a lit lamp, a laptop screen, a phone, stay visible) and the person detector mostly
  fails; the lidar and the microphones do not care;
- per camera (p 0.2), a 2-5 s outage (the stream stalls: no frames), besides ~3 % dropped and ~2 % repeated
  frames.

Sensors, each with its own clock (`t_true = scale * t_sensor + offset`, written to the manifest as calibration):
- 4 pinhole cameras (64 x 64, 60 degree field of view) on the walls, each aimed at a different part of the room, so
  that no view sees every station and actors occlude each other and the furniture (painter's algorithm on
  camera-facing billboards, depth-sorted). Frame rates differ (8 to 15 fps), clocks are offset by up to
  +-0.6 s with up to +-200 ppm drift, and ~3 % of frames are dropped and ~2 % repeated (stale content at a new
  timestamp). Written as H.264 mp4 with an AAC audio track (16 kHz mono) from a microphone at the camera:
  sources are attenuated by 1 / (1 + distance) and delayed by distance / 343 m/s.
- A lidar at the room centre, 1.0 m high, 10 Hz, its own clock: ~200-300 points per sweep on walls, floor,
  furniture, the actors (cylinders, their height showing the posture) and the vacuum; no occlusion model.
  Written as `lidar/sweep_######.npy` [P, 4] (x, y, z, intensity) float32 and `lidar/timestamps.npy`.
- Per-frame person scores per camera (what a person detector would say: 0 when no actor is visible, else the
  visible fraction of the most visible actor, slightly noisy), stored in the manifest.

Labels: `tricks` (start, end, labels) in true seconds, as MultiSensor-Home; frame labels follow on any grid.
Layout of `out/`: `rec_####/{cam1..4.mp4, lidar/, recording.json}` and `{train,val,test}.json` in the
MultiSensor-Home format (`video_url_1..4`, `tricks`, plus `recording`: our manifest with clocks and lidar).
"""

from __future__ import annotations

import fractions
import math
from pathlib import Path
from typing import Any

import numpy as np

from fusion._io import atomic_write, write_json_atomic

__all__ = ["CLASSES", "make_multiview_recordings", "make_recording"]

CLASSES = ["Walk", "Sit", "UseLaptop", "TurnOnLamp", "PhoneCall", "Vacuum", "LieDown"]
ROOM = (8.0, 6.0, 2.6)
STATIONS = {"desk": (1.4, 1.0), "sofa": (6.6, 1.0), "lamp": (6.9, 4.9), "door": (1.0, 5.7)}
STAND_AT = {"desk": (1.4, 1.6), "sofa": (6.6, 1.0), "lamp": (6.3, 4.7)}
LIE_AREA = (3.4, 2.6, 5.0, 4.0)  # x0, y0, x1, y1 m: the free floor in the middle of the room
SIZES = {  # recordings per split, seconds per recording
    "tiny": ((2, 1, 1), 6.0),
    "small": ((128, 32, 96), 12.0),  # 96 held-out recordings: mAP differences of ~1 point are not noise
    "full": ((400, 80, 160), 12.0),
}
SR = 16000
IMG = 64


# --------------------------------------------------------------------------------------------- actor scripts

class Actor:
    """A scripted actor: piecewise-linear position, posture and the props of each action."""

    def __init__(self, rng: np.random.Generator, duration: float, colour: tuple[int, int, int]):
        self.colour = colour
        self.keys: list[tuple[float, float, float]] = []  # (t, x, y)
        self.actions: list[tuple[float, float, str]] = []
        t = 0.0
        x, y = rng.uniform(2.0, 6.0), rng.uniform(1.8, 4.5)
        self.keys.append((t, x, y))
        while t < duration:
            kind = str(rng.choice(["Sit", "UseLaptop", "TurnOnLamp", "Vacuum", "PhoneCall", "LieDown", "Idle"],
                                  p=[0.17, 0.17, 0.13, 0.13, 0.13, 0.14, 0.13]))
            if kind in ("Sit", "UseLaptop", "TurnOnLamp"):
                station = {"Sit": "sofa", "UseLaptop": "desk", "TurnOnLamp": "lamp"}[kind]
                tx, ty = STAND_AT[station]
                tx, ty = tx + rng.uniform(-0.15, 0.15), ty + rng.uniform(-0.1, 0.1)
                t, x, y = self._walk(t, x, y, tx, ty, rng)
                length = rng.uniform(2.0, 4.5)
                self.actions.append((t, t + length, kind))
                if kind == "Sit" and rng.random() < 0.45:  # a phone call while seated: two labels at once
                    a = t + rng.uniform(0.0, length / 2)
                    self.actions.append((a, min(t + length, a + rng.uniform(1.5, 3.0)), "PhoneCall"))
                t += length
                self.keys.append((t, x, y))
            elif kind == "Vacuum":
                length = rng.uniform(2.5, 4.5)
                start = t
                for _ in range(3):
                    t, x, y = self._walk(t, x, y, rng.uniform(2.5, 5.5), rng.uniform(2.0, 4.2), rng, speed=0.7,
                                         label=False)
                    if t - start > length:
                        break
                self.actions.append((start, t, "Vacuum"))
            elif kind == "LieDown":
                x0, y0, x1, y1 = LIE_AREA
                t, x, y = self._walk(t, x, y, rng.uniform(x0, x1), rng.uniform(y0, y1), rng)
                length = rng.uniform(2.0, 4.0)
                self.actions.append((t, t + length, "LieDown"))
                t += length
                self.keys.append((t, x, y))
            elif kind == "PhoneCall":
                length = rng.uniform(2.0, 4.0)
                self.actions.append((t, t + length, "PhoneCall"))
                t += length
                self.keys.append((t, x, y))
            else:
                t += rng.uniform(0.8, 2.0)
                self.keys.append((t, x, y))

    def _walk(self, t: float, x: float, y: float, tx: float, ty: float, rng: np.random.Generator,
              speed: float | None = None, label: bool = True) -> tuple[float, float, float]:
        dist = math.hypot(tx - x, ty - y)
        dur = max(dist / (speed or rng.uniform(1.0, 1.4)), 0.3)
        if label:
            self.actions.append((t, t + dur, "Walk"))
        self.keys.append((t + dur, tx, ty))
        return t + dur, tx, ty

    def doing(self, t: float, kind: str) -> bool:
        return any(a <= t < b and k == kind for a, b, k in self.actions)

    def position(self, t: float) -> tuple[float, float]:
        ts = np.array([k[0] for k in self.keys])
        return float(np.interp(t, ts, [k[1] for k in self.keys])), float(np.interp(t, ts, [k[2] for k in self.keys]))

    def tricks(self, duration: float) -> list[dict[str, Any]]:
        out = []
        for a, b, k in self.actions:
            a, b = max(a, 0.0), min(b, duration)
            if b - a > 0.2:
                out.append({"start": round(a, 3), "end": round(b, 3), "labels": [k]})
        return out


# --------------------------------------------------------------------------------------------- cameras

class Camera:
    """Pinhole camera at `pos` (m) looking at `target`, horizontal field of view `fov` degrees, IMG x IMG pixels."""

    def __init__(self, pos: tuple[float, float, float], target: tuple[float, float, float], fov: float = 60.0):
        self.pos = np.asarray(pos, float)
        fwd = np.asarray(target, float) - self.pos
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        self.R = np.stack([right, down, fwd])  # rows: camera axes in the world frame
        self.f = (IMG / 2) / math.tan(math.radians(fov) / 2)

    def project(self, p: np.ndarray) -> tuple[float, float, float]:
        """World point -> (u, v, depth); depth <= 0 is behind the camera."""
        c = self.R @ (np.asarray(p, float) - self.pos)
        if c[2] <= 1e-3:
            return 0.0, 0.0, -1.0
        return self.f * c[0] / c[2] + IMG / 2, self.f * c[1] / c[2] + IMG / 2, float(c[2])

    def background(self, tint: np.ndarray) -> np.ndarray:
        """Ray-cast the empty room: floor tiles, walls, ceiling -> [IMG, IMG, 3] float."""
        v, u = np.mgrid[0:IMG, 0:IMG] + 0.5
        d = (self.R.T @ np.stack([(u - IMG / 2) / self.f, (v - IMG / 2) / self.f, np.ones_like(u)]).reshape(3, -1))
        best = np.full(d.shape[1], np.inf)
        colour = np.zeros((d.shape[1], 3))
        planes = [(2, 0.0, (150, 120, 90)), (2, ROOM[2], (235, 235, 230)), (0, 0.0, (200, 190, 170)),
                  (0, ROOM[0], (180, 195, 200)), (1, 0.0, (190, 200, 180)), (1, ROOM[1], (205, 185, 185))]
        for axis, value, base in planes:
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (value - self.pos[axis]) / d[axis]
            ok = (s > 0) & (s < best)
            hit = self.pos[:, None] + s * d
            shade = np.ones(d.shape[1])
            if axis == 2 and value == 0.0:  # floor tiles of 0.5 m
                shade = 0.85 + 0.15 * ((np.floor(hit[0] * 2) + np.floor(hit[1] * 2)) % 2)
            best = np.where(ok, s, best)
            colour[ok] = np.asarray(base)[None] * shade[ok, None]
        return colour.reshape(IMG, IMG, 3) * tint


def _cameras(rng: np.random.Generator) -> list[Camera]:
    j = lambda s: rng.uniform(-s, s)  # noqa: E731
    specs = [((4.0 + j(0.3), 0.15, 2.2), (1.4, 1.2, 0.7)),     # aimed at the desk
             ((7.85, 3.0 + j(0.3), 2.2), (6.6, 1.0, 0.6)),     # the sofa
             ((4.2 + j(0.3), 5.85, 2.2), (6.9, 4.8, 0.9)),     # the lamp
             ((0.15, 1.6 + j(0.3), 2.3), (1.2, 5.4 + j(0.3), 0.8))]   # the door (the middle is nobody's target)
    return [Camera(p, (t[0] + j(0.2), t[1] + j(0.2), t[2])) for p, t in specs]


def _occluders(cams: list[Camera], rng: np.random.Generator, p: float = 0.35) -> list[dict[str, Any]]:
    """Per camera with probability p, a tall shelf or plant between the camera and its station (a world object)."""
    out = []
    for cam in cams:
        if rng.random() >= p:
            continue
        fwd = cam.R[2][:2] / np.linalg.norm(cam.R[2][:2])
        d = rng.uniform(1.0, 2.0)
        side = np.array([-fwd[1], fwd[0]]) * rng.uniform(-0.35, 0.35)
        x, y = cam.pos[:2] + fwd * d + side
        out.append(dict(x=float(np.clip(x, 0.3, ROOM[0] - 0.3)), y=float(np.clip(y, 0.3, ROOM[1] - 0.3)), z0=0.0,
                        h=rng.uniform(1.7, 2.1), w=rng.uniform(0.7, 1.2),
                        colour=(60, 110, 55) if rng.random() < 0.5 else (120, 95, 70), id=0))
    return out


def _scene_items(actors: list[Actor], t: float, occluders: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Camera-facing billboards at time t: dict(x, y, z0, h, w, colour, id). id > 0: actor (for person scores);
    `glow`: emissive (stays visible in the dark)."""
    items = [*occluders,
        dict(x=1.4, y=1.0, z0=0.0, h=0.75, w=1.2, colour=(110, 75, 45), id=0),                       # desk
        dict(x=6.6, y=0.8, z0=0.0, h=0.8, w=1.6, colour=(120, 40, 45), id=0),                        # sofa
        dict(x=6.9, y=4.9, z0=0.0, h=1.5, w=0.06, colour=(90, 90, 90), id=0),                        # lamp pole
        dict(x=1.0, y=5.95, z0=0.0, h=2.0, w=0.9, colour=(95, 65, 40), id=0),                        # door
    ]
    laptop_on = any(a.doing(t, "UseLaptop") for a in actors)
    lamp_on = any(a.doing(t, "TurnOnLamp") for a in actors)
    items.append(dict(x=1.4, y=0.95, z0=0.75, h=0.25, w=0.35, colour=(90, 230, 255) if laptop_on else (40, 40, 45),
                      id=0, glow=laptop_on))
    items.append(dict(x=6.9, y=4.9, z0=1.45, h=0.35, w=0.45, colour=(255, 240, 90) if lamp_on else (200, 190, 160),
                      id=0, glow=lamp_on))
    for i, a in enumerate(actors):
        x, y = a.position(t)
        if a.doing(t, "LieDown"):  # a low, long body on the floor, the head at one end
            items.append(dict(x=x, y=y, z0=0.0, h=0.35, w=1.5, colour=a.colour, id=i + 1))
            items.append(dict(x=x, y=y, z0=0.05, h=0.25, w=0.25, colour=(225, 190, 160), id=i + 1, side=0.85))
            continue
        sitting = a.doing(t, "Sit")
        walking = a.doing(t, "Walk") or a.doing(t, "Vacuum")
        h = 1.15 if sitting else 1.7
        legs = 0.0 if sitting else 0.8
        items.append(dict(x=x, y=y, z0=legs, h=h - legs - 0.25, w=0.45, colour=a.colour, id=i + 1))           # torso
        items.append(dict(x=x, y=y, z0=h - 0.25, h=0.25, w=0.22, colour=(225, 190, 160), id=i + 1))           # head
        if legs:
            items.append(dict(x=x, y=y, z0=0.0, h=legs, w=0.42 if walking else 0.2, colour=(50, 50, 80),
                              id=i + 1, split=walking))                                                        # legs
        if a.doing(t, "PhoneCall"):
            items.append(dict(x=x, y=y - 0.01, z0=h - 0.2, h=0.12, w=0.08, colour=(120, 255, 120), id=0, side=0.17,
                              glow=True))
        if a.doing(t, "Vacuum"):
            items.append(dict(x=x + 0.35, y=y + 0.2, z0=0.0, h=0.35, w=0.45, colour=(230, 120, 30), id=0))
    return items


def _render(cam: Camera, bg: np.ndarray, items: list[dict[str, Any]], n_actors: int, rng: np.random.Generator,
            *, dark: bool = False) -> tuple[np.ndarray, float]:
    """Painter's algorithm over billboards -> (image [IMG, IMG, 3] uint8, person score).

    dark: the room lights are off: everything but emissive items (`glow`) is at 10 % brightness, the sensor noise
    is stronger, and the person detector mostly fails (its score is scaled by 0.2)."""
    light = 0.1 if dark else 1.0
    img = bg * light
    ids = np.zeros((IMG, IMG), np.int16)
    drawn = []
    for it in items:
        centre = np.array([it["x"], it["y"], it["z0"] + it["h"] / 2])
        _, _, depth = cam.project(centre)
        if depth > 0:
            drawn.append((depth, it))
    full = np.zeros(n_actors + 1)
    for depth, it in sorted(drawn, key=lambda d: -d[0]):
        u0, vb, _ = cam.project([it["x"], it["y"], it["z0"]])
        _, vt, _ = cam.project([it["x"], it["y"], it["z0"] + it["h"]])
        half = cam.f * it["w"] / 2 / depth
        u0 += cam.f * it.get("side", 0.0) / depth
        cols = slice(max(int(round(u0 - half)), 0), min(int(round(u0 + half)) + 1, IMG))
        rows = slice(max(int(round(vt)), 0), min(int(round(vb)) + 1, IMG))
        if cols.start >= cols.stop or rows.start >= rows.stop:
            continue
        shade = float(np.clip(1.15 - depth / 12, 0.6, 1.1))
        img[rows, cols] = np.asarray(it["colour"]) * shade * (1.0 if it.get("glow") else light)
        if it.get("split"):  # a gap between the legs of a walking actor
            gap = slice(max(int(round(u0 - half / 3)), 0), min(int(round(u0 + half / 3)) + 1, IMG))
            img[rows, gap] = bg[rows, gap] * light
        if it["id"]:
            ids[rows, cols] = it["id"]
            full[it["id"]] += (rows.stop - rows.start) * (cols.stop - cols.start)
    img = img + rng.normal(0, 7.0 if dark else 4.0, img.shape)
    score = 0.0
    for i in range(1, n_actors + 1):
        if full[i] >= 6:
            visible = (ids == i).sum() / full[i]
            score = max(score, float(np.clip(visible * rng.uniform(0.85, 1.0), 0, 1)) if visible > 0.15 else 0.0)
    if dark:
        score *= 0.2
    return np.clip(img, 0, 255).astype(np.uint8), score


# --------------------------------------------------------------------------------------------- audio

def _tone(t: np.ndarray, f: float) -> np.ndarray:
    return np.sin(2 * np.pi * f * t)


def _sources(actors: list[Actor], duration: float, rng: np.random.Generator) -> list[tuple[np.ndarray, Any]]:
    """Sound sources on the true clock at SR: (signal [N], position(t) -> (x, y))."""
    n = int((duration + 2.0) * SR)
    t = np.arange(n) / SR - 1.0  # covers true time -1 .. duration + 1
    out = []
    for a in actors:
        sig = np.zeros(n)
        for start, end, kind in a.actions:
            m = (t >= start) & (t < end)
            if m.sum() < 64:  # shorter than 4 ms (an action cut by the recording's end): nothing to hear
                continue
            tt = t[m] - start
            if kind == "Walk":      # footsteps: 80 Hz thumps every 0.5 s
                phase = tt % 0.5
                sig[m] += 0.25 * np.exp(-phase * 40) * _tone(tt, 80) * (phase < 0.12)
            elif kind == "UseLaptop":  # key clicks, ~8/s
                clicks = np.zeros(m.sum())
                for c in rng.uniform(0, tt[-1], size=max(int(8 * tt[-1]), 1)):
                    k = int(c * SR)
                    clicks[k:k + 60] += rng.normal(0, 1, len(clicks[k:k + 60])) * np.exp(-np.arange(len(clicks[k:k + 60])) / 15)
                sig[m] += 0.12 * clicks
            elif kind == "TurnOnLamp":  # a click at the start and a faint hum
                sig[m] += 0.02 * _tone(tt, 120) + 0.4 * (tt < 0.01) * rng.normal(0, 1, m.sum())
            elif kind == "PhoneCall":  # ringing for 1 s, then speech-like babble (band noise at syllable rate)
                ring = (tt < 1.0) * (np.sin(2 * np.pi * 20 * tt) > 0) * (_tone(tt, 1200) + _tone(tt, 1600)) * 0.25
                noise = rng.normal(0, 1, m.sum())
                band = np.convolve(noise, np.hanning(9) / 4, mode="same") - np.convolve(noise, np.hanning(41) / 20,
                                                                                       mode="same")
                speech = (tt >= 1.0) * band * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * tt + rng.uniform(0, 6))) * 0.5
                sig[m] += ring + speech
            elif kind == "Vacuum":  # loud motor everywhere
                saw = 2 * ((tt * 140) % 1) - 1
                sig[m] += 0.35 * saw + 0.25 * np.convolve(rng.normal(0, 1, m.sum()), np.ones(6) / 6, mode="same")
        out.append((sig, a.position))
    # a distractor unrelated to any class: short beeps somewhere in the room
    sig = np.zeros(n)
    for c in rng.uniform(0, duration, size=rng.integers(0, 3)):
        m = (t >= c) & (t < c + 0.3)
        sig[m] += 0.2 * _tone(t[m], 900)
    spot = (rng.uniform(1, 7), rng.uniform(1, 5))
    out.append((sig, lambda _t, s=spot: s))
    return out


def _mic_track(sources, mic: np.ndarray, duration: float, rng: np.random.Generator) -> np.ndarray:
    """The mixture at a microphone on the true clock (time -1 .. duration + 1), [N] float32."""
    n = int((duration + 2.0) * SR)
    mix = rng.normal(0, 0.005, n)
    block_t = np.arange(-1.0, duration + 1.0, 0.1)
    for sig, pos in sources:
        dist = np.array([math.hypot(*(np.subtract(pos(max(bt, 0.0)), mic[:2]))) + 1.0 for bt in block_t])
        gain = np.interp(np.arange(n) / SR - 1.0, block_t, 1.0 / (1.0 + dist))
        delay = int(float(np.mean(dist)) / 343.0 * SR)
        mix[delay:] += (sig * gain)[: n - delay]
    return np.clip(mix, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------- lidar

def _lidar_sweep(actors: list[Actor], t: float, rng: np.random.Generator,
                 occluders: list[dict[str, Any]] = ()) -> np.ndarray:
    pts = []
    for o in occluders:  # static: a box of the occluder's width
        k = 15
        pts.append(np.stack([o["x"] + rng.uniform(-o["w"] / 2, o["w"] / 2, k), o["y"] + rng.uniform(-0.15, 0.15, k),
                             rng.uniform(0, o["h"], k), np.full(k, 0.4)], 1))
    # walls and floor (static, noisy)
    for _ in range(1):
        w = rng.uniform(0, 1, 120)
        side = rng.integers(0, 4, 120)
        x = np.where(side == 0, 0.0, np.where(side == 1, ROOM[0], w * ROOM[0]))
        y = np.where(side == 2, 0.0, np.where(side == 3, ROOM[1], w * ROOM[1]))
        y = np.where(side < 2, rng.uniform(0, ROOM[1], 120), y)
        pts.append(np.stack([x, y, rng.uniform(0, 2.4, 120), np.full(120, 0.3)], 1))
        pts.append(np.stack([rng.uniform(0, ROOM[0], 40), rng.uniform(0, ROOM[1], 40), np.zeros(40),
                             np.full(40, 0.2)], 1))
    for (cx, cy), (w, h), inten in [((1.4, 1.0), (1.2, 0.75), 0.5), ((6.6, 0.8), (1.6, 0.8), 0.45),
                                    ((6.9, 4.9), (0.3, 1.8), 0.6)]:
        k = 20
        pts.append(np.stack([cx + rng.uniform(-w / 2, w / 2, k), cy + rng.uniform(-0.2, 0.2, k),
                             rng.uniform(0, h, k), np.full(k, inten)], 1))
    for a in actors:
        x, y = a.position(t)
        if a.doing(t, "LieDown"):  # a low, long body along x
            pts.append(np.stack([x + rng.uniform(-0.8, 0.8, 50), y + rng.uniform(-0.2, 0.2, 50),
                                 rng.uniform(0, 0.35, 50), np.full(50, 0.75)], 1))
            continue
        h = 1.15 if a.doing(t, "Sit") else 1.7
        ang = math.atan2(3.0 - y, 4.0 - x) + rng.uniform(-1.2, 1.2, 50)  # the side facing the sensor
        pts.append(np.stack([x + 0.22 * np.cos(ang), y + 0.22 * np.sin(ang), rng.uniform(0, h, 50),
                             np.full(50, 0.75)], 1))
        if a.doing(t, "Vacuum"):
            pts.append(np.stack([x + 0.35 + rng.uniform(-0.2, 0.2, 15), y + 0.2 + rng.uniform(-0.15, 0.15, 15),
                                 rng.uniform(0, 0.35, 15), np.full(15, 0.95)], 1))
    p = np.concatenate(pts)
    p[:, :3] += rng.normal(0, 0.02, (len(p), 3))
    p[:, 3] = np.clip(p[:, 3] + rng.normal(0, 0.05, len(p)), 0, 1)
    return p.astype(np.float32)


# --------------------------------------------------------------------------------------------- writing

def _write_mp4(path: Path, frames: list[np.ndarray], pts: list[float], audio: np.ndarray) -> None:
    """H.264 video with the given presentation times (s) and an AAC 16 kHz mono track starting at sensor time 0."""
    import av

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4") as c:
            v = c.add_stream("libx264", rate=30)
            v.width = v.height = IMG
            v.pix_fmt = "yuv420p"
            v.time_base = fractions.Fraction(1, 1000)
            v.options = {"crf": "20", "preset": "veryfast", "x264-params": "bframes=0"}  # VFR pts: no reordering
            a = c.add_stream("aac", rate=SR)
            a.layout = "mono"
            last = -1
            for img, t in zip(frames, pts):
                ms = max(int(round(t * 1000)), last + 1)  # strictly increasing pts (a repeat gets its own stamp)
                last = ms
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts, f.time_base = ms, fractions.Fraction(1, 1000)  # not v.time_base: the muxer changes it
                for p in v.encode(f):
                    c.mux(p)
            for p in v.encode():
                c.mux(p)
            for s in range(0, len(audio), 1024):
                fr = av.AudioFrame.from_ndarray(audio[None, s:s + 1024], format="flt", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = SR, s, fractions.Fraction(1, SR)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)

    atomic_write(path, encode)


def make_recording(out: Path, *, seed: int, duration: float = 12.0, n_cameras: int = 4) -> dict[str, Any]:
    """Write one recording into `out/` and return its manifest (also written as `out/recording.json`)."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "lidar").mkdir(parents=True, exist_ok=True)
    palette = [(200, 60, 60), (60, 90, 200), (220, 200, 60), (150, 60, 170)]
    n_actors = 1 if rng.random() < 0.5 else 2
    colours = rng.permutation(len(palette))[:n_actors]
    actors = [Actor(rng, duration, palette[c]) for c in colours]
    tricks = sorted((tr for a in actors for tr in a.tricks(duration)), key=lambda d: d["start"])
    sources = _sources(actors, duration, rng)
    sensors = []
    cams = _cameras(rng)[:n_cameras]
    occluders = _occluders(cams, rng)
    dark = (0.0, 0.0)  # true-time interval with the room lights off
    if rng.random() < 0.4:
        length = rng.uniform(0.35, 0.7) * duration
        start = rng.uniform(0.0, duration - length)
        dark = (start, start + length)
    for i, cam in enumerate(cams):
        name = f"cam{i + 1}"
        fps = float(rng.choice([8.0, 10.0, 12.5, 15.0]))
        clock = {"scale": 1.0 + rng.uniform(-2e-4, 2e-4), "offset": rng.uniform(-0.6, 0.6)}
        outage = (0.0, 0.0)  # true-time interval in which this camera records nothing (a stalled stream)
        if rng.random() < 0.2:
            length = rng.uniform(2.0, 5.0) * min(1.0, duration / 12.0)
            start = rng.uniform(0.0, duration - length)
            outage = (start, start + length)
        bg = cam.background(rng.uniform(0.85, 1.1, 3))
        frames, pts, person = [], [], []
        k, prev = 0, None
        while True:
            ts = k / fps
            tt = clock["scale"] * ts + clock["offset"]
            if tt > duration:
                break
            k += 1
            r = rng.random()
            if r < 0.03 or outage[0] <= tt < outage[1]:
                continue  # dropped frame
            if r < 0.05 and prev is not None:
                img, score = prev  # repeated frame: stale content at a new timestamp
            else:
                img, score = _render(cam, bg, _scene_items(actors, max(tt, 0.0), occluders), n_actors, rng,
                                     dark=dark[0] <= tt < dark[1])
            prev = (img, score)
            frames.append(img)
            pts.append(ts)
            person.append(round(score, 3))
        # the microphone records from sensor time 0 to the end, on the camera's clock
        end_sensor = (duration - clock["offset"]) / clock["scale"]
        sensor_t = np.arange(int(end_sensor * SR)) / SR
        true_idx = np.round((clock["scale"] * sensor_t + clock["offset"] + 1.0) * SR).astype(np.int64)
        mix = _mic_track(sources, cam.pos, duration, rng)
        audio = mix[np.clip(true_idx, 0, len(mix) - 1)]
        _write_mp4(out / f"{name}.mp4", frames, pts, audio)
        sensors.append({"name": name, "kind": "video", "path": f"{name}.mp4", "fps": fps,
                        "clock": {k2: round(v, 7) for k2, v in clock.items()}, "person": person,
                        "camera": {"position": [round(float(x), 3) for x in cam.pos], "fov": 60.0},
                        "outage": [round(float(x), 3) for x in outage]})
    lidar_clock = {"scale": 1.0 + rng.uniform(-2e-4, 2e-4), "offset": rng.uniform(-0.3, 0.3)}
    stamps = []
    k = 0
    while True:
        ts = k * 0.1
        tt = lidar_clock["scale"] * ts + lidar_clock["offset"]
        if tt > duration:
            break
        np.save(out / "lidar" / f"sweep_{len(stamps):06d}.npy", _lidar_sweep(actors, max(tt, 0.0), rng, occluders))
        stamps.append(ts)
        k += 1
    np.save(out / "lidar" / "timestamps.npy", np.asarray(stamps))
    sensors.append({"name": "lidar", "kind": "lidar", "path": "lidar", "rate": 10.0,
                    "clock": {k2: round(v, 7) for k2, v in lidar_clock.items()}})
    manifest = {"format": "omnisense-recording", "version": 1, "duration": duration, "classes": CLASSES,
                "sensors": sensors, "tricks": tricks, "seed": seed, "actors": n_actors,
                "lights_off": [round(float(x), 3) for x in dark], "occluders": len(occluders),
                "note": "synthetic: generated by fusion.recordings.synthetic"}
    write_json_atomic(out / "recording.json", manifest)
    return manifest


def make_multiview_recordings(out: Path, *, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """The `multiview-recordings` generator: train/val/test recordings and MultiSensor-Home-style JSON lists."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    counts, duration = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = 0
    summary: dict[str, Any] = {"classes": CLASSES, "duration_s": duration}
    for split, n in zip(("train", "val", "test"), counts):
        entries = []
        for _ in range(n):
            name = f"rec_{index:04d}"
            if not (out / name / "recording.json").exists():  # resumable: finished recordings are kept
                make_recording(out / name, seed=seed * 100003 + index, duration=duration)
            import json

            manifest = json.loads((out / name / "recording.json").read_text())
            entry = {f"video_url_{i + 1}": f"{name}/{s['path']}"
                     for i, s in enumerate(x for x in manifest["sensors"] if x["kind"] == "video")}
            entry["tricks"] = manifest["tricks"]
            entry["recording"] = f"{name}/recording.json"
            entries.append(entry)
            index += 1
        write_json_atomic(out / f"{split}.json", entries)
        summary[f"{split}_recordings"] = n
    write_json_atomic(out / "all_labels.json", CLASSES)
    return summary
