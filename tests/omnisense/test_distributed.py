"""Distributed evaluation and prediction: 1 and 2 DDP processes (gloo, CPU) give the same metrics and the same
predictions on the same data and weights; multi-node recipes (torchrun with two "nodes", SLURM's variables).

The two-process runs start real processes through torchrun (about 15-40 s each on a shared 2-core machine), so
all but one representative (the debug task, with a validation set whose size is odd: the sampler pads it) are
marked slow.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from omnisense._errors import OmnisenseError
from omnisense.engine import merge_prediction_parts
from omnisense.train._distributed import interleave

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SHIPPED = REPO / "omnisense" / "shipped"


# ---- the interleaving of shards and the merge of prediction parts -------------------------------------------------


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("total", [5, 6, 7, 33])
def test_interleave_undoes_the_distributed_sampler(total, world):
    data = list(range(total))
    shards = [list(DistributedSampler(data, num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
    padded = sum(len(s) for s in shards) - total
    assert padded == (-total) % world  # the sampler does pad: these samples would count twice
    assert interleave(shards, total) == data


def test_interleave_of_limited_shards_keeps_what_was_evaluated():
    # limit_val_batches: every rank evaluates only its first samples
    shards = [[0, 2, 4], [1, 3, 5]]
    assert interleave(shards, 33) == [0, 1, 2, 3, 4, 5]


def test_merge_orders_and_checks_every_sample(tmp_path):
    parts = [tmp_path / "p.rank0.part", tmp_path / "p.rank1.part"]
    parts[0].write_text("".join(json.dumps({"index": i, "v": i}) + "\n" for i in (0, 2, 4)))
    parts[1].write_text("".join(json.dumps({"index": i, "v": i}) + "\n" for i in (1, 3)))
    out = tmp_path / "p.jsonl"
    assert merge_prediction_parts(parts, out, expected=5) == 5
    assert [json.loads(line)["index"] for line in out.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert not any(p.exists() for p in parts)


@pytest.mark.parametrize("rank1, message", [((1, 3, 4), "predicted twice"), ((1,), "missing")])
def test_merge_refuses_duplicated_or_missing_samples(tmp_path, rank1, message):
    parts = [tmp_path / "p.rank0.part", tmp_path / "p.rank1.part"]
    parts[0].write_text("".join(json.dumps({"index": i}) + "\n" for i in (0, 2, 4)))
    parts[1].write_text("".join(json.dumps({"index": i}) + "\n" for i in rank1))
    with pytest.raises(OmnisenseError, match=message):
        merge_prediction_parts(parts, tmp_path / "p.jsonl", expected=5)


# ---- running the CLI with 1 and 2 processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_cli(args: list[str], out: Path, processes: int, timeout: int = 600) -> Path:
    """`omnisense ARGS` with 1 process, or under torchrun with 2 (DDP, gloo); returns the run's log folder."""
    common = ["--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
              "--trainer.logger.init_args.name", "run", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]
    if processes == 1:
        cmd = [sys.executable, "-m", "omnisense.cli", *args, *common, "--trainer.devices", "1"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "omnisense.cli", *args, *common,
               "--trainer.devices", str(processes), "--trainer.strategy", "ddp"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return out / "run" / "version_0"


def logged_metrics(run: Path, prefix: str) -> dict[str, float]:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for row in rows for k, v in row.items() if k.startswith(prefix) and v not in ("", None)}


def same_metrics_with_one_and_two_processes(args: list[str], tmp_path: Path, stage: str = "val") -> dict:
    subcommand = {"val": "validate", "test": "test"}[stage]
    one = logged_metrics(run_cli([subcommand, *args], tmp_path / "one", 1), f"{stage}/")
    two = logged_metrics(run_cli([subcommand, *args], tmp_path / "two", 2), f"{stage}/")
    assert one, "no metric logged"
    assert one == two, {k: (one[k], two.get(k)) for k in one if one[k] != two.get(k)}
    return one


