"""Parity fixtures for the DSVT detectors (pillar and voxel) from the official code (Haiyang-W/DSVT, OpenPCDet):
the whole detector (DynPillarVFE3D -> DSVT -> PointPillarScatter3d -> BaseBEVResBackbone -> CenterHead), its
decoding and pre-NMS filter (`centernet_utils.decode_bbox_from_heatmap`), the IoU rectification and the official
multi-class NMS (`multi_classes_nms_mmdet` -> `nms_gpu_bev`).

    python tools/parity/dsvt.py /path/to/DSVT-checkout [--out tests/fixtures/parity]

writes `dsvt_pillar/fixture.safetensors` and `dsvt_voxel/fixture.safetensors`: `official.*` (the detector's state
dict as a `model_state` names it), `input.points` (batch index, x, y, z, intensity), `output.*` intermediates
(VFE voxel features and coordinates, DSVT output and coordinates, the head's raw maps), the decoded
boxes that pass the filter (`decoded.*`, per frame) and the final boxes after NMS (`final.*`, per frame, labels
0-based). The configs are tiny (32 x 32 grid, width 16) and written into the metadata as JSON.

Stubs for what needs a compiled CUDA build, written from the documented behaviour: `torch_scatter`'s
scatter_mean / scatter_max; `ingroup_inds` (the index of each element within its group, in order of occurrence:
one of the orders the atomic-counter kernel can produce); the NMS kernel `ioubev_nms_cuda.nms_gpu`, emulated by
tools/parity/openpcdet_iou_bev.py from its source; TensorRT and the loss module (unused at inference).
`Tensor.cuda` is the identity while the script runs; integer key-padding masks are read as booleans (as
torch 1.x did; the reduction block's all-zero mask masks nothing). The official package `__init__` files (which
import every compiled op) are bypassed: each module is loaded from its own file. Nothing of the official code is
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

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

HERE = Path(__file__).resolve().parent
RANGE = [-6.4, -6.4, -4.0, 6.4, 6.4, 2.0]
CLASSES = ["Vehicle", "Pedestrian", "Cyclist"]
POST = dict(SCORE_THRESH=0.1, POST_CENTER_LIMIT_RANGE=[-5.5, -5.5, -0.6, 5.5, 5.5, 0.6], MAX_OBJ_PER_SAMPLE=200,
            USE_IOU_TO_RECTIFY_SCORE=True, IOU_RECTIFIER=[0.68, 0.71, 0.65],
            NMS_CONFIG=dict(NMS_TYPE="multi_class_nms", NMS_THRESH=[0.7, 0.6, 0.55], NMS_PRE_MAXSIZE=[4096] * 3,
                            NMS_POST_MAXSIZE=[60, 60, 60]))
VARIANTS = {
    "dsvt_pillar": dict(
        voxel_size=[0.4, 0.4, 6.0], grid=[32, 32, 1], bev_shape=[32, 32, 1], bev_in=16,
        input_layer=dict(sparse_shape=[32, 32, 1], downsample_stride=[], d_model=[16], set_info=[[16, 2]],
                         window_shape=[[8, 8, 1]], hybrid_factor=[2, 2, 1], shifts_list=[[[0, 0, 0], [4, 4, 0]]],
                         normalize_pos=False),
        backbone=dict(block_name=["DSVTBlock"], set_info=[[16, 2]], d_model=[16], nhead=[2], dim_feedforward=[32])),
    "dsvt_voxel": dict(
        voxel_size=[0.4, 0.4, 0.75], grid=[32, 32, 8], bev_shape=[32, 32, 2], bev_in=32,
        input_layer=dict(sparse_shape=[32, 32, 8], downsample_stride=[[1, 1, 4]], d_model=[16, 16],
                         set_info=[[16, 1], [16, 1]], window_shape=[[8, 8, 8], [8, 8, 2]], hybrid_factor=[2, 2, 1],
                         shifts_list=[[[0, 0, 0], [4, 4, 0]], [[0, 0, 0], [4, 4, 0]]], normalize_pos=False),
        backbone=dict(block_name=["DSVTBlock", "DSVTBlock"], set_info=[[16, 1], [16, 1]], d_model=[16, 16],
                      nhead=[2, 2], dim_feedforward=[32, 32], reduction_type="attention")),
}
BEV = dict(LAYER_NUMS=[1, 1], LAYER_STRIDES=[1, 2], NUM_FILTERS=[16, 16], UPSAMPLE_STRIDES=[1, 2],
           NUM_UPSAMPLE_FILTERS=[16, 16])
HEAD = dict(CLASS_AGNOSTIC=False, CLASS_NAMES_EACH_HEAD=[CLASSES], SHARED_CONV_CHANNEL=16, USE_BIAS_BEFORE_NORM=False,
            NUM_HM_CONV=2, BN_EPS=0.001, BN_MOM=0.01,
            SEPARATE_HEAD_CFG=dict(HEAD_ORDER=["center", "center_z", "dim", "rot"], HEAD_DICT={
                "center": {"out_channels": 2, "num_conv": 2}, "center_z": {"out_channels": 1, "num_conv": 2},
                "dim": {"out_channels": 3, "num_conv": 2}, "rot": {"out_channels": 2, "num_conv": 2},
                "iou": {"out_channels": 1, "num_conv": 2}}),
            TARGET_ASSIGNER_CONFIG=dict(FEATURE_MAP_STRIDE=1, NUM_MAX_OBJS=500, GAUSSIAN_OVERLAP=0.1, MIN_RADIUS=2),
            POST_PROCESSING=POST)


class Cfg(dict):
    """EasyDict's reading side: keys as attributes, nested dicts converted."""

    def __init__(self, d=None, **kw):
        super().__init__()
        for k, v in {**(d or {}), **kw}.items():
            self[k] = Cfg(v) if isinstance(v, dict) else v

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _install_stubs(checkout: Path) -> None:
    def package(name, path=None):
        module = types.ModuleType(name)
        module.__path__ = [str(path)] if path else []
        sys.modules[name] = module
        return module

    root = checkout / "pcdet"
    for name in ("pcdet", "pcdet.models", "pcdet.models.backbones_3d", "pcdet.models.backbones_3d.vfe",
                 "pcdet.models.backbones_2d", "pcdet.models.backbones_2d.map_to_bev", "pcdet.models.dense_heads",
                 "pcdet.models.model_utils", "pcdet.utils", "pcdet.ops", "pcdet.ops.ioubev_nms",
                 "pcdet.ops.iou3d_nms", "pcdet.ops.ingroup_inds"):
        package(name, root.joinpath(*name.split(".")[1:]))
    package("pcdet.models.model_utils.tensorrt_utils")
    trt = types.ModuleType("pcdet.models.model_utils.tensorrt_utils.trtwrapper")
    trt.TRTWrapper = object
    sys.modules[trt.__name__] = trt

    scatter = types.ModuleType("torch_scatter")

    def scatter_mean(src, index, dim=0):
        n = int(index.max()) + 1
        total = src.new_zeros(n, src.shape[1]).index_add_(0, index, src)
        count = torch.bincount(index, minlength=n).clamp(min=1).to(src.dtype)
        return total / count[:, None]

    def scatter_max(src, index, dim=0):
        n = int(index.max()) + 1
        out = src.new_full((n, src.shape[1]), float("-inf"))
        out = out.scatter_reduce(0, index[:, None].expand_as(src), src, "amax", include_self=True)
        return out, None

    scatter.scatter_mean, scatter.scatter_max = scatter_mean, scatter_max
    sys.modules["torch_scatter"] = scatter

    ingroup = types.ModuleType("pcdet.ops.ingroup_inds.ingroup_inds_op")

    def ingroup_inds(group):
        order = torch.sort(group, stable=True).indices
        sorted_group = group[order]
        first = torch.searchsorted(sorted_group, sorted_group, right=False)
        out = torch.empty_like(group)
        out[order] = torch.arange(len(group), device=group.device) - first
        return out

    ingroup.ingroup_inds = ingroup_inds
    sys.modules[ingroup.__name__] = ingroup

    spec = importlib.util.spec_from_file_location("openpcdet_iou_bev", HERE / "openpcdet_iou_bev.py")
    emulation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(emulation)
    kernel = types.ModuleType("pcdet.ops.ioubev_nms.ioubev_nms_cuda")

    def nms_gpu(boxes, keep, thresh, device_id):
        kept = emulation.nms(boxes.tolist(), float(thresh))
        keep[: len(kept)] = torch.tensor(kept, dtype=keep.dtype)
        return len(kept)

    kernel.nms_gpu = nms_gpu
    sys.modules[kernel.__name__] = kernel
    sys.modules["pcdet.ops.iou3d_nms.iou3d_nms_utils"] = types.ModuleType("pcdet.ops.iou3d_nms.iou3d_nms_utils")
    loss_utils = types.ModuleType("pcdet.utils.loss_utils")
    loss_utils.FocalLossCenterNet = loss_utils.RegLossCenterNet = nn.Identity
    sys.modules[loss_utils.__name__] = loss_utils
    sys.modules["pcdet.utils"].loss_utils = loss_utils
    numba = types.ModuleType("numba")
    numba.jit = lambda *a, **k: (lambda f: f)
    sys.modules.setdefault("numba", numba)
    torch.Tensor.cuda = lambda self, *a, **k: self
    attention = nn.MultiheadAttention.forward

    def forward(self, query, key, value, key_padding_mask=None, *a, **k):
        # Stage_ReductionAtt_Block passes an all-zero int mask; torch 1.x read integer masks as booleans
        if key_padding_mask is not None and not (key_padding_mask.dtype.is_floating_point
                                                 or key_padding_mask.dtype == torch.bool):
            key_padding_mask = key_padding_mask.bool()
        return attention(self, query, key, value, key_padding_mask, *a, **k)

    nn.MultiheadAttention.forward = forward


