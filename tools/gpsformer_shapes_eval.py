"""Evaluate trained GPSFormer shape runs on the held-out test split and export their weights.

    python tools/gpsformer_shapes_eval.py --root data/shapes-small --out runs/gpsformer_shapes_eval.json \
        --run gpsformer_paper_shapes=runs/gpsformer-paper-shapes/version_1 \
        --run gpsformer_elite_shapes=runs/gpsformer-elite-shapes/version_1 [--export omnisense/shipped]

Writes OA / mAcc (single pass and voting) and the robustness table as JSON; with --export, writes
`<name>.safetensors` + `<name>.json` through `omnisense.weights.export_checkpoint`: a `WeightsMeta` whose `model` is
the named variant (`<name>` less `_shapes`, `gpsformer_paper` -> `gpsformer`) with its `num_classes`, checked to be
the trained architecture, `classes`, `input` (a `CloudSpec`: num_points) and the test metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from omnisense.models import build_model
from omnisense.train.shapes import evaluate_run, load_run
from omnisense.weights import WeightsMeta, export_checkpoint

LICENCE = "trained by omnisense on its own generated data; Apache-2.0 like the code"
INPUT_NOTE = "xyz [B, num_points, 3], centred and scaled to the unit sphere, z up"
CLASSES_NOTE = ("classes of the procedural shape set (omnisense data make shapes): parametric shapes, "
                "not real object categories")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--votes", type=int, default=5)
    parser.add_argument("--robustness-samples", type=int, default=None)
    parser.add_argument("--export", type=Path, default=None, help="folder for <name>.safetensors + .json")
    parser.add_argument("--overwrite", action="store_true", help="replace exported files that exist")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for item in args.run:
        name, run_dir = item.split("=", 1)
        if name not in results:
            results[name] = evaluate_run(run_dir, args.root, votes=args.votes,
                                         robustness_samples=args.robustness_samples)
            results[name]["run"] = run_dir
            args.out.write_text(json.dumps(results, indent=2))
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "robustness"}))
        if args.export:
            model, init_args, classes, num_points = load_run(run_dir)
            variant = name.removesuffix("_shapes").replace("gpsformer_paper", "gpsformer")
            kwargs = {"num_classes": init_args["num_classes"]}
            # The named variant must be the trained architecture, since load_model builds it from the name.
            assert {k: tuple(v.shape) for k, v in build_model(variant, **kwargs).state_dict().items()} == \
                {k: tuple(v.shape) for k, v in model.state_dict().items()}, name
            r = results[name]
            size = args.root.name.partition("-")[2] if args.root.name.startswith("shapes-") else "small"
            meta = WeightsMeta(
                task="classification", model={"variant": variant, "kwargs": kwargs}, classes=list(classes),
                input={"num_points": num_points},
                metrics={"test_oa": r["single"]["oa"], "test_macc": r["single"]["macc"],
                         **{f"test_{k}_{m}": v for k in r if k.startswith("vote") for m, v in r[k].items()}},
                source={"dataset": f"procedural shapes ({args.root.name}), seed 0"}, licence=LICENCE,
                recipe=(f"omnisense data make shapes --size {size} --seed 0; omnisense fit --config "
                        f"configs/classification/{name}.yaml; python tools/gpsformer_shapes_eval.py --export"),
                notes={"classes_note": CLASSES_NOTE, "input": INPUT_NOTE})
            path = export_checkpoint(Path(run_dir) / "checkpoints" / "last.ckpt", args.export / name, meta,
                                     overwrite=args.overwrite)
            print("exported", path)


if __name__ == "__main__":
    main()
