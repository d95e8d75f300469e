"""Evaluate a RoITr training checkpoint on the validation pairs of `registration-pairs`, optionally export it.

    python tools/roitr_eval.py runs/roitr_small_cgal/stage3/checkpoints/last.ckpt --root data/registration-pairs-small \
        [--export runs/roitr_small_cgal/stage3.safetensors]

Validation: every pair of `val.csv` (the scans' and meshes' pairs, then one per simulated sweep), registered as
`omnisense register` does (coarse-to-fine matching, LGR with the final tight refinement); RR (RRE < 5 degrees and
RTE < 5% of the target's extent), IR and FMR (inliers within 0.1 canonical m), per group. The export writes
`<out>.safetensors` + `.json` with the variant, its keyword arguments and these figures (fusion.export_checkpoint).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

VARIANT = "roitr_small"
MODEL_KWARGS = {"shape_features": True}  # the shipped roitr_small_cgal (see perception3d.models.roitr)


def load_checkpoint_model(ckpt: Path):
    """The `roitr_small` (shape_features) model of a RegistrationTask checkpoint, in eval mode."""
    from fusion._weights import checkpoint_state
    from perception3d.models import VARIANTS

    model = VARIANTS[VARIANT](**MODEL_KWARGS)
    state, checkpoint = checkpoint_state(ckpt)
    model.load_state_dict(state)
    return model.eval(), int(checkpoint.get("global_step", -1))


@torch.no_grad()
def evaluate(model, csv: Path, num_points: int = 2048) -> dict:
    """RR / IR / FMR on the pairs of `csv`, overall and for the scans and meshes vs the simulated sweeps."""
    from fusion.tasks.registration import PairListDataset
    from perception3d.registration import metrics
    from perception3d.registration.pipeline import CANONICAL_VOXEL, lgr_transform

    data = PairListDataset(csv, num_points=num_points)
    rows = []
    for i in range(len(data)):
        item = data[i]
        out = model(item["src_points"], item["src_normals"], item["tgt_points"], item["tgt_normals"])
        m = model.match(out)
        est, gt = lgr_transform(m).double().numpy(), item["transform"].double().numpy()
        rre, rte = metrics.rotation_error(est, gt), metrics.translation_error(est, gt)
        rows.append({"sweep": "lidar_sim_" in data.entries[i].source.name, "ok": rre < 5 and rte < 0.05 * item["extent"],
                     "ir": metrics.inlier_ratio(m.src_corr.numpy(), m.tgt_corr.numpy(), gt, 4 * CANONICAL_VOXEL)})
    result = {}
    for group, keep in (("all", lambda r: True), ("scans_meshes", lambda r: not r["sweep"]),
                        ("sweeps", lambda r: r["sweep"])):
        sel = [r for r in rows if keep(r)]
        if sel:
            ir = np.array([r["ir"] for r in sel])
            result[group] = {"pairs": len(sel), "rr": float(np.mean([r["ok"] for r in sel])), "ir": float(ir.mean()),
                             "fmr": float(metrics.feature_match_recall(ir))}
    return result


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
        from fusion import export_checkpoint

        meta = {"variant": VARIANT, "model_kwargs": MODEL_KWARGS, "task": "registration", "trained_steps": step,
                "data": f"omnisense data make registration-pairs --size small ({args.root})", "recipe": args.recipe,
                "metrics": {"val": result}}
        print(export_checkpoint(args.checkpoint, args.export, meta=meta, overwrite=True))


if __name__ == "__main__":
    main()
