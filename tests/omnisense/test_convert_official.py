"""`omnisense convert` on checkpoints in the official layouts (UniFormer, AST, DSVT, FlatFormer): the converted file
runs in its command with no further flag and names the official classes (issue #17's converter bullet, #22)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from omnisense import WeightsError
from omnisense.cli import main
from omnisense.convert import convert
from omnisense.models import load_model
from omnisense.weights import read_weights, sha256_file
from perception3d.models.dsvt import WAYMO_CLASSES, dsvt_pillar_tiny
from perception3d.models.flatformer import flatformer_tiny
from video.models.ast import ast_tiny
from video.models.labels import read_labels
from video.models.uniformer import uniformer_tiny


def _ast_official(model) -> dict:
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("patch_embed."):
            out["module.v.patch_embed.proj." + k[len("patch_embed."):]] = v
        elif k.startswith("head_norm."):
            out["module.mlp_head.0." + k[len("head_norm."):]] = v
        elif k.startswith("head."):
            out["module.mlp_head.1." + k[len("head."):]] = v
        else:
            out["module.v." + k] = v
    return out


def test_uniformer_k600_checkpoint_gets_the_official_classes_and_clip(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "uniformer_small_k600_16x4.pth"
    torch.save({"model_state": uniformer_tiny(num_classes=600).state_dict()}, ckpt)
    convert("uniformer", ckpt, tmp_path / "k600", variant="uniformer_tiny")
    model, meta = load_model(tmp_path / "k600.safetensors")
    assert meta.classes == read_labels("kinetics600") and meta.classes[0] == "feeding fish"
    assert meta.model == {"variant": "uniformer_tiny", "kwargs": {"num_classes": 600}}
    assert (meta.input["clip_len"], meta.input["frame_interval"], meta.input["crop_size"]) == (16, 4, 256)
    assert meta.source["sha256"] == sha256_file(ckpt) and meta.source["checkpoint"] == ckpt.name
    assert model.head.out_features == 600


def test_uniformer_converted_weights_run_in_recognize(tmp_path):
    from video.io import write_video
    from video.recognition import render_clip

    torch.manual_seed(0)
    ckpt = tmp_path / "uniformer_small_k400_8x8.pth"
    torch.save({"model_state": uniformer_tiny(num_classes=400).state_dict()}, ckpt)
    convert("uniformer", ckpt, tmp_path / "k400", variant="uniformer_tiny")
    frames = render_clip("rise", "arrow", np.random.default_rng(0), num_frames=72)
    video = write_video(tmp_path / "clip.mp4", frames, 12.0)
    out = tmp_path / "result.json"
    assert main(["recognize", str(video), "--weights", str(tmp_path / "k400.safetensors"), "--output", str(out)]) == 0
    top = json.loads(out.read_text())["top"]  # the omnisense.recognition/1 record (one JSON line)
    assert top and all(t["class"] in read_labels("kinetics400") for t in top)


def test_ast_converted_weights_run_in_classify_audio_with_audioset_names(tmp_path):
    torch.manual_seed(0)
    torch.save(_ast_official(ast_tiny()), tmp_path / "audioset_10_10_0.4593.pth")
    convert("ast", tmp_path / "audioset_10_10_0.4593.pth", tmp_path / "ast")
    _, meta = read_weights(tmp_path / "ast.safetensors")
    assert meta.model == {"variant": "ast_tiny", "kwargs": {"head_norm_eps": 1e-5}}
    assert meta.classes == read_labels("audioset") and meta.input["target_frames"] == 1024
    wave = tmp_path / "tone.wav"
    sf.write(wave, (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000)).astype(np.float32), 16000)
    out = tmp_path / "audio.json"
    weights = str(tmp_path / "ast.safetensors")
    assert main(["classify-audio", str(wave), "--weights", weights, "--output", str(out)]) == 0
    text = out.read_text()
    assert any(name in text for name in read_labels("audioset")[:527])


def _scan(path, n=4000):
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-12, 12, (n, 2)), rng.uniform(-2, 1, (n, 1)), rng.uniform(0, 1, (n, 1))], 1)
    pts.astype(np.float32).tofile(path)
    return path


def test_dsvt_converted_weights_detect_with_waymo_names_and_the_official_nms(tmp_path):
    torch.manual_seed(0)
    state = dsvt_pillar_tiny().state_dict()
    state["dense_head.heads_list.0.hm.1.bias"] = torch.full_like(state["dense_head.heads_list.0.hm.1.bias"], 4.0)
    torch.save({"model_state": {"module." + k: v for k, v in state.items()}, "optimizer_state": {}},
               tmp_path / "dsvt_ckpt.pth")
    convert("dsvt-openpcdet", tmp_path / "dsvt_ckpt.pth", tmp_path / "dsvt", variant="dsvt_pillar_tiny")
    model, meta = load_model(tmp_path / "dsvt.safetensors")
    assert meta.classes == list(WAYMO_CLASSES) and meta.model["kwargs"]["nms_convention"] == "openpcdet_bev"
    assert model.post.nms_convention == "openpcdet_bev" and model.post.center_range == (-80, -80, -10, 80, 80, 10)
    assert meta.input["voxel_size"] == [0.4, 0.4, 6.0] and meta.input["point_channels"] == 4
    out = tmp_path / "boxes.json"
    assert main(["detect", str(_scan(tmp_path / "scan.bin")), "--weights", str(tmp_path / "dsvt.safetensors"),
                 "--output", str(out), "--score-threshold", "0"]) == 0  # random weights: every box
    boxes = json.loads(out.read_text())["boxes"]
    assert boxes and {b["label"] for b in boxes} <= set(WAYMO_CLASSES)


def test_dsvt_converter_refuses_a_backbone_only_state_dict(tmp_path):
    backbone = {k[len("backbone_3d."):]: v for k, v in dsvt_pillar_tiny().state_dict().items()
                if k.startswith("backbone_3d.")}
    torch.save(backbone, tmp_path / "backbone.pth")
    with pytest.raises(WeightsError, match="backbone-only"):
        convert("dsvt-openpcdet", tmp_path / "backbone.pth", tmp_path / "x", variant="dsvt_pillar_tiny")
    assert not (tmp_path / "x.safetensors").exists()


_FF_HEADS = {"center": "reg", "center_z": "height", "dim": "dim", "rot": "rot", "iou": "iou", "hm": "heatmap"}


def _flatformer_official(model) -> dict:
    """Our flatformer state dict written in the mmdet3d layout of mit-han-lab/flatformer's released commit."""
    out = {}
    for k, v in model.state_dict().items():
        p = k.split(".")
        if k.startswith("vfe.pfn_layers."):
            key = ".".join(["voxel_encoder.vfe_layers", p[2], {"linear": "0", "norm": "1"}[p[3]], *p[4:]])
        elif k.startswith("backbone_3d."):
            key = "middle_encoder." + k[len("backbone_3d."):]
        elif k.startswith("backbone_2d.blocks."):
            key = "backbone." + k[len("backbone_2d."):]
        elif k.startswith("backbone_2d.deblocks."):
            key = "neck." + k[len("backbone_2d."):]
        elif k.startswith("dense_head.shared_conv."):
            key = "bbox_head.shared_conv." + {"0": "conv", "1": "bn"}[p[2]] + "." + ".".join(p[3:])
        elif k.startswith("dense_head.heads_list.0."):
            name, rest = _FF_HEADS[p[3]], p[4:]
            if rest[0] == "0":
                rest = ["0", {"0": "conv", "1": "bn"}[rest[1]], *rest[2:]]
            elif p[3] == "rot":
                v = v[[1, 0]]
            key = ".".join(["bbox_head.task_heads.0", name, *rest])
        else:
            raise KeyError(k)
        out[key] = v
    out["bbox_head.task_heads.0.vel.1.weight"] = torch.zeros(2, 16, 3, 3)
    return out


