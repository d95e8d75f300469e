"""Sample data: pinned sources, checksum refusal, offline reuse, and the generator table."""

from __future__ import annotations

import dataclasses

import pytest

from omnisense import data as _data, _registry
from omnisense._errors import DataSourceError


def test_every_source_is_pinned():
    for name, source in _data.SOURCES.items():
        assert len(source.sha256) == 64, name
        assert source.kind in ("deb", "pypi-wheel", "pypi-sdist", "npm"), name
        assert source.version and source.members and source.licence, name


def test_fetch_extracts_only_the_named_files_and_then_works_offline(sample_data, monkeypatch):
    folder = sample_data("opensoundscape-birds")
    assert (folder / "birds_10s.wav").stat().st_size > 600_000
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["birds_10s.wav"]

    def no_network(*args, **kwargs):
        raise AssertionError("fetched again although cached")

    monkeypatch.setattr(_data, "_download", no_network)
    assert _data.sample_data("opensoundscape-birds") == folder


def test_a_download_with_the_wrong_checksum_is_refused(sample_data, tmp_path, monkeypatch):
    sample_data("opensoundscape-birds")  # makes sure the archive is in the download cache
    real_cache = _data.cache_dir()
    monkeypatch.setenv("OMNISENSE_CACHE", str(tmp_path))
    # Reuse the real download, under a source that pins another checksum.
    (tmp_path / "downloads" / "birds-bad").mkdir(parents=True)
    for archive in (real_cache / "downloads" / "opensoundscape-birds").iterdir():
        (tmp_path / "downloads" / "birds-bad" / archive.name).write_bytes(archive.read_bytes())
    bad = dataclasses.replace(_data.SOURCES["opensoundscape-birds"], sha256="0" * 64)
    monkeypatch.setitem(_data.SOURCES, "birds-bad", bad)
    monkeypatch.setattr(_data, "_download", lambda name, source: next((tmp_path / "downloads" / name).iterdir()))
    with pytest.raises(DataSourceError, match="does not match the pinned"):
        _data.fetch("birds-bad")
    assert not (tmp_path / "data" / "birds-bad").exists()


def test_unknown_source_names_the_choices():
    with pytest.raises(Exception, match="sources: cgal"):
        _data.sample_data("no-such-source")


def test_every_generator_resolves():
    for name, target in _registry.GENERATORS.items():
        assert callable(_registry.resolve(target)), name
