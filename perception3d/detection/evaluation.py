"""Detection metrics: KITTI AP (BEV and 3D, R11 and R40, the official devkit's algorithm) and Waymo-style
mAP / mAPH.

KITTI (`kitti_eval`): the devkit's protocol, checked against OpenPCDet's `kitti_object_eval_python` on the same
labels and predictions: IoU strictly above 0.7 for Car, 0.5 for Pedestrian and Cyclist; cumulative difficulty
levels; matching redone at each of up to 41 score thresholds sampled at evenly spaced recalls (so a set with few
objects gets few sample points, as in the devkit: one perfectly found object scores R11 100/11, R40 0).

Waymo (`waymo_eval`): the official metrics op's algorithm (waymo-open-dataset's detection metrics with its
evaluator's default configuration), checked against the op on the same labels and predictions: 3D IoU 0.7 / 0.5 /
0.5; at each of 101 score cutoffs the detections above it are matched afresh, per frame and class, by the
assignment maximising the summed IoU (Hungarian); LEVEL_2 boxes (at most 5 lidar points) are matched like the
others and count as misses only at LEVEL_2; APH weights each true positive by its heading accuracy
`1 - |dheading| / pi`; AP integrates the precision-recall points of the cutoffs with the op's interpolation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from perception3d._errors import Perception3DError
from perception3d.detection.boxes import iou_3d, iou_bev

__all__ = ["kitti_eval", "kitti_difficulty", "waymo_eval", "waymo_level", "waymo_average_precision", "KITTI_IOU",
           "WAYMO_SCORE_CUTOFFS"]

KITTI_IOU = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}


KITTI_MIN_HEIGHT = (40, 25, 25)  # pixels of the 2D box, easy / moderate / hard
KITTI_MAX_OCCLUSION = (0, 1, 2)
KITTI_MAX_TRUNCATION = (0.15, 0.3, 0.5)
KITTI_NEIGHBOURS = {"Car": "Van", "Pedestrian": "Person_sitting"}  # ignored, neither true nor false positives


def kitti_difficulty(height: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """The easiest KITTI level (0 easy, 1 moderate, 2 hard) at which each ground truth is scored, -1 for none.

    A box is ignored at a level if its occlusion or truncation exceed the level's maximum or its 2D box height
    (pixels) is at or below the level's minimum; the levels are nested, so this one number says it all.
    """
    height, occluded, truncated = (np.asarray(v, dtype=np.float64) for v in (height, occluded, truncated))
    out = np.full(height.shape, -1, np.int64)
    for level in (2, 1, 0):
        ok = ((occluded <= KITTI_MAX_OCCLUSION[level]) & (truncated <= KITTI_MAX_TRUNCATION[level])
              & (height > KITTI_MIN_HEIGHT[level]))
        out[ok] = level
    return out


def _frame_statistics(overlaps: np.ndarray, scores: np.ndarray, ignored_gt: np.ndarray, ignored_det: np.ndarray,
                      min_overlap: float, thresh: float, compute_fp: bool) -> tuple[int, int, int, list[float]]:
    """The devkit's matching of one frame at one score threshold: (tp, fp, fn, the true positives' scores).

    `overlaps (D, G)`; `ignored_gt (G,)` and `ignored_det (D,)`: 0 scored, 1 ignored (a neighbour class, or too hard
    for the level), -1 another class. Ground truths are visited in order; each takes, among the unassigned
    detections overlapping it by more than `min_overlap`, the highest-scored one (first pass, `compute_fp`
    False) or the most overlapping scored one, else the first ignored one (`compute_fp`: detections scored
    below `thresh` are left out). A match with an ignored box is neither a true nor a false positive.
    """
    d, g = overlaps.shape
    assigned = np.zeros(d, bool)
    below = scores < thresh if compute_fp else np.zeros(d, bool)
    tp = fn = 0
    tp_scores: list[float] = []
    for i in range(g):
        if ignored_gt[i] == -1:
            continue
        cand = (ignored_det != -1) & ~assigned & ~below & (overlaps[:, i] > min_overlap)
        det = -1
        if not compute_fp:
            if cand.any():
                det = int(np.argmax(np.where(cand, scores, -np.inf)))
        else:
            scored = cand & (ignored_det == 0)
            if scored.any():
                det = int(np.argmax(np.where(scored, overlaps[:, i], -np.inf)))
            elif (cand & (ignored_det == 1)).any():
                det = int(np.flatnonzero(cand & (ignored_det == 1))[0])
        if det < 0:
            fn += int(ignored_gt[i] == 0)
        elif ignored_gt[i] == 1 or ignored_det[det] == 1:
            assigned[det] = True
        else:
            tp += 1
            tp_scores.append(float(scores[det]))
            assigned[det] = True
    fp = int((~(assigned | (ignored_det != 0) | below)).sum()) if compute_fp else 0
    return tp, fp, fn, tp_scores


def _sample_thresholds(scores: np.ndarray, num_gt: int, num_points: int = 41) -> list[float]:
    """The devkit's score thresholds: walking the true positives' scores downwards, one threshold each time the
    recall passes the next of `num_points` evenly spaced recall levels (the closer of the two sides)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    current, out = 0.0, []
    for i, score in enumerate(scores):
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt if i < len(scores) - 1 else left
        if (right - current) < (current - left) and i < len(scores) - 1:
            continue
        out.append(float(score))
        current += 1 / (num_points - 1.0)
    return out


