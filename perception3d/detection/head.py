"""The CenterPoint head with the IoU branch (OpenPCDet's CenterHead as DSVT uses it), its targets, losses,
decoding and post-processing.

Per BEV cell the head predicts a class heatmap and, at object centres, the regression
`center (2)`: sub-cell offset, `center_z (1)`: metres, `dim (3)`: log sizes, `rot (2)`: (cos, sin) of the
heading, and `iou (1)`: the 3D IoU of the decoded box with its ground truth, mapped to [-1, 1].

Losses: the CornerNet / CenterNet Gaussian focal loss on the heatmap, L1 on the 8 regression codes at object
centres, L1 between the predicted IoU and `2 * IoU3D - 1`, and `1 - DIoU3D` on the decoded boxes.
At test time the heatmap score is rectified, `score^(1 - a) * iou^a` per class, before per-class rotated NMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perception3d.detection.boxes import diou_3d, iou_3d, nms_rotated_per_class

__all__ = [
    "CenterHead",
    "HeadGeometry",
    "PostProcessConfig",
    "LossWeights",
    "gaussian_radius",
    "build_targets",
    "gaussian_focal_loss",
    "center_head_loss",
    "decode_boxes",
    "pre_nms_filter",
    "rectify_scores",
    "class_nms",
    "post_process",
    "NMS_CONVENTIONS",
]

HEAD_CHANNELS = {"center": 2, "center_z": 1, "dim": 3, "rot": 2, "iou": 1}


@dataclass(frozen=True)
class HeadGeometry:
    """Where heatmap cells sit in the lidar frame.

    Attributes:
        point_range: (x0, y0, z0, x1, y1, z1) metres.
        voxel_size: (vx, vy) metres of a BEV grid cell before the backbone's stride.
        stride: BEV backbone output stride (the paper variants: 1).
    """

    point_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float]
    stride: int

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) = (ny, nx) of the head's feature map."""
        r, v, s = self.point_range, self.voxel_size, self.stride
        return int(round((r[4] - r[1]) / v[1])) // s, int(round((r[3] - r[0]) / v[0])) // s


