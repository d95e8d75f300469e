"""Detection metrics: KITTI AP (BEV and 3D, R11 and R40, the official devkit's algorithm) and Waymo-style
mAP / mAPH.

KITTI (`kitti_eval`): the devkit's protocol, checked against OpenPCDet's `kitti_object_eval_python` on the same
labels and predictions: IoU strictly above 0.7 for Car, 0.5 for Pedestrian and Cyclist; cumulative difficulty
levels; matching redone at each of up to 41 score thresholds sampled at evenly spaced recalls (so a set with few
objects gets few sample points, as in the devkit: one perfectly found object scores R11 100/11, R40 0).

Waymo (`waymo_eval`): matching, per frame and class, is greedy in descending score order: a detection takes the
unmatched valid ground truth it overlaps most (IoU >= threshold) and is a true positive; if it instead overlaps
an ignored ground truth it is ignored; otherwise it is a false positive.
Waymo: 3D IoU 0.7 / 0.5 / 0.5; LEVEL_1 scores boxes with more than 5 points (others are ignored),
LEVEL_2 all boxes with at least one point; APH weights each true positive by its heading accuracy
`1 - |dheading| / pi`; AP is the area under the interpolated precision-recall curve.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from perception3d.detection.boxes import iou_3d, iou_bev

__all__ = ["match_frame", "average_precision", "kitti_eval", "kitti_difficulty", "waymo_eval", "KITTI_IOU"]

KITTI_IOU = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}


def match_frame(det_boxes: torch.Tensor, det_scores: torch.Tensor, gt_boxes: torch.Tensor, gt_valid: torch.Tensor,
                threshold: float, metric: str = "3d"):
    """Greedy matching of one frame's detections of one class.

    Args:
        det_boxes: `(D, 7)`; det_scores: `(D,)`.
        gt_boxes: `(G, 7)`; gt_valid: `(G,)` bool, False for ground truths to ignore.
        threshold: IoU for a match.
        metric: "3d" or "bev".

    Returns:
        (status `(D,)` int: 1 true positive, 0 false positive, -1 ignored; heading accuracy `(D,)` of the
        true positives, 0 elsewhere), in the detections' order.
    """
    d = det_boxes.shape[0]
    status = np.zeros(d, np.int64)
    head = np.zeros(d)
    if d == 0 or gt_boxes.shape[0] == 0:
        return status, head
    fn = iou_3d if metric == "3d" else iou_bev
    iou = fn(det_boxes.double(), gt_boxes.double()).numpy()  # (D, G)
    valid = gt_valid.numpy().astype(bool)
    taken = np.zeros(gt_boxes.shape[0], bool)
    for i in np.argsort(-det_scores.numpy(), kind="stable"):
        cand = np.where(valid & ~taken & (iou[i] >= threshold), iou[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= threshold:
            taken[j] = True
            status[i] = 1
            dh = abs(float(det_boxes[i, 6] - gt_boxes[j, 6])) % (2 * math.pi)
            head[i] = 1 - min(dh, 2 * math.pi - dh) / math.pi
        elif (~valid & (iou[i] >= threshold)).any():
            status[i] = -1
    return status, head


def average_precision(scores: np.ndarray, status: np.ndarray, num_gt: int, weights: np.ndarray | None = None,
                      recall_points: int | None = 40) -> float:
    """AP from pooled detections. `recall_points=40`: KITTI R40; None: area under the interpolated curve.

    `weights` turns true positives into fractional ones (Waymo's heading-weighted APH).
    """
    if num_gt == 0:
        return float("nan")
    keep = status >= 0
    scores, status = scores[keep], status[keep]
    w = np.ones(len(status)) if weights is None else weights[keep]
    order = np.argsort(-scores, kind="stable")
    tp = np.where(status[order] == 1, w[order], 0.0)
    is_tp = (status[order] == 1).astype(float)
    fp = 1.0 - is_tp
    ctp, cfp, cnt = np.cumsum(tp), np.cumsum(fp), np.cumsum(is_tp)
    recall = cnt / num_gt
    precision = ctp / np.maximum(cnt + cfp, 1e-9)
    if len(precision) == 0:
        return 0.0
    # interpolated precision: the best precision at any recall at least as high
    interp = np.maximum.accumulate(precision[::-1])[::-1]
    if recall_points:
        ap = 0.0
        for r in np.arange(1, recall_points + 1) / recall_points:
            idx = np.searchsorted(recall, r - 1e-12, side="left")
            ap += interp[idx] if idx < len(interp) else 0.0
        return float(ap / recall_points)
    r_prev, ap = 0.0, 0.0
    for r, p in zip(recall, interp):
        ap += (r - r_prev) * p
        r_prev = r
    return float(ap)


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


def waymo_eval(detections: list[dict], ground_truths: list[dict], class_names: tuple[str, ...],
               iou_thresholds: dict[str, float] = KITTI_IOU) -> dict[str, float]:
    """Waymo-style 3D mAP / mAPH at LEVEL_1 and LEVEL_2 (ground truths carry `num_points` `(G,)`)."""
    out: dict[str, float] = {}
    for level, min_pts in (("L1", 6), ("L2", 1)):
        maps, maphs = [], []
        for c, name in enumerate(class_names):
            thr = iou_thresholds.get(name, 0.5)
            s_all, st_all, h_all, n_gt = [], [], [], 0
            for det, gt in zip(detections, ground_truths):
                dm, gm = det["labels"] == c, gt["labels"] == c
                npts = gt["num_points"][gm]
                valid = npts >= min_pts
                n_gt += int(valid.sum())
                st, hd = match_frame(det["boxes"][dm].cpu(), det["scores"][dm].cpu(), gt["boxes"][gm].cpu(),
                                     valid.cpu(), thr, "3d")
                s_all.append(det["scores"][dm].cpu().numpy())
                st_all.append(st)
                h_all.append(hd)
            s, st, hd = (np.concatenate(x) for x in (s_all, st_all, h_all))
            ap = average_precision(s, st, n_gt, recall_points=None)
            aph = average_precision(s, st, n_gt, weights=hd, recall_points=None)
            out[f"{name}/{level}/AP"], out[f"{name}/{level}/APH"] = 100 * ap, 100 * aph
            if not math.isnan(ap):
                maps.append(ap)
                maphs.append(aph)
        out[f"{level}/mAP"] = 100 * float(np.mean(maps)) if maps else float("nan")
        out[f"{level}/mAPH"] = 100 * float(np.mean(maphs)) if maphs else float("nan")
    return out
