"""FlatFormer against the official code (mit-han-lab/flatformer): the middle encoder through
`convert_mmdet3d_flatformer`, with an eps probe, and the head's decoding with its IoU rescoring, the pre-NMS
filter, the box convention (`box_convention="mmdet3d_v0"`) and the NMS
(`nms_convention="mmdet3d_bev"`); the fixture comes from tools/parity/flatformer.py, the NMS
kernel's emulation from tools/parity/mmdet3d_iou_bev.py."""

from __future__ import annotations

import json
import math

import torch
import pytest
from torch import nn

from perception3d.detection.boxes import boxes_to_corners_bev
from perception3d.detection.head import (HeadGeometry, PostProcessConfig, class_nms, decode_boxes, from_mmdet3d_v0,
                                         post_process, pre_nms_filter)
from perception3d.kernels import FlatFormer
from perception3d.models.flatformer import convert_mmdet3d_flatformer
from tests.parity._fixtures import ATOL, RTOL, load, max_error


def _encoder() -> tuple[FlatFormer, dict, dict]:
    fx, meta = load("flatformer")
    cfg = json.loads(meta["config"])["encoder"]
    model = FlatFormer(in_channels=cfg["in_channels"], num_heads=cfg["num_heads"], num_blocks=cfg["num_blocks"],
                       activation=cfg["activation"], window_shape=cfg["window_shape"], sparse_shape=cfg["sparse_shape"],
                       group_size=cfg["group_size"], pos_temperature=cfg["pos_temperature"],
                       normalize_pos=cfg["normalize_pos"], backend="reference").eval()
    state = {k[len("backbone_3d."):]: v for k, v in convert_mmdet3d_flatformer(fx["official"]).items()}
    report = model.load_state_dict(state, strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    return model, fx, meta


def test_flatformer_encoder_matches_the_official_tokens():
    model, fx, _ = _encoder()
    with torch.no_grad():
        out = model(fx["input"]["feats"], fx["input"]["coords"], 2)
    torch.testing.assert_close(out, fx["output"]["tokens"], atol=ATOL, rtol=RTOL)


def _probe(model: FlatFormer, fx: dict, scale: float) -> torch.Tensor:
    layer = model.block_list[0].block[0]
    with torch.no_grad():
        for p in (layer.norm1.weight, layer.norm1.bias, layer.fc2.weight, layer.fc2.bias):
            p.mul_(scale)
        return model(fx["input"]["feats"], fx["input"]["coords"], 2)


def test_flatformer_probe_matches_with_the_official_eps():
    model, fx, meta = _encoder()
    out = _probe(model, fx, float(meta["probe_scale"]))
    torch.testing.assert_close(out, fx["output"]["tokens_probe"], atol=ATOL, rtol=RTOL)


def test_a_wrong_layernorm_eps_fails_the_probe():
    model, fx, meta = _encoder()
    model.block_list[0].block[0].norm2.eps = 1e-6  # official: PyTorch's default 1e-5
    err = max_error(_probe(model, fx, float(meta["probe_scale"])), fx["output"]["tokens_probe"])
    assert err > 100 * ATOL, f"the probe does not see norm2's eps (max error {err:.2e})"


def test_flatformer_decoding_with_heatmap_iou_scoring_matches_the_official():
    fx, meta = load("flatformer")
    cfg = json.loads(meta["config"])
    coder = cfg["coder"]
    head = fx["head"]
    maps = {"center": head["reg"], "center_z": head["height"], "dim": head["dim"], "rot": head["rot"][:, [1, 0]],
            "iou": head["iou"], "hm": head["heatmap"]}  # the converter's renames; rot (sin, cos) -> (cos, sin)
    x0, y0 = coder["pc_range"]
    geometry = HeadGeometry((x0, y0, -4.0, -x0, -y0, 2.0), tuple(coder["voxel_size"]), coder["out_size_factor"])
    post = PostProcessConfig(score_threshold=coder["score_threshold"], center_range=tuple(coder["post_center_range"]),
                             max_per_frame=coder["max_num"], iou_rectifier=(), iou_power=cfg["test_cfg"]["iou_pow"],
                             iou_scoring="heatmap")
    heatmap = torch.sigmoid(maps["hm"]) * maps["iou"].clamp(0, 1).pow(post.iou_power)
    boxes, scores, labels, _ = decode_boxes(maps, geometry, post.max_per_frame, heatmap)
    for f in range(2):
        keep = pre_nms_filter(boxes[f], scores[f], geometry, post)
        official = {k[: -len(f"_{f}")]: v for k, v in fx["decoded"].items() if k.endswith(f"_{f}")}
        assert int(keep.sum()) == len(official["bboxes"]) > 0
        assert torch.equal(labels[f][keep], official["labels"].long())
        torch.testing.assert_close(boxes[f][keep], official["bboxes"][:, :7], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(scores[f][keep], official["scores"], atol=ATOL, rtol=RTOL)
    assert int((torch.sigmoid(maps["hm"]) > coder["score_threshold"]).sum()) > 0


def test_decoded_iou_scoring_would_not_match():
    """Reading the official IoU branch as OpenPCDet's `2 IoU - 1` (the "decoded" scoring) keeps other boxes."""
    fx, meta = load("flatformer")
    coder = json.loads(meta["config"])["coder"]
    head = fx["head"]
    maps = {"center": head["reg"], "center_z": head["height"], "dim": head["dim"], "rot": head["rot"][:, [1, 0]],
            "iou": head["iou"], "hm": head["heatmap"]}
    geometry = HeadGeometry((-6.4, -6.4, -4.0, 6.4, 6.4, 2.0), (0.4, 0.4), 1)
    post = PostProcessConfig(score_threshold=0.1, center_range=tuple(coder["post_center_range"]),
                             max_per_frame=coder["max_num"], iou_rectifier=(), iou_power=2.0)
    boxes, scores, _, _ = decode_boxes(maps, geometry, post.max_per_frame)
    kept = int(pre_nms_filter(boxes[0], scores[0], geometry, post).sum())
    assert kept != len(fx["decoded"]["bboxes_0"])


def test_the_flatformer_layer_norms_are_pytorch_default():
    model, _, _ = _encoder()
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, nn.LayerNorm))


