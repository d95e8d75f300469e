"""Generated outliers for outlier exposure: inputs that belong to none of a classifier's classes.

The rejection detector (`omnisense.train.rejection`, score kind "detector") learns to tell training-like inputs from
inputs outside the vocabulary. The real out-of-vocabulary files of a validation half are few (14-38), so it also
sees many generated ones (outlier exposure with auxiliary outliers, Hendrycks et al., arXiv:1812.04606). Each
generator is seeded and avoids the vocabulary it serves:

- `shape_outliers`, for the procedural-shape classifiers (box, cylinder, cone, ellipsoid, torus, capsule, pyramid,
  table, mug, bowl, dumbbell, chair): single-viewpoint scans of scenes (a ground patch with 2-5 procedural objects,
  so never one object alone), lidar-like ring sweeps of a ground with poles, walls and boxes (whole or cropped),
  loose unions of 2-4 shapes at random offsets and tilts, shapes under strong high-frequency deformation, noise
  volumes and clusters, rough terrain with vegetation-like blobs, and bent or holed sheets;
- `audio_outliers(vocabulary="instruments")`, for the sonic-pi instrument model (whose vocabulary includes
  electronic blips, glitches and vinyl noise): speech-like babble (a glottal pulse train through moving formants,
  at syllable rate, with pauses; some band-limited to a telephone line), low-level line noise with mains hum,
  noise amplitude-modulated at 2-8 Hz, bird-like fast chirps, and room tone;
- `audio_outliers(vocabulary="real-sounds")`, for the coarse real-sound model (bird, instrument, noise,
  percussion, speech): electronic sounds only: sine, square and saw beeps, pitch-swept blips, arpeggiated square
  sequences, FM bleeps, bit-crushed stutters and ring-modulated (robot) babble.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

Rng = np.random.Generator


# ---- point clouds -----------------------------------------------------------------------------------------------

def _rotation(rng: Rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _shape(rng: Rng, n: int) -> np.ndarray:
    from perception3d.classification.shapes import CLASSES, Degradation, make_shape

    return make_shape(rng, int(rng.integers(len(CLASSES))), n, Degradation(0.0, 0.0, 0.0, 0.0)).astype(np.float64)


def local_crop(rng: Rng, xyz: np.ndarray, n: int = 2048) -> np.ndarray:
    """The `n` points nearest a random point of the cloud (as `omnisense.train.rejection` crops the real scans)."""
    centre = xyz[rng.integers(len(xyz))]
    return xyz[np.argsort(((xyz - centre) ** 2).sum(1))[:n]]


def _scene_scan(rng: Rng) -> np.ndarray:
    """A ground patch (4 x 4) with 2-5 procedural objects on it, seen from one viewpoint."""
    from perception3d.classification.shapes import visible_mask

    parts = [np.c_[rng.uniform(-2, 2, (6000, 2)), rng.normal(0, 0.01, 6000)]]
    for _ in range(rng.integers(2, 6)):
        obj = _shape(rng, 1500) * rng.uniform(0.2, 0.6)
        obj[:, 2] -= obj[:, 2].min()
        parts.append(obj + np.r_[rng.uniform(-1.6, 1.6, 2), 0.0])
    scene = np.concatenate(parts) / 3.0
    view = rng.normal(size=3)
    view[2] = abs(view[2]) * 0.5 + 0.1
    scene = scene[visible_mask(scene, view)]
    return local_crop(rng, scene) if rng.random() < 0.5 else scene


def _ring_sweep(rng: Rng) -> np.ndarray:
    """A spinning lidar's rings (16-64 beams) over a ground plane with vertical poles and walls: points where each
    beam first hits, within 15 m; whole, or the 2,048 points around a random one."""
    beams, height = int(rng.choice([16, 32, 64])), rng.uniform(1.0, 2.0)
    elev = np.deg2rad(np.linspace(-rng.uniform(15, 25), rng.uniform(2, 15), beams))
    azim = np.linspace(0, 2 * np.pi, 512, endpoint=False)
    e, a = np.meshgrid(elev, azim, indexing="ij")
    d = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
    t = np.full(len(d), np.inf)
    down = d[:, 2] < -1e-6
    t[down] = -height / d[down, 2]
    for _ in range(rng.integers(3, 12)):  # vertical cylinders (poles, trunks) standing on the ground
        cx, cy, r, top = *rng.uniform(-10, 10, 2), rng.uniform(0.1, 1.0), rng.uniform(0.5, 4.0)
        a2 = d[:, 0] ** 2 + d[:, 1] ** 2
        b2 = -2 * (d[:, 0] * cx + d[:, 1] * cy)
        c2 = cx ** 2 + cy ** 2 - r ** 2
        disc = b2 ** 2 - 4 * a2 * c2
        hit = (disc > 0) & (a2 > 1e-9)
        th = np.where(hit, (-b2 - np.sqrt(np.clip(disc, 0, None))) / (2 * a2 + 1e-12), np.inf)
        z = th * d[:, 2]
        ok = hit & (th > 0) & (z > -height) & (z < top - height)
        t = np.where(ok & (th < t), th, t)
    for _ in range(rng.integers(0, 3)):  # walls x = w or y = w
        axis, w = int(rng.integers(2)), rng.choice([-1, 1]) * rng.uniform(3, 12)
        th = np.where(np.abs(d[:, axis]) > 1e-6, w / np.where(np.abs(d[:, axis]) > 1e-6, d[:, axis], 1), np.inf)
        ok = (th > 0) & (th * d[:, 2] < rng.uniform(1, 5) - height)
        t = np.where(ok & (th < t), th, t)
    keep = t < 15
    xyz = d[keep] * t[keep, None] + rng.normal(0, 0.02, (int(keep.sum()), 3))
    return local_crop(rng, xyz) if rng.random() < 0.5 else xyz


def _union(rng: Rng) -> np.ndarray:
    """2-4 procedural shapes, each scaled, tilted and offset at random: unions and overlaps, not one object."""
    return np.concatenate([_shape(rng, 800) @ _rotation(rng).T * rng.uniform(0.3, 0.8) + rng.uniform(-0.9, 0.9, 3)
                           for _ in range(rng.integers(2, 5))])


def _deformed(rng: Rng) -> np.ndarray:
    """A procedural shape under a strong high-frequency displacement (3-8 waves across it)."""
    xyz = _shape(rng, 2048)
    freq, phase = rng.uniform(3, 8, (3, 3)) * np.pi, rng.uniform(0, 2 * np.pi, 3)
    return xyz + rng.uniform(0.08, 0.25) * np.sin(xyz @ freq + phase)


def _noise(rng: Rng) -> np.ndarray:
    """Volumes of noise: a Gaussian blob, a filled box or ball, or several clusters."""
    kind = rng.integers(3)
    if kind == 0:
        return rng.normal(size=(2048, 3)) * rng.uniform(0.3, 1.0, 3)
    if kind == 1:
        x = rng.uniform(-1, 1, (4096, 3))
        return x[np.linalg.norm(x, axis=1) <= 1] if rng.random() < 0.5 else x
    k = rng.integers(3, 9)
    centres = rng.uniform(-1, 1, (k, 3))
    return centres[rng.integers(k, size=2048)] + rng.normal(size=(2048, 3)) * rng.uniform(0.03, 0.2)


def _terrain(rng: Rng) -> np.ndarray:
    """A rough height field with vegetation-like noise blobs on it."""
    xy = rng.uniform(-1, 1, (3000, 2))
    z = sum(rng.uniform(0.02, 0.15) * np.sin(xy @ rng.normal(0, 4, 2) + rng.uniform(0, 6)) for _ in range(4))
    parts = [np.c_[xy, z + rng.normal(0, 0.01, len(xy))]]
    for _ in range(rng.integers(0, 6)):
        c = np.r_[rng.uniform(-1, 1, 2), rng.uniform(0.1, 0.4)]
        parts.append(c + rng.normal(size=(int(rng.integers(100, 400)), 3)) * rng.uniform(0.05, 0.2))
    return np.concatenate(parts)


def _sheet(rng: Rng) -> np.ndarray:
    """An open sheet, bent along one axis, with random round holes."""
    uv = rng.uniform(-1, 1, (4096, 2)) * np.r_[1.0, rng.uniform(0.3, 1.0)]
    for _ in range(rng.integers(0, 4)):
        uv = uv[np.linalg.norm(uv - rng.uniform(-0.8, 0.8, 2), axis=1) > rng.uniform(0.1, 0.3)]
    bend = rng.uniform(0, 2.5)
    u = uv[:, 0]
    x, z = (np.sin(bend * u) / bend, (1 - np.cos(bend * u)) / bend) if bend > 1e-3 else (u, 0 * u)
    return np.c_[x, uv[:, 1], z] @ _rotation(rng).T


SHAPE_OUTLIER_KINDS = {"scene_scan": _scene_scan, "ring_sweep": _ring_sweep, "union": _union, "deformed": _deformed,
                       "noise": _noise, "terrain": _terrain, "sheet": _sheet}


def shape_outliers(count: int, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """`count` generated clouds (`"kind-i"`, points `[N, 3]`, N >= 512) outside the procedural-shape vocabulary, the
    kinds in turn."""
    rng = np.random.default_rng(seed)
    kinds = list(SHAPE_OUTLIER_KINDS)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        xyz = SHAPE_OUTLIER_KINDS[kind](rng)
        yield f"{kind}-{i}", np.asarray(xyz, dtype=np.float64)


# ---- sounds -----------------------------------------------------------------------------------------------------

def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1, t / max(attack, 1e-4)) * np.minimum(1, (n / sr - t) / max(release, 1e-4)).clip(0)


def _coloured_noise(rng: Rng, n: int, slope: float) -> np.ndarray:
    """Noise with power falling as f^-slope (0 white, 1 pink, 2 brown), unit peak."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= f[1:] ** (slope / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-12)