def kitti_eval(detections: list[dict], ground_truths: list[dict], class_names: tuple[str, ...],
               iou_thresholds: dict[str, float] = KITTI_IOU) -> dict[str, float]:
    """KITTI AP as the official devkit computes it (`kitti_object_eval_python`, the 41-point precision sampled at
    recall-spaced score thresholds): BEV and 3D, AP_R11 and AP_R40, per class and difficulty, in percent.

    The protocol: per class and level, ground truths of the class at that level are scored, those of the class
    too hard for it and those of its neighbour class (Van for Car, Person_sitting for Pedestrian) are ignored;
    a match needs IoU strictly above the class threshold; precision is taken at up to 41 score thresholds
    chosen from the true positives' scores, made monotone (max to the right); R11 averages points 0, 4, ..., 40,
    R40 points 1 ... 40. Checked against the official code on the same labels and predictions
    (tests/parity/test_kitti_eval_official.py). Detections carry no image box here, so the devkit's 2D
    height filter on detections (MIN_HEIGHT) is not applied, and 2D / AOS APs are not computed. IoU is computed
    in the lidar frame; it equals the devkit's camera-frame IoU (both are isometries of the same boxes).

    Args:
        detections: per frame, `{"boxes": (D, 7), "scores": (D,), "labels": (D,)}`.
        ground_truths: per frame, `{"boxes": (G, 7), "labels": (G,), "difficulty": (G,)}`; `labels` -1 for boxes
            of no evaluated class (DontCare, Misc, ...), `difficulty` from `kitti_difficulty` (-1: no level).
            Optional `"neighbour": (G,)`: the class index for which the box is an ignored neighbour
            (`KITTI_NEIGHBOURS`), -1 for none.

    Returns:
        `{"Car/3d_R40/moderate": AP, "Car/bev_R11/easy": ..., ...}`; 0 where a class has no scored box.
    """
    out: dict[str, float] = {}
    overlaps: dict[tuple[int, str], np.ndarray] = {}
    for f, (det, gt) in enumerate(zip(detections, ground_truths)):
        for metric in ("3d", "bev"):
            fn = iou_3d if metric == "3d" else iou_bev
            db, gb = det["boxes"].detach().cpu().double(), gt["boxes"].detach().cpu().double()
            overlaps[f, metric] = (fn(db, gb).numpy() if len(db) and len(gb)
                                   else np.zeros((len(db), len(gb))))
    for c, name in enumerate(class_names):
        thr = iou_thresholds.get(name, 0.5)
        for level, lname in enumerate(("easy", "moderate", "hard")):
            frames = []
            num_gt = 0
            for det, gt in zip(detections, ground_truths):
                labels, diff = gt["labels"].cpu().numpy(), gt["difficulty"].cpu().numpy()
                neighbour = gt["neighbour"].cpu().numpy() if "neighbour" in gt else np.full(len(labels), -1)
                own = labels == c
                scored = own & (diff >= 0) & (diff <= level)
                ignored_gt = np.where(scored, 0, np.where(own | (neighbour == c), 1, -1))
                ignored_det = np.where(det["labels"].cpu().numpy() == c, 0, -1)
                num_gt += int(scored.sum())
                frames.append((det["scores"].detach().cpu().double().numpy(), ignored_gt, ignored_det))
            for metric in ("3d", "bev"):
                tp_scores: list[float] = []
                for f, (scores, ig, idet) in enumerate(frames):
                    tp_scores += _frame_statistics(overlaps[f, metric], scores, ig, idet, thr, 0.0, False)[3]
                precision = np.zeros(41)
                if num_gt:
                    thresholds = _sample_thresholds(np.array(tp_scores), num_gt)
                    for t, thresh in enumerate(thresholds):
                        tp = fp = 0
                        for f, (scores, ig, idet) in enumerate(frames):
                            a, b, _, _ = _frame_statistics(overlaps[f, metric], scores, ig, idet, thr, thresh, True)
                            tp, fp = tp + a, fp + b
                        precision[t] = tp / (tp + fp) if tp + fp else float("nan")  # the devkit: 0 / 0
                    for t in range(len(thresholds)):
                        precision[t] = precision[t:].max()
                out[f"{name}/{metric}_R40/{lname}"] = float(precision[1:].sum() / 40 * 100)
                out[f"{name}/{metric}_R11/{lname}"] = float(precision[::4].sum() / 11 * 100)
    return out


