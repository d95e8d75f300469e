"""The MultiTSF comparison on the synthetic multi-view recordings, and the export of the shipped weights.

    omnisense data make multiview-recordings --out data/mvr --size small
    python tools/multitsf_experiment.py features --root data/mvr       # alignment, fbanks, frame encoder, cache
    python tools/multitsf_experiment.py experiment --root data/mvr --out runs/multiview \
        --export runs/multiview/multitsf_small_synthetic.safetensors   # ~55 core-min on CPU, one thread per process

`run_experiment` trains (on the features `omnisense.train.multiview` caches) MultiTSF, a single-view model (one
camera + its microphone per sample) and models on every subset of {camera, audio, lidar}, then runs ONE evaluation
on the held-out test split: frame mAP, mAP_C, mAP_S of MultiTSF vs the best single view vs late fusion (the mean of
the single-view model's per-view probabilities), each modality subset, sensors dropped at inference, frames with
the lights off, and a paired bootstrap of MultiTSF against each baseline. It writes results.json / results.md and,
with --export, the shipped weights (`omnisense.weights.save_weights` with a `WeightsMeta` whose input spec is the
cache's `FusionSpec`). A research script: the packages never import it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from fusion.inference import MODALITIES, model_inputs  # noqa: E402
from fusion.metrics import frame_map, map_class, map_sample  # noqa: E402
from fusion.multitsf import MultiTSF  # noqa: E402
from omnisense._io import write_json_atomic, write_text_atomic  # noqa: E402
from omnisense.train.multiview import (MultiViewFeatures, MultiViewTask, cached_spec, ensure_features,  # noqa: E402
                                       load_npz, read_cached_tensors, save_cached_tensors)

RECIPE = "python tools/multitsf_experiment.py experiment --root ROOT --out OUT --export PATH"

SUBSETS = [("video",), ("audio",), ("lidar",), ("video", "audio"), ("video", "lidar"), ("audio", "lidar"),
           ("video", "audio", "lidar")]


def small_fusion_model(**overrides) -> MultiTSF:
    """`multitsf_small` without its frame encoder: it is trained on cached features."""
    from fusion.multitsf import multitsf_small

    return multitsf_small(frame_encoder=None, **overrides)


def _lock_held(lock: Path) -> bool:
    """True while the process named in `lock` is alive (a killed run's stale lock does not block)."""
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return pid != os.getpid()


def fit_model(name: str, out: Path, train: MultiViewFeatures, val: MultiViewFeatures, *, modalities, epochs: int,
              batch_size: int, lr: float, seed: int, log, model_args: dict | None = None) -> MultiTSF:
    """Train one MultiTSF (resuming from its last checkpoint), keep the last epoch (no selection on test)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    weights = out / "models" / f"{name}.safetensors"
    model = small_fusion_model(**(model_args or {}))
    weights.parent.mkdir(parents=True, exist_ok=True)
    lock = weights.with_suffix(".lock")  # another process (`--only`) is training this model: wait for it
    while _lock_held(lock) and not weights.exists():
        time.sleep(10)
    if weights.exists():
        model.load_state_dict(read_cached_tensors(weights)[0])
        return model.eval()
    lock.write_text(str(os.getpid()))
    L.seed_everything(seed, verbose=False)
    task = MultiViewTask(model, lr=lr, modalities=list(modalities))
    ckpt_dir = out / "checkpoints" / name
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=5,
                        check_val_every_n_epoch=max(epochs // 4, 1),
                        logger=CSVLogger(str(out / "logs"), name=name),
                        # "last.ckpt" rewritten at the end of every training epoch (monitor None, top 1); with
                        # save_top_k=0 + save_last it was only written at validation epochs, so a kill lost epochs
                        callbacks=[ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", every_n_epochs=1,
                                                   save_top_k=1, enable_version_counter=False,
                                                   save_on_train_epoch_end=True)])
    last = ckpt_dir / "last.ckpt"
    start = time.time()
    g = torch.Generator().manual_seed(seed)
    trainer.fit(task, DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
                DataLoader(val, batch_size=batch_size), ckpt_path=str(last) if last.exists() else None)
    metrics = {k: round(float(v), 2) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    log(f"{name}: {epochs} epochs in {time.time() - start:.0f} s; last val {metrics}")
    save_cached_tensors(weights, task.model.state_dict(), {"modalities": list(modalities), "epochs": epochs,
                                                           "model_args": model_args or {},
                                                           "val": metrics, "seconds": round(time.time() - start, 1)})
    lock.unlink(missing_ok=True)
    return task.model.eval()


@torch.no_grad()
def predict(model: MultiTSF, ds: MultiViewFeatures, modalities=MODALITIES, edit=None, batch_size: int = 16
            ) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores: sequence [N, K] and frame [N, T, K]; `edit(batch)` may hide sensors first."""
    model.eval()
    seq, fr = [], []
    for batch in DataLoader(ds, batch_size=batch_size):
        if edit is not None:
            batch = edit(batch)
        out = model(**model_inputs(batch, modalities))
        seq.append(torch.sigmoid(out.sequence).numpy())
        fr.append(torch.sigmoid(out.frame).numpy())
    return np.concatenate(seq), np.concatenate(fr)


def score(seq: np.ndarray, fr: np.ndarray, ds: MultiViewFeatures) -> dict[str, float]:
    seq_y, fr_y = ds.a["sequence"].numpy(), ds.a["labels"].numpy()
    return {"frame_mAP": round(frame_map(fr, fr_y), 2), "mAP_C": round(map_class(seq, seq_y), 2),
            "mAP_S": round(map_sample(seq, seq_y), 2)}


def _hide(**what):
    def edit(batch):
        batch = dict(batch)
        if "views" in what:
            keep = torch.ones(batch["video_valid"].shape[1], dtype=torch.bool)
            keep[list(what["views"])] = False
            batch["video_valid"] = batch["video_valid"] & keep[None, :, None]
            batch["audio_valid"] = batch["audio_valid"] & keep[None, :, None]
        return batch
    return edit


def run_experiment(root: Path, out: Path, *, epochs: int = 20, single_epochs: int = 6, subset_epochs: int = 20,
                   batch_size: int = 8, lr: float = 5e-4, seed: int = 0, encoder_epochs: int = 8,
                   export: Path | None = None, only: list[str] | None = None, bootstrap: int = 1000,
                   overwrite: bool = False) -> dict[str, Any] | None:
    """Every model of the comparison, then one evaluation on the test split; results.json and results.md."""
    if export is not None and Path(export).with_suffix(".safetensors").exists() and not overwrite:
        raise SystemExit(f"{export} exists already; pass --overwrite to replace it")  # before hours of training
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.txt"

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    t0 = time.time()
    cache = ensure_features(root, encoder_epochs=encoder_epochs, log=log)
    log(f"features ready in {time.time() - t0:.0f} s")
    arrays = {s: load_npz(cache / f"features_{s}.npz") for s in ("train", "val", "test")}
    multi = {s: MultiViewFeatures(a) for s, a in arrays.items()}
    single = {s: MultiViewFeatures(a, single_view=True) for s, a in arrays.items()}
    common = dict(batch_size=batch_size, lr=lr, seed=seed, log=log)
    # name -> (samples, modalities, epochs, model args); each model is trained once (weights under out/models/,
    # resumable).
    specs = {"multitsf_all": (multi, MODALITIES, epochs, {}),
             "single_view": (single, ("video", "audio"), single_epochs, {})}
    specs.update({"multitsf_" + "+".join(sub): (multi, sub, subset_epochs, {}) for sub in SUBSETS[:-1]})
    if only:  # train these models only (a second process can train some while the first trains the others)
        for name in only:
            data, mods, n, kw = specs[name]
            fit_model(name, out, data["train"], data["val"], modalities=mods, epochs=n, model_args=kw, **common)
        return None
    models = {name: fit_model(name, out, data["train"], data["val"], modalities=mods, epochs=n, model_args=kw,
                              **common)
              for name, (data, mods, n, kw) in specs.items()}
    main, sv = models["multitsf_all"], models["single_view"]
    subsets = {sub: models["multitsf_" + "+".join(sub)] for sub in SUBSETS[:-1]}
    log("training done; evaluating on the test split")
    test, v = multi["test"], multi["test"].views
    results: dict[str, Any] = {"split": "test", "recordings": len(test), "views": v,
                               "grid_rate_hz": cached_spec(cache).grid_rate_hz}
    main_pred = predict(main, test)
    results["multitsf"] = score(*main_pred, test)
    # single view: per view index, best chosen on val; late fusion: mean of per-view probabilities
    per_view = {}
    for split in ("val", "test"):
        s_seq, s_fr = predict(sv, single[split], ("video", "audio"))
        n = len(multi[split])
        s_seq, s_fr = s_seq.reshape(n, v, -1), s_fr.reshape(n, v, *s_fr.shape[1:])
        per_view[split] = [score(s_seq[:, i], s_fr[:, i], multi[split]) for i in range(v)]
        if split == "test":
            results["late_fusion_mean"] = score(s_seq.mean(1), s_fr.mean(1), test)
            results["late_fusion_max"] = score(s_seq.max(1), s_fr.max(1), test)
            baselines = {"late fusion (mean)": (s_seq.mean(1), s_fr.mean(1)),
                         "late fusion (max)": (s_seq.max(1), s_fr.max(1))}
            baselines.update({f"cam{i + 1}": (s_seq[:, i], s_fr[:, i]) for i in range(v)})
    best = int(np.argmax([m["frame_mAP"] for m in per_view["val"]]))
    if bootstrap:
        results["bootstrap"] = paired_bootstrap(main_pred, baselines, test, resamples=bootstrap, seed=seed)
    results["single_view_test"] = {f"cam{i + 1}": m for i, m in enumerate(per_view["test"])}
    results["best_single_view"] = {"view": f"cam{best + 1} (chosen on val)", **per_view["test"][best]}
    results["best_single_view_oracle"] = max(per_view["test"], key=lambda m: m["frame_mAP"])
    # each modality's worth: models trained on every subset
    results["subsets_trained"] = {"+".join(s): score(*predict(m, test, s), test) for s, m in subsets.items()}
    results["subsets_trained"]["video+audio+lidar"] = results["multitsf"]
    # per class: which modality carries which action (frame AP, percent)
    from fusion.metrics import average_precision
    from fusion.recordings import CLASSES

    y = test.a["labels"].numpy().reshape(-1, len(CLASSES))
    per_class = {"+".join(sub): predict(m, test, sub)[1] for sub, m in subsets.items()}
    per_class["video+audio+lidar"] = main_pred[1]
    results["frame_ap_per_class"] = {
        k: {c: round(100 * average_precision(p.reshape(-1, len(CLASSES))[:, j], y[:, j]), 1)
            for j, c in enumerate(CLASSES)} for k, p in per_class.items()}
    # sensors dropped at inference from the full model
    drops = {"no camera": dict(modalities=("audio", "lidar")), "no audio": dict(modalities=("video", "lidar")),
             "no lidar": dict(modalities=("video", "audio")), "lidar only": dict(modalities=("lidar",))}
    drops.update({"camera only": dict(modalities=("video",)), "audio only": dict(modalities=("audio",))})
    results["dropped_at_inference"] = {k: score(*predict(main, test, **kw), test) for k, kw in drops.items()}
    one = [score(*predict(main, test, edit=_hide(views=[i])), test) for i in range(v)]
    results["dropped_at_inference"]["one view missing (mean over which)"] = {
        k: round(float(np.mean([o[k] for o in one])), 2) for k in one[0]}
    two = [score(*predict(main, test, edit=_hide(views=[i, (i + 1) % v])), test) for i in range(v)]
    results["dropped_at_inference"]["two views missing (mean)"] = {
        k: round(float(np.mean([o[k] for o in two])), 2) for k in two[0]}
    # the frames recorded with the room lights off (cameras nearly blind): what the lidar is worth there
    dark = arrays["test"].get("dark")
    if dark is not None and dark.any():
        y = test.a["labels"].numpy()
        _, s_fr = predict(sv, single["test"], ("video", "audio"))
        s_fr = s_fr.reshape(len(test), v, *s_fr.shape[1:])
        results["lights_off_frames"] = {
            "frames": int(dark.sum()),
            "MultiTSF": round(frame_map(predict(main, test)[1], y, dark), 2),
            "MultiTSF, lidar dropped": round(frame_map(predict(main, test, ("video", "audio"))[1], y, dark), 2),
            "best single view": round(frame_map(s_fr[:, best], y, dark), 2),
            "late fusion (mean)": round(frame_map(s_fr.mean(1), y, dark), 2)}
    results["seconds_total"] = round(time.time() - t0, 1)
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.md", results_markdown(results))
    log(results_markdown(results))
    if export is not None:
        export_shipped(main, cache, export, results, overwrite=overwrite)
        log(f"exported {export}")
    return results


def paired_bootstrap(ours: tuple[np.ndarray, np.ndarray], baselines: dict[str, tuple[np.ndarray, np.ndarray]],
                     ds: MultiViewFeatures, *, resamples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """MultiTSF minus each baseline over `resamples` resamplings of the recordings (the same ones for both):
    per metric, the mean difference and its 2.5 / 97.5 percentiles."""
    seq_y, fr_y = ds.a["sequence"].numpy(), ds.a["labels"].numpy()
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(seq_y), len(seq_y)) for _ in range(resamples)]

    def metrics(seq, fr, ix):
        return frame_map(fr[ix], fr_y[ix]), map_class(seq[ix], seq_y[ix]), map_sample(seq[ix], seq_y[ix])

    mine = np.array([metrics(*ours, ix) for ix in draws])
    out = {}
    for name, pred in baselines.items():
        d = mine - np.array([metrics(*pred, ix) for ix in draws])
        lo, hi = np.nanpercentile(d, [2.5, 97.5], axis=0)
        out[name] = {m: [round(float(np.nanmean(d[:, j])), 2), round(float(lo[j]), 2), round(float(hi[j]), 2)]
                     for j, m in enumerate(("frame_mAP", "mAP_C", "mAP_S"))}
    return out


