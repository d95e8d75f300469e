"""The training engine: Lightning's Trainer and LightningCLI, with omnisense's defaults.

No home-made loop: fp32/bf16 (`--trainer.precision bf16-mixed`), gradient clipping and accumulation, DDP on
CPU (gloo) or GPU (NCCL) through `--trainer.strategy ddp` or torchrun, CSV logs and a progress bar all come
from Lightning. What this module adds:
- a `checkpoint` section (ModelCheckpoint) that saves `last.ckpt` every N training steps, so a run killed
  mid-way loses at most the steps since its last checkpoint, and `--ckpt_path` resumes it;
- the resolved config written as `config.yaml` beside `checkpoints/` in the run folder;
- `WeightsDigest`, a callback that records a digest of every rank's weights (to check DDP keeps them equal).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from omnisense._io import write_text_atomic


# `omnisense fit ...` hands its own arguments to LightningCLI on purpose; Lightning warns whenever they differ
# from sys.argv (e.g. under pytest or the demo), which says nothing useful here.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended", category=UserWarning)


class OmnisenseCLI(LightningCLI):
    """LightningCLI with a checkpoint section whose defaults save often and keep `last.ckpt`; checkpoints are saved
    and read by `omnisense._checkpoint_io.AtomicCheckpointIO` (same-folder atomic saves, checked loads)."""

    def _parse_ckpt_path(self) -> None:  # Lightning reads --ckpt_path here first: check it before it does
        from omnisense._checkpoint_io import check_ckpt_file

        check_ckpt_file(self.config)
        super()._parse_ckpt_path()

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        from omnisense._checkpoint_io import check_resume, plug_into

        check_resume(self.model, self.config[self.subcommand].get("ckpt_path") if self.subcommand else None)
        return plug_into(super().instantiate_trainer(**kwargs))

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.filename": "step{step:07d}",
            "checkpoint.auto_insert_metric_name": False,
            "checkpoint.save_last": True,
            "checkpoint.every_n_train_steps": 50,
            "checkpoint.save_top_k": 1,
        })


def run_lightning_cli(argv: list[str], *, return_results: bool = False) -> Any:
    """`_run_lightning_cli` with config errors (YAML syntax, empty file, unknown key) as one line naming the file."""
    from omnisense._checkpoint_io import config_errors_as_one_line

    with config_errors_as_one_line(argv):
        return _run_lightning_cli(argv, return_results=return_results)


def _run_lightning_cli(argv: list[str], *, return_results: bool = False) -> Any:
    """Run `fit | validate | test | predict` with LightningCLI on `argv` (e.g. ["fit", "--config", "x.yaml"]).

    Unknown keys and wrong types in a config are reported by jsonargparse with the key's name; the process
    then exits with status 2. Returns the trainer's logged metrics when `return_results` is set.
    """
    cli = OmnisenseCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        run=True,
        auto_configure_optimizers=False,
        # With a logger every run has its own version folder, so this never replaces another run's config;
        # without one (`--trainer.logger false`) the resolved config of the latest run sits in default_root_dir.
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml", "allow_abbrev": False, "exit_on_error": False},
    )
    if return_results:
        return [{k: float(v) for k, v in cli.trainer.callback_metrics.items()}]
    return 0


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter's name and float64 bytes, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()


class WeightsDigest(L.Callback):
    """At the end of training, each rank writes `<dirpath>/rank<R>.json` with a digest of its weights.

    Args:
        dirpath: folder for the per-rank files.
    """

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "step": trainer.global_step,
                  "digest": weights_digest(pl_module)}
        write_text_atomic(self.dirpath / f"rank{trainer.global_rank}.json", json.dumps(record))
