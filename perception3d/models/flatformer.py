"""FlatFormer detector: flattened window attention on pillars in a CenterPoint layout.

Paper: Liu et al., "FlatFormer: Flattened Window Attention for Efficient Point Cloud Transformer",
CVPR 2023, arXiv 2301.08739. Official code: https://github.com/mit-han-lab/flatformer (MIT licence,
mmdet3d v0.x). No official weights are released (Waymo licence); the shipped weights of this project
are its own, trained on the simulated KITTI-layout set.

Pipeline (`configs/flatformer/flatformer_waymo_D1_2x_3class.py`): DynamicVFE -> FlatFormer encoder
(perception3d.kernels) -> BEV scatter -> the SECOND convs of the FlatFormer backbone + SECONDFPN ->
CenterHead with the IoU branch (rescoring `score * iou^2`) -> per-class rotated NMS.
"""

from __future__ import annotations

from torch import Tensor

from perception3d.detection.detector import CenterPointDetector, build_detector
from perception3d.detection.head import PostProcessConfig
from perception3d.kernels import FlatFormer

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")
# configs/_base_/datasets/waymo-3d-3class.py: mmdet3d's Waymo classes (its converter names VEHICLE "Car")
WAYMO_CLASSES = ("Car", "Pedestrian", "Cyclist")
__all__ = ["WAYMO_CLASSES", "describe_official",
           "FlatFormerBackbone", "flatformer_waymo", "flatformer_small", "flatformer_tiny",
           "convert_mmdet3d_flatformer", "CLASS_NAMES"]


class FlatFormerBackbone(FlatFormer):
    """The kernels' FlatFormer encoder with the detector's backbone contract: it returns (features, coords)."""

    def forward(self, feats: Tensor, coords: Tensor, batch_size: int):  # type: ignore[override]
        return super().forward(feats, coords, batch_size), coords


def _post_flatformer(**kw) -> PostProcessConfig:
    # test_cfg of the released config: score > 0.1, iou_pow 2, rotate NMS per class. The official head multiplies
    # the heatmap by clamp(iou, 0, 1)^2 before decoding (`iou_scoring="heatmap"`, its IoU branch predicting the
    # IoU itself); this project's own weights predict 2 IoU - 1 and are rescored after decoding ("decoded").
    return PostProcessConfig(**{**dict(score_threshold=0.1, max_per_frame=500, iou_rectifier=(), iou_power=2.0,
                                       nms_thresholds=(0.8, 0.55, 0.55), nms_pre_max=(2048, 1024, 1024),
                                       nms_post_max=(300, 100, 100)), **kw})


def flatformer_waymo(*, iou_scoring: str = "decoded", **overrides) -> CenterPointDetector:
    """The paper's Waymo model (flatformer_waymo_D1_2x_3class): 0.32 m pillars on [-74.88, 74.88] m.

    Deviation: points carry 4 channels (x, y, z, intensity), not Waymo's 5 (with elongation), so that the
    same model reads KITTI-style scans; the first VFE layer is 10 -> 64 instead of 11 -> 64.
    """
    point_range = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
    backbone = FlatFormerBackbone(in_channels=128, num_heads=8, num_blocks=2, activation="gelu", window_shape=(13, 13),
                                  sparse_shape=(468, 468), group_size=144, pos_temperature=10000.0, normalize_pos=False)
    return build_detector(
        class_names=CLASS_NAMES, point_range=point_range, voxel_size=(0.32, 0.32, 6.0), vfe_filters=[64, 128],
        vfe_halve=False, backbone_3d=backbone, bev_grid_shape=(468, 468, 1),
        bev=dict(layer_nums=[3, 3], layer_strides=[1, 2], num_filters=[64, 128], upsample_strides=[1, 2],
                 num_upsample_filters=[128, 128], style="second"),
        head=dict(shared_channels=64, head_conv=64, num_conv=2),
        # bbox_coder: post_center_range, max_num 4096; `iou_scoring="heatmap"` for converted official weights
        post=_post_flatformer(center_range=(-74.88, -74.88, -10.0, 74.88, 74.88, 10.0), max_per_frame=4096,
                              iou_scoring=iou_scoring),
        min_radius=1, **overrides)


