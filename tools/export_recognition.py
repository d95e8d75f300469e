"""Export a trained recognition run to shipped weights (safetensors + WeightsMeta JSON) for `omnisense recognize`.

    PYTHONPATH=. python tools/export_recognition.py runs/uniformer-tiny-synthetic/version_0/checkpoints/last.ckpt \
        --variant uniformer_tiny --name uniformer_tiny_synthetic --metrics runs/uniformer_test.json

The weights are the backbone's (`model.backbone.`), so `omnisense.load_model` rebuilds exactly what they fit from
`meta.model` (`{"variant": VARIANT, "kwargs": ...}`: the variant and the constructor overrides the run used).
`meta.classes` are the run's class names, `meta.input` the `video.recognition.inference.InputSpec` (clip length,
stride, training frame rate, test crop, normalisation) read from the run's config.yaml, and `meta.metrics` the
held-out metrics of `omnisense test` (a JSON of its printed results, tools/test_recognition.py) when given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LICENCE = "trained by omnisense on its own generated data; Apache-2.0 like the code"
DATASET = "omnisense data make actions --size full --seed 0 (synthetic, 10 classes)"


def main(argv=None) -> int:
    from omnisense.weights import WeightsMeta, export_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("--variant", required=True, help="the backbone's variant (omnisense.models.VARIANTS)")
    ap.add_argument("--name", required=True, help="<out-dir>/<name>.safetensors")
    ap.add_argument("--metrics", type=Path, help="JSON with the test metrics")
    ap.add_argument("--fps", type=float, default=12.0, help="frame rate of the training videos")
    ap.add_argument("--trained-on", default=DATASET, help="meta.source.dataset")
    ap.add_argument("--licence", default=LICENCE)
    ap.add_argument("--recipe", help="meta.recipe (default: make the data, fit configs/recognition/<name>.yaml, "
                                     "this export)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "omnisense" / "shipped")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing file of that name")
    args = ap.parse_args(argv)
    config = yaml.safe_load((args.ckpt.parent.parent / "config.yaml").read_text())
    data = config["data"]["init_args"]
    task = config["model"]["init_args"]
    backbone = task["model"]["init_args"]["backbone"]["init_args"]
    kwargs = {k: backbone[k] for k in ("img_size", "num_frames", "patch_size") if k in backbone}
    kwargs["num_classes"] = len(task["class_names"])
    recipe = args.recipe or (f"omnisense data make actions --size full --seed 0; omnisense fit --config "
                             f"configs/recognition/{args.name}.yaml; python tools/export_recognition.py")
    meta = WeightsMeta(
        task="recognition", model={"variant": args.variant, "kwargs": kwargs}, classes=list(task["class_names"]),
        input={"clip_len": data["clip_len"], "frame_interval": data["frame_interval"], "fps": args.fps,
               "short_side": data["test_short_side"], "crop_size": data["crop_size"],
               "mean": list(data["mean"]), "std": list(data["std"])},
        metrics=json.loads(args.metrics.read_text()) if args.metrics else {},
        source={"dataset": args.trained_on}, licence=args.licence, recipe=recipe)
    out = export_checkpoint(args.ckpt, args.out_dir / f"{args.name}.safetensors", meta, prefix="model.backbone.",
                            overwrite=args.overwrite)
    print(out, f"{out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
