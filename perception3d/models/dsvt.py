"""DSVT detectors: dynamic sparse voxel transformer (pillar and voxel) in a CenterPoint layout.

Paper: Wang et al., "DSVT: Dynamic Sparse Voxel Transformer with Rotated Sets", CVPR 2023,
arXiv 2301.06051. Official code: https://github.com/Haiyang-W/DSVT (Apache-2.0, OpenPCDet); Waymo-trained
weights are not redistributable (Waymo licence). The shipped weights of this project are its own,
trained on the simulated KITTI-layout set.

Pipeline (`tools/cfgs/dsvt_models/dsvt_plain_1f_onestage.yaml`, `dsvt_3D_1f_onestage.yaml`):
DynPillarVFE3D -> DSVT (perception3d.kernels) -> PointPillarScatter3d -> BaseBEVResBackbone -> CenterHead
with the IoU branch -> IoU-rectified scores -> per-class rotated NMS.
"""

from __future__ import annotations

from torch import Tensor

from perception3d.detection.detector import CenterPointDetector, build_detector
from perception3d.detection.head import PostProcessConfig
from perception3d.kernels import DSVT, DSVT_CONFIGS

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")
# The official configs' CLASS_NAMES (dsvt_*_1f_onestage.yaml; dsvt_plain_1f_onestage_nusences.yaml)
WAYMO_CLASSES = ("Vehicle", "Pedestrian", "Cyclist")
NUSCENES_CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
                    "pedestrian", "traffic_cone")
__all__ = ["WAYMO_CLASSES", "NUSCENES_CLASSES", "describe_official",
           "dsvt_pillar_waymo", "dsvt_voxel_waymo", "dsvt_pillar_small", "dsvt_pillar_tiny", "dsvt_voxel_tiny",
           "convert_openpcdet_dsvt", "CLASS_NAMES"]

_WAYMO_RANGE = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
POST_CENTER_LIMIT_RANGE = (-80.0, -80.0, -10.0, 80.0, 80.0, 10.0)  # dsvt_*_1f_onestage.yaml
_WAYMO_BEV = dict(layer_nums=[1, 2, 2], layer_strides=[1, 2, 2], num_filters=[128, 128, 256],
                  upsample_strides=[1, 2, 4], num_upsample_filters=[128, 128, 128], style="resnet")
_HEAD = dict(shared_channels=64, head_conv=64, num_conv=2)


def _post_dsvt(nms_convention: str = "exact") -> PostProcessConfig:
    # POST_PROCESSING: score > 0.1, centres inside POST_CENTER_LIMIT_RANGE (x, y and z), IoU rectifier alpha per
    # class, multi-class NMS. `nms_convention="openpcdet_bev"` reproduces the official NMS geometry and order
    # (perception3d.detection.head.PostProcessConfig); weights converted from official checkpoints turn it on.
    return PostProcessConfig(score_threshold=0.1, center_range=POST_CENTER_LIMIT_RANGE, max_per_frame=500,
                             iou_rectifier=(0.68, 0.71, 0.65), nms_thresholds=(0.7, 0.6, 0.55), nms_pre_max=4096,
                             nms_post_max=500, nms_convention=nms_convention)


def dsvt_pillar_waymo(*, nms_convention: str = "exact", **overrides) -> CenterPointDetector:
    """DSVT-P on Waymo: 0.32 m pillars on [-74.88, 74.88] m, d_model 192, 4 blocks, set size 36.

    Deviation: 4 point channels (x, y, z, intensity) instead of Waymo's 5, to read KITTI-style scans.
    """
    return build_detector(
        class_names=CLASS_NAMES, point_range=_WAYMO_RANGE, voxel_size=(0.32, 0.32, 6.0), vfe_filters=[192, 192],
        vfe_halve=True, backbone_3d=DSVT(**DSVT_CONFIGS["pillar_waymo"]), bev_grid_shape=(468, 468, 1),
        bev=_WAYMO_BEV, head=_HEAD, post=_post_dsvt(nms_convention), min_radius=2, **overrides)


