"""Choose `omnisense detect --score-threshold` on validation data: precision, recall and F1 per threshold.

The frames are the validation frames of the simulated KITTI-layout set, `omnisense data make lidar-scenes --size
small --seed 0` (frames 640-799), simulated here with the generator's own seeds and lidar (frame i comes from
`np.random.default_rng([seed, i])`), so the first `--frames` of them are the very frames `data make` writes without
simulating its 640 training frames first. Each shipped detector runs as `omnisense detect` runs it
(`detect_points` with the weights' input spec); a detection is a true positive when it matches an unmatched
ground-truth box of its class (greedy by score) with BEV IoU >= 0.5 (Car) or 0.25 (Pedestrian, Cyclist), KITTI's
loose BEV thresholds; ground truth counts when the object has a lidar return inside the detector's range.

    python tools/detect_score_threshold.py --frames 40 --json docs/detect_score_threshold.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IOU = {"Car": 0.5, "Pedestrian": 0.25, "Cyclist": 0.25}
THRESHOLDS = [0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]


def val_frames(seed: int, count: int):
    from perception3d.detection.simulator import _SIZES, LidarConfig, simulate_frame

    n_train, n_val, beams, steps = _SIZES["small"]
    lidar = LidarConfig(beams=beams, azimuth_steps=steps, elevation=(-24.9, 2.0))  # make_lidar_scenes' 64 beams
    for i in range(n_train, n_train + min(count, n_val)):
        yield simulate_frame(np.random.default_rng([seed, i]), lidar)


def match(det: list[dict], gt_boxes: np.ndarray, gt_names: list[str]) -> list[tuple[float, bool]]:
    """(score, true positive) per detection, greedy by score within each class."""
    from perception3d.detection.boxes import iou_bev

    out = []
    for cls, thr in IOU.items():
        d = sorted((b for b in det if b["label"] == cls), key=lambda b: -b["score"])
        g = gt_boxes[[n == cls for n in gt_names]]
        if not d:
            continue
        if not len(g):
            out += [(b["score"], False) for b in d]
            continue
        iou = iou_bev(torch.tensor([[*b["center"], *b["size"], b["heading"]] for b in d], dtype=torch.float64),
                      torch.from_numpy(g).double()).numpy()
        used = np.zeros(len(g), bool)
        for k, b in enumerate(d):
            cand = np.where(~used & (iou[k] >= thr))[0]
            if len(cand):
                used[cand[np.argmax(iou[k, cand])]] = True
            out.append((b["score"], bool(len(cand))))
    return out


def main(argv=None) -> int:
    from omnisense.models import load_model
    from perception3d.detection import boxes_to_json, detect_points

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="validation frames (of 160)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", nargs="+", default=["flatformer_small_simkitti", "dsvt_pillar_small_simkitti"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    frames = list(val_frames(args.seed, args.frames))
    report = {"frames": len(frames), "iou": IOU, "models": {}}
    for name in args.weights:
        model, meta = load_model(name, task="detection")
        r = meta.transforms().point_range
        scored, n_gt = [], 0
        for f in frames:
            det, _ = detect_points(model, f.points, "cpu", spec=meta.transforms())
            inside = ((f.boxes[:, 0] >= r[0]) & (f.boxes[:, 0] <= r[3]) & (f.boxes[:, 1] >= r[1])
                      & (f.boxes[:, 1] <= r[4]) & (f.num_points > 0))
            names = [n for n, k in zip(f.names, inside) if k]
            n_gt += len(names)
            scored += match(boxes_to_json(det, meta.classes), f.boxes[inside], names)
        scores = np.array([s for s, _ in scored])
        tp = np.array([t for _, t in scored])
        rows = []
        for thr in THRESHOLDS:
            keep = scores >= thr
            p = float(tp[keep].mean()) if keep.any() else 0.0
            rec = float(tp[keep].sum() / max(n_gt, 1))
            f1 = 2 * p * rec / (p + rec) if p + rec else 0.0
            rows.append({"threshold": thr, "boxes_per_frame": round(float(keep.sum()) / len(frames), 2),
                         "precision": round(p, 3), "recall": round(rec, 3), "f1": round(f1, 3)})
        best = max(rows, key=lambda row: row["f1"])
        report["models"][name] = {"ground_truth": n_gt, "rows": rows, "best": best}
        print(f"{name}: {n_gt} objects in {len(frames)} frames; best F1 {best['f1']} at {best['threshold']}")
        for row in rows:
            print("  " + "  ".join(f"{k} {v}" for k, v in row.items()))
    if args.json:
        from omnisense._io import write_json_atomic

        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
