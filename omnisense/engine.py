"""The training engine: Lightning's Trainer and LightningCLI, with omnisense's defaults.

No home-made loop: fp32/bf16 (`--trainer.precision bf16-mixed`), gradient clipping and accumulation, DDP on
CPU (gloo) or GPU (NCCL) through `--trainer.strategy ddp` or torchrun, CSV logs and a progress bar all come
from Lightning. What this module adds:
- a `checkpoint` section (ModelCheckpoint) that saves `last.ckpt` every N training steps, so a run killed
  mid-way loses at most the steps since its last checkpoint, and `--ckpt_path` resumes it;
- the resolved config written as `config.yaml` beside `checkpoints/` in the run folder;
- `WeightsDigest`, a callback that records a digest of every rank's weights (to check DDP keeps them equal);
- a `predictions` section (`JsonLinesPredictions`): `omnisense predict` writes one JSON Lines record per sample,
  every rank its share, merged in dataset order;
- `--tensorboard true`: TensorBoard event files beside the CSV log (`pip install omnisense[tensorboard]`);
- a check that `validate` and `test` computed a metric (a config that validates nothing is an error, not a
  silent success), and a quiet console (Lightning's tips and the warnings that say nothing here are dropped).

Evaluation under DDP is correct by construction in the tasks (`omnisense.train._distributed`): every metric is
computed from all ranks' per-sample records, the sampler's padding removed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from omnisense._errors import OmnisenseError
from omnisense._io import write_text_atomic


# ---- a quiet console ------------------------------------------------------------------------------------------

def quiet_console() -> None:
    """Drop the warnings that say nothing to an omnisense user. Called on import and again by each run (pytest and
    other callers reset the warning filters between runs)."""
    # `omnisense fit ...` hands its own arguments to LightningCLI on purpose; Lightning warns whenever they differ
    # from sys.argv (e.g. under pytest or the demo), which says nothing useful here.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended", category=UserWarning)
    # The tasks gather every rank's per-sample records and drop the sampler's padding themselves
    # (omnisense.train._distributed), so Lightning's advice about DistributedSampler and sync_dist does not apply.
    warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders")
    warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")
    # Lightning 2.6 calls a torch pytree API that torch 2.11 deprecates: nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
    # The data sets are in memory or small: loading in the main process is the choice, not an oversight.
    warnings.filterwarnings("ignore", message="The '\\w+_dataloader' does not have many workers")
    warnings.filterwarnings("ignore",
                            message="The number of training batches \\(\\d+\\) is smaller than the logging interval")


quiet_console()


class _NoTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger / litmodels")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoTips())


# ---- the CLI --------------------------------------------------------------------------------------------------


class OmnisenseCLI(LightningCLI):
    """LightningCLI with a checkpoint section whose defaults save often and keep `last.ckpt`, a predictions
    section (where `predict` writes its records) and `--tensorboard`; checkpoints are saved and read by
    `omnisense._checkpoint_io.AtomicCheckpointIO` (same-folder atomic saves, checked loads)."""

    def __init__(self, *args: Any, **kwargs: Any):
        quiet_console()
        super().__init__(*args, **kwargs)

    def _parse_ckpt_path(self) -> None:  # Lightning reads --ckpt_path here first: check it before it does
        from omnisense._checkpoint_io import check_ckpt_file

        check_ckpt_file(self.config)
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.filename": "step{step:07d}",
            "checkpoint.auto_insert_metric_name": False,
            "checkpoint.save_last": True,
            "checkpoint.every_n_train_steps": 50,
            "checkpoint.save_top_k": 1,
        })
        parser.add_lightning_class_args(JsonLinesPredictions, "predictions")
        parser.add_argument("--tensorboard", type=bool, default=False,
                            help="also write TensorBoard event files beside the CSV log "
                                 "(pip install 'omnisense[tensorboard]')")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        from omnisense._checkpoint_io import check_resume, plug_into

        check_resume(self.model, self.config[self.subcommand].get("ckpt_path") if self.subcommand else None)
        trainer = plug_into(super().instantiate_trainer(**kwargs))
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("tensorboard"):
            trainer.loggers = with_tensorboard(trainer.loggers)
        return trainer


def with_tensorboard(loggers: list) -> list:
    """`loggers` plus a TensorBoardLogger writing into the first CSV logger's run folder (same name and version)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if importlib.util.find_spec("tensorboard") is None:
        raise OmnisenseError("--tensorboard needs the tensorboard package: pip install 'omnisense[tensorboard]'")
    csv = next((lg for lg in loggers if isinstance(lg, CSVLogger)), None)
    if csv is None:
        raise OmnisenseError("--tensorboard writes beside the CSV log: the config's trainer.logger must be a CSVLogger")
    if any(isinstance(lg, TensorBoardLogger) for lg in loggers):
        return loggers
    tb = TensorBoardLogger(save_dir=csv.save_dir, name=csv.name, version=csv.version, default_hp_metric=False)
    return [*loggers, tb]


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
    stage = {"validate": "val", "test": "test"}.get(cli.subcommand)
    if stage and not any(k.startswith(f"{stage}/") for k in cli.trainer.callback_metrics):
        raise OmnisenseError(f"`{cli.subcommand}` computed no metric: the {stage} split is empty or skipped "
                             f"(trainer.limit_{stage}_batches: {getattr(cli.trainer, f'limit_{stage}_batches')})")
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


