"""perception3d: point clouds for omnisense: io, ops, kernels, models, registration, detection, classification."""

from perception3d._errors import Perception3DError, PointCloudFileError, PointCloudValueError

# io and ops names load on first use, so `import perception3d` stays cheap (no torch, numpy or open3d)
_LAZY = {
    **{name: "perception3d.io" for name in (
        "MeshData", "PointCloudData", "read_mesh", "read_points", "sample_mesh", "write_points")},
    **{name: "perception3d.ops" for name in (
        "PointBatch", "Voxels", "ball_query", "farthest_point_sample", "gather_points", "knn", "knn_ragged",
        "scatter_max", "scatter_mean", "three_nn_interpolate", "voxelize")},
}

__all__ = ["Perception3DError", "PointCloudFileError", "PointCloudValueError", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'perception3d' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
