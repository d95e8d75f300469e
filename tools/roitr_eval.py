"""Evaluate a RoITr training checkpoint on the validation pairs of `registration-pairs`, optionally export it.

    python tools/roitr_eval.py runs/roitr_small_cgal/stage3/checkpoints/last.ckpt --root data/registration-pairs-small \
        [--export runs/roitr_small_cgal/stage3.safetensors]
    python tools/roitr_eval.py runs/roitr_small_lidar/fit/checkpoints/last.ckpt --root data/sweep-pairs-small --lidar \
        [--export runs/roitr_small_lidar.safetensors]     # the sweep weights (tools/train_roitr_lidar.sh)

Validation: every pair of `val.csv` (the scans' and meshes' pairs, then one per simulated sweep), registered as
`omnisense register` does (coarse-to-fine matching, LGR with its hypotheses verified by the point descriptors);
RR (RRE < 5 degrees and RTE < 5% of the target's extent), median RRE and RTE, IR and FMR (inliers within 0.1
canonical m), per group. The export writes `<out>.safetensors` + `.json` through `omnisense.weights.export_checkpoint`:
a `WeightsMeta` with the variant and its keyword arguments, the `RegistrationSpec` (num_points) the figures were
measured with, and these figures as `metrics.val`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VARIANT = "roitr_small"
MODEL_KWARGS = {"shape_features": True}  # the shipped roitr_small_cgal (see perception3d.models.roitr)
NUM_POINTS = 2048  # points per cloud, as `omnisense register` prepares them (RegistrationSpec)
LICENCE = ("trained by omnisense on its own generated data; Apache-2.0 like the code and the real scans of Debian "
           "libcgal-demo and liboctomap-dev")


# The sweep weights (--lidar): roitr_small_lidar at 8192 points per cloud for every input, as stage 2 trained it.
LIDAR_VARIANT = "roitr_small_lidar"
LIDAR_INPUT = {"num_points": 8192, "sweep_points": 8192, "sweep_extent": 40.0}
LIDAR_LICENCE = ("trained by omnisense on its own generated data: simulated sweeps, real Ouster sweeps of the ouster-sdk "
                 "sdist's tests (BSD-3-Clause), a laspy test tile (BSD); fine-tuned from roitr_small_cgal; Apache-2.0")


def load_checkpoint_model(ckpt: Path, variant: str = VARIANT):
    """The `roitr_small` (shape_features) model of a RegistrationTask checkpoint, in eval mode."""
    from omnisense.models import build_model
    from omnisense.weights import checkpoint_state

    model = build_model(variant, **MODEL_KWARGS)
    state, checkpoint = checkpoint_state(ckpt)
    model.load_state_dict(state)
    return model.eval(), int(checkpoint.get("global_step", -1))


def evaluate(model, csv: Path, num_points: int = NUM_POINTS) -> dict:
    """RR / RRE / RTE / IR / FMR on the pairs of `csv`, overall and for the scans and meshes vs the sweeps."""
    from omnisense.train.registration import PairListDataset, evaluate_pair, summarise_pairs

    data = PairListDataset(csv, num_points=num_points)
    names = [data.entries[i].source.name for i in range(len(data))]
    rows = [{**evaluate_pair(model, data[i]), "name": name} for i, name in enumerate(names)]
    if all(n.endswith(("_simulated_src.npy", "_ouster_src.npy")) for n in names):  # sweep-pairs (--lidar)
        groups = {"all": rows, "simulated": [r for r in rows if "_simulated_" in r["name"]],
                  "ouster": [r for r in rows if "_ouster_" in r["name"]]}
    else:
        groups = {"all": rows, "scans_meshes": [r for r in rows if "lidar_sim_" not in r["name"]],
                  "sweeps": [r for r in rows if "lidar_sim_" in r["name"]]}
    return {name: summarise_pairs(sel) for name, sel in groups.items() if sel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", type=Path, required=True, help="the registration-pairs folder (val.csv)")
    parser.add_argument("--export", type=Path, help="write the weights here (.safetensors + .json)")
    parser.add_argument("--recipe", default="bash tools/train_roitr_small.sh", help="recorded in the export's metadata")
    parser.add_argument("--overwrite", action="store_true", help="replace an exported file that exists")
    parser.add_argument("--lidar", action="store_true", help="the sweep weights: roitr_small_lidar, sweep-pairs")
    args = parser.parse_args()
    variant = LIDAR_VARIANT if args.lidar else VARIANT
    num_points = LIDAR_INPUT["num_points"] if args.lidar else NUM_POINTS
    model, step = load_checkpoint_model(args.checkpoint, variant)
    result = evaluate(model, args.root / "val.csv", num_points)
    print(json.dumps({"checkpoint": str(args.checkpoint), "step": step, "val": result}, indent=2))
    if args.export:
        from omnisense.weights import WeightsMeta, export_checkpoint

        if args.lidar:
            meta = WeightsMeta(
                task="registration", model={"variant": variant, "kwargs": MODEL_KWARGS}, input=dict(LIDAR_INPUT),
                metrics={"val": result}, licence=LIDAR_LICENCE, recipe="bash tools/train_roitr_lidar.sh",
                source={"dataset": f"omnisense data make sweep-pairs --size small --seed 0 --out {args.root} (the "
                                   "benchmark's sensors OS-1-128, OS-0-32 and OS-2-128 held out)",
                        "init_weights": "roitr_small_cgal"})
        else:
            meta = WeightsMeta(
                task="registration", model={"variant": VARIANT, "kwargs": MODEL_KWARGS},
                input={"num_points": NUM_POINTS}, metrics={"val": result}, licence=LICENCE, recipe=args.recipe,
                source={"dataset": f"omnisense data make registration-pairs --size small --out {args.root} "
                                   "(kitten, bunny, hippo held out)"})
        print(export_checkpoint(args.checkpoint, args.export, meta, overwrite=args.overwrite))


if __name__ == "__main__":
    main()
