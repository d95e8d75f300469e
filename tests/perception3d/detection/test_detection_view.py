"""The detection view (plotly HTML) and the box line-set PLY."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d.detection.view import box_segments, detection_figure, write_boxes_ply, write_detection_view

CLASSES = ("Car", "Pedestrian", "Cyclist")


@pytest.fixture
def sweep():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(-30, 30, (5000, 2)), rng.uniform(-2, 1, (5000, 1)),
                             rng.random((5000, 1))], 1).astype(np.float32)
    det = {"boxes": torch.tensor([[5, 2, -1, 4, 1.8, 1.5, 0.3], [10, -3, -1, 0.8, 0.8, 1.7, 0.0],
                                  [-4, 6, -1, 1.8, 0.6, 1.7, 1.0], [1, 1, -1, 4, 1.8, 1.5, 2.0]]),
           "scores": torch.tensor([0.9, 0.6, 0.4, 0.1]), "labels": torch.tensor([0, 1, 2, 0])}
    return points, det


def test_box_segments_are_the_box_edges():
    a, b = box_segments(np.array([[0, 0, 0, 4, 2, 1, 0]]))
    assert a.shape == b.shape == (13, 3)
    lengths = np.sort(np.linalg.norm(a - b, axis=1))
    np.testing.assert_allclose(lengths, sorted([4] * 4 + [2] * 4 + [1] * 4 + [2]), atol=1e-6)  # tick: centre to front
    assert np.allclose(np.abs(a[:12]).max(0), [2, 1, 0.5])


def test_threshold_filters_boxes_and_titles_say_how_many(sweep):
    points, det = sweep
    fig = detection_figure(points, det, CLASSES, score_threshold=0.5, max_points=1000)
    names = [t.name for t in fig.data]
    assert names == ["points", "Car (1)", "Pedestrian (1)", "scores"]
    assert list(fig.data[-1].text) == ["Car 0.90", "Pedestrian 0.60"]
    assert "score threshold 0.50: 2 of 4 boxes shown" in fig.layout.title.text
    assert "1,000 of 5,000 points" in fig.layout.title.text and len(fig.data[0].x) == 1000
    assert len(fig.layout.updatemenus[0].buttons) == 2  # colour by height or by intensity


def test_all_classes_and_ground_truth(sweep):
    points, det = sweep
    fig = detection_figure(points[:, :3], det, CLASSES, gt_boxes=det["boxes"][:2].numpy())
    assert [t.name for t in fig.data] == ["points", "Car (2)", "Pedestrian (1)", "Cyclist (1)", "scores",
                                          "ground truth (2)"]
    assert len(fig.layout.updatemenus[0].buttons) == 1  # no intensity column: height only


def test_view_writes_html(sweep, tmp_path):
    points, det = sweep
    text = write_detection_view(tmp_path / "d.html", points, det, CLASSES, score_threshold=0.3).read_text()
    assert "score threshold 0.30" in text and len(text) > 3_000_000


def test_boxes_ply_opens_as_a_line_set(sweep, tmp_path):
    import open3d as o3d

    _, det = sweep
    lines = o3d.io.read_line_set(str(write_boxes_ply(tmp_path / "b.ply", det, CLASSES, score_threshold=0.5)))
    assert len(lines.lines) == 2 * 13
    colors = np.asarray(lines.colors)
    assert not np.allclose(colors[0], colors[-1])  # a Car and a Pedestrian: two colours
    empty = write_boxes_ply(tmp_path / "e.ply", det, CLASSES, score_threshold=2.0).read_text()
    assert "element edge 0" in empty and empty.endswith("end_header\n")
