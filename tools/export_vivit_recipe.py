"""Ship a ViViT arm of `tools/vivit_recipe.py` as `omnisense recognize --model vivit` weights, scored end to end.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/export_vivit_recipe.py --run runs/vivit_recipe --arm full \
        --data data/actions --name vivit_tiny_synthetic

The arm's weights are written with their `WeightsMeta` (`model`: the variant and its constructor overrides;
`classes`; `input`: the `InputSpec` the run trained with; `notes.training`: the run's recipe), into a temporary
file first; that file is then scored the way a user runs it: `omnisense.models.load_model` + `recognize` on every
held-out MP4 (decoded from the file, `--clips` uniform clips, centre crop, probabilities averaged). It replaces
`<out-dir>/<name>` only when its top-1 beats the top-1 recorded in the existing file's metadata (`--force`
replaces regardless).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARMS = {  # arm key of tools/vivit_recipe.py -> (variant, extra constructor arguments)
    "recipe": ("vivit_tiny_frozen", {}),
    "adapter_only": ("vivit_tiny", {"freeze_spatial": True, "adapter_dim": 32}),
    "tinit_only": ("vivit_tiny", {"freeze_spatial": True, "init_temporal_from_spatial": True}),
    "naive": ("vivit_tiny", {"freeze_spatial": True}),
    "full": ("vivit_tiny", {}),
    "scratch": ("vivit_tiny", {}),
}


LICENCE = "trained by omnisense on its own generated data; Apache-2.0 like the code"
DATASET = "omnisense data make actions --size full --seed 0 (synthetic, 10 classes)"


def score(weights: Path, data: Path, clips: int) -> dict[str, float]:
    import torch

    from omnisense.models import load_model
    from video.recognition.datasets import read_list
    from video.recognition.inference import recognize
    from video.recognition.metrics import evaluate

    net, meta = load_model(weights, task="recognition")
    names, spec = meta.classes, meta.transforms()
    samples, _ = read_list(data / "test.csv", data, class_names=names)
    probs = []
    for sample in samples:
        result = recognize(net, sample.path, names, spec, num_clips=clips, topk=len(names))
        by_name = {row["class"]: row["probability"] for row in result.topk}
        probs.append([by_name[n] for n in names])
    metrics = evaluate(torch.tensor(probs), torch.tensor([s.label for s in samples]), len(names))
    return {"test/acc1": float(metrics["top1"]), "test/acc5": float(metrics["top5"]),
            "test/macc": float(metrics["mean_class_accuracy"])}


def main(argv=None) -> int:
    import dataclasses

    from safetensors.torch import load_file

    from omnisense.weights import SHIPPED_DIR, WeightsMeta, read_meta, save_weights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/vivit_recipe"))
    ap.add_argument("--arm", default="recipe", choices=sorted(ARMS))
    ap.add_argument("--data", type=Path, default=Path("data/actions"))
    ap.add_argument("--name", default="vivit_tiny_synthetic")
    ap.add_argument("--out-dir", type=Path, default=SHIPPED_DIR)
    ap.add_argument("--clips", type=int, default=2, help="uniform clips per test video (the configs' test_clips)")
    ap.add_argument("--force", action="store_true", help="replace the existing file even if it is not better")
    args = ap.parse_args(argv)
    result = json.loads((args.run / "results.json").read_text())
    row = next(r for r in result["rows"] if r.get("key") == args.arm)
    variant, extra = ARMS[args.arm]
    names = (args.data / "classes.txt").read_text().split()
    size = result["img_size"]
    meta = WeightsMeta(
        task="recognition",
        model={"variant": variant, "kwargs": {"img_size": size, "num_frames": 8, "patch_size": result["patch"],
                                              "num_classes": len(names), **extra}},
        classes=names,
        input={"clip_len": 8, "frame_interval": 3, "fps": 12.0, "short_side": size * 9 // 8, "crop_size": size,
               "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        source={"dataset": DATASET}, licence=LICENCE,
        recipe=(f"omnisense data make actions --size full --seed 0; python tools/vivit_recipe.py ({row['arm']} arm, "
                "see notes.training); python tools/export_vivit_recipe.py"),
        notes={"training": {"tool": "tools/vivit_recipe.py", "arm": row["arm"], "steps": row["steps"],
                            "batch": result["batch"], "lr": result["lr"],
                            "image_pretraining": result["image_pretraining"], "in_run_test_top1": row.get("top1")}})
    state = load_file(args.run / f"vivit_{args.arm}.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = save_weights(Path(tmp) / f"{args.name}.safetensors", state, meta)
        metrics = {**score(candidate, args.data, args.clips), "test_clips_per_video": args.clips}
        candidate = save_weights(candidate, state, dataclasses.replace(meta, metrics=metrics), overwrite=True)
        print(json.dumps(metrics), flush=True)
        shipped = args.out_dir / f"{args.name}.safetensors"
        before = read_meta(shipped).metrics.get("test/acc1", 0.0) if shipped.exists() else 0.0
        after = metrics["test/acc1"]
        if after <= before and not args.force:
            print(f"not replaced: top-1 {after:.3f} does not beat the existing {before:.3f}")
            return 1
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(candidate.with_suffix(suffix), shipped.with_suffix(suffix))
        print(f"replaced {shipped}: top-1 {before:.3f} -> {after:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