class Detector(nn.Module):
    """OpenPCDet's module topology (vfe, backbone_3d, map_to_bev_module, backbone_2d, dense_head)."""

    def __init__(self, cfg: dict):
        super().__init__()
        vfe_mod = importlib.import_module("pcdet.models.backbones_3d.vfe.dynamic_pillar_vfe")
        dsvt_mod = importlib.import_module("pcdet.models.backbones_3d.dsvt")
        scatter_mod = importlib.import_module("pcdet.models.backbones_2d.map_to_bev.pointpillar3d_scatter")
        bev_mod = importlib.import_module("pcdet.models.backbones_2d.base_bev_res_backbone")
        head_mod = importlib.import_module("pcdet.models.dense_heads.center_head")
        self.vfe = vfe_mod.DynamicPillarVFE_3d(
            model_cfg=Cfg(USE_NORM=True, WITH_DISTANCE=False, USE_ABSLOTE_XYZ=True, NUM_FILTERS=[16, 16]),
            num_point_features=4, voxel_size=cfg["voxel_size"], grid_size=cfg["grid"], point_cloud_range=RANGE)
        self.backbone_3d = dsvt_mod.DSVT(Cfg(INPUT_LAYER=cfg["input_layer"], dropout=0.0, activation="gelu",
                                             output_shape=[32, 32], conv_out_channel=16, **cfg["backbone"]))
        self.map_to_bev_module = scatter_mod.PointPillarScatter3d(
            Cfg(INPUT_SHAPE=cfg["bev_shape"], NUM_BEV_FEATURES=cfg["bev_in"]), grid_size=cfg["grid"])
        self.backbone_2d = bev_mod.BaseBEVResBackbone(Cfg(BEV), input_channels=cfg["bev_in"])
        self.dense_head = head_mod.CenterHead(
            model_cfg=Cfg(HEAD), input_channels=32, num_class=3, class_names=CLASSES,
            grid_size=np.array(cfg["grid"]), point_cloud_range=np.array(RANGE), voxel_size=cfg["voxel_size"],
            predict_boxes_when_training=False)

    def forward(self, batch):
        record = {}
        batch = self.vfe(batch)
        record["vfe_features"], record["vfe_coords"] = batch["voxel_features"].clone(), batch["voxel_coords"].clone()
        batch = self.backbone_3d(batch)
        record["dsvt_features"], record["dsvt_coords"] = batch["pillar_features"].clone(), batch["voxel_coords"].clone()
        batch = self.map_to_bev_module(batch)
        batch = self.backbone_2d(batch)  # the BEV maps are not stored (size); the head's maps follow from them
        batch = self.dense_head(batch)
        for k, v in self.dense_head.forward_ret_dict["pred_dicts"][0].items():
            record[f"head_{k}"] = v.clone()
        return batch, record