def flatformer_small(*, iou_scoring: str = "decoded", **overrides) -> CenterPointDetector:
    """A CPU-trainable FlatFormer for the simulated set: 0.32 m pillars on [-25.6, 25.6] m (160 x 160).

    Deviations from the paper, for a shared 2-core CPU: a 51.2 m square range (not 149.76 m), width 64
    (not 128), 4 heads, one block (4 attention layers, not 8), a lighter BEV net whose output is at
    stride 2 (0.64 m cells, not 0.32 m), 32-channel head convs. The window (13 x 13) and group size (144)
    are the paper's.
    """
    point_range = (-25.6, -25.6, -5.0, 25.6, 25.6, 3.0)
    backbone = FlatFormerBackbone(in_channels=64, num_heads=4, num_blocks=1, activation="gelu", window_shape=(13, 13),
                                  sparse_shape=(160, 160), group_size=144)
    return build_detector(
        class_names=CLASS_NAMES, point_range=point_range, voxel_size=(0.32, 0.32, 8.0), vfe_filters=[32, 64],
        vfe_halve=False, backbone_3d=backbone, bev_grid_shape=(160, 160, 1),
        bev=dict(layer_nums=[1, 1], layer_strides=[2, 2], num_filters=[48, 64], upsample_strides=[1, 2],
                 num_upsample_filters=[32, 32], style="second"),
        head=dict(shared_channels=32, head_conv=32, num_conv=2), post=_post_flatformer(iou_scoring=iou_scoring),
        min_radius=1, **overrides)


def flatformer_tiny(*, iou_scoring: str = "decoded", **overrides) -> CenterPointDetector:
    """For tests: 0.4 m pillars on [-12.8, 12.8] m (64 x 64), width 32."""
    point_range = (-12.8, -12.8, -4.0, 12.8, 12.8, 2.0)
    backbone = FlatFormerBackbone(in_channels=32, num_heads=4, num_blocks=1, activation="gelu", window_shape=(4, 4),
                                  sparse_shape=(64, 64), group_size=16)
    return build_detector(
        class_names=CLASS_NAMES, point_range=point_range, voxel_size=(0.4, 0.4, 6.0), vfe_filters=[16, 32],
        vfe_halve=False, backbone_3d=backbone, bev_grid_shape=(64, 64, 1),
        bev=dict(layer_nums=[1, 1], layer_strides=[1, 2], num_filters=[32, 32], upsample_strides=[1, 2],
                 num_upsample_filters=[16, 16], style="second"),
        head=dict(shared_channels=16, head_conv=16, num_conv=2), post=_post_flatformer(iou_scoring=iou_scoring),
        min_radius=1, **overrides)


# ---------------------------------------------------------------------------------------------------
# mmdet3d checkpoint keys -> ours

_HEAD_NAMES = {"reg": "center", "height": "center_z", "dim": "dim", "rot": "rot", "iou": "iou", "heatmap": "hm"}


