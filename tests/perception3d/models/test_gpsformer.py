"""GPSFormer: the model contract, the blocks' defining properties, and the paper-size figures."""

from __future__ import annotations

import pytest
import torch

from omnisense.models import VARIANTS
from perception3d.models.gpsformer import (
    ADGConv,
    GPSFormer,
    LSFConv,
    count_flops,
    feature_knn,
    gpsformer,
    gpsformer_elite,
    gpsformer_partseg_tiny,
    gpsformer_tiny,
    reference_attention,
)


def _cloud(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    return x / x.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]


@pytest.mark.parametrize("name", ["gpsformer_tiny", "gpsformer_partseg_tiny"])
def test_contract_shapes_finite_and_gradients(name):
    torch.manual_seed(0)
    model = VARIANTS[name]()
    x = _cloud(2, 64)
    out = model(x) if name == "gpsformer_tiny" else model(x, torch.tensor([0, 1]))
    expected = (2, model.num_classes) if name == "gpsformer_tiny" else (2, 64, model.num_parts)
    assert out.shape == expected
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []


@pytest.mark.parametrize("name", ["gpsformer_tiny", "gpsformer_partseg_tiny"])
def test_batch_of_b_equals_b_batches_of_one(name):
    torch.manual_seed(0)
    model = VARIANTS[name]().eval()
    x = _cloud(3, 64, seed=1)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(3)])
        # (Point order does matter: ball query keeps the first neighbours in index order, as in PointNet++.)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_reference_attention_equals_fused():
    torch.manual_seed(0)
    model = gpsformer_tiny().eval()
    x = _cloud(2, 48)
    with torch.no_grad():
        fused = model(x)
        with reference_attention():
            ref = model(x)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5)


def test_feature_knn_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(2, 10, 7, generator=g), torch.randn(2, 15, 7, generator=g)
    idx = feature_knn(q, r, 4)
    expected = torch.cdist(q, r).topk(4, largest=False).indices
    assert torch.equal(idx, expected)


def test_adgconv_offset_moves_the_neighbourhood_and_gets_gradient():
    torch.manual_seed(0)
    conv = ADGConv(8, k=3)
    feat = torch.randn(1, 20, 8)
    out, shifted = conv(feat)
    assert out.shape == (1, 20, 8) and shifted.shape == (1, 20, 8)
    out.sum().backward()
    assert conv.offset.weight.grad.abs().sum() > 0
    # With a large offset the query is no longer the point itself, so neighbourhoods change.
    with torch.no_grad():
        conv.offset.bias.fill_(0.0)
        conv.offset.weight.zero_()
        same = feature_knn(feat, feat, 3)
        conv.offset.weight.copy_(torch.randn(8, 8) * 3)
        moved = feature_knn(feat + conv.offset(feat), feat, 3)
    assert same[..., 0].eq(torch.arange(20)).all()  # zero offset: each point is its own nearest
    assert not torch.equal(same, moved)


def test_lsfconv_affine_basis_special_cases():
    """s = p = 1 makes T linear in u (the ABF case); s = 0, p = 2 makes it even in u (the RBF case)."""
    torch.manual_seed(0)
    u = torch.randn(5, 6)
    conv_abf = LSFConv(4, 6, radii=(0.5,), max_counts=(4,), sign_exponent=1, exponent=1.0)
    p = conv_abf.exponent[0]
    t = torch.copysign((u.abs() + 1e-6).pow(p), u)
    torch.testing.assert_close(t, u, atol=1e-5, rtol=0)
    conv_rbf = LSFConv(4, 6, radii=(0.5,), max_counts=(4,), sign_exponent=0, exponent=2.0, learn_exponent=False)
    assert not conv_rbf.raw_exponent.requires_grad
    torch.testing.assert_close(conv_rbf.exponent, torch.full((1,), 2.0))


def test_lsfconv_learned_exponent_stays_in_range():
    conv = LSFConv(4, 6, radii=(0.5, 1.0), max_counts=(4, 8))
    with torch.no_grad():
        conv.raw_exponent.copy_(torch.tensor([0.2, 7.0]))
    torch.testing.assert_close(conv.exponent, torch.tensor([1.0, 3.0]))


def test_lsfconv_exponent_is_learned():
    torch.manual_seed(0)
    conv = LSFConv(4, 6, radii=(0.5, 1.0), max_counts=(4, 8), exponent=1.5)  # inside [1, 3]: p gets a gradient
    xyz = _cloud(1, 32)
    feat = torch.randn(1, 32, 4)
    center = torch.arange(0, 32, 4).unsqueeze(0)
    out = conv(xyz, feat, xyz[:, ::4], center)
    assert out.shape == (1, 8, 6)
    out.sum().backward()
    assert conv.raw_exponent.grad is not None and conv.raw_exponent.grad.abs().sum() > 0


def test_any_point_count_and_too_few_points():
    model = gpsformer_tiny().eval()
    with torch.no_grad():
        for n in (8, 33, 100):
            assert model(_cloud(1, n)).shape == (1, 4)
    with pytest.raises(ValueError, match="at least 2 points"):
        model(torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        model(torch.zeros(1, 10, 4))


def test_partseg_category_conditioning_changes_the_output():
    torch.manual_seed(0)
    model = gpsformer_partseg_tiny().eval()
    x = _cloud(1, 64)
    with torch.no_grad():
        a = model(x, torch.tensor([0]))
        b = model(x, torch.tensor([1]))
    assert not torch.allclose(a, b)


def test_paper_variants_size_and_flops():
    """The paper's figures (ScanObjectNN, 15 classes, 1024 points): 2.36M parameters and 0.7 G FLOPs, which we
    read as multiply-adds (the thop / fvcore count point-cloud papers report); elite 0.68M parameters."""
    full, elite = gpsformer(num_classes=15), gpsformer_elite(num_classes=15)
    full_params = sum(p.numel() for p in full.parameters())
    elite_params = sum(p.numel() for p in elite.parameters())
    assert full_params == 2_333_880  # paper 2.36M: -1.1%
    assert elite_params == 643_096  # paper 0.68M: -5.4%
    assert isinstance(full, GPSFormer) and full.blocks[0].gpm.adg.k == 20
    assert [b.lsf.max_counts for b in full.blocks] == [(8, 16, 32)] * 3
    assert [b.gpm.adg.offset.in_features for b in full.blocks] == [64, 128, 256]  # each stage's GPM at its width
    macs = count_flops(full, _cloud(1, 1024)) / 2
    assert abs(macs / 0.7e9 - 1) < 0.10, macs  # 0.744 G multiply-adds: +6%
