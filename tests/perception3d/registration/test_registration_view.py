"""The registration view (plotly HTML) and the aligned-cloud PLY."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d.registration.metrics import transform_points
from perception3d.registration.view import registration_figure, write_aligned_ply, write_registration_view


def _turn(angle: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    t = np.eye(4)
    t[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    t[:3, 3] = shift
    return t


@pytest.fixture
def pair():
    source = np.random.default_rng(0).normal(size=(600, 3))
    transform = _turn(0.7, [1.0, -2.0, 0.5])
    return source, transform_points(source, transform), transform


def test_figure_draws_before_and_after_in_three_colours(pair):
    source, target, transform = pair
    fig = registration_figure(source, target, transform)
    assert [t.name for t in fig.data] == ["source", "target", "target", "registered source"]
    assert {t.scene for t in fig.data} == {"scene", "scene2"}
    assert len({t.marker.color for t in fig.data}) == 3
    registered = np.stack([fig.data[3].x, fig.data[3].y, fig.data[3].z], 1)
    np.testing.assert_allclose(registered, target, atol=1e-5)  # the registered source lands on the target
    assert "all 600 source points" in fig.layout.title.text


def test_big_clouds_are_thinned_and_the_title_says_so(pair):
    source, target, transform = pair
    fig = registration_figure(source, target, transform, max_points=100)
    assert all(len(t.x) == 100 for t in fig.data)
    assert "100 of 600 source points" in fig.layout.title.text


def test_georeferenced_clouds_are_drawn_about_a_round_origin(pair):
    source, target, transform = pair
    far = np.array([637_000.0, 851_000.0, 100.0])
    shifted = transform.copy()
    shifted[:3, 3] += far
    fig = registration_figure(source, target + far, shifted)
    registered = np.stack([fig.data[3].x, fig.data[3].y, fig.data[3].z], 1).astype(np.float64)
    origin = np.round((target + far).mean(0))
    np.testing.assert_allclose(registered + origin, target + far, atol=1e-4)  # float32 about the origin: no loss
    assert fig.layout.scene.xaxis.title.text == f"x - {origin[0]:.0f}"


def test_correspondences_are_one_more_trace(pair):
    source, target, transform = pair
    fig = registration_figure(source, target, transform, correspondences=(source[:20], target[:20]))
    assert len(fig.data) == 5 and fig.data[4].mode == "lines"
    assert sum(x is None for x in fig.data[4].x) == 20  # one gap after each of the 20 segments


def test_view_is_self_contained_html(pair, tmp_path):
    source, target, transform = pair
    path = write_registration_view(tmp_path / "v.html", source, target, transform, title="t")
    text = path.read_text()
    assert "<script src=\"http" not in text and "cdn.plot.ly" not in text.split("</script>")[-1]
    assert len(text) > 3_000_000  # plotly.js itself is embedded


def test_aligned_ply_holds_both_clouds_coloured(pair, tmp_path):
    import open3d as o3d

    source, target, transform = pair
    path = write_aligned_ply(tmp_path / "a.ply", source, transform, target)
    cloud = o3d.io.read_point_cloud(str(path))
    xyz, rgb = np.asarray(cloud.points), np.asarray(cloud.colors)
    assert len(xyz) == 1200
    np.testing.assert_allclose(xyz[:600], target, atol=1e-9)  # the registered source
    np.testing.assert_allclose(xyz[600:], target, atol=1e-9)
    assert len(np.unique(rgb[:600], axis=0)) == 1 and len(np.unique(rgb[600:], axis=0)) == 1
    assert not np.allclose(rgb[0], rgb[-1])
    alone = o3d.io.read_point_cloud(str(write_aligned_ply(tmp_path / "s.ply", source, transform)))
    assert len(alone.points) == 600