def write_blobs(folder: Path, *, val: int = 33, seed: int = 0) -> Path:
    """A blobs.npz whose validation and test sets have an odd size (2 ranks: the sampler pads one sample)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 2.0
    arrays = {"centres": centres}
    for split, n in (("train", 64), ("val", val), ("test", val)):
        labels = rng.integers(0, 4, size=n)
        arrays[f"{split}_x"] = (centres[labels] + 2.5 * rng.normal(size=(n, 16))).astype(np.float32)
        arrays[f"{split}_y"] = labels.astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "blobs.npz", **arrays)
    return folder


def test_debug_task_same_metrics_with_one_and_two_processes(tmp_path):
    blobs = write_blobs(tmp_path / "blobs")
    metrics = same_metrics_with_one_and_two_processes(
        ["--config", str(CONFIGS / "debug" / "tiny.yaml"), "--data.init_args.root", str(blobs),
         "--data.init_args.batch_size", "4"], tmp_path)
    assert {"val/acc1", "val/acc5", "val/macc", "val/loss"} <= set(metrics)


@pytest.mark.slow
def test_debug_predict_writes_every_sample_once_with_one_and_two_processes(tmp_path):
    blobs = write_blobs(tmp_path / "blobs")
    args = ["predict", "--config", str(CONFIGS / "debug" / "tiny.yaml"), "--data.init_args.root", str(blobs),
            "--data.init_args.batch_size", "4"]
    one = (run_cli(args, tmp_path / "one", 1) / "predictions.jsonl").read_text().splitlines()
    two_run = run_cli(args, tmp_path / "two", 2)
    two = (two_run / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in two] == list(range(33))
    assert one == two
    assert not list(two_run.glob("*.part"))
    record = json.loads(two[0])
    assert len(record["top"]) == 4 and {"class", "probability"} == set(record["top"][0])


def _write_detection_frames(root: Path, n_val: int) -> Path:
    """`n_val` validation frames of the small simulated set (frame i seeded [0, i], the generator's own seeding)."""
    from perception3d.detection.simulator import LidarConfig, simulate_frame, write_kitti_frame

    lidar = LidarConfig(beams=64, azimuth_steps=1024, elevation=(-24.9, 2.0))
    train, val = [0, 1], list(range(640, 640 + n_val))
    for i in train + val:
        write_kitti_frame(root, i, simulate_frame(np.random.default_rng([0, i]), lidar))
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "train.txt").write_text("".join(f"{i:06d}\n" for i in train))
    (root / "ImageSets" / "val.txt").write_text("".join(f"{i:06d}\n" for i in val))
    return root


@pytest.mark.slow
def test_detection_same_metrics_with_one_and_two_processes(tmp_path):
    # The shipped weights on 5 frames (odd: the sampler pads one): APs that are not all zero.
    root = _write_detection_frames(tmp_path / "simkitti", 5)
    metrics = same_metrics_with_one_and_two_processes(
        ["--config", str(CONFIGS / "detection" / "flatformer_small_simkitti.yaml"), "--data.init_args.root", str(root),
         "--model.init_args.init_weights", str(SHIPPED / "flatformer_small_simkitti.safetensors")], tmp_path)
    assert metrics["val/L2/mAP"] > 0


TINY_TASKS = {  # config, the metric it must log
    "shapes": ("classification/gpsformer_elite_shapes.yaml", "val/acc1"),
    "parts": ("partseg/gpsformer_small_parts.yaml", "val/instance_miou"),
    "registration": ("registration/roitr_small_cgal.yaml", "val/rre"),
    "fusion": ("fusion/multitsf_small_synthetic.yaml", "val/frame_map"),
    "audio": ("audio/audio_cnn_small_audio_events.yaml", "val/acc1"),
    "action": ("recognition/uniformer_tiny_synthetic.yaml", "val/acc1"),
}


def _tiny_actions(folder: Path) -> Path:
    from video.recognition.synthetic import make_actions

    make_actions(folder, seed=0, size="tiny")
    return folder


# Sets written once for both runs: the tiny action set differs from one generation to the next (each process
# generating its own made the two runs disagree on the data, not on the evaluation).
WRITERS = {"action": _tiny_actions}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TINY_TASKS))
def test_task_same_metrics_with_one_and_two_processes(task, tmp_path):
    config, metric = TINY_TASKS[task]
    data = (["--data.init_args.root", str(WRITERS[task](tmp_path / "data"))] if task in WRITERS
            else ["--data.init_args.tiny", "true"])
    metrics = same_metrics_with_one_and_two_processes(["--config", str(CONFIGS / config), *data], tmp_path)
    assert metric in metrics


