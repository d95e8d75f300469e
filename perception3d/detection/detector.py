"""The one-stage lidar detector both papers use: a CenterPoint layout around a sparse transformer.

    points -> DynamicVFE (pillars / voxels) -> sparse 3D backbone (FlatFormer / DSVT) -> BEV scatter
           -> 2D BEV backbone + FPN -> CenterHead (+ IoU branch) -> decoding, IoU rectification, rotated NMS
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from perception3d._errors import PointCloudValueError
from perception3d.detection.encoders import BEVBackbone, DynamicVFE, VoxelGrid, scatter_to_bev
from perception3d.detection.head import CenterHead, HeadGeometry, PostProcessConfig, post_process

__all__ = ["CenterPointDetector"]


class CenterPointDetector(nn.Module):
    """Detector assembled from its stages.

    Args:
        vfe: the dynamic pillar / voxel feature encoder.
        backbone_3d: a module `(features (M, C), coords (M, 4) (b, z, y, x), batch_size) -> (features, coords)`
            on the sparse voxels; the coords it returns must lie on a grid of `bev_grid_shape`.
        bev_grid_shape: (nx, ny, nz) of the grid `backbone_3d` outputs on (nz folded into BEV channels).
        backbone_2d: the 2D backbone and neck.
        dense_head: the CenterHead.

    Sub-module names follow OpenPCDet's (vfe, backbone_3d, backbone_2d, dense_head) so that official DSVT
    checkpoints map with few renames.
        geometry: where head cells sit in the lidar frame.
        post: test-time decoding.
        class_names: class of each heatmap channel.
    """

    def __init__(self, *, vfe: DynamicVFE, backbone_3d: nn.Module, bev_grid_shape: tuple[int, int, int],
                 backbone_2d: BEVBackbone, dense_head: CenterHead, geometry: HeadGeometry, post: PostProcessConfig,
                 class_names: tuple[str, ...]):
        super().__init__()
        self.vfe = vfe
        self.backbone_3d = backbone_3d
        self.bev_grid_shape = tuple(bev_grid_shape)
        self.backbone_2d = backbone_2d
        self.dense_head = dense_head
        self.geometry = geometry
        self.post = post
        self.class_names = tuple(class_names)
        self.timings: dict[str, float] | None = None

    @property
    def grid(self) -> VoxelGrid:
        return self.vfe.grid

    @contextmanager
    def _stage(self, name: str, ref: Tensor):
        if self.timings is None:
            yield
            return
        if ref.is_cuda:
            torch.cuda.synchronize(ref.device)
        t = time.perf_counter()
        yield
        if ref.is_cuda:
            torch.cuda.synchronize(ref.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t

    def forward(self, points: Tensor, batch_index: Tensor, batch_size: int) -> dict[str, Tensor]:
        """points `(N, 4)` x, y, z (metres), intensity; batch_index `(N,)` -> head outputs `(B, ., H, W)`."""
        if points.shape[0] == 0:
            raise PointCloudValueError("empty point cloud")
        with self._stage("voxelise", points):
            feats, coords = self.vfe(points, batch_index, batch_size)
        with self._stage("backbone", points):
            feats, coords = self.backbone_3d(feats, coords, batch_size)
        with self._stage("bev", points):
            bev = scatter_to_bev(feats, coords, batch_size, self.bev_grid_shape)
            bev = self.backbone_2d(bev)
        with self._stage("head", points):
            return self.dense_head(bev)

    @torch.no_grad()
    def predict(self, points: Tensor, batch_index: Tensor, batch_size: int) -> list[dict[str, Tensor]]:
        """Boxes per frame: `[{"boxes": (K, 7), "scores": (K,), "labels": (K,)}]`, lidar frame."""
        preds = self(points, batch_index, batch_size)
        with self._stage("nms", points):
            return post_process(preds, self.geometry, self.post)


def build_detector(*, class_names: tuple[str, ...], point_range: tuple[float, ...], voxel_size: tuple[float, ...],
                   vfe_filters: list[int], vfe_halve: bool, backbone_3d: nn.Module, bev_grid_shape: tuple[int, int, int],
                   bev: dict, head: dict, post: PostProcessConfig, point_channels: int = 4,
                   min_radius: int = 2, vfe_max_points: int | None = None) -> "CenterPointDetector":
    """Assemble a detector from plain settings (the named variants of perception3d.models use this).

    Args:
        bev: `BEVBackbone` keyword arguments except `in_channels`.
        head: `CenterHead` keyword arguments except `in_channels` and `num_classes`.
        min_radius: smallest Gaussian radius of the heatmap targets, in cells.
        vfe_max_points: cap on the points encoded per voxel (None: every point, the dynamic voxelisation both
            papers use); see `DynamicVFE`.
    """
    grid = VoxelGrid(tuple(point_range), tuple(voxel_size))
    vfe = DynamicVFE(in_channels=point_channels, filters=list(vfe_filters), grid=grid, halve=vfe_halve,
                     max_points_per_voxel=vfe_max_points)
    bev_in = int(getattr(backbone_3d, "out_channels", vfe.out_channels)) * int(bev_grid_shape[2])
    backbone_2d = BEVBackbone(in_channels=bev_in, **bev)
    dense_head = CenterHead(in_channels=backbone_2d.out_channels, num_classes=len(class_names), **head)
    geometry = HeadGeometry(tuple(point_range), tuple(voxel_size[:2]), backbone_2d.stride)
    det = CenterPointDetector(vfe=vfe, backbone_3d=backbone_3d, bev_grid_shape=bev_grid_shape, backbone_2d=backbone_2d,
                              dense_head=dense_head, geometry=geometry, post=post, class_names=class_names)
    det.min_radius = min_radius
    return det
