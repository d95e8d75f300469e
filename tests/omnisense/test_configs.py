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