# ---- multi-node ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_two_nodes_train_in_step(tmp_path):
    """Two torchrun "nodes" of one process each (--nnodes 2, static rendezvous on 127.0.0.1) train one model."""
    extra = tmp_path / "digest.yaml"
    extra.write_text(f"trainer:\n  callbacks:\n    - class_path: omnisense.engine.WeightsDigest\n"
                     f"      init_args:\n        dirpath: {tmp_path / 'digest'}\n")
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "omnisense.cli", "fit", "--config", str(CONFIGS / "debug" / "tiny.yaml"), "--config", str(extra),
               "--data.init_args.tiny", "true", "--data.init_args.batch_size", "16",
               "--trainer.accelerator", "cpu", "--trainer.devices", "1",
               "--trainer.num_nodes", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "6",
               "--trainer.default_root_dir", str(tmp_path / f"node{node}"), "--trainer.logger.init_args.save_dir",
               str(tmp_path / f"node{node}"), "--trainer.enable_progress_bar", "false"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    records = [json.loads((tmp_path / "digest" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    assert records[0]["step"] == records[1]["step"] == 6
    assert records[0]["digest"] == records[1]["digest"]


def _slurm_env(rank: int, port: int) -> dict[str, str]:
    """What `srun` sets for task `rank` of a 2-node job with one task per node (sbatch --nodes 2
    --ntasks-per-node 1), the nodes being this machine."""
    return {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "omnisense", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1",
            "SLURM_NNODES": "2", "SLURM_PROCID": str(rank), "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank),
            "SLURM_NODELIST": "127.0.0.1", "MASTER_PORT": str(port)}


def test_slurm_variables_make_the_trainer_a_slurm_rank(monkeypatch, tmp_path):
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from omnisense.engine import OmnisenseCLI

    # building the trainer sets the process-wide rank_zero_only.rank to 1, which would silence every later test's
    # loggers (a CSV logger writes on rank 0 only): monkeypatch puts it back at teardown
    monkeypatch.setattr(rank_zero_only, "rank", getattr(rank_zero_only, "rank", 0))
    for key in [k for k in os.environ if k.startswith(("SLURM_", "MASTER_", "TORCHELASTIC", "LOCAL_RANK", "RANK",
                                                       "WORLD_SIZE", "GROUP_RANK"))]:
        monkeypatch.delenv(key)
    for key, value in _slurm_env(1, 29555).items():
        monkeypatch.setenv(key, value)
    cli = OmnisenseCLI(args=["--config", str(CONFIGS / "debug" / "tiny.yaml"), "--data.init_args.tiny", "true",
                             "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp",
                             "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
                             "--trainer.logger", "false"],
                       model_class=None, subclass_mode_model=True, datamodule_class=None, subclass_mode_data=True,
                       run=False, auto_configure_optimizers=False)
    env = cli.trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (2, 1, 0, 1)
    assert (env.main_address, env.main_port) == ("127.0.0.1", 29555)
    assert (cli.trainer.world_size, cli.trainer.global_rank, cli.trainer.num_nodes) == (2, 1, 2)


@pytest.mark.slow
def test_slurm_two_tasks_train_in_step(tmp_path):
    """Two processes with the variables srun sets for a 2-node job (no SLURM needed) train one model."""
    extra = tmp_path / "digest.yaml"
    extra.write_text(f"trainer:\n  callbacks:\n    - class_path: omnisense.engine.WeightsDigest\n"
                     f"      init_args:\n        dirpath: {tmp_path / 'digest'}\n")
    port = free_port()
    base = {k: v for k, v in _env().items() if not k.startswith(("SLURM_", "MASTER_", "TORCHELASTIC"))}
    procs = []
    for rank in (0, 1):
        cmd = [sys.executable, "-m", "omnisense.cli", "fit", "--config", str(CONFIGS / "debug" / "tiny.yaml"),
               "--config", str(extra), "--data.init_args.tiny", "true", "--data.init_args.batch_size", "16",
               "--trainer.accelerator", "cpu",
               "--trainer.devices", "1", "--trainer.num_nodes", "2", "--trainer.strategy", "ddp",
               "--trainer.max_steps", "6", "--trainer.default_root_dir", str(tmp_path / f"task{rank}"),
               "--trainer.logger.init_args.save_dir", str(tmp_path / f"task{rank}"),
               "--trainer.enable_progress_bar", "false"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env={**base, **_slurm_env(rank, port)}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    records = [json.loads((tmp_path / "digest" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2] and records[0]["digest"] == records[1]["digest"]
