"""Audio classification datasets: folder-per-class, ESC-50-style CSV, file-name prefixes (sonic-pi), and a
generator of synthetic audio events.

Layouts:
- folder-per-class: `root/<class>/*.{wav,flac,ogg,mp3}`; class indices follow sorted folder names.
- ESC-50 CSV: `meta/esc50.csv` with columns `filename, fold, target, category` and the clips in
  `audio/`; folds pick the split (ESC-50 is evaluated by 5-fold cross-validation).
- prefix: `root/<class>_*.flac` (the sonic-pi samples: `bd_808.flac` is class `bd`).

`AudioClipDataset` decodes every file once (mono, 16 kHz), keeps its raw Kaldi fbank in memory and serves
fixed-length, normalised clips `(Tensor[T, F], label)`; training crops and augments on the fbank, which is
cheap enough for CPU training.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from video._errors import MediaFileError
from video.audio._errors import AudioValueError
from video.audio.frontend import SAMPLE_RATE, SpecAugment, kaldi_fbank, normalize_fbank, with_file_statistics
from video.audio.frontend import file_statistics as file_statistics_of
from video.audio.io import AUDIO_EXTENSIONS, load_audio

SONIC_PI_CLASSES = ("ambi", "bass", "bd", "drum", "elec", "glitch", "guit", "loop", "perc", "sn", "tabla", "vinyl")


@dataclass(frozen=True)
class AudioItem:
    """One labelled file."""

    path: Path
    label: int


def folder_items(root: str | Path) -> tuple[list[AudioItem], list[str]]:
    """`root/<class>/<file>` -> items and sorted class names."""
    root = Path(root)
    if not root.is_dir():
        raise MediaFileError(root, "no such folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise MediaFileError(root, "no class folders")
    items = [
        AudioItem(f, label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in AUDIO_EXTENSIONS
    ]
    if not items:
        raise MediaFileError(root, f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the class folders")
    return items, classes


def csv_items(
    csv_path: str | Path, audio_dir: str | Path | None = None, *, folds: tuple[int, ...] | None = None
) -> tuple[list[AudioItem], list[str]]:
    """ESC-50-style CSV (`filename, fold, target, category`) -> items of the given folds and class names.

    Class names are indexed by `target` over the whole CSV, so every fold sees the same indices.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MediaFileError(csv_path, "no such CSV file")
    audio_dir = Path(audio_dir) if audio_dir is not None else csv_path.parent.parent / "audio"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"filename", "fold", "target", "category"}
    if not rows or not needed <= set(rows[0]):
        raise MediaFileError(csv_path, f"expected columns {sorted(needed)}")
    names: dict[int, str] = {}
    for row in rows:
        names[int(row["target"])] = row["category"]
    if sorted(names) != list(range(len(names))):
        raise MediaFileError(csv_path, "targets are not 0..K-1")
    items = []
    for row in rows:
        if folds is None or int(row["fold"]) in folds:
            path = audio_dir / row["filename"]
            if not path.is_file():
                raise MediaFileError(csv_path, f"names a missing file {path}")
            items.append(AudioItem(path, int(row["target"])))
    return items, [names[i] for i in range(len(names))]


