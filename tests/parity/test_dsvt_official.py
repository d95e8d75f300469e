"""DSVT detectors (pillar and voxel) against the official OpenPCDet code (Haiyang-W/DSVT): network, decoding with
the pre-NMS filter, and the official NMS; the fixtures come from tools/parity/dsvt.py."""

from __future__ import annotations

import json
import math

import pytest
import torch

from perception3d.detection.detector import CenterPointDetector, build_detector
from perception3d.detection.head import PostProcessConfig, class_nms, decode_boxes, post_process, pre_nms_filter
from perception3d.kernels import DSVT
from perception3d.models.dsvt import convert_openpcdet_dsvt
from tests.parity._fixtures import ATOL, RTOL, load

VARIANTS = ["dsvt_pillar", "dsvt_voxel"]


def _post(cfg: dict, convention: str = "openpcdet_bev") -> PostProcessConfig:
    post = cfg["post"]
    nms = post["NMS_CONFIG"]
    return PostProcessConfig(score_threshold=post["SCORE_THRESH"], center_range=tuple(post["POST_CENTER_LIMIT_RANGE"]),
                             max_per_frame=post["MAX_OBJ_PER_SAMPLE"], iou_rectifier=tuple(post["IOU_RECTIFIER"]),
                             nms_thresholds=tuple(nms["NMS_THRESH"]), nms_pre_max=tuple(nms["NMS_PRE_MAXSIZE"]),
                             nms_post_max=tuple(nms["NMS_POST_MAXSIZE"]), nms_convention=convention)


def _ours(name: str) -> tuple[CenterPointDetector, dict, dict]:
    fx, meta = load(name)
    cfg = json.loads(meta["config"])
    layer, bb = cfg["input_layer"], cfg["backbone"]
    backbone = DSVT(sparse_shape=layer["sparse_shape"], window_shape=layer["window_shape"],
                    hybrid_factor=layer["hybrid_factor"], shifts=layer["shifts_list"],
                    downsample_stride=layer["downsample_stride"], set_size=[s for s, _ in bb["set_info"]],
                    num_blocks=[n for _, n in bb["set_info"]], d_model=bb["d_model"], nhead=bb["nhead"],
                    dim_feedforward=bb["dim_feedforward"], activation="gelu",
                    reduction=bb.get("reduction_type", "attention"))
    bev = cfg["bev"]
    model = build_detector(
        class_names=tuple(cfg["classes"]), point_range=tuple(cfg["point_range"]), voxel_size=tuple(cfg["voxel_size"]),
        vfe_filters=[16, 16], vfe_halve=True, backbone_3d=backbone, bev_grid_shape=tuple(cfg["bev_shape"]),
        bev=dict(layer_nums=bev["LAYER_NUMS"], layer_strides=bev["LAYER_STRIDES"], num_filters=bev["NUM_FILTERS"],
                 upsample_strides=bev["UPSAMPLE_STRIDES"], num_upsample_filters=bev["NUM_UPSAMPLE_FILTERS"],
                 style="resnet"),
        head=dict(shared_channels=16, head_conv=16, num_conv=2), post=_post(cfg)).eval()
    state = convert_openpcdet_dsvt(fx["official"])
    report = model.load_state_dict(state, strict=False)
    assert not report.missing_keys and not report.unexpected_keys, report
    return model, fx, cfg


