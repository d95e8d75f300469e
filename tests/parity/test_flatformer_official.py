"""FlatFormer against the official code (mit-han-lab/flatformer): the middle encoder through
`convert_mmdet3d_flatformer`, with an eps probe, and the head's decoding with its IoU rescoring and the pre-NMS
filter; the fixture comes from tools/parity/flatformer.py."""

from __future__ import annotations

import json

import torch
from torch import nn

from perception3d.detection.head import HeadGeometry, PostProcessConfig, decode_boxes, pre_nms_filter
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
