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
        bev_backbone: the 2D backbone and neck.
        head: the CenterHead.
        geometry: where head cells sit in the lidar frame.
        post: test-time decoding.
        class_names: class of each heatmap channel.
    """

    def __init__(self, *, vfe: DynamicVFE, backbone_3d: nn.Module, bev_grid_shape: tuple[int, int, int],
                 bev_backbone: BEVBackbone, head: CenterHead, geometry: HeadGeometry, post: PostProcessConfig,
                 class_names: tuple[str, ...]):
        super().__init__()
        self.vfe = vfe
        self.backbone_3d = backbone_3d
        self.bev_grid_shape = tuple(bev_grid_shape)
        self.bev_backbone = bev_backbone
        self.head = head
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
            feats, coords = self.vfe(points, batch_index)
        with self._stage("backbone", points):
            feats, coords = self.backbone_3d(feats, coords, batch_size)
        with self._stage("bev", points):
            bev = scatter_to_bev(feats, coords, batch_size, self.bev_grid_shape)
            bev = self.bev_backbone(bev)
        with self._stage("head", points):
            return self.head(bev)

    @torch.no_grad()
    def predict(self, points: Tensor, batch_index: Tensor, batch_size: int) -> list[dict[str, Tensor]]:
        """Boxes per frame: `[{"boxes": (K, 7), "scores": (K,), "labels": (K,)}]`, lidar frame."""
        preds = self(points, batch_index, batch_size)
        with self._stage("nms", points):
            return post_process(preds, self.geometry, self.post)
