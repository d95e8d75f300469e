"""The batch runner every inference command shares (omnisense.commands._batch), through `omnisense classify`
with tiny random GPSFormer weights: folders, globs, JSON Lines, --out-dir, bad inputs, --fail-fast, --overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnisense import WeightsMeta, save_weights
from omnisense.cli import main
from omnisense.commands._batch import collect_inputs, unique_names
from perception3d.io import write_points
from perception3d.models.gpsformer import GPSFormer

TINY = dict(num_classes=3, embed_dim=8, widths=[8, 16, 16], k=4, num_heads=2, radii=[0.4, 0.8], max_counts=[4, 8],
            head_hidden=[16], dropout=0.0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    meta = WeightsMeta(task="classification", classes=["a", "b", "c"], input={"num_points": 64},
                       model={"class_path": "perception3d.models.gpsformer.GPSFormer", "init_args": TINY})
    return save_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors", GPSFormer(**TINY).state_dict(), meta)


@pytest.fixture()
def folder(tmp_path):
    """Three good clouds, one truncated PLY, and a file of another kind the folder expansion leaves out."""
    rng = np.random.default_rng(0)
    d = tmp_path / "clouds"
    d.mkdir()
    for name in ("one.ply", "two.npy", "three.xyz"):
        write_points(d / name, rng.normal(size=(200, 3)).astype(np.float32))
    (d / "broken.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\n"
                                   b"property float y\nproperty float z\nend_header\n" + b"\0" * 12)
    (d / "notes.txt").write_text("not a cloud\n")
    return d


def _run(capsys, *argv):
    code = main(["classify", *map(str, argv), "--device", "cpu", "--threads", "1"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_folder_to_stdout_one_record_per_file_bad_one_skipped(folder, weights, capsys):
    code, records, err = _run(capsys, folder, "--weights", weights, "--topk", "2")
    assert code == 2
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in records}
    assert sorted(by_name) == ["broken.ply", "one.ply", "three.xyz", "two.npy"]  # notes.txt: not a cloud extension
    bad = by_name.pop("broken.ply")
    assert bad["schema"] == "omnisense.error/1" and "broken.ply" in bad["error"]
    for r in by_name.values():
        assert r["schema"] == "omnisense.classification/1" and r["model"] == str(weights)
        assert [set(t) for t in r["top"]] == [{"class", "probability"}] * 2
        assert r["top"][0]["probability"] >= r["top"][1]["probability"]
    assert "skipped" in err and "broken.ply" in err and "3 ok, 1 failed" in err
    assert len([line for line in err.splitlines() if "broken.ply" in line]) == 1  # one line for the bad file


def test_globs_missing_files_and_order(folder, weights, capsys, tmp_path):
    inputs = collect_inputs([str(folder / "t*"), str(folder / "one.ply"), str(folder / "t*"),
                             str(tmp_path / "nothing*.ply"), str(tmp_path / "gone.ply")], (".ply",))
    assert [p.name for p in inputs] == ["three.xyz", "two.npy", "one.ply", "nothing*.ply", "gone.ply"]
    code, records, err = _run(capsys, folder / "t*", tmp_path / "gone.ply", "--weights", weights)
    assert code == 2 and [r["schema"].split("/")[0] for r in records] == [
        "omnisense.classification", "omnisense.classification", "omnisense.error"]
    assert "gone.ply" in records[-1]["error"] and "2 ok, 1 failed" in err


def test_output_jsonl_is_never_overwritten_without_the_flag(folder, weights, capsys, tmp_path):
    out = tmp_path / "res.jsonl"
    code, stdout_records, _ = _run(capsys, folder / "one.ply", folder / "two.npy", "--weights", weights,
                                   "--output", out)
    assert code == 0 and stdout_records == []
    first = out.read_text()
    assert [json.loads(line)["input"] for line in first.splitlines()] == [str(folder / "one.ply"),
                                                                        str(folder / "two.npy")]
    code, _, err = _run(capsys, folder / "one.ply", "--weights", weights, "--output", out)
    assert code == 2 and "refusing to overwrite" in err and str(out) in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == first
    code, _, _ = _run(capsys, folder / "one.ply", "--weights", weights, "--output", out, "--overwrite")
    assert code == 0 and len(out.read_text().splitlines()) == 1


def test_out_dir_one_file_per_input_checked_before_anything_is_written(folder, weights, capsys, tmp_path):
    out = tmp_path / "per-file"
    code, _, _ = _run(capsys, folder, "--weights", weights, "--out-dir", out)
    assert code == 2 and sorted(p.name for p in out.iterdir()) == ["broken.json", "one.json", "three.json",
                                                                   "two.json"]
    assert json.loads((out / "one.json").read_text())["schema"] == "omnisense.classification/1"
    (out / "one.json").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = _run(capsys, folder, "--weights", weights, "--out-dir", out)
    assert code == 2 and "refusing to overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # one.json not rewritten either


def test_fail_fast_stops_at_the_first_bad_input(folder, weights, capsys, tmp_path):
    out = tmp_path / "ff.jsonl"
    code, _, err = _run(capsys, folder / "one.ply", folder / "broken.ply", folder / "two.npy", "--weights", weights,
                        "--output", out, "--fail-fast")
    assert code == 2 and "1 ok, 1 failed, 1 not run" in err
    assert [json.loads(line)["schema"] for line in out.read_text().splitlines()] == [
        "omnisense.classification/1", "omnisense.error/1"]


def test_no_inputs_found_and_bad_weights_stop_before_any_output(folder, weights, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, empty, "--weights", weights)
    assert code == 2 and f"{empty}: no input files in it" in err
    code, _, err = _run(capsys, folder, "--weights", tmp_path / "none.safetensors", "--output", tmp_path / "o.jsonl")
    assert code == 2 and "none.safetensors" in err and not (tmp_path / "o.jsonl").exists()


def test_unique_names_for_per_input_files(tmp_path):
    assert unique_names([tmp_path / "a" / "x.ply", tmp_path / "b" / "y.ply"]) == ["x", "y"]
    a, b = unique_names([tmp_path / "a" / "x.ply", tmp_path / "b" / "x.ply"])
    assert a != b and a.endswith("a__x") and b.endswith("b__x")


def test_a_lightning_checkpoint_works_as_weights_and_other_pickles_are_refused(tmp_path, capsys, folder):
    bad = tmp_path / "run" / "checkpoints" / "evil.ckpt"
    bad.parent.mkdir(parents=True)
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "hook": object.__new__(WeightsMeta)}, bad)
    code, _, err = _run(capsys, folder / "one.ply", "--weights", bad)
    assert code == 2 and "evil.ckpt" in err and "refused" in err
