"""perception3d.ops: the neighbour, voxel, scatter and geometry ops point networks stand on.

Pure-torch references (any device, differentiable where it makes sense) plus fast paths for index-only work
(scipy / open3d on CPU, chunked torch on GPU), picked by `backend=` or OMNISENSE_OPS_BACKEND=reference|auto.
Nothing optional is imported until an op needs it.
"""

from perception3d.ops.batch import PointBatch, batch_index_from_offsets, offsets_from_sizes
from perception3d.ops.geometry import (
    estimate_normals,
    make_transform,
    point_pair_features,
    random_rotation,
    rotation_from_euler,
    transform_points,
)
from perception3d.ops.neighbors import (
    ball_query,
    farthest_point_sample,
    farthest_point_sample_ragged,
    gather_points,
    knn,
    knn_ragged,
    three_nn_interpolate,
    three_nn_interpolate_ragged,
)
from perception3d.ops.scatter import scatter_count, scatter_max, scatter_mean, scatter_sum
from perception3d.ops.voxelize import Voxels, grid_size_of, voxelize

__all__ = [
    "PointBatch",
    "Voxels",
    "ball_query",
    "batch_index_from_offsets",
    "estimate_normals",
    "farthest_point_sample",
    "farthest_point_sample_ragged",
    "gather_points",
    "grid_size_of",
    "knn",
    "knn_ragged",
    "make_transform",
    "offsets_from_sizes",
    "point_pair_features",
    "random_rotation",
    "rotation_from_euler",
    "scatter_count",
    "scatter_max",
    "scatter_mean",
    "scatter_sum",
    "three_nn_interpolate",
    "three_nn_interpolate_ragged",
    "transform_points",
    "voxelize",
]
