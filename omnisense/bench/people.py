"""`omnisense bench people`: the person detector's precision and recall on hand-labelled real frames.

The frames are listed in tests/video/person_frames.json (real frames of vtest.avi, bikes.mp4, carphone, box.mp4
and cup.mp4, each labelled by looking at it: 1 when a person's body is visible). Each is decoded with
`video.io.VideoReader` and scored by `video.people.HogPersonDetector`; the naive baseline says "person" for every
frame (its precision is the share of frames with a person).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "person detector (OpenCV HOG) precision and recall on hand-labelled real frames, against 'always a person'"

LABELS = Path(__file__).resolve().parents[2] / "tests" / "video" / "person_frames.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, default=LABELS, help="labelled frames (JSON)")
    parser.add_argument("--min-side", type=int, default=480, help="upscale frames to this short side (pixels)")


def _figures(truth, pred) -> dict[str, Any]:
    import numpy as np

    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    tp, fp, fn = int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
    return {"precision": round(tp / max(1, tp + fp), 4), "recall": round(tp / max(1, tp + fn), 4),
            "accuracy": round(float((truth == pred).mean()), 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate(detector, labels_path: Path = LABELS, videos: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Per-frame scores of `detector` on the labelled frames (of `videos`, or all), with precision and recall."""
    import numpy as np

    from omnisense import sample_data
    from video.io import VideoReader

    labels = json.loads(Path(labels_path).read_text())
    rows = [r for r in labels["frames"] if videos is None or r["video"] in videos]
    out = []
    for name in dict.fromkeys(r["video"] for r in rows):
        source, _, rel = labels["sources"][name].partition("/")
        mine = [r for r in rows if r["video"] == name]
        frames = VideoReader(sample_data(source) / rel).get_frames(np.array([r["frame"] for r in mine]))
        for r, score in zip(mine, detector.scores(frames)):
            out.append({**r, "score": round(float(score), 4), "detected": bool(score >= detector.threshold)})
    truth = [r["person"] == 1 for r in out]
    return {"frames": len(out), "with_person": int(sum(truth)),
            "detector": _figures(truth, [r["detected"] for r in out]),
            "always_person": _figures(truth, [True] * len(out)), "per_frame": out}


def run(args: argparse.Namespace):
    from omnisense.bench._common import BenchReport
    from video.people import HogPersonDetector

    detector = HogPersonDetector(min_side=args.min_side)
    result = evaluate(detector, args.labels)
    rows = [{"method": "HOG people detector (OpenCV)", **result["detector"]},
            {"method": "always a person (baseline)", **result["always_person"]}]
    wrong = [f"{r['video']}:{r['frame']} (label {r['person']}, score {r['score']})" for r in result["per_frame"]
             if r["detected"] != bool(r["person"])]
    return BenchReport(title=f"person detector on {result['frames']} hand-labelled real frames "
                             f"({result['with_person']} with a person)", rows=rows,
                       context={"min_side": args.min_side, "threshold": detector.threshold, "labels": str(args.labels)},
                       notes=["wrong: " + ", ".join(wrong)] if wrong else [], details=result["per_frame"])
