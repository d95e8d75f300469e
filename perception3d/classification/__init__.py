"""Shape classification and part segmentation: the procedural shape set, readers for ModelNet40,
ScanObjectNN and ShapeNetPart, and the metrics (OA, mean class accuracy, voting, part mIoU)."""

from perception3d.classification.datasets import (
    SCANOBJECTNN_CLASSES,
    SHAPENETPART_PARTS,
    ShapeSet,
    read_modelnet40_h5,
    read_modelnet40_normal,
    read_parts,
    read_scanobjectnn_h5,
    read_shapenetpart,
    read_shapes,
    write_parts,
    write_shapes,
)
from perception3d.classification.metrics import (
    confusion_matrix,
    mean_class_accuracy,
    overall_accuracy,
    part_miou,
    vote_predict,
)
from perception3d.classification.parts import PART_CATEGORIES, PART_NAMES, PARTS_OF, make_part_split
from perception3d.classification.shapes import CLASSES, Degradation, make_shape, make_split, normalize_unit_sphere

__all__ = [
    "CLASSES", "Degradation", "PARTS_OF", "PART_CATEGORIES", "PART_NAMES", "SCANOBJECTNN_CLASSES", "SHAPENETPART_PARTS", "ShapeSet", "confusion_matrix",
    "make_part_split", "make_shape", "make_split", "mean_class_accuracy", "normalize_unit_sphere", "overall_accuracy", "part_miou",
    "read_modelnet40_h5", "read_modelnet40_normal", "read_parts", "read_scanobjectnn_h5", "read_shapenetpart", "read_shapes",
    "vote_predict", "write_parts", "write_shapes",
]