# --------------------------------------------------------------------------------------------------
# Waymo. What the official metrics op computes (waymo-open-dataset, metrics/detection_metrics.cc, matcher.cc,
# metrics_utils.cc, with the default configuration of its WODDetectionEvaluator), re-implemented from its
# documented behaviour; checked against the op's numbers in tests/parity/test_waymo_eval_official.py.

WAYMO_SCORE_CUTOFFS = np.array([i * 0.01 for i in range(100)] + [1.0], np.float32)  # the evaluator's default
WAYMO_RECALL_DELTA = 0.05  # largest gap in recall left unsampled when the PR curve is integrated
_IOU_QUANTUM = 1_000_000  # the matcher rounds IoU to integer millionths: its Hungarian solver needs exact weights
_MIN_BOX_DIM, _MAX_BOX_DIM = 1e-2, 1e6  # the op's IoU is 0 for a box with a side at or below / above these (m)


def waymo_level(num_points: np.ndarray, label_level: np.ndarray | None = None) -> np.ndarray:
    """The Waymo detection difficulty of each ground truth: 1, 2, or 0 for a box left out of the evaluation.

    A box with no lidar point is left out; one with at most 5 points is LEVEL_2; otherwise the label's own
    `detection_difficulty_level` decides (1 or 2; 0, unset, counts as LEVEL_1). This is how Waymo's labels and
    the detectors' Waymo evaluations (e.g. OpenPCDet's) fill the op's `ground_truth_difficulty`.
    """
    num_points = np.asarray(num_points, np.int64)
    level = np.where(num_points <= 5, 2, 1)
    if label_level is not None:
        level = np.maximum(level, np.asarray(label_level, np.int64))
    return np.where(num_points > 0, level, 0)


def _heading_accuracy(det_heading: np.ndarray, gt_heading: np.ndarray) -> np.ndarray:
    """`1 - |dheading| / pi` with the difference folded into `[0, pi]` (a box turned half a turn scores 0)."""
    det_heading, gt_heading = (np.mod(np.asarray(h, np.float64) + math.pi, 2 * math.pi) - math.pi  # in [-pi, pi)
                               for h in (det_heading, gt_heading))
    diff = np.abs(det_heading - gt_heading)
    diff = np.where(diff > math.pi, 2 * math.pi - diff, diff)
    return np.clip(1 - diff / math.pi, 0.0, 1.0)


def _waymo_iou(det_boxes: torch.Tensor, gt_boxes: torch.Tensor, metric: str) -> np.ndarray:
    """IoU `(D, G)` as the op sees it: boxes rounded to float32 (its input type), IoU stored as float32, 0 for
    degenerate or absurd boxes. `metric` "3d" (the op's TYPE_3D boxes) or "bev" (TYPE_2D: rotated BEV rectangles)."""
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return np.zeros((len(det_boxes), len(gt_boxes)), np.float32)
    a, b = det_boxes.detach().cpu().float().double(), gt_boxes.detach().cpu().float().double()
    iou = (iou_3d if metric == "3d" else iou_bev)(a, b).numpy()
    dims = slice(3, 6) if metric == "3d" else slice(3, 5)
    ok_a = ((a[:, dims] > _MIN_BOX_DIM).all(1) & (a[:, 3:6] < _MAX_BOX_DIM).all(1)).numpy()
    ok_b = ((b[:, dims] > _MIN_BOX_DIM).all(1) & (b[:, 3:6] < _MAX_BOX_DIM).all(1)).numpy()
    return np.where(ok_a[:, None] & ok_b[None, :], np.clip(iou, 0.0, 1.0), 0.0).astype(np.float32)


