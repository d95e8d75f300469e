"""RoITr against the official code (haoyu94/RoITr at 393539d), from a committed fixture.

tests/fixtures/parity/roitr/roitr.safetensors holds the official `RIGA_v2` at 1/8 width with seeded random
weights, two fixed clouds, and its outputs (descriptors, FPS indices, coarse node pairs, Sinkhorn scores, fine
correspondences); tools/parity/roitr.py regenerates it from a checkout. Here the official state dict goes
through `convert_official` into our RoITr and must give the same outputs.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from perception3d.models.roitr import RoITr, convert_official, roitr_3dmatch

FIXTURE = Path(__file__).parents[2] / "fixtures" / "parity" / "roitr"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture():
    return load_file(str(FIXTURE / "roitr.safetensors"))


def _model(fixture, **overrides) -> RoITr:
    official = {k[len("official."):]: v for k, v in fixture.items() if k.startswith("official.")}
    state, info = convert_official(official)
    kwargs = dict(planes=(8, 16, 32, 32), blocks=(2, 3, 3, 3), heads=4, hidden_cap=32,
                  global_blocks=("self", "cross"), fine_dim=8, point_limit=32, num_coarse=16,
                  sinkhorn_iterations=100, fine_topk=3, fine_confidence=0.02, **info["kwargs"])
    kwargs.update(overrides)
    model = RoITr(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _run(model, fixture):
    inp = {k[len("input."):]: v for k, v in fixture.items() if k.startswith("input.")}
    with torch.no_grad():
        levels = model.backbone.encode(inp["src_points"], inp["src_normals"])
        out = model(inp["src_points"], inp["src_normals"], inp["tgt_points"], inp["tgt_normals"])
        matches = model.match(out)
    return levels, out, matches


@pytest.fixture(scope="module")
def ours(fixture):
    return _run(_model(fixture), fixture)


def test_fps_indices_equal(fixture, ours):
    levels = ours[0]
    for i in (2, 3, 4):
        assert torch.equal(levels[i - 1].sample_idx, fixture[f"output.src_fps_idx{i}"]), i
    assert torch.equal(ours[1].src_nodes, fixture["output.src_nodes"])
    assert torch.equal(ours[1].tgt_nodes, fixture["output.tgt_nodes"])


def test_descriptors_match(fixture, ours):
    levels, out, _ = ours
    torch.testing.assert_close(levels[0].feats, fixture["output.src_level1_feats"], **TOL)
    for side in ("src", "tgt"):
        torch.testing.assert_close(getattr(out, f"{side}_node_feats"), fixture[f"output.{side}_node_feats"], **TOL)
        torch.testing.assert_close(getattr(out, f"{side}_point_feats"), fixture[f"output.{side}_point_feats"], **TOL)


def test_matching_equal(fixture, ours):
    m = ours[2]
    assert torch.equal(m.tgt_node_idx, fixture["output.tgt_node_corr_indices"])
    assert torch.equal(m.src_node_idx, fixture["output.src_node_corr_indices"])
    torch.testing.assert_close(m.log_scores, fixture["output.matching_scores"], **TOL)
    assert fixture["output.tgt_corr_points"].shape[0] > 50  # the fixture exercises the fine matching
    assert torch.equal(m.tgt_corr, fixture["output.tgt_corr_points"])
    assert torch.equal(m.src_corr, fixture["output.src_corr_points"])
    torch.testing.assert_close(m.corr_scores, fixture["output.corr_scores"], **TOL)


def test_probe_own_neighbourhoods_fail(fixture):
    """Our default neighbourhoods (the centre included) do not reproduce the official outputs."""
    levels, out, _ = _run(_model(fixture, exclude_self=False), fixture)
    assert not torch.allclose(levels[0].feats, fixture["output.src_level1_feats"], **TOL)


def test_probe_wrong_eps_fails(fixture):
    """The fixture shrinks the input of `enc1.1.bn2` so that its eps matters: 1e-6 instead of 1e-5 fails."""
    model = _model(fixture)
    model.backbone.enc1[1].bn2.eps = 1e-6
    levels = _run(model, fixture)[0]
    assert not torch.allclose(levels[0].feats, fixture["output.src_level1_feats"], **TOL)


@pytest.mark.parametrize("layout", ["3dmatch", "4dmatch"])
def test_converter_fills_every_official_layout(layout):
    """Every key and shape of the released 3DMatch model and of the 4DMatch one (factor 2) at the official commit."""
    shapes = json.loads((FIXTURE / "layouts.json").read_text())[layout]
    official = {f"module.{k}": torch.zeros(s) for k, s in shapes.items()}
    state, info = convert_official(official)
    model = (roitr_3dmatch(**info["kwargs"]) if layout == "3dmatch" else
             RoITr(planes=(128, 256, 512, 512), hidden_cap=512, fine_dim=512, **info["kwargs"]))
    ours = model.state_dict()
    assert set(state) == set(ours)
    assert all(state[k].shape == ours[k].shape for k in ours)
