"""Detection metrics: KITTI-style AP (BEV and 3D, 40 recall points) and Waymo-style mAP / mAPH.

Matching, per frame and class, is greedy in descending score order: a detection takes the unmatched valid
ground truth it overlaps most (IoU >= threshold) and is a true positive; if it instead overlaps an ignored
ground truth (another difficulty level, a DontCare region) it is ignored; otherwise it is a false positive.
This is the VOC / Waymo matching. KITTI's own devkit matches again at each of its 41 score thresholds,
driven by the ground truths; the two agree except when a higher-scored detection of one object could
also take another object's box.

KITTI: IoU 0.7 for Car, 0.5 for Pedestrian and Cyclist; difficulty levels are cumulative (moderate
includes easy). AP_R40 averages the interpolated precision (max precision at recall >= r) at
r = 1/40, 2/40, ..., 1.
Waymo: 3D IoU 0.7 / 0.5 / 0.5; LEVEL_1 scores boxes with more than 5 points (others are ignored),
LEVEL_2 all boxes with at least one point; APH weights each true positive by its heading accuracy
`1 - |dheading| / pi`; AP is the area under the interpolated precision-recall curve.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from perception3d.detection.boxes import iou_3d, iou_bev

__all__ = ["match_frame", "average_precision", "kitti_eval", "waymo_eval", "KITTI_IOU"]

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


def kitti_eval(detections: list[dict], ground_truths: list[dict], class_names: tuple[str, ...],
               iou_thresholds: dict[str, float] = KITTI_IOU) -> dict[str, float]:
    """KITTI-style AP_R40, BEV and 3D, per class and difficulty.

    Args:
        detections: per frame, `{"boxes": (D, 7), "scores": (D,), "labels": (D,)}`.
        ground_truths: per frame, `{"boxes": (G, 7), "labels": (G,), "difficulty": (G,)}` (-1: no level).

    Returns:
        `{"Car/3d_R40/moderate": AP in percent, "Car/bev_R40/easy": ..., ...}`.
    """
    out: dict[str, float] = {}
    for c, name in enumerate(class_names):
        thr = iou_thresholds.get(name, 0.5)
        for metric in ("3d", "bev"):
            for level, lname in enumerate(("easy", "moderate", "hard")):
                all_s, all_st, n_gt = [], [], 0
                for det, gt in zip(detections, ground_truths):
                    dm = det["labels"] == c
                    gm = gt["labels"] == c
                    diff = gt["difficulty"][gm]
                    valid = (diff >= 0) & (diff <= level)
                    n_gt += int(valid.sum())
                    st, _ = match_frame(det["boxes"][dm].cpu(), det["scores"][dm].cpu(), gt["boxes"][gm].cpu(),
                                        valid.cpu(), thr, metric)
                    all_s.append(det["scores"][dm].cpu().numpy())
                    all_st.append(st)
                ap = average_precision(np.concatenate(all_s) if all_s else np.zeros(0),
                                       np.concatenate(all_st) if all_st else np.zeros(0, np.int64), n_gt)
                out[f"{name}/{metric}_R40/{lname}"] = 100 * ap
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
