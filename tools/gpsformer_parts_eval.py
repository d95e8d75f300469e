"""Evaluate a trained GPSFormer part-segmentation run on the procedural part set's held-out test split.

    python tools/gpsformer_parts_eval.py --root data/parts-small --run runs/gpsformer-small-parts/version_0 \
        --out docs/gpsformer_parts_eval.json [--export omnisense/shipped/gpsformer_partseg_small_parts]

Reports instance and class mIoU (perception3d.classification.part_miou, ShapeNetPart's convention) on the test
split as stored, and on single-view partial scans of it; with --export writes the weights pair through
`omnisense.weights.export_checkpoint`: a `WeightsMeta` whose `model` is `--variant` with the run's part and category
counts (checked to be the trained architecture), `classes` the object categories and `input` a `CloudSpec`
(num_points, category_parts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from omnisense.weights import WeightsMeta, checkpoint_state, export_checkpoint

LICENCE = "trained by omnisense on its own generated data; Apache-2.0 like the code"
INPUT_NOTE = "xyz [B, num_points, 3] centred and scaled to the unit sphere, z up; category [B]"


def load_partseg_run(run_dir: Path):
    """(model in eval mode, init_args, task init_args, num_points) of a part-segmentation run folder."""
    from perception3d.models.gpsformer import GPSFormerPartSeg

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    task = config["model"]["init_args"]
    init_args = dict(task["model"]["init_args"])
    for key in ("widths", "radii", "max_counts"):
        init_args[key] = list(init_args[key])
    model = GPSFormerPartSeg(**init_args)
    model.load_state_dict(checkpoint_state(run_dir / "checkpoints" / "last.ckpt")[0])
    return model.eval(), init_args, task, int(config["data"]["init_args"]["num_points"])


@torch.no_grad()
def predict_parts(model, points: np.ndarray, categories: np.ndarray, category_parts, *, batch_size: int = 16) -> np.ndarray:
    """Part predictions [S, N] restricted to each sample's category."""
    from omnisense.train.parts import category_argmax

    out = []
    for start in range(0, len(points), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size], dtype=np.float32))
        c = torch.from_numpy(categories[start:start + batch_size])
        out.append(category_argmax(model(x, c), c, category_parts).numpy())
    return np.concatenate(out)


def partial_scans(points: np.ndarray, parts: np.ndarray, num_points: int, seed: int = 0):
    """Each test cloud seen from one random direction above the horizon, resampled to num_points."""
    from perception3d.classification import normalize_unit_sphere
    from perception3d.classification.shapes import visible_mask

    rng = np.random.default_rng(seed)
    out_p, out_l = [], []
    for cloud, label in zip(points, parts):
        view = rng.normal(size=3)
        view[2] = abs(view[2]) * 0.5
        keep = visible_mask(cloud, view)
        if keep.sum() >= 32:
            cloud, label = normalize_unit_sphere(cloud[keep]), label[keep]
        choice = rng.choice(len(cloud), num_points, replace=len(cloud) < num_points)
        out_p.append(cloud[choice].astype(np.float32))
        out_l.append(label[choice])
    return np.stack(out_p), np.stack(out_l)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--export", type=Path, default=None, help="write the weights pair <export>.safetensors + .json")
    parser.add_argument("--variant", default="gpsformer_partseg_small", help="the trained architecture's variant")
    parser.add_argument("--recipe", default="omnisense data make parts --size small --seed 0; omnisense fit --config "
                        "configs/partseg/gpsformer_small_parts.yaml; python tools/gpsformer_parts_eval.py --export",
                        help="recorded in the export's metadata")
    parser.add_argument("--overwrite", action="store_true", help="replace an exported file that exists")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from perception3d.classification import PART_CATEGORIES, part_miou, read_parts

    model, init_args, task, num_points = load_partseg_run(args.run)
    category_parts = [list(p) for p in task["category_parts"]]
    parts_of = dict(enumerate(category_parts))
    test = read_parts(args.root, "test")
    base_points, base_parts = test.points[:, :num_points], test.parts[:, :num_points]
    result = {"run": str(args.run), "test_samples": len(test), "num_points": num_points,
              "parameters": int(sum(p.numel() for p in model.parameters()))}
    pred = predict_parts(model, base_points, test.labels, category_parts)
    result["test"] = part_miou(pred, base_parts, test.labels, parts_of)
    per_category = {}
    for c, name in enumerate(PART_CATEGORIES):
        which = test.labels == c
        per_category[name] = part_miou(pred[which], base_parts[which], test.labels[which], parts_of)["instance_miou"]
    result["test_per_category"] = per_category
    result["point_accuracy"] = float((pred == base_parts).mean())
    scan_points, scan_parts = partial_scans(test.points, test.parts, num_points)
    scan_pred = predict_parts(model, scan_points, test.labels, category_parts)
    result["partial_scan"] = part_miou(scan_pred, scan_parts, test.labels, parts_of)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if args.export:
        from omnisense.models import build_model

        kwargs = {"num_parts": init_args["num_parts"], "num_categories": init_args["num_categories"]}
        # The named variant must be the trained architecture, since load_model builds it from the name.
        assert {k: tuple(v.shape) for k, v in build_model(args.variant, **kwargs).state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}, args.variant
        meta = WeightsMeta(
            task="part_segmentation", model={"variant": args.variant, "kwargs": kwargs},
            classes=list(task.get("category_names") or PART_CATEGORIES),
            input={"num_points": num_points, "category_parts": category_parts},
            metrics={"test_instance_miou": result["test"]["instance_miou"],
                     "test_class_miou": result["test"]["class_miou"],
                     "partial_scan_instance_miou": result["partial_scan"]["instance_miou"],
                     "partial_scan_class_miou": result["partial_scan"]["class_miou"]},
            source={"dataset": f"procedural parts ({args.root.name}), seed 0"}, licence=LICENCE, recipe=args.recipe,
            notes={"input": INPUT_NOTE})
        path = export_checkpoint(args.run / "checkpoints" / "last.ckpt", args.export, meta, overwrite=args.overwrite)
        print("exported", path)


if __name__ == "__main__":
    main()