def _official_post(nms: str = "mmdet3d_bev", box: str = "mmdet3d_v0"):
    """The fixture's maps in our layout, its geometry, and the official test_cfg as a PostProcessConfig."""
    fx, meta = load("flatformer")
    cfg = json.loads(meta["config"])
    coder, test_cfg, head = cfg["coder"], cfg["test_cfg"], fx["head"]
    maps = {"center": head["reg"], "center_z": head["height"], "dim": head["dim"], "rot": head["rot"][:, [1, 0]],
            "iou": head["iou"], "hm": head["heatmap"]}
    x0, y0 = coder["pc_range"]
    geometry = HeadGeometry((x0, y0, -4.0, -x0, -y0, 2.0), tuple(coder["voxel_size"]), coder["out_size_factor"])
    post = PostProcessConfig(score_threshold=coder["score_threshold"], center_range=tuple(coder["post_center_range"]),
                             max_per_frame=coder["max_num"], iou_rectifier=(), iou_power=test_cfg["iou_pow"],
                             iou_scoring="heatmap", nms_thresholds=tuple(test_cfg["nms_thr"]),
                             nms_pre_max=tuple(test_cfg["pre_max_size"]), nms_post_max=tuple(test_cfg["post_max_size"]),
                             nms_convention=nms, box_convention=box)
    return fx, maps, geometry, post


def _decoded(maps, geometry, post):
    heatmap = torch.sigmoid(maps["hm"]) * maps["iou"].clamp(0, 1).pow(post.iou_power)
    boxes, scores, labels, _ = decode_boxes(maps, geometry, post.max_per_frame, heatmap)
    for f in range(2):
        keep = pre_nms_filter(boxes[f], scores[f], geometry, post)
        yield boxes[f][keep], scores[f][keep], labels[f][keep]


def test_flatformer_nms_keeps_the_official_boxes():
    """On the decoded boxes turned into our convention, `class_nms(..., "mmdet3d_bev")` keeps exactly the official
    rows, in the official order (class by class, by score inside each; post_max_size biting on classes 0 and 2)."""
    fx, maps, geometry, post = _official_post()
    for f, (boxes, scores, labels) in enumerate(_decoded(maps, geometry, post)):
        kept = class_nms(from_mmdet3d_v0(boxes), scores, labels, post)
        assert kept.tolist() == fx["nms"][f"keep_{f}"].tolist()
        assert 0 < len(kept) < len(boxes)