def _by_coords(feats: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows sorted by (batch, z, y, x), so that two voxelisations can be compared whatever their order."""
    c = coords.long()
    key = ((c[:, 0] * 1024 + c[:, 1]) * 1024 + c[:, 2]) * 1024 + c[:, 3]
    order = torch.argsort(key)
    return feats[order], c[order]


def _points(fx):
    pts = fx["input"]["points"]
    return pts[:, 1:], pts[:, 0].long()


@pytest.mark.parametrize("name", VARIANTS)
def test_vfe_and_dsvt_backbone_match_the_official(name):
    model, fx, _ = _ours(name)
    pts, batch_index = _points(fx)
    with torch.no_grad():
        feats, coords = model.vfe(pts, batch_index)
        ours_vfe = _by_coords(feats, coords)
        out, out_coords = model.backbone_3d(feats, coords, 2)
    official_vfe = _by_coords(fx["output"]["vfe_features"], fx["output"]["vfe_coords"])
    assert torch.equal(ours_vfe[1], official_vfe[1])  # the same voxels, exactly
    torch.testing.assert_close(ours_vfe[0], official_vfe[0], atol=ATOL, rtol=RTOL)
    ours_out = _by_coords(out, out_coords)
    official_out = _by_coords(fx["output"]["dsvt_features"], fx["output"]["dsvt_coords"])
    assert torch.equal(ours_out[1], official_out[1])
    torch.testing.assert_close(ours_out[0], official_out[0], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", VARIANTS)
def test_head_maps_match_the_official(name):
    model, fx, _ = _ours(name)
    with torch.no_grad():
        maps = model(*_points(fx), 2)
    for key in ("hm", "center", "center_z", "dim", "rot", "iou"):
        torch.testing.assert_close(maps[key], fx["output"][f"head_{key}"], atol=ATOL, rtol=RTOL, msg=key)


@pytest.mark.parametrize("name", VARIANTS)
def test_decoding_and_the_pre_nms_filter_match_the_official(name):
    """Top-K peaks, boxes, scores > threshold and centres inside POST_CENTER_LIMIT_RANGE (x, y and z)."""
    model, fx, cfg = _ours(name)
    maps = {k[len("head_"):]: v for k, v in fx["output"].items() if k.startswith("head_")}  # the official maps
    boxes, scores, labels, iou = decode_boxes(maps, model.geometry, model.post.max_per_frame)
    for f in range(2):
        keep = pre_nms_filter(boxes[f], scores[f], model.geometry, model.post)
        d = {k[: -len(f"_{f}")]: v for k, v in fx["decoded"].items() if k.endswith(f"_{f}")}
        assert int(keep.sum()) == len(d["pred_boxes"]) > 0
        assert torch.equal(labels[f][keep], d["pred_labels"].long())
        torch.testing.assert_close(boxes[f][keep], d["pred_boxes"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(scores[f][keep], d["pred_scores"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(iou[f][keep], d["pred_iou"].clamp(0, 1), atol=ATOL, rtol=RTOL)
    # the filter does cut: centres beyond the range in z (or x, y) and scores at or below the threshold
    passed = sum(len(fx["decoded"][f"pred_boxes_{f}"]) for f in (0, 1))
    assert int((scores > cfg["post"]["SCORE_THRESH"]).sum()) > passed


@pytest.mark.parametrize("name", VARIANTS)
def test_post_processing_matches_the_official_nms(name):
    """The whole decoder with `nms_convention="openpcdet_bev"` keeps the official boxes, in the official order."""
    model, fx, _ = _ours(name)
    maps = {k[len("head_"):]: v for k, v in fx["output"].items() if k.startswith("head_")}
    for f, det in enumerate(post_process(maps, model.geometry, model.post)):
        assert torch.equal(det["labels"], fx["final"][f"pred_labels_{f}"].long())
        torch.testing.assert_close(det["boxes"], fx["final"][f"pred_boxes_{f}"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(det["scores"], fx["final"][f"pred_scores_{f}"], atol=ATOL, rtol=RTOL)


def test_the_exact_convention_differs_from_the_official_on_these_frames():
    """The fixture is discriminating: NMS on the true rectangles keeps a different list on at least one frame."""
    differs = []
    for name in VARIANTS:
        model, fx, cfg = _ours(name)
        maps = {k[len("head_"):]: v for k, v in fx["output"].items() if k.startswith("head_")}
        for f, det in enumerate(post_process(maps, model.geometry, _post(cfg, "exact"))):
            official = fx["final"][f"pred_boxes_{f}"]
            differs.append(det["boxes"].shape != official.shape or not torch.allclose(det["boxes"], official))
    assert any(differs)


def _random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 8
    dims = torch.rand(n, 3, generator=gen) * torch.tensor([3.5, 1.5, 1.0]) + torch.tensor([1.0, 0.5, 1.0])
    heading = (torch.rand(n, 1, generator=gen) * 2 - 1) * math.pi
    return torch.cat([xy, torch.zeros(n, 1), dims, heading], 1)


@pytest.mark.parametrize("seed", range(6))
def test_openpcdet_bev_nms_equals_the_kernel_emulation(tool, seed):
    """`class_nms(..., "openpcdet_bev")` against tools/parity/openpcdet_iou_bev.py (the kernel's geometry, from its
    source): the same kept indices, grouped by class, by score inside each."""
    emulation = tool("parity/openpcdet_iou_bev")
    gen = torch.Generator().manual_seed(seed)
    n = 60
    boxes, scores = _random_boxes(gen, n), torch.rand(n, generator=gen)
    labels = torch.randint(0, 3, (n,), generator=gen)
    cfg = PostProcessConfig(nms_thresholds=(0.3, 0.2, 0.1), nms_pre_max=(50, 50, 50), nms_post_max=(12, 12, 12),
                            nms_convention="openpcdet_bev")
    ours = class_nms(boxes, scores, labels, cfg)
    expected = []
    for c, thr in enumerate(cfg.nms_thresholds):
        idx = torch.nonzero(labels == c).flatten()
        order = idx[torch.argsort(scores[idx], descending=True)][: cfg.nms_pre_max[c]]
        kept = emulation.nms(emulation.official_bev_boxes(boxes[order].tolist()), thr)
        expected += order[kept[: cfg.nms_post_max[c]]].tolist()
    assert ours.tolist() == expected


def test_the_official_convention_turns_the_rectangle_by_90_degrees(tool):
    """The issue's example: two 4.5 x 2 m boxes 0.5 m apart along their heading, IoU 0.8 true, 0.6 as the kernel
    reads them; at NMS threshold 0.7 the exact convention suppresses the second, the official keeps it."""
    emulation = tool("parity/openpcdet_iou_bev")
    boxes = torch.tensor([[0.0, 0.0, 0.0, 4.5, 2.0, 1.5, 0.3],
                          [0.5 * math.cos(0.3), 0.5 * math.sin(0.3), 0.0, 4.5, 2.0, 1.5, 0.3]])
    a, b = emulation.official_bev_boxes(boxes.tolist())
    assert emulation.iou_bev(a, b) == pytest.approx(0.6, abs=1e-6)
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    kw = dict(nms_thresholds=(0.7,), nms_pre_max=100, nms_post_max=100)
    assert class_nms(boxes, scores, labels, PostProcessConfig(**kw)).tolist() == [0]
    assert class_nms(boxes, scores, labels, PostProcessConfig(**kw, nms_convention="openpcdet_bev")).tolist() == [0, 1]