def convert_mmdet3d_flatformer(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map an mmdet3d FlatFormer state dict (keys `voxel_encoder.*`, `middle_encoder.*`, `backbone.*`, `neck.*`,
    `bbox_head.*`; `state_dict` and `module.` wrappers removed by the caller) onto `flatformer_waymo`.

    - `voxel_encoder.vfe_layers.{i}.{0,1}` (Linear, BN) -> `vfe.pfn_layers.{i}.{linear,norm}`;
    - `middle_encoder.block_list.*` (the transformer blocks: at the released commit FlatFormer is the detector's
      middle encoder; `attn.attn.*` is the nn.MultiheadAttention inside GroupAttention, as the kernels' FlatFormer
      names it too) -> `backbone_3d.block_list.*`; `backbone.block_list.*` is read the same way;
    - `backbone.blocks.*` (the SECOND convs) and `neck.deblocks.*` -> `backbone_2d.blocks.*`, `backbone_2d.deblocks.*`;
    - `bbox_head.shared_conv.{conv,bn}` -> `dense_head.shared_conv.{0,1}`; `bbox_head.task_heads.0.<h>.0.{conv,bn}`,
      `<h>.1` -> `dense_head.heads_list.0.<ours>.0.{0,1}`, `<ours>.1` with reg->center, height->center_z,
      heatmap->hm; the velocity head (loss weight 0 in the config) is dropped;
    - mmdet3d's rot head predicts (sin, cos), ours (cos, sin): its two output channels are swapped.

    Not verifiable end to end here: no FlatFormer checkpoint is public. mmdet3d v0.x also uses its own box
    convention (dims and yaw origin) for Waymo; decoded boxes of a converted model should be checked on a
    labelled frame before use.
    """
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        k = key[len("module."):] if key.startswith("module.") else key  # DDP-wrapped saves
        if k.startswith("voxel_encoder.vfe_layers."):
            parts = k.split(".")
            sub = {"0": "linear", "1": "norm"}[parts[3]]
            k = ".".join(["vfe.pfn_layers", parts[2], sub, *parts[4:]])
        elif k.startswith("middle_encoder.block_list."):
            k = "backbone_3d." + k[len("middle_encoder."):]
        elif k.startswith("backbone.block_list."):  # a detector whose FlatFormer is its `backbone`
            k = "backbone_3d." + k[len("backbone."):]
        elif k.startswith("backbone.blocks."):
            k = "backbone_2d." + k[len("backbone."):]
        elif k.startswith("neck.deblocks."):
            k = "backbone_2d." + k[len("neck."):]
        elif k.startswith("bbox_head.shared_conv."):
            k = "dense_head.shared_conv." + k[len("bbox_head.shared_conv."):].replace("conv.", "0.", 1).replace("bn.", "1.", 1)
        elif k.startswith("bbox_head.task_heads.0."):
            parts = k.split(".")
            name = parts[3]
            if name == "vel":
                continue
            if name not in _HEAD_NAMES:
                raise KeyError(f"unknown head {name!r} in {key}")
            rest = ".".join(parts[4:])
            if rest.startswith("0.conv."):
                rest = "0.0." + rest[len("0.conv."):]
            elif rest.startswith("0.bn."):
                rest = "0.1." + rest[len("0.bn."):]
            k = f"dense_head.heads_list.0.{_HEAD_NAMES[name]}.{rest}"
            if name == "rot" and rest.startswith("1."):
                value = value[[1, 0]]
        else:
            continue  # optimizer state, meta, buffers we do not keep
        out[k] = value
    if not any(k.startswith("backbone_3d.") for k in out):
        raise ValueError("no FlatFormer blocks (middle_encoder.block_list.*) in the state dict")
    return out


def describe_official(state: dict[str, Tensor], *, checkpoint: str = "") -> dict:
    """What a converted FlatFormer Waymo checkpoint (flatformer_waymo_D1_2x_3class layout) is.

    The official rescoring is turned on (`iou_scoring="heatmap"`: the IoU branch of the official head predicts
    the IoU itself and rescales the heatmap before decoding).

    The point channels come from the first VFE layer (Waymo: x, y, z, intensity, elongation = 5, 11 inputs with
    the 6 centre offsets); the classes are the config's.
    """
    channels = int(state["vfe.pfn_layers.0.linear.weight"].shape[1]) - 6
    kwargs: dict = {"iou_scoring": "heatmap"}
    if channels != 4:
        kwargs["point_channels"] = channels
    return {"variant": "flatformer_waymo", "kwargs": kwargs,
            "classes": list(WAYMO_CLASSES),
            "input": {"point_channels": channels},  # point range and voxel size: the built model's
            "notes": {"label_set": "waymo (class_names of waymo-3d-3class.py)",
                      "points": "x, y, z, tanh(intensity), elongation (mmdet3d's Waymo converter)" if channels == 5
                                else f"{channels} point channels"}}
