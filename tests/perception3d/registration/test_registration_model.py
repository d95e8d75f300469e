"""RoITr: rotation invariance of the descriptors, matching outputs, gradients, the official-key converter."""

from __future__ import annotations

import pytest
import torch

from perception3d.models.roitr import convert_official, roitr_3dmatch, roitr_tiny
from perception3d.ops.geometry import random_rotation
from perception3d.registration.losses import coarse_circle_loss, fine_nll_loss
from perception3d.registration.pipeline import oriented_normals


def _cloud(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 3, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    return u * torch.tensor([1.0, 0.7, 0.5], dtype=torch.float64) * (1 + 0.2 * torch.sin(3 * u[:, :1]))


@pytest.mark.parametrize(("descriptor_norm", "shape_features"), [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("seed", [1, 2])
def test_descriptors_invariant_to_rotation(seed, descriptor_norm, shape_features):
    model = roitr_tiny(descriptor_norm=descriptor_norm, shape_features=shape_features).double().eval()
    src, tgt = _cloud(400, 0), _cloud(300, 5)
    rot = random_rotation(1, torch.Generator().manual_seed(seed))[0].double()
    moved = src @ rot.T + torch.tensor([0.5, -2.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        a = model(src, oriented_normals(src), tgt, oriented_normals(tgt))
        b = model(moved, oriented_normals(moved), tgt, oriented_normals(tgt))
    torch.testing.assert_close(b.src_point_feats, a.src_point_feats, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(b.src_node_feats, a.src_node_feats, atol=1e-6, rtol=1e-6)
    # Cross-frame attention: the other cloud's descriptors must not change either.
    torch.testing.assert_close(b.tgt_node_feats, a.tgt_node_feats, atol=1e-6, rtol=1e-6)


def test_local_shape_features():
    from perception3d.models.roitr import local_shape_features

    g = torch.Generator().manual_seed(0)
    plane = torch.rand(400, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    line = torch.rand(400, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert local_shape_features(plane)[:, 0].abs().max() < 1e-9 and local_shape_features(plane)[:, 1].min() > 0.05
    torch.testing.assert_close(local_shape_features(line)[:, 2], torch.ones(400, dtype=torch.float64))


def _local_attention_as_written(att, x, center_idx, group_idx, ppf, embedding):
    """The paper's formula with the [M, K, d] position embedding built and projected (the unfactored form)."""
    h = att.heads
    emb = embedding(ppf)  # [M, K, d]
    q = att.proj_q(x)[center_idx].unflatten(-1, (h, -1))  # [M, h, c]
    k = (att.proj_k(x)[group_idx] + att.proj_p(emb)).unflatten(-1, (h, -1))  # [M, K, h, c]
    v = (att.proj_v(x)[group_idx] + att.proj_vp(emb)).unflatten(-1, (h, -1))
    attn = torch.softmax((k * q.unsqueeze(1)).sum(-1) / q.shape[-1] ** 0.5, dim=1)  # [M, K, h]
    return (attn.unsqueeze(-1) * v).sum(1).flatten(1)


def test_factored_local_attention_is_the_papers_formula():
    from perception3d.models.roitr import _LocalAttention

    torch.manual_seed(0)
    att, embedding = _LocalAttention(32, 4).double(), torch.nn.Linear(4, 32).double()
    x, ppf = torch.randn(50, 32, dtype=torch.float64), torch.randn(20, 8, 4, dtype=torch.float64)
    center_idx, group_idx = torch.randperm(50)[:20], torch.randint(0, 50, (20, 8))
    got = att(x, center_idx, group_idx, ppf, embedding)
    torch.testing.assert_close(got, _local_attention_as_written(att, x, center_idx, group_idx, ppf, embedding))
    # Gradients reach every weight as in the unfactored form.
    got.square().sum().backward()
    grads = [p.grad.clone() for p in (*att.parameters(), *embedding.parameters())]
    for p in (*att.parameters(), *embedding.parameters()):
        p.grad = None
    _local_attention_as_written(att, x, center_idx, group_idx, ppf, embedding).square().sum().backward()
    for g, p in zip(grads, (*att.parameters(), *embedding.parameters())):
        torch.testing.assert_close(g, p.grad, atol=1e-9, rtol=1e-7)


def _rpe_attention_as_written(att, x, emb):
    """GeoTransformer's self-attention with the [n, n, d] embedding projected by W_p and W_vp (unfactored)."""
    h, n = att.heads, x.shape[0]
    q, k, v = (f(x).unflatten(-1, (h, -1)).transpose(0, 1) for f in (att.proj_q, att.proj_k, att.proj_v))  # [h, n, c]
    p = att.proj_p(emb).unflatten(-1, (h, -1)).permute(2, 0, 1, 3)  # [h, n, n, c]
    vp = att.proj_vp(emb).unflatten(-1, (h, -1)).permute(2, 0, 1, 3)
    logits = (q @ k.transpose(-1, -2) + (q.unsqueeze(2) * p).sum(-1)) / q.shape[-1] ** 0.5
    feats = (torch.softmax(logits, -1) @ v).transpose(0, 1).flatten(1)
    pos_attn = torch.softmax(logits.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf")), -1)
    return feats, (pos_attn.unsqueeze(-1) * vp).sum(-2).transpose(0, 1).flatten(1)


def test_factored_geometric_self_attention_is_the_written_formula():
    from perception3d.models.roitr import _RPEAttention

    torch.manual_seed(1)
    att = _RPEAttention(32, 4).double()
    x, emb = torch.randn(12, 32, dtype=torch.float64), torch.randn(12, 12, 32, dtype=torch.float64)
    got, expect = att(x, emb), _rpe_attention_as_written(att, x, emb)
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b)
    (got[0].square().sum() + got[1].square().sum()).backward()
    grads = [p.grad.clone() for p in att.parameters()]
    att.zero_grad()
    (expect[0].square().sum() + expect[1].square().sum()).backward()
    for g, p in zip(grads, att.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-9, rtol=1e-7)
    single = att(x[:1], emb[:1, :1])[1]  # one node: no other node describes its position
    torch.testing.assert_close(single, torch.zeros_like(single))


def test_encoder_levels_use_their_own_nearest_neighbours():
    """One kNN per level serves the level and the next level's down-sampling: same groups as separate queries."""
    from perception3d.models.roitr import TransitionDown, _knn_idx, _neighbourhood

    model = roitr_tiny(shape_features=True).double().eval()
    pts = _cloud(400, 3)
    normals = oriented_normals(pts)
    with torch.no_grad():
        levels = model.backbone.encode(pts, normals)
        for i, level in enumerate(levels):
            k = model.backbone.nsample[i]
            torch.testing.assert_close(level.group_idx, _knn_idx(level.points, level.points, k), rtol=0, atol=0)
            assert level.ppf.shape == (*level.group_idx.shape, 4)
        td = model.backbone.enc2[0]
        assert isinstance(td, TransitionDown) and td.stride > 1
        l1 = levels[0]
        group, ppf = _neighbourhood(l1.points, l1.normals, td.nsample + 3)  # rows of a larger kNN of the level
        with_reuse = td(l1.points, l1.normals, l1.feats, group, ppf)
        fresh = td(l1.points, l1.normals, l1.feats)
    torch.testing.assert_close(with_reuse[3], fresh[3], rtol=0, atol=0)  # same FPS centres
    torch.testing.assert_close(with_reuse[2], fresh[2])


def test_rotation_changes_a_non_invariant_feature():
    """Sanity for the test above: raw coordinates do change under the rotation used there."""
    src = _cloud(50, 0)
    rot = random_rotation(1, torch.Generator().manual_seed(1))[0].double()
    assert (src @ rot.T - src).abs().max() > 0.1


def test_match_shapes_and_training_gradients():
    torch.manual_seed(0)
    model = roitr_tiny()
    src = _cloud(512, 0).float() * 0.3
    tgt = src[:400].clone()
    out = model(src, oriented_normals(src), tgt, oriented_normals(tgt))
    assert out.src_point_feats.shape == (512, 16) and out.tgt_point_feats.shape == (400, 16)
    assert out.src_nodes.shape[0] == 512 // 64 and torch.isfinite(out.src_node_feats).all()
    m = model.match(out, gt_transform=torch.eye(4))
    assert m.gt_node_corr.shape[0] > 0
    k = model.point_limit
    assert m.log_scores.shape[1:] == (k + 1, k + 1)
    coarse = coarse_circle_loss(out.tgt_node_feats, out.src_node_feats, m.gt_node_corr, m.gt_node_overlaps)
    fine = fine_nll_loss(m.log_scores, m.tgt_patches.gather(tgt)[m.tgt_node_idx],
                         m.src_patches.gather(src)[m.src_node_idx], m.tgt_patches.knn_masks[m.tgt_node_idx],
                         m.src_patches.knn_masks[m.src_node_idx], torch.eye(4))
    (coarse + fine).backward()
    assert torch.isfinite(coarse) and torch.isfinite(fine)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_match_at_test_time_returns_correspondences():
    model = roitr_tiny().eval()
    src = _cloud(512, 0).float() * 0.3
    with torch.no_grad():
        m = model.match(model(src, oriented_normals(src), src, oriented_normals(src)))
    assert m.tgt_node_idx.numel() == min(model.num_coarse, (512 // 64) ** 2)
    assert m.tgt_corr.shape == m.src_corr.shape and m.tgt_corr.shape[1] == 3
    assert ((m.corr_scores > 0) & (m.corr_scores <= 1)).all()


def test_converter_maps_official_keys():
    ours = roitr_3dmatch().state_dict()
    official = {f"module.{k}": v for k, v in ours.items()}
    official["module.OT.alpha"] = torch.tensor(1.0)
    official["module.backbone.occ_proj.weight"] = torch.zeros(1, 256)
    official["module.backbone.occ_proj.bias"] = torch.zeros(1)
    official["module.backbone.enc1.0.transformer.embedding.embedding.div_term"] = torch.ones(32)
    official["module.backbone.global_transformer.embedding.embedding.div_term"] = torch.ones(128)
    converted, info = convert_official(official)
    assert info["kwargs"] == {"exclude_self": True}
    assert set(converted) == set(ours)
    roitr_3dmatch().load_state_dict(converted, strict=True)


def test_official_key_names():
    """A few key names read in the official repository (haoyu94/RoITr model/*.py) exist here with those names."""
    keys = set(roitr_3dmatch().state_dict())
    for k in ["backbone.enc1.0.transformer.in_proj.weight",
              "backbone.enc2.1.transformer.transformer.transformer.attention.proj_vp.weight",
              "backbone.enc2.1.bn2.weight",
              "backbone.dec4.0.linear1.0.weight", "backbone.dec3.0.linear2.1.weight",
              "backbone.global_transformer.embedding.proj_a.weight",
              "backbone.global_transformer.transformer.layers.0.attention.pos_linear.weight",
              "backbone.global_transformer.transformer.layers.0.pos_proj.expand.weight",
              "backbone.global_transformer.transformer.layers.1.attention.attention.proj_q.weight",
              "coarse_proj.weight", "fine_proj.weight", "optimal_transport.alpha"]:
        assert k in keys, k


def test_sinusoid_embedding_is_sin_and_cos_interleaved():
    """Written straight into interleaved slots: the values of stack([sin, cos], -1), bit for bit."""
    from perception3d.models.roitr import SinusoidalEmbedding

    emb = SinusoidalEmbedding(64)
    x = torch.rand(33, 17, 3, generator=torch.Generator().manual_seed(0)) * 12
    omegas = x.unsqueeze(-1) * emb.div_term
    assert torch.equal(emb(x), torch.stack([omegas.sin(), omegas.cos()], -1).flatten(-2))


@pytest.mark.parametrize("n", [1, 2, 40])
def test_geometric_embedding_by_row_blocks_is_bit_for_bit(n):
    """The embedding computed by blocks of node rows equals the one computed in a single block, exactly."""
    from perception3d.models.roitr import GeometricStructureEmbedding

    torch.manual_seed(0)
    geo = GeometricStructureEmbedding(32, 0.2, 15.0, 3)
    pts = torch.rand(n, 3) * 2
    with torch.no_grad():
        blocks = geo(pts)
        geo.block_rows = n + 1  # one block
        whole = geo(pts)
    assert blocks.shape == (n, n, 32) and torch.equal(blocks, whole)


@pytest.mark.parametrize("grad", [False, True])
def test_local_attention_all_centres_is_the_identity_gather(grad):
    """center_idx None (every point a centre, stride-1 levels) is x[arange], and the no-grad gather is x[idx]."""
    from perception3d.models.roitr import _LocalAttention

    torch.manual_seed(0)
    att, embedding = _LocalAttention(32, 4), torch.nn.Linear(4, 32)
    x, ppf = torch.randn(50, 32), torch.randn(50, 8, 4)
    group_idx = torch.randint(0, 50, (50, 8))
    with torch.set_grad_enabled(grad):
        got = att(x, None, group_idx, ppf, embedding)
        gathered = att(x, torch.arange(50), group_idx, ppf, embedding)
    with torch.enable_grad():
        reference = att(x, torch.arange(50), group_idx, ppf, embedding)  # advanced indexing (autograd on)
    assert torch.equal(got, gathered) and torch.equal(got, reference)