def _waymo_frame(iou: np.ndarray, scores: np.ndarray, det_heading: np.ndarray, gt_heading: np.ndarray,
                 gt_level: np.ndarray, threshold: float) -> np.ndarray:
    """Counts of one frame and class at every score cutoff: `(K, 5)` float64, columns true positives, false
    positives, LEVEL_1 and LEVEL_2 false negatives, and the true positives' summed heading accuracy.

    At each cutoff the detections scored at or above it are matched afresh to all the frame's ground truths of the
    class (both levels): the one-to-one assignment that maximises the summed IoU, in integer millionths, over the
    pairs whose IoU reaches the threshold (Hungarian matching). Every matched detection is a true positive, at
    both levels, even one matched to a LEVEL_2 box; every other detection is a false positive; an unmatched
    ground truth is a false negative at its own level and above.
    """
    cutoffs = WAYMO_SCORE_CUTOFFS
    out = np.zeros((len(cutoffs), 5))
    scores = np.asarray(scores, np.float32)
    can = iou >= np.float32(threshold)
    weight = np.where(can, np.floor((iou * np.float32(_IOU_QUANTUM)).astype(np.float64) + 0.5), 0.0)
    heading = _heading_accuracy(det_heading[:, None], gt_heading[None, :]) if can.any() else None
    done: dict[int, np.ndarray] = {}  # the subsets are nested: the number of detections kept identifies one
    for k, cut in enumerate(cutoffs):
        kept = np.flatnonzero(scores >= cut)
        if len(kept) not in done:
            row = np.zeros(5)
            matched_gt = np.zeros(len(gt_level), bool)
            if len(kept) and heading is not None:
                rows, cols = linear_sum_assignment(weight[kept], maximize=True)
                hit = can[kept[rows], cols]
                rows, cols = kept[rows[hit]], cols[hit]
                matched_gt[cols] = True
                row[0], row[4] = len(rows), heading[rows, cols].sum()
            row[1] = len(kept) - row[0]
            row[2] = int(((gt_level == 1) & ~matched_gt).sum())
            row[3] = int((~matched_gt).sum())
            done[len(kept)] = row
        out[k] = done[len(kept)]
    return out


def waymo_average_precision(precision: np.ndarray, recall: np.ndarray,
                            recall_delta: float = WAYMO_RECALL_DELTA) -> float:
    """Area under the Waymo precision-recall curve of the points measured at the score cutoffs, in `[0, 1]`.

    The points are reduced to the best precision at each recall, a point (recall 0, precision 1) added, and the
    precision made monotone (the best at any recall at least as high). Walking down in recall, a gap wider than
    `recall_delta` is filled with points every `recall_delta` below the higher end, carrying its precision; the
    point at recall 0 then takes the precision of the point above it, and the area is integrated with trapezoids.
    Precision and recall are float32, as in the op.
    """
    precision, recall = np.asarray(precision, np.float32), np.asarray(recall, np.float32)
    if len(precision) == 0:
        return 0.0
    best = {np.float32(0.0): np.float32(1.0)}
    for p, r in zip(precision, recall):
        best[r] = max(best.get(r, np.float32(0.0)), p)
    delta, slack = np.float32(recall_delta), np.float32(1e-6)
    curve: list[tuple[np.float32, np.float32]] = []  # (recall, precision), recall descending
    top = np.float32(0.0)
    for r in sorted(best, reverse=True):
        if curve:
            step = curve[-1][0]
            while step - r > delta + slack:
                step = np.float32(step - delta)
                curve.append((step, top))
        top = max(top, best[r])
        curve.append((r, top))
    if len(curve) >= 2:
        curve[-1] = (curve[-1][0], curve[-2][1])
    area = np.float32(0.0)
    for (r0, p0), (r1, p1) in zip(curve, curve[1:]):
        area = np.float32(area + 0.5 * float(np.float32(r0 - r1)) * float(np.float32(p0 + p1)))
    return float(area)


