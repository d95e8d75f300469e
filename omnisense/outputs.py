"""One versioned output record per task kind, shared by the CLI and the Python API (see docs/outputs.md).

Every record is a JSON object with `"schema": "omnisense.<kind>/<version>"`, `"input"` (the file, folder or pair it
describes) and `"model"` (the weights it came from, as the user named them) first; the rest depends on the kind:

- classification, recognition, audio_classification: the open-set answer: `"label"` (the best class, or "none of
  the known classes" when the weights' calibrated rejection rule finds the evidence weak), `"known"`,
  `"top": [{"class", "probability"}]` best first (empty when rejected), `"vocabulary"` (what the classes are) and
  `"rejection"` (the rule's score kind, values, thresholds, whether it was applied);
- detection: `"boxes": [{"label", "score", "center", "size", "heading"}]` in `"frame"` (the sensor frame, metres,
  radians), with the `"score_threshold"` applied;
- registration: the 4x4 `"transform"` that maps source into target, with its fitness;
- fusion: per-frame and sequence label scores;
- error: `"error"`, one line naming the file and the problem (an input a batch skipped).

Python: `model, meta = omnisense.load_model(name)`, the task's library function, then the `*_record` function of
this module; the CLI writes exactly these records (one JSON line per input, or one file per input).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMAS: dict[str, str] = {
    "classification": "omnisense.classification/1",
    "recognition": "omnisense.recognition/1",
    "audio_classification": "omnisense.audio_classification/1",
    "detection": "omnisense.detection/1",
    "registration": "omnisense.registration/1",
    "fusion": "omnisense.fusion/1",
    "part_segmentation": "omnisense.part_segmentation/1",  # `omnisense predict` only: no command segments parts yet
    "error": "omnisense.error/1",
}


def _head(kind: str, input: Any, model: Any) -> dict[str, Any]:
    return {"schema": SCHEMAS[kind], "input": str(input), "model": None if model is None else str(model)}


def _top(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"class": str(r["class"]), "probability": round(float(r["probability"]), 6)} for r in rows]


def _answer(result: Mapping[str, Any], top_key: str) -> dict[str, Any]:
    """The open-set answer of a classifier result (`video.rejection.open_set_answer`): `label` (the best class, or
    "none of the known classes" when rejected), `known`, `top` ([] when rejected), `vocabulary`, `rejection`."""
    top = _top(result[top_key])
    known = bool(result.get("known", True))
    label = result.get("label") or (top[0]["class"] if top else None)
    return {"label": label, "known": known, "top": top, "vocabulary": result.get("vocabulary", ""),
            "rejection": dict(result.get("rejection") or {"score": None, "value": None, "threshold": None,
                                                          "applied": False})}


_ANSWER_KEYS = ("label", "known", "top", "vocabulary", "rejection")


def classification_record(result: Mapping[str, Any], *, input: Any, model: Any, **extra: Any) -> dict[str, Any]:
    """A `perception3d.classification.inference.classify` result as an `omnisense.classification/1` record."""
    rest = {k: v for k, v in result.items() if k not in _ANSWER_KEYS}
    return {**_head("classification", input, model), **_answer(result, "top"), **rest, **extra}


def recognition_record(result: Any, *, input: Any, model: Any, **extra: Any) -> dict[str, Any]:
    """A `video.recognition.inference.recognize` result (`Recognition`) as an `omnisense.recognition/1` record."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    rest = {k: v for k, v in d.items() if k not in ("topk", "video", *_ANSWER_KEYS)}
    return {**_head("recognition", input, model), **_answer(d, "topk"), **rest, **extra}


def audio_record(result: Mapping[str, Any], *, input: Any, model: Any, **extra: Any) -> dict[str, Any]:
    """A `video.audio.inference.AudioClassifier.classify_file` result as `omnisense.audio_classification/1`."""
    rest = {k: v for k, v in result.items() if k not in ("file", *_ANSWER_KEYS)}
    return {**_head("audio_classification", input, model), **_answer(result, "top"), **rest, **extra}