def test_flatformer_middle_encoder_checkpoint_fills_every_key(tmp_path):
    torch.manual_seed(0)
    source = flatformer_tiny().eval()
    torch.save({"state_dict": _flatformer_official(source), "meta": {}}, tmp_path / "flatformer.pth")
    report = convert("flatformer-mmdet3d", tmp_path / "flatformer.pth", tmp_path / "ff", variant="flatformer_tiny")
    assert report.ok and report.matched == len(source.state_dict())
    model, meta = load_model(tmp_path / "ff.safetensors")
    assert meta.classes == ["Car", "Pedestrian", "Cyclist"]
    assert meta.model["kwargs"]["nms_convention"] == "mmdet3d_bev" and model.post.nms_convention == "mmdet3d_bev"
    assert model.post.box_convention == "mmdet3d_v0" and model.post.iou_scoring == "heatmap"
    assert (flatformer_tiny().post.nms_convention, flatformer_tiny().post.box_convention) == ("exact", "ours")
    for k, v in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, msg=k)


def test_flatformer_converted_weights_detect_with_the_official_names(tmp_path):
    torch.manual_seed(0)
    source = flatformer_tiny().eval()
    with torch.no_grad():
        source.dense_head.heads_list[0].hm[1].bias.fill_(4.0)  # random weights that score every box (heatmap ...
        source.dense_head.heads_list[0].iou[1].bias.fill_(1.0)  # ... times the IoU branch, as the official scores)
    torch.save({"state_dict": _flatformer_official(source), "meta": {}}, tmp_path / "flatformer.pth")
    convert("flatformer-mmdet3d", tmp_path / "flatformer.pth", tmp_path / "ff", variant="flatformer_tiny")
    out = tmp_path / "boxes.json"
    assert main(["detect", str(_scan(tmp_path / "scan.bin")), "--weights", str(tmp_path / "ff.safetensors"),
                 "--output", str(out), "--score-threshold", "0"]) == 0
    record = json.loads(out.read_text())
    assert record["boxes"] and {b["label"] for b in record["boxes"]} <= {"Car", "Pedestrian", "Cyclist"}


