import numpy as np
import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.detection.head import build_targets, center_head_loss
from perception3d.detection.simulator import LidarConfig, simulate_frame
from omnisense.models import VARIANTS
from perception3d.models.dsvt import convert_openpcdet_dsvt
from perception3d.models.flatformer import convert_mmdet3d_flatformer

TINY = ["flatformer_tiny", "dsvt_pillar_tiny", "dsvt_voxel_tiny"]


@pytest.fixture(scope="module")
def frame():
    f = simulate_frame(np.random.default_rng(5), LidarConfig(beams=32, azimuth_steps=360))
    pts = torch.from_numpy(f.points)
    pts = pts[(pts[:, 0].abs() < 12.8) & (pts[:, 1].abs() < 12.8)]
    boxes = torch.from_numpy(f.boxes).float()
    keep = (boxes[:, 0].abs() < 12.4) & (boxes[:, 1].abs() < 12.4)
    labels = torch.tensor([["Car", "Pedestrian", "Cyclist"].index(n) for n in f.names])
    return pts, boxes[keep], labels[keep]


@pytest.mark.parametrize("name", TINY)
def test_contract(name, frame):
    torch.manual_seed(0)
    pts, boxes, labels = frame
    model = VARIANTS[name]()
    half = len(pts) // 2
    bi = torch.cat([torch.zeros(half), torch.ones(len(pts) - half)]).long()
    out = model(pts, bi, 2)
    h, w = model.geometry.shape
    assert out["hm"].shape == (2, 3, h, w) and out["center"].shape == (2, 2, h, w) and out["iou"].shape == (2, 1, h, w)
    assert all(torch.isfinite(v).all() for v in out.values())
    tg = build_targets([boxes, boxes], [labels, labels], model.geometry, 3, min_radius=model.min_radius)
    center_head_loss(out, tg, model.geometry)["loss"].backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    # a batch of two frames equals the two frames one by one (eval mode: BN uses running stats)
    model.eval()
    with torch.no_grad():
        both = model(pts, bi, 2)["hm"]
        one = model(pts[:half], bi[:half], 1)["hm"]
        two = model(pts[half:], bi[half:] * 0, 1)["hm"]
    assert torch.allclose(both[0], one[0], atol=1e-4) and torch.allclose(both[1], two[0], atol=1e-4)


def test_empty_and_out_of_range_input():
    model = VARIANTS["flatformer_tiny"]().eval()
    with pytest.raises(PointCloudValueError):
        model(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 1)
    with pytest.raises(PointCloudValueError, match="range"):
        model(torch.full((5, 4), 500.0), torch.zeros(5, dtype=torch.long), 1)


@pytest.mark.slow  # about 12 s on an idle 2-core machine; minutes on a shared one
def test_tiny_detector_learns_one_scene(frame):
    torch.manual_seed(0)
    pts, boxes, labels = frame
    model = VARIANTS["dsvt_pillar_tiny"]()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    bi = torch.zeros(len(pts), dtype=torch.long)
    tg = build_targets([boxes], [labels], model.geometry, 3, min_radius=model.min_radius)
    first = None
    for _ in range(30):
        loss = center_head_loss(model(pts, bi, 1), tg, model.geometry)
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
        first = first if first is not None else {k: v.item() for k, v in loss.items()}
    last = {k: v.item() for k, v in loss.items()}
    assert last["hm"] < 0.5 * first["hm"] and last["loc"] < 0.6 * first["loc"]


def test_dsvt_converter_is_identity_on_openpcdet_keys():
    model = VARIANTS["dsvt_pillar_tiny"]()
    official = {k: v.clone() for k, v in model.state_dict().items()}
    official["global_step"] = torch.tensor(7)
    official = {("module." + k if i % 2 else k): v for i, (k, v) in enumerate(official.items())}
    ours = convert_openpcdet_dsvt(official)
    assert set(ours) == set(model.state_dict())
    model.load_state_dict(ours)


def _mmdet3d_key(k: str) -> str:
    """Our key -> the mmdet3d FlatFormer key, written from the official module layout."""
    parts = k.split(".")
    if k.startswith("vfe.pfn_layers."):
        return f"voxel_encoder.vfe_layers.{parts[2]}." + {"linear": "0", "norm": "1"}[parts[3]] + "." + ".".join(parts[4:])
    if k.startswith("backbone_3d.block_list."):
        return "backbone." + k[len("backbone_3d."):]
    if k.startswith("backbone_2d.blocks."):
        return "backbone." + k[len("backbone_2d."):]
    if k.startswith("backbone_2d.deblocks."):
        return "neck." + k[len("backbone_2d."):]
    if k.startswith("dense_head.shared_conv."):
        return "bbox_head.shared_conv." + {"0": "conv", "1": "bn"}[parts[2]] + "." + ".".join(parts[3:])
    name = {"center": "reg", "center_z": "height", "dim": "dim", "rot": "rot", "iou": "iou", "hm": "heatmap"}[parts[3]]
    rest = ".".join(parts[4:])
    rest = rest.replace("0.0.", "0.conv.", 1) if rest.startswith("0.0.") else rest.replace("0.1.", "0.bn.", 1) \
        if rest.startswith("0.1.") else rest
    return f"bbox_head.task_heads.0.{name}.{rest}"


def test_flatformer_converter_maps_every_key():
    model = VARIANTS["flatformer_tiny"]()
    state = model.state_dict()
    official = {_mmdet3d_key(k): v.clone() for k, v in state.items()}
    official["bbox_head.task_heads.0.vel.1.weight"] = torch.zeros(2, 16, 3, 3)
    ours = convert_mmdet3d_flatformer(official)
    assert set(ours) == set(state)
    assert all(ours[k].shape == state[k].shape for k in state)
    rot = "dense_head.heads_list.0.rot.1.weight"
    assert torch.equal(ours[rot], state[rot][[1, 0]])
