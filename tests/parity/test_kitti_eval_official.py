"""`kitti_eval` against the official KITTI devkit (OpenPCDet's kitti_object_eval_python): the same labels and
predictions, BEV and 3D AP_R11 and AP_R40 of Car, Pedestrian and Cyclist at both of the devkit's overlap
settings, equal to the printed precision (4 decimals). The fixture comes from tools/parity/kitti_eval.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from perception3d.detection.evaluation import KITTI_NEIGHBOURS, kitti_difficulty, kitti_eval
from tests.parity._fixtures import ROOT

CLASSES = ("Car", "Pedestrian", "Cyclist")


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads((ROOT / "kitti_eval" / "fixture.json").read_text())


def _lidar_boxes(anno: dict) -> torch.Tensor:
    """Camera-frame KITTI boxes (location of the bottom centre, dimensions l, h, w, rotation_y) in a lidar frame
    (x forward = camera z, y left = -camera x, z up = -camera y): centre lifted by h / 2, heading -(ry + pi/2)."""
    loc = np.array(anno["location"], dtype=np.float64).reshape(-1, 3)
    lhw = np.array(anno["dimensions"], dtype=np.float64).reshape(-1, 3)
    ry = np.array(anno["rotation_y"], dtype=np.float64)
    boxes = np.stack([loc[:, 2], -loc[:, 0], -loc[:, 1] + lhw[:, 1] / 2, lhw[:, 0], lhw[:, 2], lhw[:, 1],
                      -(ry + math.pi / 2)], 1)
    return torch.from_numpy(boxes)


def _frames(fixture: dict) -> tuple[list[dict], list[dict]]:
    index = {n: i for i, n in enumerate(CLASSES)}
    neighbours = {v: index[k] for k, v in KITTI_NEIGHBOURS.items()}
    dets, gts = [], []
    for g, d in zip(fixture["ground_truths"], fixture["detections"]):
        bbox = np.array(g["bbox"], dtype=np.float64).reshape(-1, 4)
        gts.append({"boxes": _lidar_boxes(g), "labels": torch.tensor([index.get(n, -1) for n in g["name"]]),
                    "difficulty": torch.from_numpy(kitti_difficulty(bbox[:, 3] - bbox[:, 1], np.array(g["occluded"]),
                                                                    np.array(g["truncated"]))),
                    "neighbour": torch.tensor([neighbours.get(n, -1) for n in g["name"]])})
        dets.append({"boxes": _lidar_boxes(d), "scores": torch.tensor(d["score"], dtype=torch.float64),
                     "labels": torch.tensor([index[n] for n in d["name"]], dtype=torch.long)})
    return dets, gts


@pytest.mark.parametrize("setting", [0, 1], ids=["overlap_0.7_0.5", "overlap_0.5_0.25"])
def test_kitti_ap_equals_the_official_devkit(fixture, setting):
    dets, gts = _frames(fixture)
    official = fixture["official"]
    thresholds = {}
    for name in CLASSES:
        key = sorted(k for k in official[name] if k.startswith("R11@"))[::-1][setting]  # 0.70... before 0.50...
        thresholds[name] = float(key.split("@")[1].split(",")[2])  # the 3D / BEV overlap of this setting
    ours = kitti_eval(dets, gts, CLASSES, iou_thresholds=thresholds)
    compared = 0
    for name in CLASSES:
        for recall in ("R11", "R40"):
            key = next(k for k in official[name] if k.startswith(recall + "@") and
                       float(k.split("@")[1].split(",")[2]) == thresholds[name])
            for metric in ("bev", "3d"):
                for level, printed in zip(("easy", "moderate", "hard"), official[name][key][metric]):
                    assert f"{ours[f'{name}/{metric}_{recall}/{level}']:.4f}" == printed, (name, recall, metric, level)
                    compared += 1
    assert compared == 36


def test_the_fixture_is_not_trivial(fixture):
    values = [float(v) for c in fixture["official"].values() for s in c.values() for m in ("bev", "3d") for v in s[m]]
    assert max(values) > 30 and len(set(values)) > 20


def test_kitti_difficulty_levels():
    level = kitti_difficulty(np.array([50, 30, 30, 20, 50]), np.array([0, 1, 0, 0, 3]), np.array([0.1, 0.2, 0.4, 0, 0]))
    assert level.tolist() == [0, 1, 2, -1, -1]
