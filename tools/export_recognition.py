"""Export a trained recognition run to shipped weights (safetensors + JSON) with what `omnisense recognize` needs.

    PYTHONPATH=. python tools/export_recognition.py runs/uniformer-tiny-synthetic/version_0/checkpoints/last.ckpt \
        --variant uniformer_tiny --name uniformer_tiny_synthetic --metrics runs/uniformer_test.json

The weights are the backbone's; the metadata records the variant and its constructor overrides (`model_kwargs`), the class names, the input spec (clip
length, stride, training frame rate, crop, normalisation) read from the run's config.yaml, and the
held-out metrics of `omnisense test` (a JSON of its printed results) when given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from omnisense import export_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--name", required=True, help="omnisense/shipped/<name>.safetensors")
    ap.add_argument("--metrics", type=Path, help="JSON with the test metrics")
    ap.add_argument("--fps", type=float, default=12.0, help="frame rate of the training videos")
    ap.add_argument("--trained-on", default="omnisense data make actions --size full --seed 0 (synthetic, 10 classes)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "omnisense" / "shipped")
    args = ap.parse_args(argv)
    config = yaml.safe_load((args.ckpt.parent.parent / "config.yaml").read_text())
    data = config["data"]["init_args"]
    task = config["model"]["init_args"]
    backbone = task["model"]["init_args"]["backbone"]["init_args"]
    model_kwargs = {k: backbone[k] for k in ("img_size", "num_frames", "patch_size") if k in backbone}
    model_kwargs["num_classes"] = len(task["class_names"])
    meta = {
        "variant": args.variant, "model_kwargs": model_kwargs, "class_names": task["class_names"],
        "input": {"clip_len": data["clip_len"], "frame_interval": data["frame_interval"], "fps": args.fps,
                  "short_side": data["test_short_side"], "crop_size": data["crop_size"],
                  "mean": list(data["mean"]), "std": list(data["std"])},
        "trained_on": args.trained_on,
        "metrics": json.loads(args.metrics.read_text()) if args.metrics else {},
    }
    # the backbone alone (`model.backbone.`): `build_from_meta(meta)` rebuilds exactly what the weights fit
    out = export_checkpoint(args.ckpt, args.out_dir / f"{args.name}.safetensors", prefix="model.backbone.", meta=meta,
                            overwrite=True)
    print(out, f"{out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
