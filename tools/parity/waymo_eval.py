"""Official Waymo detection metrics (3D AP / APH, LEVEL_1 and LEVEL_2 by object type) for the comparison with
`perception3d.detection.evaluation.waymo_eval`, from the `waymo-open-dataset-tf-2-12-0==1.6.7` package's
`py_metrics_ops.detection_metrics` (the C++ metrics op; Hungarian matching, 101 score cutoffs).

    python tools/parity/waymo_eval.py [--out tests/fixtures/parity/waymo_eval]

The package pins TensorFlow 2.13 and numpy 1.23, which this project's environment cannot take: run this script
with the Python of a separate virtual environment holding only that package. It generates seeded lidar-frame boxes
(Vehicle, Pedestrian, Cyclist; point counts on both sides of the LEVEL_2 limit of 5), predictions (jittered copies,
duplicates, misses, false positives), runs the official op with the default configuration of the package's
`WODDetectionEvaluator` (OBJECT_TYPE breakdown only; IoU 0.7 / 0.5 / 0.5; boxes with <= 5 points LEVEL_2), once
with 3D boxes (`Label.Box.TYPE_3D` = 1, the leaderboards' setting) and once with rotated BEV boxes (`TYPE_2D` = 2),
and writes `fixture.json`: the boxes and the official numbers of both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TYPES = {"Vehicle": 1, "Pedestrian": 2, "Cyclist": 4}  # label_pb2.Label.Type
SIZES = {"Vehicle": (4.5, 2.0, 1.6), "Pedestrian": (0.8, 0.8, 1.75), "Cyclist": (1.8, 0.7, 1.7)}


def make_frames(seed: int = 0, frames: int = 40) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(frames):
        g = {"boxes": [], "labels": [], "num_points": []}
        d = {"boxes": [], "labels": [], "scores": []}
        for _ in range(rng.integers(4, 14)):
            name = str(rng.choice(list(TYPES), p=[0.55, 0.3, 0.15]))
            c = list(TYPES).index(name)
            size = [v * rng.uniform(0.9, 1.1) for v in SIZES[name]]
            box = [rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(-1, 1), *size, rng.uniform(-np.pi, np.pi)]
            g["boxes"].append(box)
            g["labels"].append(c)
            g["num_points"].append(int(rng.choice([rng.integers(1, 6), rng.integers(6, 300)], p=[0.3, 0.7])))
            if rng.random() < 0.12:
                continue  # missed
            for _ in range(1 if rng.random() < 0.9 else 2):
                noise = rng.choice([0.03, 0.1, 0.35], p=[0.5, 0.35, 0.15])
                heading = box[6] + (np.pi if rng.random() < 0.1 else 0.0) + rng.normal(0, noise)
                d["boxes"].append([box[0] + rng.normal(0, noise), box[1] + rng.normal(0, noise),
                                   box[2] + rng.normal(0, noise / 2), *[v * rng.uniform(1 - noise / 2, 1 + noise / 2)
                                                                        for v in size], heading])
                d["labels"].append(c)
                d["scores"].append(float(rng.uniform(0.05, 1.0)))
        for _ in range(rng.integers(0, 4)):
            name = str(rng.choice(list(TYPES)))
            d["boxes"].append([rng.uniform(-60, 60), rng.uniform(-60, 60), 0.0, *SIZES[name], rng.uniform(-3, 3)])
            d["labels"].append(list(TYPES).index(name))
            d["scores"].append(float(rng.uniform(0.05, 1.0)))
        gts.append(g)
        dts.append(d)
    return gts, dts


def official(gts: list[dict], dts: list[dict], box_type: int) -> dict:
    import tensorflow as tf
    from waymo_open_dataset.metrics.ops import py_metrics_ops
    from waymo_open_dataset.metrics.python import config_util_py
    from waymo_open_dataset.protos import breakdown_pb2, metrics_pb2

    config = metrics_pb2.Config()
    config.breakdown_generator_ids.append(breakdown_pb2.Breakdown.OBJECT_TYPE)
    difficulty = config.difficulties.add()
    difficulty.levels.append(1)
    difficulty.levels.append(2)
    config.matcher_type = metrics_pb2.MatcherProto.TYPE_HUNGARIAN
    config.iou_thresholds.extend([0.0, 0.7, 0.5, 0.5, 0.5])
    config.box_type = box_type  # label_pb2.Label.Box.Type: 1 TYPE_3D, 2 TYPE_2D (7-DOF boxes, BEV IoU)
    config.score_cutoffs.extend([i * 0.01 for i in range(100)] + [1.0])
    names = list(TYPES)

    def cat(frames, key, f=lambda x: x):
        return np.concatenate([np.asarray([f(v) for v in fr[key]]).reshape(len(fr[key]), -1) for fr in frames])

    pd_frame = np.concatenate([np.full(len(d["scores"]), i, np.int64) for i, d in enumerate(dts)])
    gt_frame = np.concatenate([np.full(len(g["labels"]), i, np.int64) for i, g in enumerate(gts)])
    out = py_metrics_ops.detection_metrics(
        prediction_bbox=tf.constant(cat(dts, "boxes"), tf.float32),
        prediction_type=tf.constant(cat(dts, "labels", lambda c: TYPES[names[c]])[:, 0], tf.uint8),
        prediction_score=tf.constant(cat(dts, "scores")[:, 0], tf.float32),
        prediction_frame_id=tf.constant(pd_frame), prediction_overlap_nlz=tf.zeros(len(pd_frame), tf.bool),
        ground_truth_bbox=tf.constant(cat(gts, "boxes"), tf.float32),
        ground_truth_type=tf.constant(cat(gts, "labels", lambda c: TYPES[names[c]])[:, 0], tf.uint8),
        ground_truth_frame_id=tf.constant(gt_frame),
        ground_truth_difficulty=tf.constant(cat(gts, "num_points", lambda n: 2 if n <= 5 else 1)[:, 0], tf.uint8),
        config=config.SerializeToString())
    breakdowns = config_util_py.get_breakdown_names_from_config(config)
    return {name: {"AP": float(ap) * 100, "APH": float(aph) * 100}
            for name, ap, aph in zip(breakdowns, out.average_precision.numpy(), out.average_precision_ha_weighted.numpy())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/waymo_eval"))
    args = parser.parse_args()
    gts, dts = make_frames()
    numbers = {"TYPE_3D": official(gts, dts, 1), "TYPE_2D": official(gts, dts, 2)}
    import waymo_open_dataset

    args.out.mkdir(parents=True, exist_ok=True)
    record = {"source": "waymo-open-dataset-tf-2-12-0==1.6.7 py_metrics_ops.detection_metrics",
              "version": getattr(waymo_open_dataset, "__version__", "1.6.7"), "script": "tools/parity/waymo_eval.py",
              "official": numbers, "ground_truths": gts, "detections": dts}
    (args.out / "fixture.json").write_text(json.dumps(record, separators=(",", ":")))
    for box_type, table in numbers.items():
        for k, v in table.items():
            print(f"{box_type} {k}: AP {v['AP']:.4f} APH {v['APH']:.4f}")


if __name__ == "__main__":
    main()
