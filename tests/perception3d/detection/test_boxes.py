import math

import numpy as np

import pytest
import torch

import polyclip_reference as ref
from perception3d.detection import boxes as B


def _random_boxes(n, seed, spread=4.0):
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * spread
    size = 0.3 + torch.rand(n, 3, generator=g, dtype=torch.float64) * 4
    h = (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * 4 * math.pi
    return torch.cat([xyz, size, h], 1)


def _special_pairs():
    base = torch.tensor([1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3], dtype=torch.float64)
    pairs = {}
    pairs["identical"] = (base, base.clone())
    far = base.clone(); far[0] += 50
    pairs["disjoint"] = (base, far)
    # touching along the long side: shifted by exactly the width along the box's own y axis
    touch = base.clone(); touch[0] -= 2.0 * math.sin(0.3); touch[1] += 2.0 * math.cos(0.3)
    pairs["touching_edge"] = (base, touch)
    corner = base.clone(); corner[0] += 4.0 * math.cos(0.3) - 2.0 * math.sin(0.3); corner[1] += 4.0 * math.sin(0.3) + 2.0 * math.cos(0.3)
    pairs["touching_corner"] = (base, corner)
    rot90 = base.clone(); rot90[6] += math.pi / 2
    pairs["rotated_90"] = (base, rot90)
    rot180 = base.clone(); rot180[6] += math.pi
    pairs["rotated_180"] = (base, rot180)
    square = torch.tensor([0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0], dtype=torch.float64)
    sq45 = square.clone(); sq45[6] = math.pi / 4
    pairs["square_45"] = (square, sq45)
    inner = base.clone(); inner[3:5] *= 0.5
    pairs["contained"] = (base, inner)
    zsep = base.clone(); zsep[2] += 1.5
    pairs["touching_in_z"] = (base, zsep)
    cross = torch.tensor([0.0, 0.0, 0.0, 6.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    cross2 = cross.clone(); cross2[6] = math.pi / 2
    pairs["cross"] = (cross, cross2)
    return pairs


@pytest.mark.parametrize("name", list(_special_pairs()))
def test_special_cases_match_reference(name):
    a, b = _special_pairs()[name]
    got_bev = B.iou_bev(a[None], b[None])[0, 0].item()
    got_3d = B.iou_3d(a[None], b[None])[0, 0].item()
    assert got_bev == pytest.approx(ref.iou_bev(a.tolist(), b.tolist()), abs=1e-9)
    assert got_3d == pytest.approx(ref.iou_3d(a.tolist(), b.tolist()), abs=1e-9)


def test_known_values():
    pairs = _special_pairs()
    assert B.iou_bev(*(p[None] for p in pairs["identical"]))[0, 0].item() == pytest.approx(1.0, abs=1e-12)
    assert B.iou_bev(*(p[None] for p in pairs["disjoint"]))[0, 0].item() == 0.0
    assert B.iou_bev(*(p[None] for p in pairs["touching_edge"]))[0, 0].item() == pytest.approx(0.0, abs=1e-9)
    # square vs. the same square turned 45 degrees: octagon of area 8 (sqrt 2 - 1)
    inter = 8 * (math.sqrt(2) - 1)
    assert B.iou_bev(*(p[None] for p in pairs["square_45"]))[0, 0].item() == pytest.approx(inter / (8 - inter), abs=1e-12)
    # cross of 6x1 bars: 1 / 11
    assert B.iou_bev(*(p[None] for p in pairs["cross"]))[0, 0].item() == pytest.approx(1 / 11, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_boxes_match_reference(seed):
    a, b = _random_boxes(40, seed), _random_boxes(30, seed + 100)
    got_bev, got_3d = B.iou_bev(a, b), B.iou_3d(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            assert got_bev[i, j].item() == pytest.approx(ref.iou_bev(a[i].tolist(), b[j].tolist()), abs=1e-9)
            assert got_3d[i, j].item() == pytest.approx(ref.iou_3d(a[i].tolist(), b[j].tolist()), abs=1e-9)


def test_aligned_equals_diagonal_and_float32_close():
    a, b = _random_boxes(64, 5, spread=2.0), _random_boxes(64, 6, spread=2.0)
    full = B.iou_3d(a, b)
    assert torch.allclose(B.iou_3d(a, b, aligned=True), full.diagonal(), atol=1e-12)
    assert torch.allclose(B.iou_bev(a.float(), b.float()).double(), B.iou_bev(a, b), atol=2e-5)


def test_diou_identical_is_one_and_gradients_finite():
    a = _random_boxes(16, 7).requires_grad_(True)
    b = a.detach() + 0.3 * torch.randn(16, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    b[:, 3:6] = b[:, 3:6].abs() + 0.2
    assert torch.allclose(B.diou_3d(a.detach(), a.detach()), torch.ones(16, dtype=torch.float64), atol=1e-9)
    d = B.diou_3d(a, b)
    assert (d <= 1).all() and (d >= -1).all()
    d.sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_nms_keeps_best_and_removes_overlaps():
    base = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0]])
    near = base.clone(); near[0, 0] += 0.3
    far = base.clone(); far[0, 0] += 10
    rot = base.clone(); rot[0, 6] = math.pi / 2  # IoU 1/3 with base
    boxes = torch.cat([near, base, far, rot])
    scores = torch.tensor([0.8, 0.9, 0.5, 0.7])
    keep = B.nms_rotated(boxes, scores, 0.5)
    assert keep.tolist() == [1, 3, 2]
    assert B.nms_rotated(boxes, scores, 0.2).tolist() == [1, 2]
    assert B.nms_rotated(boxes, scores, 0.5, post_max=1).tolist() == [1]
    labels = torch.tensor([0, 1, 0, 0])
    assert B.nms_rotated_per_class(boxes, scores, labels, [0.5, 0.5]).tolist() == [1, 0, 3, 2]


def test_nms_empty():
    assert B.nms_rotated(torch.zeros(0, 7), torch.zeros(0), 0.5).numel() == 0


def _clustered_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Detector-like boxes: jittered copies around a few objects, any heading, plus loners."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(12, 2, generator=g) * 40 - 20
    pick = torch.randint(0, 12, (n,), generator=g)
    xy = centres[pick] + torch.randn(n, 2, generator=g) * 0.6
    size = torch.tensor([4.0, 1.8, 1.6]) * (1 + 0.2 * torch.randn(n, 3, generator=g)).clamp(0.5, 1.5)
    heading = (pick.float() * 0.7 + 0.3 * torch.randn(n, generator=g))
    boxes = torch.cat([xy, torch.zeros(n, 1), size, heading[:, None]], 1)
    return boxes, torch.rand(n, generator=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.1, 0.55, 0.7])
def test_nms_prefiltered_equals_full_matrix(seed, threshold):
    boxes, scores = _clustered_boxes(300, seed)
    fast = B.nms_rotated(boxes, scores, threshold)
    ref = B.nms_rotated_reference(boxes, scores, threshold)
    assert fast.tolist() == ref.tolist() and 12 <= fast.numel() < 300
    assert B.nms_rotated(boxes, scores, threshold, pre_max=100, post_max=7).tolist() == \
        B.nms_rotated_reference(boxes, scores, threshold, pre_max=100, post_max=7).tolist()


def test_nms_many_boxes():
    boxes, scores = _clustered_boxes(1000, 3)  # dense clusters: many pairs through the sweep and the exact step
    assert B.nms_rotated(boxes, scores, 0.3).tolist() == B.nms_rotated_reference(boxes, scores, 0.3).tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_nms_per_class_equals_class_by_class(seed):
    boxes, scores = _clustered_boxes(400, seed)
    labels = torch.randint(0, 3, (400,), generator=torch.Generator().manual_seed(seed))
    labels[:5] = 3  # labels without a threshold are dropped, as before
    labels[5:8] = -1
    for pre, post in ((None, None), (4096, 500), ([50, 20, 30], [9, 100, 4])):
        fast = B.nms_rotated_per_class(boxes, scores, labels, [0.7, 0.6, 0.55], pre, post)
        ref = B.nms_rotated_per_class_reference(boxes, scores, labels, [0.7, 0.6, 0.55], pre, post)
        assert fast.tolist() == ref.tolist()


def _rect_np(a, b):
    """`B._rect_intersection_np` on boxes `(P, 7)` a and b (b in a's frame, as `_overlap_pairs` passes it)."""
    a, b = a.double().numpy(), b.double().numpy()
    rx, ry = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    ca, sa, cb, sb = np.cos(a[:, 6]), np.sin(a[:, 6]), np.cos(b[:, 6]), np.sin(b[:, 6])
    return B._rect_intersection_np(rx * ca + ry * sa, ry * ca - rx * sa, ca * cb + sa * sb, sb * ca - cb * sa,
                                   a[:, 3:5] / 2, b[:, 3:5] / 2)


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_nms_rect_intersection_numpy_matches_torch(order):
    boxes, _ = _clustered_boxes(200, 4)
    corners = B.boxes_to_corners_bev(boxes.double())
    i, j = torch.triu_indices(200, 200, 1)
    if order == "ba":
        i, j = j, i
    want = B._pairwise_intersection_area(corners[i], corners[j])
    got = torch.from_numpy(_rect_np(boxes[i], boxes[j]))
    assert torch.allclose(got, want, rtol=0, atol=1e-8) and (want > 0).sum() > 100


@pytest.mark.parametrize("name", list(_special_pairs()))
def test_nms_rect_intersection_special_cases(name):
    """Identical, touching (edge, corner), 90/180-degree turns, contained, crossed: shared edges count once."""
    a, b = _special_pairs()[name]
    want = B._pairwise_intersection_area(B.boxes_to_corners_bev(a[None]), B.boxes_to_corners_bev(b[None])).item()
    assert _rect_np(a[None], b[None])[0] == pytest.approx(want, abs=1e-9)
    assert _rect_np(b[None], a[None])[0] == pytest.approx(want, abs=1e-9)


def test_nms_rect_intersection_axis_aligned_shared_edges():
    """Heading 0 boxes on a grid (edges exactly on each other's lines, the divisions by zero): exact areas."""
    grid = torch.tensor([[x, y, 0.0, 2.0, 1.0, 1.0, 0.0] for x in (0.0, 1.0, 2.0, 2.5) for y in (0.0, 0.5, 1.0)],
                        dtype=torch.float64)
    i, j = torch.triu_indices(len(grid), len(grid), 1)
    want = B._pairwise_intersection_area(B.boxes_to_corners_bev(grid[i]), B.boxes_to_corners_bev(grid[j]))
    assert torch.allclose(torch.from_numpy(_rect_np(grid[i], grid[j])), want, rtol=0, atol=1e-9)