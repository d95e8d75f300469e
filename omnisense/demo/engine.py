"""The engine part of `omnisense demo`."""

from __future__ import annotations

from pathlib import Path

from omnisense._io import atomic_write


def demo(ctx):
    """The engine's demo part: train the debug MLP with the same engine as every model, then test it."""
    from omnisense.demo import DemoSection
    from omnisense.engine import run_lightning_cli
    from omnisense.train.debug import make_blobs

    root = ctx.out / "blobs"
    make_blobs(root, seed=ctx.seed)
    config = Path(__file__).resolve().parents[2] / "configs" / "debug" / "tiny.yaml"
    common = ["--config", str(config), "--data.init_args.root", str(root), "--trainer.default_root_dir", str(ctx.out),
              "--trainer.logger.init_args.save_dir", str(ctx.out), "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.val_check_interval", "8"]
    run_lightning_cli(["fit", *common, "--trainer.max_epochs", "3", "--trainer.max_steps", "-1"])
    ckpt = sorted(ctx.out.glob("**/checkpoints/last.ckpt"))[-1]
    curve = plot_training_curve(ckpt.parent.parent / "metrics.csv", ctx.out / "training_curve.png")
    results = run_lightning_cli(["test", *common, "--ckpt_path", str(ckpt)], return_results=True)
    acc = results[0]["test/acc1"] if results else float("nan")
    chance = 1 / 4
    md = (f"The debug MLP (`configs/debug/tiny.yaml`) trained for 3 epochs on generated Gaussian blobs with the "
          f"engine every model uses (Lightning Trainer, CSV logs, checkpoints). Test accuracy **{acc:.3f}** "
          f"(chance {chance:.2f}). Checkpoint: `{ckpt.relative_to(ctx.out.parent)}`.")
    command = ("omnisense data make blobs --seed 0 --out engine/blobs-cli\n"
               "omnisense fit --config configs/debug/tiny.yaml --data.init_args.root engine/blobs-cli "
               "--trainer.default_root_dir engine/cli --trainer.max_epochs 3")
    return DemoSection(title="Engine: train and test the debug model", markdown=md, images=[curve], command=command,
                       summary=f"debug MLP test accuracy {acc:.3f} (chance {chance:.2f})")



def plot_training_curve(metrics_csv: Path, out: Path) -> Path:
    """PNG of the training loss and validation accuracy logged by the CSV logger."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    loss = [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]
    acc = [(int(r["step"]), float(r["val/acc1"])) for r in rows if r.get("val/acc1")]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if loss:
        ax.plot(*zip(*loss), label="train loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if acc:
        ax2 = ax.twinx()
        ax2.plot(*zip(*acc), "o-", label="val top-1", color="tab:orange")
        ax2.set_ylabel("val top-1")
        ax2.set_ylim(0, 1)
    ax.set_title("debug MLP on generated blobs")
    fig.tight_layout()
    try:
        return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
