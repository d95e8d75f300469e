"""Evaluation over several processes: every rank's per-sample records, gathered in dataset order, once each.

Under DDP, Lightning gives each rank a `DistributedSampler` shard of the validation / test set: rank r of W sees
the samples at positions r, r + W, r + 2W, ... of the set, and the sampler pads the set to a multiple of W with
its first samples again (so that every rank runs as many batches). A metric computed on one rank's shard is the
metric of a different, smaller set (the issue that found it: L2 mAP 5.44 with one process, 2.78 with two on the
same frames); a sum reduced over ranks counts the padding twice. Each task therefore keeps one record per
sample, and `gather_samples` returns all of them, in the order of the set, without the padding; the metric is
then computed from that list on every rank, and is the one a single process computes.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning as L
import torch
from torch.utils.data import DistributedSampler

from omnisense._errors import OmnisenseError

_LOADERS = {"val": "val_dataloaders", "test": "test_dataloaders", "predict": "predict_dataloaders"}


def _eval_loader(trainer: L.Trainer, stage: str):
    loaders = getattr(trainer, _LOADERS[stage], None)
    if isinstance(loaders, (list, tuple)):
        if len(loaders) != 1:
            raise OmnisenseError(f"distributed {stage} evaluation reads one dataloader, not {len(loaders)}")
        loaders = loaders[0]
    return loaders


def _sampler_of(loader) -> Any:
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(sampler, DistributedSampler) and batch_sampler is not None:
        sampler = getattr(batch_sampler, "sampler", sampler)
    return sampler


def interleave(shards: Sequence[Sequence[Any]], total: int) -> list[Any]:
    """The records of every rank in dataset order: rank r's k-th record is sample k * W + r; positions at or past
    `total` (the sampler's padding) are dropped. shards: one sequence per rank, in rank order."""
    world = len(shards)
    out = []
    for k in range(max((len(s) for s in shards), default=0)):
        for r, shard in enumerate(shards):
            if k < len(shard) and k * world + r < total:
                out.append(shard[k])
    return out


def gather_samples(module: L.LightningModule, records: Sequence[Any], stage: str) -> list[Any]:
    """Every rank's per-sample `records` of the `stage` ("val", "test") set, in the set's order, each sample once.

    One process: `records` unchanged. Several: an all-gather of the (picklable, CPU) records, interleaved as
    Lightning's unshuffled `DistributedSampler` dealt them. Every rank receives the same list, so every rank
    computes and logs the same metric (a checkpoint callback monitoring it then agrees across ranks).
    """
    trainer = module.trainer
    if trainer.world_size == 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return list(records)
    loader = _eval_loader(trainer, stage)
    sampler = _sampler_of(loader)
    if not isinstance(sampler, DistributedSampler) or getattr(sampler, "shuffle", False):
        raise OmnisenseError(
            f"distributed {stage} evaluation needs Lightning's unshuffled DistributedSampler on the {stage} "
            f"dataloader (found {type(sampler).__name__}); keep trainer.use_distributed_sampler true")
    if sampler.num_replicas != trainer.world_size or sampler.rank != trainer.global_rank:
        raise OmnisenseError(f"the {stage} sampler deals to rank {sampler.rank} of {sampler.num_replicas}, "
                             f"but this is rank {trainer.global_rank} of {trainer.world_size}")
    if len(records) > len(sampler):  # a task that keeps records per batch, or across epochs, would be misplaced
        raise OmnisenseError(f"{type(module).__name__} kept {len(records)} {stage} records for the "
                             f"{len(sampler)} samples of rank {trainer.global_rank}: records must be one per sample")
    shards: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(shards, list(records))
    return interleave(shards, len(sampler.dataset))
