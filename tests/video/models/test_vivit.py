from __future__ import annotations

import pytest
import timm
import torch

from video.models.vivit import SpatialFeatureCache, vivit_base_fe_k400, vivit_tiny, vivit_tiny_frozen


def test_base_fe_layout():
    m = vivit_base_fe_k400(spatial_depth=1, temporal_depth=1)
    with torch.device("meta"):
        full = vivit_base_fe_k400()
    assert len(full.spatial_blocks) == 12 and len(full.temporal_blocks) == 4
    assert m.patch_embed.proj.kernel_size == (2, 16, 16)
    assert m.spatial_pos.shape == (1, 1 + 196, 768) and m.temporal_pos.shape == (1, 1 + 16, 768)
    assert m.head.weight.abs().sum() == 0  # scenic: zero-initialised output projection


def test_spatial_weights_are_shared_across_time():
    # the same frame at two time steps gives the same spatial CLS
    m = vivit_tiny(num_classes=3).eval()
    frame = torch.randn(1, 3, 2, 64, 64)
    video = torch.cat([frame, torch.randn(1, 3, 4, 64, 64), frame], dim=2)
    with torch.no_grad():
        tokens = m.extract_spatial(video)
    torch.testing.assert_close(tokens[:, 0], tokens[:, 3])


def test_frozen_spatial_gets_no_gradient_and_keeps_no_graph():
    m = vivit_tiny_frozen(num_classes=3).train()
    torch.nn.init.normal_(m.head.weight, std=0.1)
    spatial = m.extract_spatial(torch.randn(2, 3, 8, 64, 64))
    assert not spatial.requires_grad
    m.forward_cached(spatial).sum().backward()
    assert all(p.grad is None for p in m.spatial_parameters())
    assert m.adapter.up.weight.grad is not None and m.temporal_blocks[0].attn.qkv.weight.grad is not None
    assert not m.spatial_blocks[0].training and m.temporal_blocks[0].training


def test_adapter_starts_as_identity_and_temporal_starts_from_spatial():
    m = vivit_tiny_frozen(num_classes=3)
    tokens = torch.randn(5, 17, 96)
    torch.testing.assert_close(m.adapter(tokens), tokens[:, 0])
    torch.testing.assert_close(m.temporal_blocks[-1].mlp.fc1.weight, m.spatial_blocks[-1].mlp.fc1.weight)


def test_cached_features_give_the_same_logits(tmp_path):
    m = vivit_tiny_frozen(num_classes=3, img_size=32).eval()
    torch.nn.init.normal_(m.head.weight, std=0.1)
    video = torch.randn(2, 3, 8, 32, 32)
    cache = SpatialFeatureCache(tmp_path)
    with torch.no_grad():
        direct = m(video)
        first = m.forward_cached(cache.features(m, ["a", "b"], video))
        again = SpatialFeatureCache(tmp_path).features(m, ["a", "b"], torch.zeros_like(video))  # from disk
        cached = m.forward_cached(again)
    torch.testing.assert_close(first, direct, rtol=1e-2, atol=1e-3)  # float16 storage
    torch.testing.assert_close(cached, first)


def test_load_image_vit_from_timm():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    m = vivit_tiny(num_classes=3, dim=192, num_heads=3, spatial_depth=12, patch_size=16, img_size=64,
                   init_temporal_from_spatial=True)
    unused = m.load_image_vit(vit.state_dict())
    assert not [k for k in unused if not k.startswith("head")]
    torch.testing.assert_close(m.spatial_blocks[3].attn.qkv.weight, vit.blocks[3].attn.qkv.weight)
    torch.testing.assert_close(m.temporal_blocks[0].attn.qkv.weight, vit.blocks[10].attn.qkv.weight)
    w = m.patch_embed.proj.weight
    assert w[:, :, 0].abs().sum() == 0 and torch.equal(w[:, :, 1], vit.patch_embed.proj.weight)
    assert m.spatial_pos.shape == (1, 17, 192)


def test_load_image_vit_refuses_a_vit_that_does_not_fit():
    from timm.models.vision_transformer import VisionTransformer

    m = vivit_tiny(num_classes=3, img_size=32, patch_size=4)
    wide = VisionTransformer(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=2, num_classes=0)
    with pytest.raises(ValueError, match="do not fit.*spatial_cls"):
        m.load_image_vit(wide.state_dict())
    shallow = VisionTransformer(img_size=32, patch_size=4, embed_dim=96, depth=2, num_heads=3, num_classes=0)
    with pytest.raises(ValueError, match="lacks spatial-encoder tensors.*spatial_blocks.2"):
        m.load_image_vit(shallow.state_dict())