def prediction_schema(task: L.LightningModule, datamodule: Any) -> str:
    """The `omnisense.outputs` schema of a task's prediction records: the one the matching inference command writes
    (`omnisense.classification/1`, ...), so `predict` and the commands write records of the same kinds."""
    from omnisense.outputs import SCHEMAS

    name, data = type(task).__name__, type(datamodule).__name__ if datamodule is not None else ""
    kind = {"DetectionTask": "detection", "RegistrationTask": "registration", "MultiViewTask": "fusion",
            "PartSegmentationTask": "part_segmentation", "VideoClassificationTask": "recognition"}.get(name)
    if kind is None:
        kind = "audio_classification" if data.startswith("Audio") else "classification"
    return SCHEMAS[kind]


class JsonLinesPredictions(BasePredictionWriter):
    """Writes `predict`'s records as JSON Lines: one line per sample, `{"index": i, **record}`, in dataset order.

    Each task's `predict_step` returns one JSON-ready record per sample of its batch. Under DDP every rank writes
    its share to `<path>.rank<R>.part` (Lightning's prediction sampler deals samples to ranks without padding, and
    tells each batch's dataset indices); after the last batch, rank 0 merges the parts by index into `path`,
    checks that every sample of the set is there exactly once, and removes the parts. The parts and `path` must
    be on a filesystem all ranks share (one machine, or a shared folder across nodes).

    Args:
        path: the output file; None: `predictions.jsonl` in the run's log folder (a new version folder per run).
        overwrite: replace an existing file; otherwise an existing `path` is an error, before any work.
    """

    def __init__(self, path: str | None = None, overwrite: bool = False):
        super().__init__(write_interval="batch")
        self.path = Path(path) if path else None
        self.overwrite = overwrite
        self._out: Path | None = None
        self._part = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        out = self.path or Path(trainer.log_dir or trainer.default_root_dir) / "predictions.jsonl"  # log_dir: all ranks
        if out.exists() and not self.overwrite:
            raise OmnisenseError(f"{out}: exists; give another --predictions.path or --predictions.overwrite true")
        self._out = out

    def _part_path(self, rank: int) -> Path:
        return self._out.with_name(f"{self._out.name}.rank{rank}.part")

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._out.parent.mkdir(parents=True, exist_ok=True)
        self._part = open(self._part_path(trainer.global_rank), "w", encoding="utf-8")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if not isinstance(prediction, (list, tuple)) or len(prediction) != len(batch_indices):
            raise OmnisenseError(f"{type(pl_module).__name__}.predict_step must return one record per sample "
                                 f"({len(batch_indices)} here), not {type(prediction).__name__}")
        schema = prediction_schema(pl_module, trainer.datamodule)
        for index, record in zip(batch_indices, prediction):
            self._part.write(json.dumps({"schema": schema, "index": int(index), **record}) + "\n")

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._part.close()
        trainer.strategy.barrier("predictions-written")
        if trainer.is_global_zero:
            merge_prediction_parts([self._part_path(r) for r in range(trainer.world_size)], self._out,
                                   expected=_predict_set_size(trainer))
        trainer.strategy.barrier("predictions-merged")


def _predict_set_size(trainer: L.Trainer) -> int | None:
    loaders = trainer.predict_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def merge_prediction_parts(parts: list[Path], out: Path, *, expected: int | None) -> int:
    """Merge per-rank JSON Lines parts into `out` (atomically), ordered by "index"; every index once, and all of
    0..expected-1 when `expected` is given (a missing or repeated sample is an error naming it). Removes the parts.
    Returns the number of records."""
    records: dict[int, str] = {}
    for part in parts:
        if not part.exists():
            raise OmnisenseError(f"{part}: missing; a rank wrote no predictions "
                                 "(the folder must be one that every rank sees)")
        for line in part.read_text(encoding="utf-8").splitlines():
            index = json.loads(line)["index"]
            if index in records:
                raise OmnisenseError(f"{part}: sample {index} predicted twice")
            records[index] = line
    if expected is not None and len(records) != expected:
        missing = sorted(set(range(expected)) - set(records))[:10]
        raise OmnisenseError(f"{out}: {len(records)} predictions for {expected} samples (missing e.g. {missing})")
    write_text_atomic(out, "".join(records[i] + "\n" for i in sorted(records)))
    for part in parts:
        part.unlink()
    return len(records)