def test_flatformer_post_processing_matches_the_official_nms():
    """The whole decoder (rescoring, decoding, filter, box convention, NMS) returns the official boxes after NMS,
    turned into our convention as the official Waymo export does, with the official scores and labels."""
    fx, maps, geometry, post = _official_post()
    for f, det in enumerate(post_process(maps, geometry, post)):
        assert torch.equal(det["labels"], fx["nms"][f"labels_{f}"].long())
        official = fx["nms"][f"bboxes_{f}"][:, :7]
        torch.testing.assert_close(det["boxes"], from_mmdet3d_v0(official), atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(det["scores"], fx["nms"][f"scores_{f}"], atol=ATOL, rtol=RTOL)


def _same_corners(ours: torch.Tensor, official: list) -> bool:
    """The same four corners, in any order (1e-4 m)."""
    theirs = torch.tensor(official, dtype=ours.dtype)
    return bool((torch.cdist(ours, theirs).min(1).values < 1e-4).all())


def test_our_boxes_are_the_rectangles_mmdet3d_v0_draws(tool):
    """`from_mmdet3d_v0` keeps the rectangle: our corners of the converted official boxes are the corners mmdet3d
    v0.x's `corners` draws for the official ones (and reading the official numbers as ours mirrors them)."""
    emulation = tool("parity/mmdet3d_iou_bev")
    fx, _, _, _ = _official_post()
    official = torch.cat([fx["nms"]["bboxes_0"], fx["nms"]["bboxes_1"]])[:, :7]
    ours = boxes_to_corners_bev(from_mmdet3d_v0(official))
    assert all(_same_corners(c, emulation.lidar_v0_bev_corners(b)) for c, b in zip(ours, official.tolist()))
    raw = boxes_to_corners_bev(official)
    assert sum(_same_corners(c, emulation.lidar_v0_bev_corners(b)) for c, b in zip(raw, official.tolist())) < len(raw)


@pytest.mark.parametrize("nms,box", [("exact", "mmdet3d_v0"), ("mmdet3d_bev", "ours"), ("openpcdet_bev", "mmdet3d_v0")])
def test_other_conventions_differ_from_the_official_on_the_fixture(nms, box):
    """The fixture discriminates: by-score order, the raw boxes, or DSVT's turned rectangles give other lists."""
    fx, maps, geometry, post = _official_post(nms, box)
    differs = []
    for f, (boxes, scores, labels) in enumerate(_decoded(maps, geometry, post)):
        kept = class_nms(from_mmdet3d_v0(boxes) if box == "mmdet3d_v0" else boxes, scores, labels, post)
        differs.append(kept.tolist() != fx["nms"][f"keep_{f}"].tolist())
    assert any(differs)


def _random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 8
    dims = torch.rand(n, 3, generator=gen) * torch.tensor([3.5, 1.5, 1.0]) + torch.tensor([1.0, 0.5, 1.0])
    heading = (torch.rand(n, 1, generator=gen) * 2 - 1) * math.pi
    return torch.cat([xy, torch.zeros(n, 1), dims, heading], 1)


def _random_set(seed: int):
    gen = torch.Generator().manual_seed(seed)
    boxes, scores = _random_boxes(gen, 60), torch.rand(60, generator=gen)
    return boxes, scores, torch.randint(0, 3, (60,), generator=gen)


_RANDOM_CFG = dict(nms_thresholds=(0.3, 0.2, 0.1), nms_pre_max=(50, 15, 50), nms_post_max=(12, 12, 6))


@pytest.mark.parametrize("seed", range(6))
def test_mmdet3d_bev_nms_equals_the_kernel_emulation(tool, seed):
    """`class_nms(..., "mmdet3d_bev")` on our boxes against tools/parity/mmdet3d_iou_bev.py (`multi_class_nms_gpu`
    and the kernel's geometry, from their source) on the same boxes in mmdet3d v0.x's convention: the same kept
    indices in the same order."""
    emulation = tool("parity/mmdet3d_iou_bev")
    boxes, scores, labels = _random_set(seed)
    cfg = PostProcessConfig(**_RANDOM_CFG, nms_convention="mmdet3d_bev")
    expected = emulation.multi_class_nms(emulation.to_mmdet3d_v0(boxes.tolist()), scores.tolist(), labels.tolist(),
                                         cfg.nms_thresholds, cfg.nms_pre_max, cfg.nms_post_max)
    assert class_nms(boxes, scores, labels, cfg).tolist() == expected
    corners = boxes_to_corners_bev(boxes)
    assert all(_same_corners(c, emulation.lidar_v0_bev_corners(b))
               for c, b in zip(corners, emulation.to_mmdet3d_v0(boxes.tolist())))


def test_the_kernel_on_unconverted_boxes_keeps_other_sets(tool):
    """Handing the kernel our numbers as if they were mmdet3d v0.x boxes (no conversion) keeps another set on
    the random sets: the conversion is what makes the kernel's rectangle the box."""
    emulation = tool("parity/mmdet3d_iou_bev")
    differs = 0
    for seed in range(6):
        boxes, scores, labels = _random_set(seed)
        cfg = PostProcessConfig(**_RANDOM_CFG, nms_convention="mmdet3d_bev")
        raw = emulation.multi_class_nms(boxes.tolist(), scores.tolist(), labels.tolist(), cfg.nms_thresholds,
                                        cfg.nms_pre_max, cfg.nms_post_max)
        differs += sorted(class_nms(boxes, scores, labels, cfg).tolist()) != sorted(raw)
    assert differs > 0


def test_the_kernel_reads_mmdet3d_v0_boxes(tool):
    """Two 4.5 x 2 m boxes with heading 0.6, 0.5 m apart along it: IoU 0.8. The kernel gives 0.8 on the boxes in
    mmdet3d v0.x's convention, less than 0.7 on our numbers read unconverted."""
    emulation = tool("parity/mmdet3d_iou_bev")
    boxes = [[0.0, 0.0, 0.0, 4.5, 2.0, 1.5, 0.6], [0.5 * math.cos(0.6), 0.5 * math.sin(0.6), 0.0, 4.5, 2.0, 1.5, 0.6]]
    a, b = emulation.official_bev_boxes(emulation.to_mmdet3d_v0(boxes))
    assert emulation.iou_bev(a, b) == pytest.approx(0.8, abs=1e-6)
    a, b = emulation.official_bev_boxes(boxes)
    assert emulation.iou_bev(a, b) < 0.7