def detection_record(boxes: list[dict[str, Any]], *, input: Any, model: Any, score_threshold: float,
                     classes: Iterable[str], counts: Mapping[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    """`perception3d.detection.boxes_to_json` boxes as `omnisense.detection/1`; boxes below the threshold dropped."""
    kept = [b for b in boxes if b["score"] >= score_threshold]
    kept.sort(key=lambda b: -b["score"])
    return {**_head("detection", input, model), "frame": "sensor", "units": {"length": "m", "heading": "rad"},
            "score_threshold": float(score_threshold), "classes": list(classes), "boxes": kept,
            "counts": dict(counts or {}), **extra}


def registration_record(result: Any, *, source: Any, target: Any, model: Any, **extra: Any) -> dict[str, Any]:
    """A `perception3d.registration.register` result as `omnisense.registration/1` (input: "SOURCE TARGET")."""
    return {**_head("registration", f"{source} {target}", model), "source": str(source), "target": str(target),
            **result.to_dict(), **extra}


def fusion_record(result: Mapping[str, Any], *, input: Any, model: Any, **extra: Any) -> dict[str, Any]:
    """A `fusion.inference.fuse_recording` result as `omnisense.fusion/1`."""
    rest = {k: v for k, v in result.items() if k != "recording"}
    return {**_head("fusion", input, model), **rest, **extra}


def error_record(input: Any, message: str) -> dict[str, Any]:
    """An input that could not be processed: the file and the problem."""
    return {"schema": SCHEMAS["error"], "input": str(input), "error": message}


# ---- KITTI label files ----------------------------------------------------------------------------------

# lidar (x forward, y left, z up) -> camera (x right, y down, z forward), camera at the lidar origin: the frame
# the simulated KITTI-layout set uses, and the default when no calib file is known.
_VELO_TO_CAM = ((0.0, -1.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0), (1.0, 0.0, 0.0, 0.0))


def kitti_lines(record: Mapping[str, Any], calib: Mapping[str, Any] | None = None) -> str:
    """The boxes of a detection record as KITTI label_2 lines with a score column (the KITTI results format).

    Each line: type, truncated (-1: unknown), occluded (-1), alpha, 2D bbox (-1 x 4: no image), height, width,
    length (m), the bottom centre in the rectified camera frame (m), rotation_y, score. `calib` is a KITTI calib
    (`perception3d.detection.data.read_kitti_calib`: R0_rect, Tr_velo_to_cam); without one the camera sits at the
    lidar origin looking along x.
    """
    import numpy as np

    tr = np.asarray(calib["Tr_velo_to_cam"] if calib else _VELO_TO_CAM, dtype=np.float64).reshape(3, 4)
    r0 = np.asarray(calib["R0_rect"] if calib else np.eye(3), dtype=np.float64).reshape(3, 3)
    lines = []
    for b in record["boxes"]:
        (x, y, z), (dx, dy, dz), heading = b["center"], b["size"], float(b["heading"])
        loc = r0 @ (tr @ np.array([x, y, z - dz / 2, 1.0]))  # bottom centre, camera frame
        ry = _wrap(-heading - math.pi / 2)
        alpha = _wrap(ry - math.atan2(-loc[0], loc[2])) if loc[2] > 0 else -10.0
        lines.append(f"{b['label']} -1 -1 {alpha:.4f} -1 -1 -1 -1 {dz:.4f} {dy:.4f} {dx:.4f} "
                     f"{loc[0]:.4f} {loc[1]:.4f} {loc[2]:.4f} {ry:.4f} {float(b['score']):.4f}")
    return "".join(line + "\n" for line in lines)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def kitti_calib_for(scan: Path) -> Path | None:
    """The calib file of a scan in the KITTI layout (`.../velodyne/N.bin` -> `.../calib/N.txt`), if there is one."""
    scan = Path(scan)
    candidate = scan.parent.parent / "calib" / f"{scan.stem}.txt"
    return candidate if scan.parent.name == "velodyne" and candidate.is_file() else None