def _waymo_pr(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, ha: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, heading-weighted precision and recall at each cutoff (float32); precision 1 where recall is 0."""
    f = np.float32
    tp, fp, fn = tp.astype(f), fp.astype(f), fn.astype(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), f(0.0)).astype(f)
        precision_h = np.where(tp + fp > 0, ha.astype(f) / (tp + fp), f(0.0)).astype(f)
        recall = np.where(tp + fn > 0, tp / (tp + fn), f(0.0)).astype(f)
    precision[recall == 0] = 1.0
    precision_h[recall == 0] = 1.0
    return precision, precision_h, recall


def waymo_eval(detections: list[dict], ground_truths: list[dict], class_names: tuple[str, ...],
               iou_thresholds: dict[str, float] = KITTI_IOU, metric: str = "3d") -> dict[str, float]:
    """Waymo 3D AP / APH at LEVEL_1 and LEVEL_2 as the official metrics op computes them, in percent.

    The op's algorithm (its evaluator's default configuration: OBJECT_TYPE breakdown, 101 score cutoffs 0, 0.01,
    ..., 0.99, 1, Hungarian matching, 3D boxes): per frame, class and cutoff, `_waymo_frame`'s matching and
    counts; the counts summed over frames; precision `tp / (tp + fp)`, APH's precision `sum(heading accuracy) /
    (tp + fp)`, recall `tp / (tp + fn)` with LEVEL_1 counting only LEVEL_1 boxes as misses (LEVEL_2 includes
    LEVEL_1); AP by `waymo_average_precision`. Matches the op to its printed precision on the committed fixture
    (tests/parity/test_waymo_eval_official.py); where two matchings have the same total IoU to the millionth,
    the choice between them (and so APH) may differ from the op's solver.

    Args:
        detections: per frame, `{"boxes": (D, 7), "scores": (D,), "labels": (D,)}`, boxes
            `[x, y, z, dx, dy, dz, heading]` in metres and radians.
        ground_truths: per frame, `{"boxes": (G, 7), "labels": (G,), "num_points": (G,)}`, `labels` -1 for no
            evaluated class; optional `"waymo_level": (G,)`, the labels' own `detection_difficulty_level`
            (see `waymo_level`; boxes with no point are left out).
        class_names: the classes, in label order; `iou_thresholds` by name (0.5 for a class not named).
        metric: "3d" (the leaderboards' TYPE_3D boxes) or "bev" (the op's TYPE_2D: IoU of the rotated BEV
            rectangles).

    Returns:
        `{"Car/L1/AP": ..., "Car/L2/APH": ..., "L1/mAP": ..., "L2/mAPH": ...}`; NaN for a class with no ground
        truth in the set (the op prints 0), and the means leave such classes out.
    """
    if metric not in ("3d", "bev"):
        raise Perception3DError(f"waymo_eval: metric must be '3d' or 'bev', not {metric!r}")
    cutoffs = len(WAYMO_SCORE_CUTOFFS)
    counts = np.zeros((len(class_names), cutoffs, 5))
    has_gt = np.zeros(len(class_names), bool)
    for f, (det, gt) in enumerate(zip(detections, ground_truths)):
        if "num_points" not in gt:
            raise Perception3DError(f"waymo_eval: ground truth of frame {f} has no 'num_points' (lidar points per "
                                    "box), which sets its Waymo difficulty level")
        labels = gt["labels"].cpu().numpy()
        level = waymo_level(gt["num_points"].cpu().numpy(),
                            gt["waymo_level"].cpu().numpy() if "waymo_level" in gt else None)
        det_labels = det["labels"].cpu().numpy()
        for c, name in enumerate(class_names):
            g = np.flatnonzero((labels == c) & (level > 0))
            d = np.flatnonzero(det_labels == c)
            has_gt[c] |= len(g) > 0
            if len(d) == 0 and len(g) == 0:
                continue
            iou = _waymo_iou(det["boxes"][d], gt["boxes"][g], metric)
            counts[c] += _waymo_frame(iou, det["scores"].detach().cpu().numpy()[d],
                                      det["boxes"][d, 6].detach().cpu().double().numpy(),
                                      gt["boxes"][g, 6].detach().cpu().double().numpy(), level[g],
                                      iou_thresholds.get(name, 0.5))
    out: dict[str, float] = {}
    for lname, fn_col in (("L1", 2), ("L2", 3)):
        aps, aphs = [], []
        for c, name in enumerate(class_names):
            if not has_gt[c]:
                out[f"{name}/{lname}/AP"] = out[f"{name}/{lname}/APH"] = float("nan")
                continue
            tp, fp, fn, ha = counts[c, :, 0], counts[c, :, 1], counts[c, :, fn_col], counts[c, :, 4]
            precision, precision_h, recall = _waymo_pr(tp, fp, fn, ha)
            aps.append(100 * waymo_average_precision(precision, recall))
            aphs.append(100 * waymo_average_precision(precision_h, recall))
            out[f"{name}/{lname}/AP"], out[f"{name}/{lname}/APH"] = aps[-1], aphs[-1]
        out[f"{lname}/mAP"] = float(np.mean(aps)) if aps else float("nan")
        out[f"{lname}/mAPH"] = float(np.mean(aphs)) if aphs else float("nan")
    return out