def results_markdown(r: dict[str, Any]) -> str:
    def row(name, m):
        return f"| {name} | {m['frame_mAP']:.1f} | {m['mAP_C']:.1f} | {m['mAP_S']:.1f} |"

    head = "| model | frame mAP | mAP_C | mAP_S |\n|---|---|---|---|"
    lines = [f"Held-out test split: {r['recordings']} recordings, {r['views']} cameras + audio + lidar.", "", head,
             row("MultiTSF (camera + audio + lidar)", r["multitsf"]),
             row(f"best single view, {r['best_single_view']['view']}", r["best_single_view"]),
             row("best single view (oracle: best on test)", r["best_single_view_oracle"]),
             row("late fusion (mean of per-view probabilities)", r["late_fusion_mean"]),
             row("late fusion (max of per-view probabilities)", r["late_fusion_max"]), "",
             "Trained on each subset of the modalities:", "", head]
    lines += [row(k, m) for k, m in r["subsets_trained"].items()]
    lines += ["", "The full model with sensors missing at inference:", "", head, row("nothing missing", r["multitsf"])]
    lines += [row(k, m) for k, m in r["dropped_at_inference"].items()]
    if "frame_ap_per_class" in r:
        classes = list(next(iter(r["frame_ap_per_class"].values())))
        lines += ["", "Frame AP per class of the models trained on each subset:", "",
                  "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
        lines += [f"| {k} | " + " | ".join(f"{m[c]:.1f}" for c in classes) + " |"
                  for k, m in r["frame_ap_per_class"].items()]
    if "lights_off_frames" in r:
        d = r["lights_off_frames"]
        lines += ["", f"Frame mAP on the {d['frames']} test frames recorded with the lights off:", "",
                  "| model | frame mAP |", "|---|---|"]
        lines += [f"| {k} | {m:.1f} |" for k, m in d.items() if k != "frames"]
    if "bootstrap" in r:
        lines += ["", "MultiTSF minus each baseline, paired bootstrap over the test recordings: mean [95 % interval]:",
                  "", "| baseline | frame mAP | mAP_C | mAP_S |", "|---|---|---|---|"]
        cell = "%+.1f [%+.1f, %+.1f]"
        lines += [f"| {k} | " + " | ".join(cell % tuple(m[x]) for x in ("frame_mAP", "mAP_C", "mAP_S")) + " |"
                  for k, m in r["bootstrap"].items()]
    lines += ["", "Per view (single-view model, test):", "", head]
    lines += [row(k, m) for k, m in r["single_view_test"].items()]
    return "\n".join(lines) + "\n"


def export_shipped(model: MultiTSF, cache: Path, path: Path, results: dict[str, Any], *, overwrite: bool = False
                   ) -> Path:
    """One model for raw recordings: the frozen frame encoder put back into `multitsf_small`, plus the fusion;
    its input spec is the cache's (`cached_spec`: the training defaults with the train split's fbank statistics)."""
    from fusion.multitsf import multitsf_small
    from fusion.recordings import CLASSES
    from omnisense.weights import WeightsMeta, save_weights

    kwargs = {"num_classes": len(CLASSES), "frame_from": model.frame_from, "sequence_from": model.sequence_from}
    full = multitsf_small(**kwargs)
    enc_state, _ = read_cached_tensors(cache / "frame_encoder.safetensors")
    state = {k: v for k, v in model.state_dict().items()}
    state.update({k: v for k, v in enc_state.items() if k.startswith("encoder.")})  # FrameClassifier.encoder
    full.load_state_dict(state)
    meta = WeightsMeta(
        task="fusion", model={"variant": "multitsf_small", "kwargs": kwargs}, classes=list(CLASSES),
        input=cached_spec(cache).to_dict(),
        metrics={k: results[k] for k in ("multitsf", "best_single_view", "late_fusion_mean")},
        source={"dataset": "synthetic multiview-recordings (size small, seed 0)"},
        licence="trained by omnisense on its own generated data; Apache-2.0 like the code", recipe=RECIPE)
    # float16 on disk keeps the file small (~5 MB); load_state_dict casts back to the float32 parameters.
    return save_weights(path, {k: v.half().contiguous() for k, v in full.state_dict().items()}, meta,
                        overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/multitsf_experiment.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("experiment", help="features, every model, one evaluation on test, export")
    e.add_argument("--root", type=Path, required=True, help="folder from `omnisense data make multiview-recordings`")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--epochs", type=int, default=20)
    e.add_argument("--single-epochs", type=int, default=6)
    e.add_argument("--subset-epochs", type=int, default=20)
    e.add_argument("--only", nargs="+", help="train only these models (e.g. multitsf_lidar), no evaluation")
    e.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (0: none)")
    e.add_argument("--encoder-epochs", type=int, default=8)
    e.add_argument("--lr", type=float, default=5e-4)
    e.add_argument("--export", type=Path, help="write the shipped weights (safetensors + JSON) here")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --export file")
    f = sub.add_parser("features", help="only build the cache (alignment, frame encoder, features)")
    f.add_argument("--root", type=Path, required=True)
    f.add_argument("--encoder-epochs", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "features":
        ensure_features(args.root, encoder_epochs=args.encoder_epochs)
        return 0
    run_experiment(args.root, args.out, epochs=args.epochs, single_epochs=args.single_epochs,
                   subset_epochs=args.subset_epochs, encoder_epochs=args.encoder_epochs, lr=args.lr,
                   export=args.export, only=args.only, bootstrap=args.bootstrap,
                   overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
