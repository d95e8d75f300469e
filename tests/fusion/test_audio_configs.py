"""Every audio recipe builds from its YAML and trains two steps on tiny generated data (the engine's path)."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "audio").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_audio_config_runs_two_steps(config, tmp_path):
    from fusion.engine import run_lightning_cli

    run_lightning_cli(["fit", "--config", str(config), "--data.init_args.tiny", "true", "--trainer.max_steps", "2",
                       "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path),
                       "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                       "--trainer.check_val_every_n_epoch", "1"])
    assert list(tmp_path.glob("**/checkpoints/last.ckpt"))