def prefix_items(root: str | Path, classes: tuple[str, ...] = SONIC_PI_CLASSES) -> tuple[list[AudioItem], list[str]]:
    """Files named `<class>_<anything>.<ext>` in `root` (searched recursively); other prefixes are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise MediaFileError(root, "no such folder")
    index = {name: i for i, name in enumerate(classes)}
    items = [
        AudioItem(f, index[f.name.split("_", 1)[0]])
        for f in sorted(root.rglob("*"))
        if f.suffix.lower() in AUDIO_EXTENSIONS and "_" in f.name and f.name.split("_", 1)[0] in index
    ]
    if not items:
        raise MediaFileError(root, f"no audio files named after the classes {', '.join(classes)}")
    return items, list(classes)


def split_by_file(
    items: list[AudioItem], *, test_fraction: float = 0.25, val_fraction: float = 0.0, seed: int = 0
) -> dict[str, list[AudioItem]]:
    """Stratified split by file: each class keeps at least one training file and, when it has enough
    files, gives at least one to test (and to val when `val_fraction > 0`)."""
    rng = random.Random(seed)
    by_class: dict[int, list[AudioItem]] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    split: dict[str, list[AudioItem]] = {"train": [], "val": [], "test": []}
    for label in sorted(by_class):
        files = sorted(by_class[label], key=lambda it: it.path.name)
        rng.shuffle(files)
        n = len(files)
        n_test = min(max(1, round(n * test_fraction)), n - 1) if test_fraction > 0 else 0
        n_val = min(max(1, round(n * val_fraction)), n - 1 - n_test) if val_fraction > 0 else 0
        split["test"] += files[:n_test]
        split["val"] += files[n_test : n_test + n_val]
        split["train"] += files[n_test + n_val :]
    return split


class AudioClipDataset(Dataset):
    """Fixed-length normalised fbank clips from labelled files.

    Args:
        items: labelled files.
        class_names: names of the label indices.
        clip_frames: frames per clip (100 = 1 s at the 10 ms hop).
        num_mel_bins: mel bands.
        mean, std: normalisation (AST style, `(x - mean) / (2 std)`); None: computed from these files.
        train: random crops and augmentation; otherwise each file gives its first `clip_frames` frames
            (zero-padded when shorter), so evaluation is one clip per file.
        samples_per_file: how many clips one file contributes per epoch (training; crops differ).
        gain_db: random gain in +- dB (training); on a log-power fbank a gain is an additive constant.
        noise_prob: probability of adding a random white-noise floor (training), done in the log domain
            with `logaddexp` so no fbank is recomputed.
        freq_mask, time_mask: SpecAugment widths (training).
        file_statistics: follow each clip with its whole file's per-bin fbank mean and std
            (`video.audio.frontend.with_file_statistics`: clips `[clip_frames + 2, F]`), as `AudioSpec` does at
            inference; the random gain shifts the file's mean too, the other augmentations touch the clip only.
    """

    def __init__(
        self,
        items: list[AudioItem],
        class_names: list[str],
        *,
        clip_frames: int = 100,
        num_mel_bins: int = 128,
        mean: float | None = None,
        std: float | None = None,
        train: bool = False,
        samples_per_file: int = 1,
        gain_db: float = 6.0,
        noise_prob: float = 0.3,
        freq_mask: int = 24,
        time_mask: int = 20,
        file_statistics: bool = False,
    ):
        if not items:
            raise AudioValueError("an audio dataset needs at least one file")
        self.items = list(items)
        self.class_names = list(class_names)
        self.clip_frames = clip_frames
        self.train = train
        self.samples_per_file = samples_per_file if train else 1
        self.gain_db = gain_db
        self.noise_prob = noise_prob
        self.fbanks: list[Tensor] = []
        for item in self.items:
            wave, _ = load_audio(item.path, SAMPLE_RATE)
            self.fbanks.append(kaldi_fbank(wave, SAMPLE_RATE, num_mel_bins=num_mel_bins))  # [T_i, F] raw
        if mean is None or std is None:
            values = torch.cat([f.reshape(-1) for f in self.fbanks])
            mean, std = float(values.mean()), float(values.std())
        self.mean, self.std = mean, std
        self.file_statistics = file_statistics
        self.statistics = [file_statistics_of(f) for f in self.fbanks] if file_statistics else []  # [2, F] raw
        self.spec_augment = SpecAugment(
            freq_mask=freq_mask, time_mask=time_mask, mask_value=(0.0 - mean) / (2.0 * std)
        ).train(train)

    def __len__(self) -> int:
        return len(self.items) * self.samples_per_file

    def labels(self) -> list[int]:
        return [it.label for it in self.items]

    def _segment(self, fbank: Tensor) -> tuple[Tensor, int]:
        """The frames to use and where they go in the clip: first frames at 0 (eval), a random crop or a
        random shift of up to a quarter clip (training)."""
        frames, clip = fbank.shape[0], self.clip_frames
        if not self.train:
            return fbank[:clip], 0
        if frames <= clip:
            return fbank, random.randint(0, min(clip - frames, clip // 4))
        start = random.randint(0, frames - clip)
        return fbank[start : start + clip], 0

    def _augment(self, x: Tensor) -> tuple[Tensor, float]:
        """The augmented clip and the gain added to it (log-power units)."""
        gain = random.uniform(-1, 1) * self.gain_db * math.log(10) / 10
        x = x + gain
        if random.random() < self.noise_prob:
            level = x.max() - random.uniform(10, 30) * math.log(10) / 10  # 10-30 dB below the peak
            x = torch.logaddexp(x, level + 0.5 * torch.randn_like(x))
        return x, gain

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        item_index = index % len(self.items)
        segment, shift = self._segment(self.fbanks[item_index])
        gain = 0.0
        if self.train:
            segment, gain = self._augment(segment)
        # Padding with raw zeros, as AST's loader does (and as `AudioFrontend` does at inference).
        x = segment.new_zeros((self.clip_frames, segment.shape[1]))
        x[shift : shift + segment.shape[0]] = segment
        x = normalize_fbank(x, self.mean, self.std)
        x = self.spec_augment(x)
        if self.file_statistics:  # after the masks, which are for the clip
            stats = self.statistics[item_index] + torch.tensor([[gain], [0.0]])  # a gain shifts the mean only
            x = with_file_statistics(x[None], stats, self.mean, self.std)[0]
        return x, self.items[item_index].label


# --- the generator of synthetic audio events -------------------------------------------------------------

EVENT_CLASSES = (
    "background",  # noise only
    "tone",  # a steady sine
    "chirp_up",  # a rising exponential sweep
    "chirp_down",  # a falling exponential sweep
    "noise_burst",  # a short band-limited noise burst
    "rhythm",  # a regular train of clicks
    "tremolo",  # an amplitude-modulated tone
    "harmonic",  # a harmonic stack (a buzzy note)
)
_SIZES = {"tiny": (3, 2, 2, 4), "small": (60, 10, 20, 40), "full": (200, 40, 60, 200)}  # train, val, test, mixtures


def _envelope(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    attack = min(n, max(1, int(rng.uniform(0.002, 0.03) * sr)))
    release = max(1, int(rng.uniform(0.01, 0.1) * sr))
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    if n > release:
        env[-release:] *= np.linspace(1, 0, release)
    return env


def _event(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One event waveform of `n` samples with peak amplitude 1 (zeros for "background")."""
    t = np.arange(n) / sr
    if kind == "background":
        return np.zeros(n)
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(200, 3000) * t + rng.uniform(0, 2 * np.pi))
    elif kind in ("chirp_up", "chirp_down"):
        f0, f1 = rng.uniform(150, 600), rng.uniform(2000, 6000)
        if kind == "chirp_down":
            f0, f1 = f1, f0
        duration = max(t[-1], 1.0 / sr)
        k = (f1 / f0) ** (1 / duration)
        phase = 2 * np.pi * f0 * (k**t - 1) / np.log(k)
        x = np.sin(phase)
    elif kind == "noise_burst":
        x = rng.standard_normal(n)
        lo, hi = sorted(rng.uniform(200, 7000, size=2))
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        spec[(freqs < lo) | (freqs > hi + 500)] = 0
        x = np.fft.irfft(spec, n)
    elif kind == "rhythm":
        period = int(rng.uniform(0.08, 0.2) * sr)
        click = np.exp(-np.arange(min(period, int(0.02 * sr))) / (0.003 * sr)) * rng.standard_normal(min(period, int(0.02 * sr)))
        x = np.zeros(n)
        for start in range(int(rng.uniform(0, period)), n, period):
            m = min(len(click), n - start)
            x[start : start + m] += click[:m]
    elif kind == "tremolo":
        rate = rng.uniform(6, 16)
        x = np.sin(2 * np.pi * rng.uniform(300, 2000) * t) * (0.55 + 0.45 * np.sin(2 * np.pi * rate * t))
    elif kind == "harmonic":
        f0 = rng.uniform(80, 400)
        x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 12) if h * f0 < sr / 2)
    else:
        raise AudioValueError(f"unknown event kind {kind!r}")
    x = x * _envelope(n, sr, rng)
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White or pink-ish (1/f) noise, unit RMS."""
    x = rng.standard_normal(n)
    if rng.random() < 0.5:
        spec = np.fft.rfft(x)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal + g * noise` with g chosen so that RMS(signal) / RMS(g * noise) is `snr_db` decibels."""
    rms_s = np.sqrt(np.mean(signal**2))
    rms_n = np.sqrt(np.mean(noise**2)) + 1e-12
    if rms_s == 0:
        return noise * 0.05 / rms_n
    return signal + noise * (rms_s / rms_n) * 10 ** (-snr_db / 20)


