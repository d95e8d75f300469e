"""The training engine: fit, checkpoints, resume, a killed run, bf16, DDP on CPU, and config errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from omnisense._errors import OmnisenseError
from omnisense.engine import run_lightning_cli

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "debug" / "tiny.yaml"


def _common(tmp: Path) -> list[str]:
    return ["--config", str(TINY), "--trainer.default_root_dir", str(tmp), "--trainer.logger.init_args.save_dir",
            str(tmp), "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _step_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def test_fit_writes_checkpoint_and_resolved_config_then_resumes(tmp_path):
    run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "20", "--checkpoint.every_n_train_steps", "10"])
    run_dir = tmp_path / "debug-tiny" / "version_0"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.exists() and _step_of(last) == 20
    config = (run_dir / "config.yaml").read_text()
    assert "TinyMLP" in config and "every_n_train_steps: 10" in config

    run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "30", "--ckpt_path", str(last)])
    resumed = tmp_path / "debug-tiny" / "version_1"
    assert _step_of(resumed / "checkpoints" / "last.ckpt") == 30
    # The resumed run logged only steps after 20: it continued, it did not start again.
    header = (resumed / "metrics.csv").read_text().splitlines()[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in (resumed / "metrics.csv").read_text().splitlines()[1:]]
    logged = [int(r["step"]) for r in rows if r.get("step")]
    assert logged and min(logged) >= 20, logged


def test_killed_run_loses_at_most_the_steps_since_its_last_checkpoint(tmp_path):
    cmd = [sys.executable, "-m", "omnisense.cli", "fit", *_common(tmp_path), "--trainer.max_steps", "1000000",
           "--checkpoint.every_n_train_steps", "5", "--trainer.val_check_interval", "1000"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "debug-tiny" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and not last.exists():
            time.sleep(0.2)
        time.sleep(1.0)  # let it run past the first checkpoint
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    saved = _step_of(last)
    assert saved >= 5 and saved % 5 == 0
    run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", str(saved + 5), "--ckpt_path", str(last)])
    assert _step_of(tmp_path / "debug-tiny" / "version_1" / "checkpoints" / "last.ckpt") == saved + 5


def test_bf16_and_gradient_accumulation_train(tmp_path):
    results = run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "4", "--trainer.precision",
                                 "bf16-mixed", "--trainer.accumulate_grad_batches", "2"], return_results=True)
    assert torch.isfinite(torch.tensor(results[0]["train/loss"]))


def test_tiny_model_learns(tmp_path):
    run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "60"])
    ckpt = tmp_path / "debug-tiny" / "version_0" / "checkpoints" / "last.ckpt"
    results = run_lightning_cli(["test", *_common(tmp_path), "--ckpt_path", str(ckpt)], return_results=True)
    assert results[0]["test/acc1"] > 0.6  # chance is 0.25


@pytest.mark.parametrize("override, key", [
    (["--model.init_args.no_such_key", "1"], "no_such_key"),
    (["--model.init_args.lr", "fast"], "lr"),
    (["--trainer.max_step", "3"], "max_step"),  # no silent abbreviation of max_steps
])
def test_bad_config_names_the_key(tmp_path, override, key):
    with pytest.raises(OmnisenseError, match=key) as err:  # one line (the CLI prints it and exits 2)
        run_lightning_cli(["fit", *_common(tmp_path), *override])
    assert "\n" not in str(err.value)


def test_bad_yaml_file_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("hidden: 64", "hidden: 64\n        hiden: 32"))
    with pytest.raises(OmnisenseError, match="hiden") as err:
        run_lightning_cli(["fit", "--config", str(bad)])
    assert str(err.value).startswith(str(bad))  # names the file


def test_cli_exits_nonzero_on_a_bad_config(tmp_path):
    out = subprocess.run([sys.executable, "-m", "omnisense.cli", "fit", *_common(tmp_path), "--model.init_args.lr", "x"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "lr" in out.stderr


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    extra = tmp_path / "digest.yaml"
    extra.write_text(f"trainer:\n  callbacks:\n    - class_path: omnisense.engine.WeightsDigest\n"
                     f"      init_args:\n        dirpath: {tmp_path / 'digest'}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "omnisense.cli", "fit", *_common(tmp_path), "--config", str(extra), "--trainer.strategy", "ddp",
           "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--trainer.max_steps", "6"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads((tmp_path / "digest" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    assert records[0]["step"] == records[1]["step"] == 6
    assert records[0]["digest"] == records[1]["digest"]


def test_weights_digest_tells_different_weights_apart():
    from omnisense.engine import weights_digest
    from omnisense.train.debug import TinyMLP

    a, b = TinyMLP(), TinyMLP()
    assert weights_digest(a) != weights_digest(b)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)


def test_every_demo_part_resolves():
    from omnisense import _registry

    for name, target in _registry.DEMO_PARTS:
        assert callable(_registry.resolve(target)), name


def test_engine_demo_part(tmp_path):
    from omnisense.demo import DemoContext
    from omnisense.demo.engine import demo

    section = demo(DemoContext(out=tmp_path))
    assert "Test accuracy" in section.markdown and all(p.exists() for p in section.images)


def test_fit_logs_a_validation_curve_and_a_quiet_console(tmp_path):
    out = subprocess.run([sys.executable, "-m", "omnisense.cli", "fit", *_common(tmp_path), "--trainer.max_steps", "40"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    console = out.stdout + out.stderr
    for noise in ("Tip:", "litlogger", "litmodels", "PossibleUserWarning", "deprecated", "does not have many workers"):
        assert noise not in console, noise
    with open(tmp_path / "debug-tiny" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    curve = [(int(r["step"]), float(r["val/acc1"])) for r in rows if r.get("val/acc1")]
    assert [step for step, _ in curve] == [19, 39]  # val_check_interval 20 of 40 steps


def test_tensorboard_logs_beside_the_csv(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "20", "--tensorboard", "true"])
    run = tmp_path / "debug-tiny" / "version_0"
    assert (run / "metrics.csv").exists()
    events = EventAccumulator(str(run))
    events.Reload()
    assert {"val/acc1", "train/loss"} <= set(events.Tags()["scalars"])


def test_tensorboard_without_a_csv_logger_is_a_clear_error(tmp_path):
    from omnisense._errors import OmnisenseError

    with pytest.raises(OmnisenseError, match="CSVLogger"):
        run_lightning_cli(["fit", *_common(tmp_path), "--trainer.logger", "false", "--tensorboard", "true"])
