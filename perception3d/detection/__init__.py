"""Lidar 3D object detection: box ops, the KITTI-layout scene simulator and readers, the CenterPoint head
with the IoU branch, losses, target assignment, decoding, evaluation (KITTI AP, Waymo-style mAP/mAPH)
and augmentations. The FlatFormer and DSVT detectors that use these live in `perception3d.models`.

The entry point: `detect_points(model, points, spec=meta.transforms())` -> boxes, scores, labels."""

from perception3d.detection.boxes import diou_3d, iou_3d, iou_bev, nms_rotated, nms_rotated_per_class
from perception3d.detection.inference import ScanSpec, boxes_to_json, detect_points
from perception3d.detection.view import write_boxes_ply, write_detection_view

__all__ = ["ScanSpec", "boxes_to_json", "detect_points", "diou_3d", "iou_3d", "iou_bev", "nms_rotated",
           "nms_rotated_per_class", "write_boxes_ply", "write_detection_view"]
