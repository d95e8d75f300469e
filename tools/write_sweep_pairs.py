"""Write the lidar benchmark's real low-overlap sweep pairs as files, for timing `omnisense register` as a user runs it.

    python tools/write_sweep_pairs.py --out /tmp/sweeps [--rotations 2]

The real base pairs of `omnisense bench registration --lidar` (OS-1-128 consecutive sweeps with the capture's poses,
the OS-0-32 and OS-2-128 sweeps against a copy of themselves; sensors held out of roitr_small_lidar's training),
each with the source cut to a 90-degree sector and moved by a uniform SO(3) rotation (the bench's seeds), as
`<i>_src.npy`, `<i>_tgt.npy`, a `pairs.csv` for `omnisense register --pairs` and `truth.json` (the transforms).
Timing, both commands interleaved on one thread (farm-bench, or any hyperfine-style runner):

    farm-bench -n 10 --timeout 900 -- .venv/bin/omnisense register --pairs /tmp/sweeps/pairs.csv --refine icp \\
        --threads 1 --allow-failure --output /tmp/a.jsonl --overwrite --no-progress \\
        --vs '.venv/bin/omnisense register --pairs /tmp/sweeps/pairs.csv --method fpfh --refine icp --threads 1 \\
        --allow-failure --output /tmp/b.jsonl --overwrite --no-progress'
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rotations", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from omnisense.bench.registration import lidar_bases
    from perception3d.registration.pairs import sweep_pair

    args.out.mkdir(parents=True, exist_ok=True)
    rows, truth = [], {}
    for b, (name, sensor, source, target, transform) in enumerate(lidar_bases(0, seed=args.seed)):
        for i in range(args.rotations):
            rng = np.random.default_rng([args.seed, b, i, True])  # the bench's low-overlap draws
            src, tgt, gt = sweep_pair(source, target, transform, rng, sector=90.0)
            k = len(rows)
            np.save(args.out / f"{k:02d}_src.npy", src.astype(np.float32))
            np.save(args.out / f"{k:02d}_tgt.npy", tgt.astype(np.float32))
            rows.append({"source": f"{k:02d}_src.npy", "target": f"{k:02d}_tgt.npy"})
            truth[f"{k:02d}"] = {"pair": name, "sensor": sensor, "rotation": i, "transform": gt.tolist()}
    with open(args.out / "pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["source", "target"])
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1))
    print(f"{len(rows)} pairs -> {args.out / 'pairs.csv'}")


if __name__ == "__main__":
    main()