def _separate_head(cin: int, cout: int, head_conv: int, num_conv: int, bias: float = 0.0) -> nn.Sequential:
    """(conv3x3-BN-ReLU) x (num_conv - 1), then a 3x3 conv with bias (OpenPCDet's SeparateHead layout)."""
    layers: list[nn.Module] = []
    c = cin
    for _ in range(num_conv - 1):
        layers.append(nn.Sequential(nn.Conv2d(c, head_conv, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(head_conv, eps=1e-3, momentum=0.01), nn.ReLU()))
        c = head_conv
    final = nn.Conv2d(c, cout, 3, padding=1, bias=True)
    nn.init.constant_(final.bias, bias)
    return nn.Sequential(*layers, final)


class _SeparateHeads(nn.Module):
    def __init__(self, names: dict[str, int], cin: int, head_conv: int, num_conv: int, num_classes: int):
        super().__init__()
        self.names = list(names) + ["hm"]
        for k, c in names.items():
            setattr(self, k, _separate_head(cin, c, head_conv, num_conv))
        self.hm = _separate_head(cin, num_classes, head_conv, num_conv, bias=-2.19)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {k: getattr(self, k)(x) for k in self.names}


class CenterHead(nn.Module):
    """Shared 3x3 conv, then one small conv stack per output (heatmap bias -2.19, i.e. prior 0.1).

    Args:
        in_channels: BEV feature channels.
        num_classes: heatmap channels.
        shared_channels: width of the shared conv (64 in both papers).
        head_conv: width inside each separate head (64).
        num_conv: convs per separate head (2).
        iou_branch: predict the IoU of each box (FlatFormer and DSVT both do).
    """

    def __init__(self, *, in_channels: int, num_classes: int, shared_channels: int = 64, head_conv: int = 64,
                 num_conv: int = 2, iou_branch: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.shared_conv = nn.Sequential(nn.Conv2d(in_channels, shared_channels, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(shared_channels, eps=1e-3, momentum=0.01), nn.ReLU())
        names = dict(HEAD_CHANNELS)
        if not iou_branch:
            names.pop("iou")
        # one task holding every class, as both papers use; a list to keep OpenPCDet's key layout
        self.heads_list = nn.ModuleList([_SeparateHeads(names, shared_channels, head_conv, num_conv, num_classes)])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """`(B, C, H, W)` -> `{"hm": (B, K, H, W) logits, "center": (B, 2, H, W), ...}`."""
        return self.heads_list[0](self.shared_conv(x))


def gaussian_radius(height: float, width: float, min_overlap: float = 0.1) -> float:
    """CenterNet's radius: the largest corner shift keeping IoU >= min_overlap, in cells."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _draw_gaussian(heatmap: Tensor, cx: int, cy: int, radius: int) -> None:
    diameter = 2 * radius + 1
    sigma = diameter / 6
    r = torch.arange(-radius, radius + 1, dtype=heatmap.dtype, device=heatmap.device)
    g = torch.exp(-(r[None, :] ** 2 + r[:, None] ** 2) / (2 * sigma * sigma))
    h, w = heatmap.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - top : cy + bottom, cx - left : cx + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    torch.maximum(region, patch, out=region)


@dataclass
class Targets:
    heatmap: Tensor  # (B, K, H, W)
    inds: Tensor  # (B, max_objs) flat cell index
    mask: Tensor  # (B, max_objs) bool
    codes: Tensor  # (B, max_objs, 8): dx, dy offsets, z, log dims, cos, sin
    boxes: Tensor  # (B, max_objs, 7) the ground truth boxes


def build_targets(boxes: list[Tensor], labels: list[Tensor], geometry: HeadGeometry, num_classes: int,
                  max_objs: int = 500, min_overlap: float = 0.1, min_radius: int = 2) -> Targets:
    """Heatmaps and regression targets for a batch (boxes `(M_b, 7)`, labels `(M_b,)` per sample)."""
    h, w = geometry.shape
    b = len(boxes)
    device = boxes[0].device if b else torch.device("cpu")
    heat = torch.zeros(b, num_classes, h, w, device=device)
    inds = torch.zeros(b, max_objs, dtype=torch.long, device=device)
    mask = torch.zeros(b, max_objs, dtype=torch.bool, device=device)
    codes = torch.zeros(b, max_objs, 8, device=device)
    gt = torch.zeros(b, max_objs, 7, device=device)
    x0, y0 = geometry.point_range[0], geometry.point_range[1]
    cell_x, cell_y = geometry.voxel_size[0] * geometry.stride, geometry.voxel_size[1] * geometry.stride
    for i, (bx, lb) in enumerate(zip(boxes, labels)):
        k = 0
        for box, label in zip(bx.tolist(), lb.tolist()):
            if k >= max_objs or box[3] <= 0 or box[4] <= 0:
                continue
            cx, cy = (box[0] - x0) / cell_x, (box[1] - y0) / cell_y
            ci, cj = int(math.floor(cx)), int(math.floor(cy))
            if not (0 <= ci < w and 0 <= cj < h):
                continue
            radius = max(min_radius, int(gaussian_radius(box[3] / cell_x, box[4] / cell_y, min_overlap)))
            _draw_gaussian(heat[i, label], ci, cj, radius)
            inds[i, k] = cj * w + ci
            mask[i, k] = True
            codes[i, k] = torch.tensor([cx - ci, cy - cj, box[2], math.log(box[3]), math.log(box[4]),
                                        math.log(box[5]), math.cos(box[6]), math.sin(box[6])])
            gt[i, k] = torch.tensor(box)
            k += 1
    return Targets(heat, inds, mask, codes, gt)


def gaussian_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CornerNet focal loss on a Gaussian heatmap, normalised by the number of peaks (target == 1)."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = torch.log(1 - p) * p**alpha * (1 - target) ** beta * neg
    num_pos = pos.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos.clamp_min(1)


def _gather(feat: Tensor, inds: Tensor) -> Tensor:
    """`(B, C, H, W)`, `(B, K)` -> `(B, K, C)`."""
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1).transpose(1, 2)  # (B, HW, C)
    return flat.gather(1, inds[..., None].expand(-1, -1, c))


def _codes_to_boxes(center: Tensor, center_z: Tensor, dim: Tensor, rot: Tensor, xs: Tensor, ys: Tensor,
                    geometry: HeadGeometry) -> Tensor:
    """Regression codes (..., C) at cells (xs, ys) -> boxes (..., 7)."""
    cell_x, cell_y = geometry.voxel_size[0] * geometry.stride, geometry.voxel_size[1] * geometry.stride
    x = (xs + center[..., 0]) * cell_x + geometry.point_range[0]
    y = (ys + center[..., 1]) * cell_y + geometry.point_range[1]
    dims = torch.exp(dim.clamp(max=5.0))
    heading = torch.atan2(rot[..., 1], rot[..., 0])
    return torch.cat([x[..., None], y[..., None], center_z, dims, heading[..., None]], dim=-1)


@dataclass(frozen=True)
class LossWeights:
    """cls 1, loc 2 (code weights all 1), IoU branch 1, DIoU regression 2 (DSVT's recipe)."""

    cls: float = 1.0
    loc: float = 2.0
    iou: float = 1.0
    iou_reg: float = 2.0
    code_weights: tuple[float, ...] = (1.0,) * 8


def center_head_loss(preds: dict[str, Tensor], targets: Targets, geometry: HeadGeometry,
                     weights: LossWeights = LossWeights()) -> dict[str, Tensor]:
    """The head's losses: `{"loss", "hm", "loc", "iou", "iou_reg"}` (scalars)."""
    hm = gaussian_focal_loss(preds["hm"], targets.heatmap) * weights.cls
    mask = targets.mask
    num = mask.sum().clamp_min(1).float()
    reg = torch.cat([preds["center"], preds["center_z"], preds["dim"], preds["rot"]], dim=1)
    pred_codes = _gather(reg, targets.inds)  # (B, K, 8)
    cw = pred_codes.new_tensor(weights.code_weights)
    l1 = ((pred_codes - targets.codes).abs() * cw * mask[..., None]).sum() / num
    loc = l1 * weights.loc
    out = {"hm": hm, "loc": loc}
    total = hm + loc
    if "iou" in preds and bool(mask.any()):
        w = geometry.shape[1]
        xs, ys = (targets.inds % w).float(), (targets.inds // w).float()
        pc = pred_codes[mask]
        pred_boxes = _codes_to_boxes(pc[:, 0:2], pc[:, 2:3], pc[:, 3:6], pc[:, 6:8], xs[mask], ys[mask], geometry)
        gt_boxes = targets.boxes[mask]
        with torch.no_grad():
            iou_t = 2 * iou_3d(pred_boxes.detach(), gt_boxes, aligned=True) - 1
        pred_iou = _gather(preds["iou"], targets.inds)[mask][:, 0]
        iou_loss = (pred_iou - iou_t).abs().sum() / num * weights.iou
        iou_reg = (1 - diou_3d(pred_boxes, gt_boxes)).sum() / num * weights.iou_reg
        out.update(iou=iou_loss, iou_reg=iou_reg)
        total = total + iou_loss + iou_reg
    out["loss"] = total
    return out


NMS_CONVENTIONS = ("exact", "openpcdet_bev")


@dataclass(frozen=True)
class PostProcessConfig:
    """Test-time decoding (DSVT's values by default).

    Attributes:
        score_threshold: a peak is kept only if its heatmap score is strictly above this (OpenPCDet and mmdet3d).
        center_range: (x0, y0, z0, x1, y1, z1) metres: a box is kept only if its centre's x, y AND z lie inside,
            bounds included (OpenPCDet's POST_CENTER_LIMIT_RANGE, mmdet3d's post_center_range); None: x and y
            inside the detector's point range, z unchecked (this project's own variants).
        nms_convention: "exact": rotated NMS on the boxes' true BEV rectangles, the kept list by descending
            score. "openpcdet_bev": what DSVT's official `multi_classes_nms_mmdet` -> `nms_gpu_bev` computes,
            for weights converted from its checkpoints: it hands the kernel `[x - dx/2, y - dy/2, x + dx/2,
            y + dy/2, pi/2 - heading]`, and the kernel turns that rectangle by `-(pi/2 - heading)` about its
            centre, so the rectangle it intersects is the box turned 90 degrees (dx along heading - pi/2);
            the kept list is grouped by class (class 0 first), each group by descending score.
        iou_scoring: how the IoU branch rescores. "decoded" (OpenPCDet's CenterHead, DSVT, and this project's
            own weights): the branch predicts `2 IoU - 1`, read as `(x + 1) / 2` clamped to [0, 1], and the scores
            of the decoded top-K peaks that pass the filter are rectified (`iou_rectifier` or `iou_power`).
            "heatmap" (mmdet3d's CenterHead as FlatFormer's official code uses it, for weights converted from
            it): the branch predicts the IoU itself, clamped to [0, 1], and the heatmap is multiplied by
            `iou^iou_power` before the top-K and the score threshold.
        max_per_frame: top-K peaks decoded per frame.
        iou_rectifier: per-class alpha of `score^(1 - a) * iou^a` (DSVT; empty: none).
        iou_power: if set, `score * iou^p` instead (FlatFormer's `iou_pow=2`).
        nms_thresholds: per-class BEV IoU thresholds.
        nms_pre_max, nms_post_max: box counts before and after NMS, one for all classes or one per class.
    """

    score_threshold: float = 0.1
    center_range: tuple[float, float, float, float, float, float] | None = None
    nms_convention: str = "exact"
    iou_scoring: str = "decoded"
    max_per_frame: int = 500
    iou_rectifier: tuple[float, ...] = (0.68, 0.71, 0.65)
    iou_power: float | None = None
    nms_thresholds: tuple[float, ...] = (0.7, 0.6, 0.55)
    nms_pre_max: int | tuple[int, ...] = 4096
    nms_post_max: int | tuple[int, ...] = 500

    def __post_init__(self) -> None:
        if self.nms_convention not in NMS_CONVENTIONS:
            raise ValueError(f"nms_convention must be one of {NMS_CONVENTIONS}, got {self.nms_convention!r}")
        if self.iou_scoring not in ("decoded", "heatmap"):
            raise ValueError(f"iou_scoring must be 'decoded' or 'heatmap', got {self.iou_scoring!r}")
        if self.iou_scoring == "heatmap" and self.iou_power is None:
            raise ValueError("iou_scoring='heatmap' needs iou_power (mmdet3d's iou_pow)")
        if self.center_range is not None and len(self.center_range) != 6:
            raise ValueError(f"center_range needs 6 numbers (x0, y0, z0, x1, y1, z1), got {self.center_range}")


def decode_boxes(preds: dict[str, Tensor], geometry: HeadGeometry, k: int, heatmap: Tensor | None = None):
    """Top-k heatmap peaks per frame -> (boxes `(B, k, 7)`, scores `(B, k)`, labels `(B, k)`, iou `(B, k)` in [0, 1]).

    `heatmap`: the class scores to rank, `(B, K, H, W)` in [0, 1]; default `sigmoid(preds["hm"])`.
    """
    hm = torch.sigmoid(preds["hm"]) if heatmap is None else heatmap
    b, ncls, h, w = hm.shape
    k = min(k, ncls * h * w)
    scores, flat = hm.reshape(b, -1).topk(k, dim=1)
    labels = flat // (h * w)
    cell = flat % (h * w)
    xs, ys = (cell % w).float(), (cell // w).float()
    g = {name: _gather(preds[name], cell) for name in ("center", "center_z", "dim", "rot")}
    boxes = _codes_to_boxes(g["center"], g["center_z"], g["dim"], g["rot"], xs, ys, geometry)
    if "iou" in preds:
        iou = ((_gather(preds["iou"], cell)[..., 0] + 1) / 2).clamp(0, 1)
    else:
        iou = torch.ones_like(scores)
    return boxes, scores, labels, iou


def pre_nms_filter(boxes: Tensor, scores: Tensor, geometry: HeadGeometry, cfg: PostProcessConfig) -> Tensor:
    """The decoder's filter: `(K,)` bool, True where the score is strictly above the threshold and the centre lies
    inside `cfg.center_range` (x, y and z), or, without one, inside the point range on x and y."""
    keep = scores > cfg.score_threshold
    if cfg.center_range is not None:
        lo, hi = boxes.new_tensor(cfg.center_range[:3]), boxes.new_tensor(cfg.center_range[3:])
        return keep & (boxes[:, :3] >= lo).all(1) & (boxes[:, :3] <= hi).all(1)
    r = geometry.point_range
    return keep & (boxes[:, 0] >= r[0]) & (boxes[:, 0] <= r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] <= r[4])


def rectify_scores(scores: Tensor, labels: Tensor, iou: Tensor, cfg: PostProcessConfig) -> Tensor:
    """IoU-rectified scores: `score * iou^p` (FlatFormer) or `score^(1 - a) * iou^a` per class (DSVT)."""
    if cfg.iou_power is not None:
        return scores * iou.pow(cfg.iou_power)
    if cfg.iou_rectifier:
        alpha = scores.new_tensor(cfg.iou_rectifier)[labels]
        return scores.pow(1 - alpha) * iou.pow(alpha)
    return scores


def class_nms(boxes: Tensor, scores: Tensor, labels: Tensor, cfg: PostProcessConfig) -> Tensor:
    """Per-class rotated NMS in the convention `cfg.nms_convention`: `(K,)` indices into `boxes`."""
    pre = list(cfg.nms_pre_max) if isinstance(cfg.nms_pre_max, tuple) else cfg.nms_pre_max
    post = list(cfg.nms_post_max) if isinstance(cfg.nms_post_max, tuple) else cfg.nms_post_max
    if cfg.nms_convention == "exact":
        return nms_rotated_per_class(boxes, scores, labels, list(cfg.nms_thresholds), pre, post)
    # "openpcdet_bev": the kernel's rectangle is the box turned 90 degrees about its centre, i.e. dx and dy swapped
    turned = boxes[:, [0, 1, 2, 4, 3, 5, 6]]
    kept = nms_rotated_per_class(turned, scores, labels, list(cfg.nms_thresholds), pre, post)  # by score
    return kept[torch.sort(labels[kept], stable=True).indices]  # grouped by class, by score inside each


def post_process(preds: dict[str, Tensor], geometry: HeadGeometry, cfg: PostProcessConfig) -> list[dict[str, Tensor]]:
    """Decoding, the pre-NMS filter, IoU-rectified scores and per-class rotated NMS: one `{"boxes", "scores",
    "labels"}` per frame."""
    heatmap = None
    if cfg.iou_scoring == "heatmap":
        heatmap = torch.sigmoid(preds["hm"]) * preds["iou"].clamp(0, 1).pow(cfg.iou_power)
    boxes, scores, labels, iou = decode_boxes(preds, geometry, cfg.max_per_frame, heatmap)
    out = []
    for i in range(boxes.shape[0]):
        keep = pre_nms_filter(boxes[i], scores[i], geometry, cfg)
        bx, sc, lb, io = boxes[i][keep], scores[i][keep], labels[i][keep], iou[i][keep]
        if cfg.iou_scoring == "decoded":
            sc = rectify_scores(sc, lb, io, cfg)
        kept = class_nms(bx, sc, lb, cfg)
        out.append({"boxes": bx[kept], "scores": sc[kept], "labels": lb[kept]})
    return out