def dsvt_voxel_waymo(*, nms_convention: str = "exact", **overrides) -> CenterPointDetector:
    """DSVT-V on Waymo: voxels 0.32 x 0.32 x 0.1875 m (468 x 468 x 32), z pooled to 1 over 4 stages."""
    return build_detector(
        class_names=CLASS_NAMES, point_range=_WAYMO_RANGE, voxel_size=(0.32, 0.32, 0.1875), vfe_filters=[192, 192],
        vfe_halve=True, backbone_3d=DSVT(**DSVT_CONFIGS["voxel_waymo"]), bev_grid_shape=(468, 468, 1),
        bev=_WAYMO_BEV, head=_HEAD, post=_post_dsvt(nms_convention), min_radius=2, **overrides)


def dsvt_pillar_small(*, nms_convention: str = "exact", **overrides) -> CenterPointDetector:
    """A CPU-trainable DSVT-P for the simulated set: 0.32 m pillars on [-25.6, 25.6] m (160 x 160).

    Deviations from the paper, for a shared 2-core CPU: a 51.2 m square range (not 149.76 m), d_model 64
    (not 192), 4 heads, FFN 128, 2 blocks (not 4), a lighter BEV net with output stride 2 (0.64 m cells,
    not 0.32 m), 32-channel head convs. Window 12 x 12, hybrid factor 2, shift 6 and set size 36 are the
    paper's.
    """
    backbone = DSVT(sparse_shape=(160, 160, 1), window_shape=((12, 12, 1),), hybrid_factor=(2, 2, 1),
                    shifts=(((0, 0, 0), (6, 6, 0)),), downsample_stride=(), set_size=(36,), num_blocks=(2,),
                    d_model=(64,), nhead=(4,), dim_feedforward=(128,), activation="gelu")
    return build_detector(
        class_names=CLASS_NAMES, point_range=(-25.6, -25.6, -5.0, 25.6, 25.6, 3.0), voxel_size=(0.32, 0.32, 8.0),
        vfe_filters=[64, 64], vfe_halve=True, backbone_3d=backbone, bev_grid_shape=(160, 160, 1),
        bev=dict(layer_nums=[0, 1, 1], layer_strides=[2, 2, 2], num_filters=[32, 48, 64], upsample_strides=[1, 2, 4],
                 num_upsample_filters=[32, 32, 32], style="resnet"),
        head=dict(shared_channels=32, head_conv=32, num_conv=2), post=_post_dsvt(nms_convention), min_radius=2,
        **overrides)


def dsvt_pillar_tiny(*, nms_convention: str = "exact", **overrides) -> CenterPointDetector:
    """For tests: 0.4 m pillars on [-12.8, 12.8] m (64 x 64), the kernels' pillar_tiny backbone."""
    return build_detector(
        class_names=CLASS_NAMES, point_range=(-12.8, -12.8, -4.0, 12.8, 12.8, 2.0), voxel_size=(0.4, 0.4, 6.0),
        vfe_filters=[32, 32], vfe_halve=True, backbone_3d=DSVT(**DSVT_CONFIGS["pillar_tiny"]),
        bev_grid_shape=(64, 64, 1),
        bev=dict(layer_nums=[0, 1], layer_strides=[1, 2], num_filters=[32, 32], upsample_strides=[1, 2],
                 num_upsample_filters=[16, 16]),
        head=dict(shared_channels=16, head_conv=16, num_conv=2), post=_post_dsvt(nms_convention), min_radius=2,
        **overrides)


def dsvt_voxel_tiny(*, nms_convention: str = "exact", **overrides) -> CenterPointDetector:
    """For tests: 0.4 x 0.4 x 0.75 m voxels on [-12.8, 12.8] m (64 x 64 x 8), z pooled 8 -> 2 by attention."""
    return build_detector(
        class_names=CLASS_NAMES, point_range=(-12.8, -12.8, -4.0, 12.8, 12.8, 2.0), voxel_size=(0.4, 0.4, 0.75),
        vfe_filters=[32, 32], vfe_halve=True, backbone_3d=DSVT(**DSVT_CONFIGS["voxel_tiny"]),
        bev_grid_shape=(64, 64, 2),
        bev=dict(layer_nums=[0, 1], layer_strides=[1, 2], num_filters=[32, 32], upsample_strides=[1, 2],
                 num_upsample_filters=[16, 16]),
        head=dict(shared_channels=16, head_conv=16, num_conv=2), post=_post_dsvt(nms_convention), min_radius=2,
        **overrides)


