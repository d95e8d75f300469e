"""Evaluate a RoITr training checkpoint on the validation pairs of `registration-pairs`, optionally export it.

    python tools/roitr_eval.py runs/roitr_small_cgal/stage3/checkpoints/last.ckpt --root data/registration-pairs-small \
        [--export runs/roitr_small_cgal/stage3.safetensors]

Validation: every pair of `val.csv` (the scans' and meshes' pairs, then one per simulated sweep), registered as
`omnisense register` does (coarse-to-fine matching, LGR with its hypotheses verified by the point descriptors);
RR (RRE < 5 degrees and RTE < 5% of the target's extent), median RRE and RTE, IR and FMR (inliers within 0.1 canonical m), per group. The export writes
`<out>.safetensors` + `.json` with the variant, its keyword arguments and these figures (omnisense.export_checkpoint).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VARIANT = "roitr_small"
MODEL_KWARGS = {"shape_features": True}  # the shipped roitr_small_cgal (see perception3d.models.roitr)


def load_checkpoint_model(ckpt: Path):
    """The `roitr_small` (shape_features) model of a RegistrationTask checkpoint, in eval mode."""
    from omnisense.weights import checkpoint_state
    from omnisense.models import VARIANTS

    model = VARIANTS[VARIANT](**MODEL_KWARGS)
    state, checkpoint = checkpoint_state(ckpt)
    model.load_state_dict(state)
    return model.eval(), int(checkpoint.get("global_step", -1))


def evaluate(model, csv: Path, num_points: int = 2048) -> dict:
    """RR / RRE / RTE / IR / FMR on the pairs of `csv`, overall and for the scans and meshes vs the sweeps."""
    from omnisense.train.registration import PairListDataset, evaluate_pair, summarise_pairs

    data = PairListDataset(csv, num_points=num_points)
    rows = [{**evaluate_pair(model, data[i]), "sweep": "lidar_sim_" in data.entries[i].source.name}
            for i in range(len(data))]
    groups = {"all": rows, "scans_meshes": [r for r in rows if not r["sweep"]],
              "sweeps": [r for r in rows if r["sweep"]]}
    return {name: summarise_pairs(sel) for name, sel in groups.items() if sel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", type=Path, required=True, help="the registration-pairs folder (val.csv)")
    parser.add_argument("--export", type=Path, help="write the weights here (.safetensors + .json)")
    parser.add_argument("--recipe", default="tools/train_roitr_small.sh", help="recorded in the export's metadata")
    args = parser.parse_args()
    model, step = load_checkpoint_model(args.checkpoint)
    result = evaluate(model, args.root / "val.csv")
    print(json.dumps({"checkpoint": str(args.checkpoint), "step": step, "val": result}, indent=2))
    if args.export:
        from omnisense import export_checkpoint

        meta = {"variant": VARIANT, "model_kwargs": MODEL_KWARGS, "task": "registration", "trained_steps": step,
                "data": f"omnisense data make registration-pairs --size small ({args.root})", "recipe": args.recipe,
                "metrics": {"val": result}}
        print(export_checkpoint(args.checkpoint, args.export, meta=meta, overwrite=True))


if __name__ == "__main__":
    main()
