"""Compare real-sound recipes by k-fold cross-validation over the non-test files (training + validation), per file.

    python tools/real_sounds_cv.py --root data/real-sounds [--folds 5] [--out runs/real_sounds_cv.json]

The 29 validation files of the split the shipped models use are too few to rank recipes (one file is 3.4 points, and
the instrument and noise classes have 4 and 2 files there). Here the 147 training and validation files (the split's
test files take no part) are dealt into `--folds` stratified folds by file (seeded; a class with fewer files than
folds keeps the rest in training: the single bird recording trains in every fold); each recipe trains once per fold
on the other folds, with its config unchanged but for the data root, and is scored on the fold's files as
`omnisense classify-audio` sees them (mean softmax over a file's clips). The logistic regression on fbank mean and std
(`omnisense.train.real_sounds`) is scored on the same folds. Recipes: the configs' (`RECIPES`), seed 0.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from omnisense._io import write_json_atomic
from omnisense.train.audio import AudioClassificationData
from omnisense.train.real_sounds import fbank_statistics, logistic_regression, macro_f1

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "cnn": ["--config", "configs/audio/audio_cnn_small_real_sounds.yaml"],
    "cnn_stats": ["--config", "configs/audio/audio_cnn_small_stats_real_sounds.yaml"],
    "cnn_stats_balanced": ["--config", "configs/audio/audio_cnn_small_stats_real_sounds.yaml",
                           "--data.init_args.balanced", "true"],
}


def folds_of(items, k: int, seed: int = 0) -> list[int]:
    """A fold index per item, dealt round-robin within each class after a seeded shuffle; -1 (training in every
    fold) for one file of a class with fewer than `k` files, so that the class always has a training file."""
    rng = random.Random(seed)
    fold = [-1] * len(items)
    for label in sorted({it.label for it in items}):
        idx = sorted((i for i, it in enumerate(items) if it.label == label), key=lambda i: items[i].path.name)
        rng.shuffle(idx)
        held = idx if len(idx) >= k else idx[: len(idx) - 1]
        for j, i in enumerate(held):
            fold[i] = j % k
    return fold


def write_fold(items, names, fold: list[int], f: int, out: Path) -> None:
    """`out/{train,val,test}/<class>/` links: the fold's files as val and test, the others as train (every class
    folder in every split, so that the class lists agree)."""
    for split in ("train", "val", "test"):
        for name in names:
            (out / split / name).mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items):
        for split in (("val", "test") if fold[i] == f else ("train",)):
            link = out / split / names[it.label] / it.path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(it.path.resolve())


def score_checkpoint(ckpt: Path, config_args: list[str], items) -> np.ndarray:
    """Per-file predictions of a trained checkpoint, through `AudioClassifier` with the run's own input spec."""
    import yaml

    from omnisense.models import instantiate
    from omnisense.weights import checkpoint_state
    from video.audio.inference import AudioClassifier, AudioSpec

    cfg = yaml.safe_load((REPO / config_args[1]).read_text())
    state, whole = checkpoint_state(ckpt)
    model = instantiate(cfg["model"]["init_args"]["model"])
    model.load_state_dict(state)
    data_state = next(v for k, v in whole.items() if k.endswith("AudioClassificationData"))
    names = data_state["class_names"]
    clf = AudioClassifier(model, AudioSpec.from_dict(data_state["input_spec"]), names)
    return np.array([names.index(clf.classify_file(it.path, topk=1, reject=False)["top"][0]["class"])
                     for it in items])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="`omnisense data make real-sounds` folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--work", type=Path, default=Path("runs/real-sounds-cv"))
    parser.add_argument("--out", type=Path, default=Path("runs/real_sounds_cv.json"))
    args = parser.parse_args(argv)
    split, names = AudioClassificationData(root=str(args.root), dataset="folder").split_items()
    items = split["train"] + split["val"]
    fold = folds_of(items, args.folds)
    truth = np.array([it.label for it in items])
    held = np.array(fold) >= 0
    preds = {r: np.full(len(items), -1) for r in [*args.recipes, "logreg_fbank_stats"]}
    stats = np.stack([fbank_statistics(it.path) for it in items])
    for f in range(args.folds):
        folder = args.work / "data" / f"fold{f}"
        write_fold(items, names, fold, f, folder)
        test = np.array(fold) == f
        predict = logistic_regression(stats[~test], truth[~test], len(names))
        preds["logreg_fbank_stats"][test] = predict(stats[test])
        for r in args.recipes:
            logs = args.work / r
            ckpt = logs / f"fold{f}" / "version_0" / "checkpoints" / "last.ckpt"
            if not ckpt.exists():
                subprocess.run([sys.executable, "-m", "omnisense.cli", "fit", *RECIPES[r], "--seed_everything", "0",
                                "--data.init_args.root", str(folder), "--trainer.logger.init_args.save_dir", str(logs),
                                "--trainer.logger.init_args.name", f"fold{f}", "--trainer.default_root_dir", str(logs)],
                               check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            preds[r][test] = score_checkpoint(ckpt, RECIPES[r], [it for it, t in zip(items, test) if t])
        print(f"fold {f}: {int(test.sum())} files done", flush=True)
    result = {"folds": args.folds, "files": int(held.sum()),
              "per_class": {n: int((truth[held] == c).sum()) for c, n in enumerate(names)}, "recipes": {}}
    for r, p in preds.items():
        result["recipes"][r] = {"accuracy": float((p[held] == truth[held]).mean()),
                                "macro_f1": macro_f1(truth[held], p[held], len(names))}
        scores = result["recipes"][r]
        print(f"  {r:24s} accuracy {scores['accuracy']:.3f}  macro-F1 {scores['macro_f1']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