def _bandpass(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, len(x))


def _babble(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Speech-like sound: a glottal pulse train (f0 80-260 Hz, drifting) through 3 formants that move every
    syllable (3-7 per second), with aspiration noise and pauses."""
    t = np.arange(n) / sr
    f0 = rng.uniform(80, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6)))
    phase = np.cumsum(f0) / sr
    source = (np.mod(phase, 1.0) < 0.08).astype(float) + 0.05 * rng.normal(size=n)
    rate = rng.uniform(3, 7)
    syll = np.floor(t * rate).astype(int)
    formants = rng.uniform([250, 800, 2000], [900, 2300, 3200], (syll.max() + 1, 3))
    out = np.zeros(n)
    spec = np.fft.rfft(source)
    f = np.fft.rfftfreq(n, 1 / sr)
    for s in range(syll.max() + 1):  # each syllable's formant filter, on its own stretch of the source
        mask = syll == s
        seg = np.fft.rfft(np.where(mask, source, 0))
        gain = sum(1 / (1 + ((f - fc) / (60 + 0.06 * fc)) ** 2) for fc in formants[s])
        out += np.fft.irfft(seg * gain, n)
    del spec
    envelope = np.clip(np.sin(np.pi * (t * rate % 1.0)), 0, None) ** 0.7
    pauses = rng.random(syll.max() + 1) < 0.2
    out = out * envelope * ~pauses[syll]
    return out / (np.abs(out).max() + 1e-12)


def _chirps(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Bird-like calls: fast downward or upward sweeps of 40-200 ms between 2 and 7 kHz, in bursts."""
    out = 0.02 * _coloured_noise(rng, n, 1.0)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.04, 0.2) * sr)
        f_a, f_b = rng.uniform(2000, min(7000, sr / 2 - 500), 2)
        seg = min(length, n - pos)
        f = np.linspace(f_a, f_b, seg)
        out[pos:pos + seg] += np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(seg)
        pos += seg + int(rng.uniform(0.03, 0.6) * sr)
    return out


