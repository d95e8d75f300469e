"""Official KITTI AP numbers for `perception3d.detection.evaluation.kitti_eval`'s parity test, from OpenPCDet's
`kitti_object_eval_python` (as shipped in Haiyang-W/DSVT's OpenPCDet tree, or OpenPCDet itself).

    NUMBA_ENABLE_CUDASIM=1 python tools/parity/kitti_eval.py /path/to/OpenPCDet-or-DSVT \
        [--out tests/fixtures/parity/kitti_eval]

Generates seeded KITTI-format labels and predictions (Car, Pedestrian, Cyclist and the devkit's special cases:
Van and Person_sitting neighbours, DontCare, all occlusion / truncation / height levels, false positives,
duplicates), runs the official `get_official_eval_result` on them and writes `fixture.json`: the annotations as
the devkit reads them (`name, truncated, occluded, alpha, bbox, dimensions (l, h, w), location, rotation_y,
score`) and the official printed result, parsed into numbers (BEV and 3D, R11 and R40, both overlap settings).

The devkit's rotated IoU is a numba CUDA kernel: with no GPU, numba's CUDA simulator runs it on the CPU
(`NUMBA_ENABLE_CUDASIM=1`, set below if absent). Needs `numba` (pip). Nothing of the official code is written out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

SIZES = {"Car": (3.9, 1.55, 1.65), "Van": (5.0, 2.2, 1.9), "Pedestrian": (0.8, 1.75, 0.6),
         "Person_sitting": (0.8, 1.2, 0.6), "Cyclist": (1.75, 1.75, 0.6)}


def make_frames(seed: int = 0, frames: int = 40) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(frames):
        g = {k: [] for k in ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y")}
        d = {k: [] for k in ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y",
                             "score")}
        names = rng.choice(["Car", "Car", "Car", "Van", "Pedestrian", "Pedestrian", "Person_sitting", "Cyclist",
                            "DontCare"], size=rng.integers(3, 12))
        for name in names:
            loc = [rng.uniform(-15, 15), rng.uniform(1.4, 1.8), rng.uniform(5, 45)]
            dims = [v * rng.uniform(0.9, 1.1) for v in SIZES.get(name, (1.0, 1.0, 1.0))]
            ry = rng.uniform(-np.pi, np.pi)
            top = rng.uniform(100, 250)
            height = rng.choice([rng.uniform(15, 25), rng.uniform(26, 40), rng.uniform(41, 150)], p=[0.1, 0.2, 0.7])
            left = rng.uniform(0, 1100)
            g["name"].append(str(name))
            g["truncated"].append(float(rng.choice([0.0, 0.1, 0.2, 0.4, 0.7], p=[0.5, 0.2, 0.1, 0.1, 0.1])))
            g["occluded"].append(int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])))
            g["alpha"].append(-10.0)
            g["bbox"].append([left, top, left + height * 1.5, top + height])
            g["dimensions"].append(dims)
            g["location"].append(loc)
            g["rotation_y"].append(ry)
            if name == "DontCare" or rng.random() < 0.15:
                continue
            for _ in range(1 if rng.random() < 0.9 else 2):  # sometimes a duplicate
                label = {"Van": "Car", "Person_sitting": "Pedestrian"}.get(str(name), str(name))
                if rng.random() < 0.1:  # a confused class
                    label = str(rng.choice(["Car", "Pedestrian", "Cyclist"]))
                noise = rng.choice([0.03, 0.08, 0.3], p=[0.5, 0.35, 0.15])  # metres: good, fair, poor
                d["name"].append(label)
                d["truncated"].append(0.0)
                d["occluded"].append(0)
                d["alpha"].append(-10.0)
                d["bbox"].append([left, top, left + 90.0, top + 60.0])
                d["dimensions"].append([v * rng.uniform(1 - noise / 2, 1 + noise / 2) for v in dims])
                d["location"].append([loc[0] + rng.normal(0, noise), loc[1] + rng.normal(0, noise / 2),
                                      loc[2] + rng.normal(0, noise)])
                d["rotation_y"].append(ry + rng.normal(0, noise / 2))
                d["score"].append(float(rng.uniform(0.05, 1.0)))
        for _ in range(rng.integers(0, 4)):  # false positives
            label = str(rng.choice(["Car", "Pedestrian", "Cyclist"]))
            d["name"].append(label)
            d["truncated"].append(0.0)
            d["occluded"].append(0)
            d["alpha"].append(-10.0)
            d["bbox"].append([0.0, 100.0, 90.0, 160.0])
            d["dimensions"].append(list(SIZES[label]))
            d["location"].append([rng.uniform(-15, 15), 1.6, rng.uniform(5, 45)])
            d["rotation_y"].append(rng.uniform(-np.pi, np.pi))
            d["score"].append(float(rng.uniform(0.05, 1.0)))
        gts.append(g)
        dts.append(d)
    return gts, dts


def as_arrays(anno: dict) -> dict:
    out = {}
    for k, v in anno.items():
        if k == "name":
            out[k] = np.array(v, dtype="<U20")
        elif k in ("bbox", "dimensions", "location"):
            out[k] = np.array(v, dtype=np.float64).reshape(-1, 4 if k == "bbox" else 3)
        else:
            out[k] = np.array(v, dtype=np.int64 if k == "occluded" else np.float64)
    return out


def parse(result: str) -> dict:
    """`{"Car": {"R11@0.70,0.70,0.70": {"bev": [e, m, h], "3d": [...]}, "R40@...": ...}, ...}` from the printout."""
    out: dict = {}
    cls = key = None
    for line in result.splitlines():
        head = re.match(r"(\w+) AP(_R40)?@([\d.]+), ([\d.]+), ([\d.]+):", line)
        if head:
            cls = head.group(1)
            key = ("R40" if head.group(2) else "R11") + "@" + ",".join(head.group(i) for i in (3, 4, 5))
            out.setdefault(cls, {})[key] = {}
            continue
        row = re.match(r"(bbox|bev|3d)\s+AP:([\d.]+), ([\d.]+), ([\d.]+)", line)
        if row and cls:
            out[cls][key][row.group(1)] = [row.group(i) for i in (2, 3, 4)]  # as printed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="OpenPCDet (or Haiyang-W/DSVT) checkout")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/kitti_eval"))
    args = parser.parse_args()
    folder = args.checkout / "pcdet/datasets/kitti/kitti_object_eval_python"
    package = types.ModuleType("kitti_object_eval_python")
    package.__path__ = [str(folder)]
    sys.modules["kitti_object_eval_python"] = package
    official = importlib.import_module("kitti_object_eval_python.eval")
    gts, dts = make_frames()
    result, _ = official.get_official_eval_result([as_arrays(g) for g in gts], [as_arrays(d) for d in dts],
                                                  ["Car", "Pedestrian", "Cyclist"])
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"source": "pcdet/datasets/kitti/kitti_object_eval_python (get_official_eval_result)",
              "repository_commit": commit, "script": "tools/parity/kitti_eval.py", "printed": result,
              "official": parse(result), "ground_truths": gts, "detections": dts}
    (args.out / "fixture.json").write_text(json.dumps(record, separators=(",", ":")))
    print(result)


if __name__ == "__main__":
    main()
