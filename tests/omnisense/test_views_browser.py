"""Each interactive view and the demo report, loaded in a real headless browser (Debian's chromium): it renders with
no script error and its plot holds the expected traces. Skipped where chromium is not installed
(`apt-get install chromium`); slow (a few seconds per page: plotly.js is 4.6 MB and WebGL runs on the CPU)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                                 reason="chromium is not installed (apt-get install chromium)")]


@pytest.fixture
def screenshots(tool):
    return tool("screenshots")


def _check(found, traces):
    assert found["errors"] == [], found["errors"]
    assert len(found["plots"]) == 1
    plot = found["plots"][0]
    assert plot["traces"] == traces and set(plot["types"]) == {"scatter3d"}
    assert plot["gl"] >= 1  # a WebGL canvas was made: the 3D scene rendered


def test_registration_view_renders(screenshots, tmp_path):
    from perception3d.registration.view import write_registration_view

    cloud = np.random.default_rng(0).normal(size=(2000, 3))
    page = write_registration_view(tmp_path / "r.html", cloud, cloud + 1, np.eye(4),
                                   correspondences=(cloud[:50], cloud[:50] + 1))
    _check(screenshots.probe(page), 5)


def test_detection_view_renders(screenshots, tmp_path):
    from perception3d.detection.view import write_detection_view

    points = np.random.default_rng(0).uniform(-20, 20, (5000, 4)).astype(np.float32)
    det = {"boxes": torch.tensor([[5, 2, -1, 4, 1.8, 1.5, 0.3], [1, 1, -1, 0.8, 0.8, 1.7, 0.0]]),
           "scores": torch.tensor([0.9, 0.5]), "labels": torch.tensor([0, 1])}
    page = write_detection_view(tmp_path / "d.html", points, det, ("Car", "Pedestrian", "Cyclist"),
                                gt_boxes=det["boxes"][:1].numpy())
    _check(screenshots.probe(page), 5)  # points, Car, Pedestrian, score labels, ground truth


def test_fusion_view_renders(screenshots, tmp_path):
    from fusion.recordings import make_recording
    from fusion.view import write_recording_view

    make_recording(tmp_path / "rec", seed=0, duration=2.0)
    _check(screenshots.probe(write_recording_view(tmp_path / "f.html", tmp_path / "rec")), 3)


def test_report_renders_with_its_pictures(screenshots, tmp_path):
    from PIL import Image

    from omnisense.demo import DemoSection, _write_report

    (tmp_path / "part").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "part" / "pic.png")
    section = DemoSection("A part", "Text with **bold**.\n\n| a | b |\n|---|---|\n| 1 | 2 |",
                          [tmp_path / "part" / "pic.png"], "fine", command="omnisense demo")
    _write_report(tmp_path, [{"part": "part", "status": "ok", "seconds": 1.0, "summary": "fine", "section": section}])
    found = screenshots.probe(tmp_path / "report.html", wait_ms=500)
    assert found["errors"] == [] and found["plots"] == [] and found["tables"] == 2
    assert found["images"] == [{"src": "part/pic.png", "ok": True}]


def test_the_probe_sees_a_script_error(screenshots, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><html><head></head><body><script>undefinedFunction()</script></body></html>")
    found = screenshots.probe(page, wait_ms=200)
    assert any("undefinedFunction" in e for e in found["errors"])
