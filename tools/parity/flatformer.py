"""Parity fixture for FlatFormer from the official code (mit-han-lab/flatformer, mmdet3d v0.x): the FlatFormer
middle encoder (`mmdet3d/models/middle_encoders/flatformer.py`) and the head's decoding up to NMS
(`CenterHead.get_bboxes` of `mmdet3d/models/dense_heads/centerpoint_head.py`, which rescales the heatmap by the
IoU branch, then `CenterPointBBoxCoder.decode`: top-K, score threshold, post_center_range).

    python tools/parity/flatformer.py /path/to/flatformer-checkout [--out tests/fixtures/parity/flatformer]

Writes `fixture.safetensors`: `official.*` (the encoder's state dict under `middle_encoder.`, as the released
detector names it), `input.feats` / `input.coords` (pillar features and (batch, z, y, x) coordinates of two
frames), `output.tokens` (the encoder's per-token output, before its BEV scatter), `output.tokens_probe` (the
same with block 0 layer 0's `norm1` and `fc2` scaled by `PROBE_SCALE`, so that `norm2`'s eps decides the output),
`head.*` (random head maps in the official layout: heatmap, reg, height, dim (log), rot (sin, cos), vel, iou) and
`decoded.*` (the coder's boxes, scores and labels per frame). NMS is not covered (mmdet3d v0.x's rotated NMS
reads its own box convention).

Stubs: `flash_attn_unpadded_qkvpacked_func` by softmax attention inside each equal-length sequence (what its
documentation defines; dropout 0, scale 1/sqrt(head dim), not causal); mmcv's `auto_fp16` / `force_fp32` and the
registries as pass-through decorators; `torch.arange(device="cuda")` in the position embedding runs on the CPU;
mmcv/mmdet modules the head file imports for training are empty stand-ins. Nothing of the official code is
written out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

PROBE_SCALE = 1e-3
ENCODER = dict(in_channels=16, num_heads=2, num_blocks=1, activation="gelu", window_shape=(4, 4, 1),
               sparse_shape=(32, 32, 1), output_shape=(32, 32), pos_temperature=10000, normalize_pos=False,
               group_size=16)
CODER = dict(pc_range=[-6.4, -6.4], out_size_factor=1, voxel_size=[0.4, 0.4],
             post_center_range=[-5.5, -5.5, -0.6, 5.5, 5.5, 0.6], max_num=300, score_threshold=0.1, code_size=9)
TEST_CFG = dict(nms_type="rotate", iou_pow=2.0, score_threshold=0.1)


def _passthrough(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


def _install_stubs(checkout: Path) -> None:
    def module(name, path=None, **attrs):
        m = types.ModuleType(name)
        if path is not None:
            m.__path__ = [str(path)]
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    registry = types.SimpleNamespace(register_module=_passthrough)
    root = checkout / "mmdet3d"
    for name in ("mmdet3d", "mmdet3d.models", "mmdet3d.models.middle_encoders", "mmdet3d.models.dense_heads",
                 "mmdet3d.core", "mmdet3d.core.bbox", "mmdet3d.core.bbox.coders"):
        module(name, root.joinpath(*name.split(".")[1:]))
    module("mmdet3d.models.builder", MIDDLE_ENCODERS=registry, HEADS=registry, build_loss=lambda cfg: None)
    sys.modules["mmdet3d.models"].builder = sys.modules["mmdet3d.models.builder"]
    core = sys.modules["mmdet3d.core"]
    for name in ("circle_nms", "draw_heatmap_gaussian", "gaussian_radius", "xywhr2xyxyr"):
        setattr(core, name, None)
    sys.modules["mmdet3d.core.bbox"].bbox_overlaps_3d = None
    module("mmdet3d.models.utils", clip_sigmoid=torch.sigmoid)
    module("mmdet3d.ops")
    module("mmdet3d.ops.iou3d")
    module("mmdet3d.ops.iou3d.iou3d_utils", nms_gpu=None, multi_class_nms_gpu=None)
    module("mmcv")
    module("mmcv.runner", auto_fp16=_passthrough, force_fp32=_passthrough, BaseModule=nn.Module)
    module("mmcv.cnn", ConvModule=None, build_conv_layer=None)
    module("mmdet")
    module("mmdet.core", build_bbox_coder=None, multi_apply=None)
    module("mmdet.core.bbox", BaseBBoxCoder=object)
    module("mmdet.core.bbox.builder", BBOX_CODERS=registry)

    def flash_attn_unpadded_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p, softmax_scale=None, causal=False):
        assert dropout_p == 0 and not causal
        total, _, heads, dim = qkv.shape
        q, k, v = qkv.view(total // max_seqlen, max_seqlen, 3, heads, dim).permute(2, 0, 3, 1, 4)  # 3 x [G, H, L, D]
        scale = softmax_scale if softmax_scale is not None else dim ** -0.5
        attn = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)
        return (attn @ v).permute(0, 2, 1, 3).reshape(total, heads, dim)

    module("flash_attn")
    module("flash_attn.flash_attn_interface", flash_attn_unpadded_qkvpacked_func=flash_attn_unpadded_qkvpacked_func)
    arange = torch.arange

    def cpu_arange(*args, **kwargs):
        if str(kwargs.get("device", "")) == "cuda":
            kwargs["device"] = "cpu"
        return arange(*args, **kwargs)

    torch.arange = cpu_arange


def coords_for(gen: torch.Generator, counts=(150, 101)) -> torch.Tensor:
    """Unique (batch, 0, y, x) cells on the 32 x 32 grid; counts not multiples of the group (padding is used)."""
    rows = []
    for b, n in enumerate(counts):
        cells = torch.randperm(32 * 32, generator=gen)[:n]
        rows.append(torch.stack([torch.full((n,), b), torch.zeros(n, dtype=torch.long), cells // 32, cells % 32], 1))
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of mit-han-lab/flatformer")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/flatformer"))
    args = parser.parse_args()
    _install_stubs(args.checkout)
    encoder_mod = importlib.import_module("mmdet3d.models.middle_encoders.flatformer")
    coder_mod = importlib.import_module("mmdet3d.core.bbox.coders.centerpoint_bbox_coders")
    head_mod = importlib.import_module("mmdet3d.models.dense_heads.centerpoint_head")

    gen = torch.Generator().manual_seed(0)
    encoder = encoder_mod.FlatFormer(**ENCODER).eval()
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(noise / p[0].numel() ** 0.5 if p.ndim > 1 else
                    (1.0 + 0.2 * noise if "norm" in name and name.endswith("weight") else 0.1 * noise))
    coords = coords_for(gen)
    feats = torch.randn(len(coords), ENCODER["in_channels"], generator=gen)
    tokens = []
    recover = encoder.recover_bev

    def recording_recover(voxel_feat, coors, batch_size):
        tokens.append(voxel_feat.detach().clone())
        return recover(voxel_feat, coors, batch_size)

    encoder.recover_bev = recording_recover
    layer = encoder.block_list[0].block[0]
    with torch.no_grad():
        encoder(feats.clone(), coords.int(), 2)
        probe = [layer.norm1.weight, layer.norm1.bias, layer.fc2.weight, layer.fc2.bias]
        for p in probe:
            p.mul_(PROBE_SCALE)
        encoder(feats.clone(), coords.int(), 2)
        for p in probe:
            p.div_(PROBE_SCALE)

    # the head's decoding, on random maps in the official layout
    b, hw = 2, ENCODER["output_shape"]
    maps = {"reg": torch.rand(b, 2, *hw, generator=gen), "height": torch.randn(b, 1, *hw, generator=gen) * 0.4,
            "dim": torch.randn(b, 3, *hw, generator=gen) * 0.3, "rot": torch.randn(b, 2, *hw, generator=gen),
            "vel": torch.randn(b, 2, *hw, generator=gen), "iou": torch.rand(b, 1, *hw, generator=gen) * 1.2 - 0.1,
            "heatmap": torch.randn(b, 3, *hw, generator=gen) * 1.5}
    coder = coder_mod.CenterPointBBoxCoder(**CODER)
    decoded = []
    decode = coder.decode

    def recording_decode(*a, **k):
        out = decode(*a, **k)
        decoded.append(out)
        return out

    coder.decode = recording_decode

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop

    fake_head = types.SimpleNamespace(num_classes=[3], test_cfg=TEST_CFG, norm_bbox=True, bbox_coder=coder,
                                      get_task_detections=stop)
    try:
        head_mod.CenterHead.get_bboxes(fake_head, [[{k: v.clone() for k, v in maps.items()}]], [{}, {}])
    except Stop:
        pass
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    state = {f"official.middle_encoder.{k}": v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    tensors = {**state, "input.feats": feats, "input.coords": coords, "output.tokens": tokens[0],
               "output.tokens_probe": tokens[1], **{f"head.{k}": v for k, v in maps.items()}}
    for f, frame in enumerate(decoded[0]):
        for k, v in frame.items():
            tensors[f"decoded.{k}_{f}"] = v.contiguous()
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "fixture.safetensors"),
              metadata={"repository": "mit-han-lab/flatformer", "commit": commit,
                        "script": "tools/parity/flatformer.py",
                        "probe_scale": str(PROBE_SCALE),
                        "config": json.dumps({"encoder": ENCODER, "coder": CODER, "test_cfg": TEST_CFG})})
    print(f"wrote {args.out / 'fixture.safetensors'}: {len(coords)} tokens, "
          f"{[len(d['bboxes']) for d in decoded[0]]} decoded boxes")


if __name__ == "__main__":
    main()