def synth_clip(
    kinds: tuple[str, ...], rng: np.random.Generator, *, sr: int = SAMPLE_RATE, seconds: float = 1.0, snr_db: float = 10.0
) -> np.ndarray:
    """A clip holding the given events (random onsets and lengths) over background noise at `snr_db`.

    Returns:
        `float32[S]` with peak amplitude in [0.3, 0.9].
    """
    n = int(seconds * sr)
    events = np.zeros(n)
    for kind in kinds:
        length = int(rng.uniform(0.4, 0.9) * n) if kind != "noise_burst" else int(rng.uniform(0.05, 0.25) * n)
        start = int(rng.uniform(0, n - length))
        events[start : start + length] += _event(kind, length, sr, rng)
    clip = _mix_at_snr(events, _noise(n, rng), snr_db)
    clip = clip / (np.abs(clip).max() + 1e-12) * rng.uniform(0.3, 0.9)
    return clip.astype(np.float32)


def make_audio_events(out: Path, *, seed: int, size: str = "small") -> dict:
    """Write the generated audio-events set (a GENERATORS row, `omnisense data make audio-events`).

    Layout: `out/{train,val,test}/<class>/<i>.wav` (16 kHz mono, 1 s, one event class over noise at
    an SNR drawn from 0-20 dB), and `out/mixtures/<i>.wav` + `out/mixtures/labels.csv`
    (`filename,labels` with `;`-separated classes: two or three events mixed, for multi-label mAP).
    """
    import soundfile as sf

    if size not in _SIZES:
        raise AudioValueError(f"size must be one of {sorted(_SIZES)}, got {size!r}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_train, n_val, n_test, n_mix = _SIZES[size]
    counts = {}
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        for kind in EVENT_CLASSES:
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                kinds = () if kind == "background" else (kind,)
                sf.write(folder / f"{i:04d}.wav", synth_clip(kinds, rng, snr_db=rng.uniform(0, 20)), SAMPLE_RATE)
        counts[split] = count * len(EVENT_CLASSES)
    mix_dir = out / "mixtures"
    mix_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    foreground = EVENT_CLASSES[1:]
    for i in range(n_mix):
        kinds = tuple(rng.choice(foreground, size=int(rng.integers(2, 4)), replace=False))
        sf.write(mix_dir / f"{i:04d}.wav", synth_clip(kinds, rng, snr_db=rng.uniform(5, 20)), SAMPLE_RATE)
        rows.append((f"{i:04d}.wav", ";".join(sorted(kinds))))
    with open(mix_dir / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "labels"])
        writer.writerows(rows)
    counts["mixtures"] = n_mix
    return {"classes": list(EVENT_CLASSES), "sample_rate": SAMPLE_RATE, "clip_seconds": 1.0, "files": counts}


def make_prefix_like(out: Path, *, seed: int, classes: tuple[str, ...] = SONIC_PI_CLASSES, per_class: int = 3) -> Path:
    """A tiny stand-in for the sonic-pi folder (`<class>_<i>.wav`, generated sounds), for config smoke tests."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = EVENT_CLASSES[1:]
    for c, name in enumerate(classes):
        for i in range(per_class):
            clip = synth_clip((kinds[c % len(kinds)],), rng, seconds=rng.uniform(0.2, 1.5), snr_db=15)
            sf.write(out / f"{name}_{i}.wav", clip, SAMPLE_RATE)
    return out
