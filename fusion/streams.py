"""Asynchronous sensor streams: clocks, alignment onto a common time grid, windows, and reading a recording.

Distributed sensors (cameras, their microphones, a lidar) each stamp samples with their own clock, at their own
rate, and drop or repeat frames. This module maps every sensor onto one *true* time axis and samples them on a
common grid:

- `ClockModel`: per-sensor affine clock, `t_true = scale * t_sensor + offset` (offset: start misalignment;
  scale - 1: drift, e.g. 50 ppm is scale 1.00005). Calibrated values come with the recording (the generator
  writes them); unknown clocks are identity.
- `align_to_grid`: for each grid time, the nearest sample of a stream within `tolerance` seconds, else invalid.
  Duplicated samples (same timestamp twice, a repeated frame) are collapsed to the first; unordered stamps are
  sorted; gaps (dropped frames) wider than the tolerance leave invalid grid times rather than stretched ones.
- `audio_chunks`: the audio samples around each grid time (continuous streams are cut, not matched).
- `SensorStream` / `Recording` / `read_recording`: a recording folder (a manifest JSON, or just a folder of
  videos) with per-view videos, their audio tracks (PyAV), and point-cloud sweeps (`.npy` per sweep, plus
  `timestamps.npy`), read into arrays with sensor timestamps.
- `Recording.windows(...)`: fixed-length windows of the grid, each with aligned per-sensor indices and masks.

The default tolerance is half the grid period: at most one grid step can claim a given frame's neighbourhood,
and a stream at least as fast as the grid is aligned to within half a frame of its own, i.e. within one frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fusion._errors import FileProblem

__all__ = ["AlignedWindow", "ClockModel", "Recording", "SensorStream", "align_to_grid", "audio_chunks",
           "make_grid", "read_recording", "read_video_frames", "read_audio_track"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".ogv", ".m4v")


@dataclass(frozen=True)
class ClockModel:
    """Affine sensor clock: `t_true = scale * t_sensor + offset` (seconds)."""

    scale: float = 1.0
    offset: float = 0.0

    def to_true(self, t: np.ndarray | float) -> np.ndarray:
        return self.scale * np.asarray(t, dtype=np.float64) + self.offset

    def to_sensor(self, t: np.ndarray | float) -> np.ndarray:
        return (np.asarray(t, dtype=np.float64) - self.offset) / self.scale

    @staticmethod
    def fit(sensor_times: np.ndarray, true_times: np.ndarray) -> "ClockModel":
        """Least-squares clock from matched pairs (e.g. a flash or clap seen by several sensors)."""
        a, b = np.polyfit(np.asarray(sensor_times, float), np.asarray(true_times, float), 1)
        return ClockModel(float(a), float(b))


def make_grid(start: float, end: float, rate: float) -> np.ndarray:
    """Grid times in [start, end) at `rate` Hz: [T] seconds."""
    n = int(np.floor((end - start) * rate + 1e-9))
    return start + np.arange(max(n, 0)) / rate


def align_to_grid(times: np.ndarray, grid: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest sample per grid time.

    Args:
        times: [N] sample times on the true clock (any order, duplicates allowed).
        grid: [T] grid times.
        tolerance: seconds; a grid time with no sample this close is invalid.

    Returns:
        index [T] int64 into `times` (0 where invalid) and valid [T] bool.
    """
    times = np.asarray(times, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if times.size == 0:
        return np.zeros(grid.shape, np.int64), np.zeros(grid.shape, bool)
    order = np.argsort(times, kind="stable")
    sorted_t = times[order]
    keep = np.concatenate([[True], np.diff(sorted_t) > 1e-9])  # collapse duplicates onto the first one
    order, sorted_t = order[keep], sorted_t[keep]
    right = np.clip(np.searchsorted(sorted_t, grid), 1, len(sorted_t) - 1) if len(sorted_t) > 1 else \
        np.zeros(grid.shape, np.int64)
    left = np.maximum(right - 1, 0)
    take_left = np.abs(grid - sorted_t[left]) <= np.abs(sorted_t[right] - grid)
    nearest = np.where(take_left, left, right)
    valid = np.abs(sorted_t[nearest] - grid) <= tolerance
    return np.where(valid, order[nearest], 0).astype(np.int64), valid


def audio_chunks(samples: np.ndarray, rate: int, start: float, clock: ClockModel, grid: np.ndarray,
                 chunk: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut a mono audio stream into one chunk per grid time.

    Args:
        samples: [N] mono samples; rate: Hz; start: sensor time of sample 0 (s).
        clock: the stream's clock; grid: [T] true times; chunk: chunk length (s), centred on each grid time.

    Returns:
        chunks [T, round(chunk * rate)] float32 (zero-padded where the stream does not cover) and valid [T]
        (True when at least half of the chunk is covered).
    """
    n = int(round(chunk * rate))
    out = np.zeros((len(grid), n), np.float32)
    valid = np.zeros(len(grid), bool)
    # Drift stretches the stream: sample positions follow the clock model, nearest sample per position.
    offsets = (np.arange(n) - n / 2) / rate
    for i, t in enumerate(grid):
        pos = np.round((clock.to_sensor(t + offsets) - start) * rate).astype(np.int64)
        inside = (pos >= 0) & (pos < len(samples))
        out[i, inside] = samples[pos[inside]]
        valid[i] = inside.mean() >= 0.5
    return out, valid


def read_video_frames(path: Path, *, size: tuple[int, int] | None = None, max_frames: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a video with PyAV: frames [N, H, W, 3] uint8 (resized to `size` = (H, W) if given) and their
    presentation times [N] in seconds (the sensor clock; dropped frames show as gaps, not as renumbering)."""
    import av

    path = Path(path)
    frames, times = [], []
    if not path.is_file() or path.stat().st_size == 0:
        raise FileProblem(path, "empty file (0 bytes)" if path.is_file() else "not a file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FileProblem(path, "no video stream")
            if container.format.name.endswith("_pipe") or container.format.name in ("image2", "gif", "apng"):
                raise FileProblem(path, f"a still image ({container.format.name}), not a video")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                kw = {"width": size[1], "height": size[0]} if size else {}
                frames.append(frame.to_ndarray(format="rgb24", **kw))
                times.append(float(frame.pts * stream.time_base))
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise FileProblem(path, f"cannot decode video: {exc}") from None
    if not frames:
        raise FileProblem(path, "no decodable video frames")
    return np.stack(frames), np.asarray(times)


def read_audio_track(path: Path, *, rate: int = 16000) -> tuple[np.ndarray, float] | None:
    """The audio track of a media file, mono at `rate` Hz, and its start time (s); None if it has none."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, start = [], None
            for frame in container.decode(stream):
                if start is None and frame.pts is not None:
                    start = float(frame.pts * stream.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise FileProblem(path, f"cannot decode audio: {exc}") from None
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32), float(start or 0.0)


@dataclass
class SensorStream:
    """One sensor's samples with their sensor-clock timestamps.

    Args:
        name: e.g. "cam1", "cam1/audio", "lidar".
        kind: "video", "audio" or "lidar".
        times: [N] sensor-clock seconds (video frames, lidar sweeps); for audio, [1]: the start time.
        data: video frames [N, H, W, 3] uint8; lidar: list of N point arrays [P_i, 4] (x, y, z, intensity) in
            metres; audio: mono samples [S] float32.
        clock: the sensor clock model.
        rate: audio sample rate (Hz); unused otherwise.
        person: optional per-frame person scores [N] (video; e.g. from a detector, in [0, 1]).
    """

    name: str
    kind: str
    times: np.ndarray
    data: Any
    clock: ClockModel = field(default_factory=ClockModel)
    rate: int = 0
    person: np.ndarray | None = None
    view: str = ""

    @property
    def true_times(self) -> np.ndarray:
        return self.clock.to_true(self.times)

    @property
    def span(self) -> tuple[float, float]:
        if self.kind == "audio":
            start = float(self.clock.to_true(self.times[0]))
            return start, float(self.clock.to_true(self.times[0] + len(self.data) / self.rate))
        t = self.true_times
        return float(t.min()), float(t.max())


@dataclass
class AlignedWindow:
    """One window of the common grid with each sensor aligned onto it.

    times [T] true seconds; index[name] [T] sample indices; valid[name] [T] bool (audio: chunk coverage).
    """

    times: np.ndarray
    index: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]


@dataclass
class Recording:
    """A multi-sensor recording: streams, timed labels (`tricks`: start, end, labels), class names."""

    path: Path
    streams: list[SensorStream]
    tricks: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def stream(self, name: str) -> SensorStream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    def of_kind(self, kind: str) -> list[SensorStream]:
        return [s for s in self.streams if s.kind == kind]

    @property
    def span(self) -> tuple[float, float]:
        """The true-time interval covered by at least one sensor."""
        spans = [s.span for s in self.streams]
        return min(a for a, _ in spans), max(b for _, b in spans)

    def grid(self, rate: float) -> np.ndarray:
        start, end = self.span
        return make_grid(start, end + 1e-6, rate)

    def align(self, grid: np.ndarray, *, tolerance: float | None = None, audio_chunk: float | None = None
              ) -> AlignedWindow:
        """Align every frame/sweep stream onto `grid` (tolerance: half the grid period by default)."""
        period = float(np.median(np.diff(grid))) if len(grid) > 1 else 1.0
        tol = period / 2 if tolerance is None else tolerance
        index, valid = {}, {}
        for s in self.streams:
            if s.kind == "audio":
                continue
            index[s.name], valid[s.name] = align_to_grid(s.true_times, grid, tol)
        return AlignedWindow(np.asarray(grid), index, valid)

    def windows(self, rate: float, length: int, *, hop: int | None = None, tolerance: float | None = None
                ) -> Iterator[AlignedWindow]:
        """Windows of `length` grid steps at `rate` Hz, every `hop` steps (default: non-overlapping)."""
        grid = self.grid(rate)
        aligned = self.align(grid, tolerance=tolerance)
        hop = hop or length
        for s in range(0, max(len(grid) - length, 0) + 1, hop):
            sl = slice(s, s + length)
            yield AlignedWindow(grid[sl], {k: v[sl] for k, v in aligned.index.items()},
                                {k: v[sl] for k, v in aligned.valid.items()})

    def frame_labels(self, grid: np.ndarray) -> np.ndarray:
        """Multi-hot labels per grid time [T, K] from the tricks (a time inside [start, end] is positive)."""
        out = np.zeros((len(grid), len(self.classes)), np.float32)
        for trick in self.tricks:
            inside = (grid >= trick["start"]) & (grid <= trick["end"])
            for label in trick["labels"]:
                if label in self.classes:
                    out[inside, self.classes.index(label)] = 1.0
        return out

    def sequence_labels(self) -> np.ndarray:
        out = np.zeros(len(self.classes), np.float32)
        for trick in self.tricks:
            for label in trick["labels"]:
                if label in self.classes:
                    out[self.classes.index(label)] = 1.0
        return out


# Clock parameters a manifest may carry. A sensor clock runs at the true rate give or take its drift (ppm; the
# synthetic recordings use +-200 ppm): a scale outside [0.5, 2] is a unit mistake or corrupt. Offsets realign
# start times, and no recording spans more than a day.
CLOCK_SCALE_RANGE = (0.5, 2.0)
MAX_CLOCK_OFFSET_S = 86400.0
# The longest recording (true seconds between the first and the last sample of all sensors) read at all: the
# alignment grid grows with it, and an absurd clock would otherwise build a grid of billions of steps.
MAX_RECORDING_S = 86400.0


def _clock(spec: Any, where: Path, sensor: str) -> ClockModel:
    """A sensor's clock from its manifest entry, checked: finite numbers, scale and offset in range."""
    if spec is None:
        return ClockModel()
    if not isinstance(spec, dict):
        raise FileProblem(where, f"sensor {sensor!r}: 'clock' must be an object with scale and offset, got {spec!r}")
    values = {}
    for key, default in (("scale", 1.0), ("offset", 0.0)):
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise FileProblem(where, f"sensor {sensor!r}: clock {key} {value!r} is not a finite number")
        values[key] = float(value)
    lo, hi = CLOCK_SCALE_RANGE
    if not lo <= values["scale"] <= hi:
        raise FileProblem(where, f"sensor {sensor!r}: clock scale {values['scale']:g} is outside [{lo:g}, {hi:g}] "
                                 "(a clock runs at the true rate give or take its drift)")
    if abs(values["offset"]) > MAX_CLOCK_OFFSET_S:
        raise FileProblem(where, f"sensor {sensor!r}: clock offset {values['offset']:g} s is beyond "
                                 f"+-{MAX_CLOCK_OFFSET_S:g} s")
    return ClockModel(values["scale"], values["offset"])


def _sensor_entry(spec: Any, index: int, where: Path) -> tuple[str, str, str]:
    """(name, kind, path) of the manifest's `sensors[index]`, each a non-empty string."""
    if not isinstance(spec, dict):
        raise FileProblem(where, f"sensors[{index}] must be an object with name, kind and path, got {spec!r:.60}")
    out = []
    for key in ("name", "kind", "path"):
        value = spec.get(key)
        if not isinstance(value, str) or not value:
            what = "has no" if value is None else "has a non-text"
            raise FileProblem(where, f"sensors[{index}] ({spec.get('name', '?')!r}) {what} '{key}'")
        out.append(value)
    return out[0], out[1], out[2]


def _load_npy(path: Path, what: str) -> np.ndarray:
    """A numeric .npy array (never unpickled), or FileProblem naming the file."""
    if not path.is_file():
        raise FileProblem(path, "missing" if not path.exists() else "not a file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FileProblem(path, f"not a readable .npy array ({str(exc)[:80]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise FileProblem(path, f"{what} must be numbers, got {getattr(arr, 'dtype', type(arr).__name__)}")
    return arr


def read_lidar_folder(folder: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """A sweep folder: `timestamps.npy` [N] (sensor seconds) and `sweep_000000.npy` ... [P_i, 4] float32."""
    folder = Path(folder)
    stamps_path = folder / "timestamps.npy"
    if not stamps_path.exists():
        raise FileProblem(stamps_path, "missing: a sweep folder needs timestamps.npy")
    times = _load_npy(stamps_path, "timestamps")
    if times.ndim != 1:
        raise FileProblem(stamps_path, f"timestamps must be a 1-D array [N], got shape {times.shape}")
    times = times.astype(np.float64)
    if not np.isfinite(times).all():
        raise FileProblem(stamps_path, f"{int((~np.isfinite(times)).sum())} timestamps are NaN or infinite")
    if len(times) > 1 and (np.diff(times) < 0).any():
        at = int(np.argmax(np.diff(times) < 0))
        raise FileProblem(stamps_path, f"timestamps go backwards at sweep {at + 1} ({times[at]:g} -> {times[at + 1]:g} s)")
    files = sorted(folder.glob("sweep_*.npy"))
    if len(files) != len(times):
        raise FileProblem(folder, f"{len(files)} sweep files but {len(times)} timestamps")
    sweeps = []
    for f in files:
        pts = _load_npy(f, "a sweep")
        if pts.ndim != 2 or pts.shape[1] < 3 or not np.isfinite(pts).all():
            raise FileProblem(f, f"a sweep must be a finite [P, >=3] array, got {pts.shape}")
        if (np.abs(pts[:, :3]) > 1e9).any():  # perception3d.io.MAX_ABS_COORDINATE
            raise FileProblem(f, "a coordinate beyond 1e9 m (corrupt values)")
        sweeps.append(pts.astype(np.float32))
    return times, sweeps


def read_recording(path: str | Path, *, frame_size: tuple[int, int] | None = (64, 64), audio_rate: int = 16000,
                   with_audio: bool = True, person_detector=None) -> Recording:
    """Read a recording: a manifest JSON (see `fusion.recordings`), or a folder of per-view videos.

    A folder without a manifest: every video in it is one view (sorted by name), with identity clocks and its
    audio track if it has one; a `lidar/` sub-folder of sweeps is read too. A view whose manifest has no person
    scores gets them from `person_detector` when one is given (`fusion.people.video_person_scores`).
    """
    path = Path(path)
    if not path.exists():
        raise FileProblem(path, "no such file or folder")
    if path.is_dir() and (path / "recording.json").exists():
        path = path / "recording.json"
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileProblem(path, f"not a JSON manifest: {exc}") from None
        base = path.parent
    else:
        base = path
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise FileProblem(path, "no videos in the folder (and no recording.json)")
        sensors = [{"name": p.stem, "kind": "video", "path": p.name} for p in videos]
        if (path / "lidar").is_dir():
            sensors.append({"name": "lidar", "kind": "lidar", "path": "lidar"})
        manifest = {"sensors": sensors}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sensors"), list):
        raise FileProblem(path, "manifest needs a 'sensors' list")
    if not manifest["sensors"]:
        raise FileProblem(path, "the 'sensors' list is empty")
    entries = [_sensor_entry(spec, i, path) for i, spec in enumerate(manifest["sensors"])]
    names = [name for name, _, _ in entries]
    if len(set(names)) != len(names):
        raise FileProblem(path, f"sensor names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    streams: list[SensorStream] = []
    for spec, (name, kind, rel) in zip(manifest["sensors"], entries):
        if kind not in ("video", "lidar"):
            raise FileProblem(path, f"sensor {name!r}: unknown kind {kind!r} (video or lidar)")
        file = base / rel
        if not file.exists():
            raise FileProblem(path, f"sensor {name!r} names a missing file {file}")
        clock = _clock(spec.get("clock"), path, name)
        if kind == "video":
            frames, times = read_video_frames(file, size=frame_size)
            _check_times(file, times, "frame times")
            person = spec.get("person")
            if person is not None:
                try:
                    person = np.asarray(person, np.float64)
                except (TypeError, ValueError):
                    raise FileProblem(path, f"sensor {name!r}: 'person' must be a list of numbers") from None
                if person.ndim != 1 or not np.isfinite(person).all() or (person < 0).any() or (person > 1).any():
                    raise FileProblem(path, f"sensor {name!r}: 'person' scores must be finite numbers in [0, 1]")
                person = person.astype(np.float32)
            if person is not None and len(person) != len(frames):
                person = None  # scores of a different decode; better none than misaligned (MultiTSF's bug)
            if person is None and person_detector is not None:
                from fusion.people import video_person_scores

                person = video_person_scores(file, person_detector)
                person = person if len(person) == len(frames) else None
            streams.append(SensorStream(name, "video", times, frames, clock, person=person, view=name))
            if with_audio:
                track = read_audio_track(file, rate=audio_rate)
                if track is not None:
                    streams.append(SensorStream(name + "/audio", "audio", np.array([track[1]]), track[0],
                                                clock, rate=audio_rate, view=name))
        else:
            times, sweeps = read_lidar_folder(file)
            streams.append(SensorStream(name, "lidar", times, sweeps, clock))
    recording = Recording(path, streams, list(manifest.get("tricks", [])), list(manifest.get("classes", [])),
                          {k: v for k, v in manifest.items() if k not in ("sensors", "tricks", "classes")})
    start, end = recording.span
    if not end - start <= MAX_RECORDING_S:
        raise FileProblem(path, f"the sensors' clocks spread the recording over {end - start:.3g} s (limit "
                                f"{MAX_RECORDING_S:g} s): check each sensor's clock offset and scale")
    return recording


def _check_times(path: Path, times: np.ndarray, what: str) -> None:
    """Finite, non-decreasing sample times of a file, or FileProblem naming it."""
    if not np.isfinite(times).all():
        raise FileProblem(path, f"{what} hold NaN or infinite values")
    if len(times) > 1 and (np.diff(times) < 0).any():
        raise FileProblem(path, f"{what} go backwards")
