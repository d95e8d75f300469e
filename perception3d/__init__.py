"""perception3d: point clouds for omnisense: io, ops, kernels, models, registration, detection, classification."""

from perception3d._errors import Perception3DError, PointCloudFileError, PointCloudValueError

__all__ = ["Perception3DError", "PointCloudFileError", "PointCloudValueError"]