def randomise(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim > 1:  # weights: unit gain, so that activations stay O(1) through the random network
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith("weight"):  # norm scales around 1
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)
        head = model.dense_head.heads_list[0]
        head.hm[-1].weight.mul_(4.0)  # a wide spread of heatmap logits in every class ...
        head.hm[-1].bias.fill_(-2.0)  # ... and peaks of every class above the 0.1 threshold: work for NMS
        head.center_z[-1].bias.fill_(0.0)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def points(gen: torch.Generator, batch_size: int = 2, n: int = 600) -> torch.Tensor:
    """Clustered points (objects-like blobs plus clutter) inside RANGE: (N, 5) batch, x, y, z, intensity."""
    out = []
    for b in range(batch_size):
        centres = torch.rand(8, 2, generator=gen) * 11 - 5.5
        blob = centres.repeat_interleave(n // 16, 0) + torch.randn(8 * (n // 16), 2, generator=gen) * 0.6
        clutter = torch.rand(n - len(blob), 2, generator=gen) * 12.6 - 6.3
        xy = torch.cat([blob, clutter]).clamp(-6.35, 6.35)
        z = torch.rand(len(xy), 1, generator=gen) * 5.8 - 3.9
        i = torch.rand(len(xy), 1, generator=gen)
        out.append(torch.cat([torch.full((len(xy), 1), float(b)), xy, z, i], 1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of Haiyang-W/DSVT")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity"))
    args = parser.parse_args()
    _install_stubs(args.checkout)
    centernet = importlib.import_module("pcdet.models.model_utils.centernet_utils")
    decode = centernet.decode_bbox_from_heatmap
    decoded: list = []

    def recording_decode(*a, **k):
        result = decode(*a, **k)
        decoded.append([{key: v.clone() for key, v in d.items()} for d in result])
        return result

    centernet.decode_bbox_from_heatmap = recording_decode
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    for name, cfg in VARIANTS.items():
        gen = torch.Generator().manual_seed(0)
        model = Detector(cfg).eval()
        randomise(model, gen)
        pts = points(gen)
        decoded.clear()
        with torch.no_grad():
            batch, record = model({"points": pts.clone(), "batch_size": 2})
        tensors = {f"official.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        tensors["input.points"] = pts
        tensors.update({f"output.{k}": v.contiguous() for k, v in record.items()})
        for f, frame in enumerate(decoded[0]):
            for k, v in frame.items():
                tensors[f"decoded.{k}_{f}"] = v.contiguous()
        for f, frame in enumerate(batch["final_box_dicts"]):
            for k, v in frame.items():
                tensors[f"final.{k}_{f}"] = (v - 1 if k == "pred_labels" else v).contiguous()
        meta = {"repository": "Haiyang-W/DSVT", "commit": commit, "script": "tools/parity/dsvt.py",
                "config": json.dumps({"point_range": RANGE, **cfg, "bev": BEV, "post": POST, "classes": CLASSES})}
        (args.out / name).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(args.out / name / "fixture.safetensors"), metadata=meta)
        kept = [len(d["pred_boxes"]) for d in batch["final_box_dicts"]]
        print(f"{name}: {len(record['vfe_coords'])} voxels, {[len(d['pred_boxes']) for d in decoded[0]]} decoded, "
              f"{kept} kept after NMS")


if __name__ == "__main__":
    main()
