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

import numpy as np
import torch

from omnisense._errors import FileProblem
from omnisense.models import build_model
from omnisense.train.shapes import yaw_matrix
from omnisense.weights import WeightsMeta, checkpoint_state, export_checkpoint

LICENCE = "trained by omnisense on its own generated data; Apache-2.0 like the code"
INPUT_NOTE = "xyz [B, num_points, 3], centred and scaled to the unit sphere, z up"
CLASSES_NOTE = ("classes of the procedural shape set (omnisense data make shapes): parametric shapes, "
                "not real object categories")


def build_from_config(config: dict):
    """The GPSFormer of a resolved training config (config.yaml of a run): (model, init_args, class_names, num_points)."""
    from perception3d.models.gpsformer import GPSFormer

    task = config["model"]["init_args"]
    spec = task["model"]
    if not spec["class_path"].endswith("GPSFormer"):
        raise FileProblem(Path("config.yaml"), f"model {spec['class_path']} is not GPSFormer")
    init_args = dict(spec.get("init_args") or {})
    for key in ("widths", "radii", "max_counts", "head_hidden"):
        if key in init_args:
            init_args[key] = list(init_args[key])
    return GPSFormer(**init_args), init_args, list(task.get("class_names") or []), int(config["data"]["init_args"]["num_points"])

def load_run(run_dir: str | Path, ckpt: str = "last.ckpt"):
    """(model in eval mode, init_args, class names, num_points) from a run folder's config.yaml and checkpoint."""
    import yaml

    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model, init_args, classes, num_points = build_from_config(config)
    model.load_state_dict(checkpoint_state(run_dir / "checkpoints" / ckpt)[0])
    return model.eval(), init_args, classes, num_points

@torch.no_grad()
def predict_set(model, points: np.ndarray, *, batch_size: int = 32, num_votes: int = 1, seed: int = 0) -> np.ndarray:
    """Class probabilities [S, K] for clouds [S, N, 3]; votes as perception3d.classification.vote_predict."""
    from perception3d.classification import vote_predict

    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(points), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size], dtype=np.float32))
        out.append(vote_predict(model, x, num_votes=num_votes, generator=generator))
    return torch.cat(out).numpy()

def scores(prob: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    from perception3d.classification import mean_class_accuracy, overall_accuracy

    pred = prob.argmax(-1)
    return {"oa": overall_accuracy(pred, labels), "macc": mean_class_accuracy(pred, labels, num_classes)}

def _perturbed(points: np.ndarray, kind: str, value: float, num_points: int, seed: int) -> np.ndarray:
    """The test clouds [S, N, 3] under one perturbation, resampled to num_points: [S, num_points, 3]."""
    from perception3d.classification import normalize_unit_sphere
    from perception3d.classification.shapes import partial_view

    rng = np.random.default_rng(seed)
    out = []
    for cloud in points:
        n = int(value) if kind == "points" else num_points
        if kind == "yaw":
            cloud = cloud @ yaw_matrix(np.deg2rad(value)).T
        elif kind == "tilt":  # rotation about the x axis: leaves the upright pose the training saw
            a = np.deg2rad(value)
            rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]], dtype=np.float32)
            cloud = cloud @ rot.T
        elif kind == "noise":
            cloud = normalize_unit_sphere(cloud + rng.normal(scale=value, size=cloud.shape))
        elif kind == "partial" and value > 0:
            view = rng.normal(size=3)
            view[2] = abs(view[2]) * 0.5
            visible = partial_view(cloud, view)
            if len(visible) >= 32:
                cloud = normalize_unit_sphere(visible)
        if len(cloud) >= n:
            cloud = cloud[rng.choice(len(cloud), n, replace=False)]
        else:
            cloud = np.concatenate([cloud, cloud[rng.choice(len(cloud), n - len(cloud))]])
        out.append(cloud.astype(np.float32))
    return np.stack(out)

ROBUSTNESS: dict[str, tuple[float, ...]] = {
    "none": (0,),  # the same clouds, unperturbed (a random subset of num_points of the stored points)
    "points": (128, 512, 1024),
    "yaw": (90, 180),
    "tilt": (90,),
    "noise": (0.02, 0.04),
    "partial": (1.0,),
}

def evaluate_run(run_dir: str | Path, root: str | Path, *, votes: int = 5, robustness: bool = True,
                 robustness_samples: int | None = None, seed: int = 0) -> dict:
    """OA and mAcc of a trained run on the held-out test split, with and without voting, and robustness.

    Robustness runs on the first `robustness_samples` test clouds (all by default), each perturbation
    applied to every one of them: point count (the model sees n points), rotation about up (yaw, degrees),
    a tilt about a horizontal axis (never seen in training), Gaussian noise (sigma, unit-sphere units)
    and a single-view partial scan (`partial_view` from a random direction above the horizon).
    """
    from perception3d.classification import read_shapes

    model, init_args, classes, num_points = load_run(run_dir)
    torch.manual_seed(seed)
    test = read_shapes(root, "test")
    k = len(test.classes)
    base = np.ascontiguousarray(test.points[:, :num_points])
    result: dict = {"test_samples": len(test), "num_points": num_points,
                    "parameters": int(sum(p.numel() for p in model.parameters()))}
    result["single"] = scores(predict_set(model, base), test.labels, k)
    if votes > 1:
        result[f"vote{votes}"] = scores(predict_set(model, base, num_votes=votes, seed=seed), test.labels, k)
    if robustness:
        rows = []
        s = robustness_samples or len(test)
        result["robustness_samples"] = s
        for kind, values in ROBUSTNESS.items():
            for value in values:
                pts = _perturbed(test.points[:s], kind, value, num_points, seed)
                rows.append({"perturbation": kind, "value": value, **scores(predict_set(model, pts), test.labels[:s], k)})
        result["robustness"] = rows
    return result


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