def _tone(rng: Rng, f: np.ndarray, sr: int, wave: str) -> np.ndarray:
    phase = np.cumsum(f) / sr
    if wave == "sine":
        return np.sin(2 * np.pi * phase)
    if wave == "square":
        return np.sign(np.sin(2 * np.pi * phase))
    return 2 * np.mod(phase, 1.0) - 1


def _beeps(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Electronic beeps and blips: 1-8 short tones (sine, square or saw), steady or swept in pitch."""
    out = np.zeros(n)
    wave = str(rng.choice(["sine", "square", "saw"]))
    pos = int(rng.uniform(0, 0.1) * sr)
    for _ in range(rng.integers(1, 9)):
        seg = min(int(rng.uniform(0.03, 0.4) * sr), n - pos)
        if seg <= 16:
            break
        f_a = rng.uniform(200, 3000)
        f = np.geomspace(f_a, f_a * rng.choice([1.0, rng.uniform(0.25, 4.0)]), seg)
        out[pos:pos + seg] += _tone(rng, f, sr, wave) * _envelope(seg, sr, 0.002, rng.uniform(0.005, 0.1))
        pos += seg + int(rng.uniform(0.0, 0.3) * sr)
    return out


def _arpeggio(rng: Rng, n: int, sr: int) -> np.ndarray:
    """A fast square-wave arpeggio (chip-tune): notes of 30-120 ms on a random chord."""
    base = rng.uniform(110, 880)
    steps = base * 2 ** (np.array(rng.choice([[0, 4, 7, 12], [0, 3, 7, 10], [0, 5, 7, 12]])) / 12)
    note = int(rng.uniform(0.03, 0.12) * sr)
    f = np.repeat(np.resize(steps, n // note + 1), note)[:n]
    return _tone(rng, f, sr, "square") * 0.5


def _fm(rng: Rng, n: int, sr: int) -> np.ndarray:
    """FM bleeps: a carrier modulated by a fast oscillator, index swept."""
    t = np.arange(n) / sr
    carrier, mod = rng.uniform(200, 2000), rng.uniform(20, 800)
    index = rng.uniform(1, 10) * np.exp(-t * rng.uniform(0.5, 8))
    return np.sin(2 * np.pi * carrier * t + index * np.sin(2 * np.pi * mod * t)) * _envelope(n, sr, 0.005, 0.05)


def _crushed(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Glitch: a tone or noise burst, bit-crushed and sample-held, cut into stutters."""
    src = _beeps(rng, n, sr) + 0.5 * _coloured_noise(rng, n, rng.uniform(0, 2))
    hold = int(rng.integers(4, 40))
    src = np.repeat(src[::hold], hold)[:n]
    levels = 2 ** int(rng.integers(2, 5))
    src = np.round(src * levels) / levels
    gate = np.repeat(rng.random(n // 800 + 1) < 0.6, 800)[:n]
    return src * gate


def _robot(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Robot voice: babble ring-modulated by a 30-150 Hz carrier, flattened in pitch."""
    t = np.arange(n) / sr
    return _babble(rng, n, sr) * np.sin(2 * np.pi * rng.uniform(30, 150) * t)


def _line_noise(rng: Rng, n: int, sr: int) -> np.ndarray:
    """A quiet line: coloured noise at a low level with mains hum, optionally band-limited like a telephone."""
    t = np.arange(n) / sr
    hum = sum(np.sin(2 * np.pi * rng.choice([50, 60]) * k * t) / k for k in (1, 2, 3))
    x = 0.01 * _coloured_noise(rng, n, rng.uniform(0, 2)) + rng.uniform(0, 0.01) * hum
    return x


def _modulated_noise(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Noise amplitude-modulated at 2-8 Hz (speech rhythm without speech)."""
    t = np.arange(n) / sr
    am = (1 + np.sin(2 * np.pi * rng.uniform(2, 8) * t)) / 2
    return _bandpass(_coloured_noise(rng, n, rng.uniform(0, 1.5)), sr, 100, rng.uniform(2000, 7000)) * am


def _room(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Room tone: brown noise with a few faint rustles."""
    x = 0.05 * _coloured_noise(rng, n, 2.0)
    for _ in range(rng.integers(0, 5)):
        seg = int(rng.uniform(0.05, 0.5) * sr)
        pos = int(rng.integers(0, max(1, n - seg)))
        x[pos:pos + seg] += 0.1 * _coloured_noise(rng, seg, 0.5)[: n - pos] * np.hanning(seg)[: n - pos]
    return x


def _telephone(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Babble band-limited to 300-3400 Hz over faint line noise."""
    return _bandpass(_babble(rng, n, sr), sr, 300, 3400) + 0.01 * _coloured_noise(rng, n, 1.0)


SOUND_OUTLIER_KINDS = {
    "instruments": {"babble": _babble, "telephone": _telephone, "line_noise": _line_noise,
                    "modulated_noise": _modulated_noise, "chirps": _chirps, "room": _room},
    "real-sounds": {"beeps": _beeps, "arpeggio": _arpeggio, "fm": _fm, "crushed": _crushed, "robot": _robot},
}


def audio_outliers(vocabulary: str, count: int, *, sample_rate: int = 16000,
                   seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """`count` generated sounds (`"kind-i"`, mono waveform `[S]` float32 at `sample_rate`, 0.3-6 s, peak 0.05-0.9)
    outside `vocabulary` ("instruments": the sonic-pi instrument model's; "real-sounds": the coarse real-sound
    model's), the kinds in turn."""
    if vocabulary not in SOUND_OUTLIER_KINDS:
        raise ValueError(f"no generated outliers for vocabulary {vocabulary!r}; known: {sorted(SOUND_OUTLIER_KINDS)}")
    kinds = SOUND_OUTLIER_KINDS[vocabulary]
    names = list(kinds)
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = names[i % len(names)]
        n = int(rng.uniform(0.3, 6.0) * sample_rate)
        x = kinds[kind](rng, n, sample_rate)
        peak = rng.uniform(0.05, 0.9) if kind not in ("line_noise", "room") else rng.uniform(0.003, 0.05)
        yield f"{kind}-{i}", (x / (np.abs(x).max() + 1e-12) * peak).astype(np.float32)
