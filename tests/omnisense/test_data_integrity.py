"""The sample-data cache: a sha256 manifest per extracted file, checked at use (a changed file is re-extracted),
and concurrent `data fetch` / `data make` into one place (a lock; every racer reports the finished result)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omnisense import data

REPO = Path(__file__).resolve().parents[2]
SOURCE = "opensoundscape-birds"  # one small file: quick to extract


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An isolated cache holding only the (already downloaded, sha256-pinned) archive of SOURCE."""
    archive = data.cache_dir() / "downloads" / SOURCE
    if not archive.is_dir() or not any(archive.iterdir()):
        pytest.skip(f"the {SOURCE} archive is not downloaded here (omnisense data fetch {SOURCE})")
    root = tmp_path / "cache"
    shutil.copytree(archive, root / "downloads" / SOURCE)
    monkeypatch.setenv("OMNISENSE_CACHE", str(root))
    data._VERIFIED.clear()
    yield root
    data._VERIFIED.clear()


def _cli(*args, env):
    return subprocess.Popen([sys.executable, "-m", "omnisense.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_manifest_written_and_a_changed_file_re_extracted(cache, capfd):
    folder = data.fetch(SOURCE)
    record = json.loads((folder / data.MARKER).read_text())
    manifest = record["files_sha256"]
    assert set(manifest) == set(record["files"]) and manifest
    name = next(iter(manifest))
    path = folder / name
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    data._VERIFIED.clear()  # a new process
    capfd.readouterr()
    assert data.sample_data(SOURCE) == folder
    assert path.read_bytes() == good
    assert "changed since extraction" in capfd.readouterr().err
    path.unlink()
    data._VERIFIED.clear()
    data.sample_data(SOURCE)
    assert path.read_bytes() == good


@pytest.mark.slow
def test_concurrent_fetches_and_makes(cache, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OMNISENSE_CACHE": str(cache)}
    out = tmp_path / "made blobs"
    procs = [_cli("data", "fetch", SOURCE, env=env) for _ in range(3)]
    procs += [_cli("data", "make", "blobs", "--size", "tiny", "--out", str(out), env=env) for _ in range(3)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for stdout, stderr, code in results:
        assert code == 0 and "Traceback" not in stderr, stderr
    makes = [json.loads(stdout) for stdout, _, _ in results[3:]]
    assert sum("note" not in m for m in makes) == 1  # one made it, the others found it made
    assert all(m["path"] == str(out) for m in makes)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out.iterdir() if not p.name.endswith(".tmp"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}-")]  # no staging left
    assert json.loads((cache / "data" / SOURCE / data.MARKER).read_text())["files_sha256"]