@pytest.mark.parametrize("shape", [(4, 4, 1), (4, 4)])
def test_flatformer_accepts_the_official_3_tuple_shapes(shape):
    from perception3d.kernels import FlatFormer

    model = FlatFormer(in_channels=16, num_heads=2, num_blocks=1, window_shape=shape,
                       sparse_shape=(16, 16, 1) if len(shape) == 3 else (16, 16), group_size=8)
    coords = torch.tensor([[0, 0, y, x] for y in range(0, 16, 3) for x in range(0, 16, 2)])
    out = model(torch.randn(len(coords), 16), coords, 1)
    assert out.shape == (len(coords), 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("rows,label_set,first", [
    (400, "kinetics400", "riding a bike"), (600, "kinetics600", "feeding fish"),
    (174, "something_something_v2", "Approaching [something] with your camera")])
def test_uniformer_label_set_follows_the_head(rows, label_set, first):
    from video.models.uniformer import describe_official

    state = {f"blocks3.{i}.norm1.weight": torch.zeros(1) for i in range(8)}
    state["head.weight"] = torch.zeros(rows, 512)
    info = describe_official(state, checkpoint="uniformer_small_ssv2_prek400.pth")
    assert info["variant"] == "uniformer_small_k400" and info["notes"]["label_set"] == label_set
    assert len(info["classes"]) == rows and info["classes"][0] == first


def test_dsvt_voxel_checkpoints_pick_the_voxel_variant():
    from perception3d.models.dsvt import describe_official, dsvt_voxel_tiny

    info = describe_official(dsvt_voxel_tiny().state_dict())
    assert info["variant"] == "dsvt_voxel_waymo" and info["kwargs"]["nms_convention"] == "openpcdet_bev"
    assert describe_official(dsvt_pillar_tiny().state_dict())["variant"] == "dsvt_pillar_waymo"