def convert_openpcdet_dsvt(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map an OpenPCDet DSVT `model_state` onto `dsvt_pillar_waymo` / `dsvt_voxel_waymo`.

    Our sub-modules keep OpenPCDet's names (vfe.pfn_layers, backbone_3d with its input_layer.posembed_layers,
    stage_s, residual_norm_stage_s and stage_s_reduction, backbone_2d.blocks / deblocks,
    dense_head.shared_conv / heads_list.0.<center|center_z|dim|rot|iou|hm>), so the map is the identity on
    those prefixes; the `global_step` buffer and anything else (optimizer state) is dropped. The position
    embeddings keep the official per-(stage, block, layer) indexing (DSVT issue #50) in the kernels' DSVT,
    so they load as they are.
    """
    keep = ("vfe.", "backbone_3d.", "backbone_2d.", "dense_head.")
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        if key.startswith("module."):  # DDP-wrapped saves
            key = key[len("module."):]
        if key.startswith(keep):
            out[key] = value
    if any(k.startswith("dense_head.") for k in out) and "dense_head.heads_list.0.hm.1.weight" not in out:
        raise ValueError("the dense head is not a CenterHead (the nuScenes DSVT uses a TransFusion head, which has "
                         "no counterpart here); only the Waymo CenterHead checkpoints are supported")
    if not any(k.startswith("dense_head.") for k in out):
        backbone_only = any(k.startswith(("blocks.", "stage_", "input_layer.", "backbone_3d.")) for k in out) or any(
            k.startswith(("stage_", "input_layer.", "residual_norm_stage_")) for k in official)
        raise ValueError("a backbone-only state dict (no vfe / dense_head keys): the converter maps a whole OpenPCDet "
                       "DSVT detector (`model_state` of a tools/train.py checkpoint)" if backbone_only else
                       "no OpenPCDet DSVT detector keys (vfe.*, backbone_3d.*, backbone_2d.*, dense_head.*)")
    if any(k.startswith("dense_head.heads_list.1.") for k in out):
        raise ValueError("several CenterHead tasks (dense_head.heads_list.1.*, the nuScenes layout): only the "
                       "one-task Waymo head is supported")
    return out


def describe_official(state: dict[str, Tensor], *, checkpoint: str = "") -> dict:
    """What a converted official DSVT Waymo checkpoint is: variant, keyword arguments, classes, input spec.

    DSVT-V (dsvt_3D_1f_onestage) has backbone stages beyond the first (`backbone_3d.stage_1.*`), DSVT-P
    (dsvt_plain_1f_onestage) one. The point channels come from the first VFE layer (Waymo: x, y, z, intensity,
    elongation = 5, so 11 inputs with the 6 centre offsets). The official post-processing is turned on: the NMS
    convention of `multi_classes_nms_mmdet` (`nms_convention="openpcdet_bev"`). Classes: the config's
    CLASS_NAMES. OpenPCDet's Waymo pipeline squashes intensity (and elongation) with tanh: scans handed to
    `omnisense detect` must carry the same channels, as the notes say.
    """
    voxel = any(k.startswith("backbone_3d.stage_1.") for k in state)
    variant = "dsvt_voxel_waymo" if voxel else "dsvt_pillar_waymo"
    channels = int(state["vfe.pfn_layers.0.linear.weight"].shape[1]) - 6
    kwargs: dict = {"nms_convention": "openpcdet_bev"}
    if channels != 4:
        kwargs["point_channels"] = channels
    return {"variant": variant, "kwargs": kwargs, "classes": list(WAYMO_CLASSES),
            "input": {"point_channels": channels},  # point range and voxel size: the built model's
            "notes": {"label_set": "waymo (CLASS_NAMES of dsvt_*_1f_onestage.yaml)",
                      "points": "x, y, z, tanh(intensity), tanh(elongation) in the vehicle frame (OpenPCDet's Waymo "
                                "processing)" if channels == 5 else f"{channels} point channels",
                      "post_processing": "score > 0.1, centres inside POST_CENTER_LIMIT_RANGE, IoU rectifier "
                                         "(0.68, 0.71, 0.65), the official multi_classes_nms_mmdet geometry"}}
