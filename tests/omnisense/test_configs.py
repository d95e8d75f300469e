"""Every shipped config builds and runs two training steps on tiny data (its DataModule's `tiny=True`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omnisense.engine import run_lightning_cli

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(REPO.glob("configs/**/*.yaml"))


def test_there_are_configs():
    assert (REPO / "configs/debug/tiny.yaml") in CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_builds_and_runs_two_steps(config, tmp_path):
    spec = yaml.safe_load(config.read_text())
    assert spec["data"]["init_args"] is not None
    run_lightning_cli([
        "fit", "--config", str(config),
        "--data.init_args.tiny", "true",
        "--trainer.max_steps", "2", "--trainer.max_epochs", "1",
        "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "1",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ])
    assert list(tmp_path.glob("**/*.ckpt")), "no checkpoint written"


# The metric each task's validation must log (the validation curve of `fit`, the figure of `validate`).
TASK_METRIC = {"ClassificationTask": "val/acc1", "VideoClassificationTask": "val/acc1", "DetectionTask": "val/L2/mAP",
               "RegistrationTask": "val/rr", "MultiViewTask": "val/frame_map", "PartSegmentationTask": "val/instance_miou"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_validates_during_training(config):
    """`fit` draws a validation curve: validation is scheduled (more than once) within the configured training."""
    trainer = yaml.safe_load(config.read_text())["trainer"]
    assert trainer.get("limit_val_batches", 1.0) != 0, "validation switched off"
    if "check_val_every_n_epoch" in trainer and trainer["check_val_every_n_epoch"] is None:
        interval = trainer.get("val_check_interval", 1.0)
        assert isinstance(interval, int) and 2 * interval <= trainer["max_steps"], (interval, trainer["max_steps"])
    else:
        every = trainer.get("check_val_every_n_epoch", 1)
        assert 2 * every <= trainer.get("max_epochs", 1000), (every, trainer.get("max_epochs"))


def _validate_tiny(config: Path, tmp_path: Path) -> dict[str, float]:
    return run_lightning_cli([
        "validate", "--config", str(config), "--data.init_args.tiny", "true",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
    ], return_results=True)[0]


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_validate_computes_the_task_metric(config, tmp_path):
    task = yaml.safe_load(config.read_text())["model"]["class_path"].rsplit(".", 1)[-1]
    assert TASK_METRIC[task] in _validate_tiny(config, tmp_path)


def test_debug_config_validate_computes_accuracy(tmp_path):
    metrics = _validate_tiny(REPO / "configs/debug/tiny.yaml", tmp_path)
    assert 0.0 <= metrics["val/acc1"] <= 1.0


def test_validate_that_computes_nothing_is_an_error(tmp_path):
    from omnisense._errors import OmnisenseError

    with pytest.raises(OmnisenseError, match="computed no metric"):
        run_lightning_cli(["validate", "--config", str(REPO / "configs/debug/tiny.yaml"),
                           "--data.init_args.tiny", "true",
                           "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
                           "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])


# A key every prediction record of the task carries.
TASK_RECORD = {"ClassificationTask": "top", "VideoClassificationTask": "top", "DetectionTask": "boxes",
               "RegistrationTask": "transform", "MultiViewTask": "sequence_scores", "PartSegmentationTask": "parts"}


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_predict_writes_one_record_per_sample(config, tmp_path):
    import json

    from omnisense.outputs import SCHEMAS

    task = yaml.safe_load(config.read_text())["model"]["class_path"].rsplit(".", 1)[-1]
    out = tmp_path / "predictions.jsonl"
    run_lightning_cli(["predict", "--config", str(config), "--data.init_args.tiny", "true",
                       "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
                       "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                       "--predictions.path", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and [r["index"] for r in records] == list(range(len(records)))
    assert all(TASK_RECORD[task] in r for r in records)
    assert {r["schema"] for r in records} <= set(SCHEMAS.values()) and len({r["schema"] for r in records}) == 1
