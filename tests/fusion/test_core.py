"""The fusion core: masks without NaN, views really attended across, any number of views, the resampler."""

from __future__ import annotations

import torch

from fusion.core import (CrossAttentionResampler, FrameHead, FusionCore, ModalityInput, SequenceHead,
                         TimeEmbedding, masked_attention)


def _core(**kw):
    return FusionCore(modalities={"video": 12, "audio": 6}, dim=32, depth=2, heads=4, mlp_dim=64, dropout=0.0,
                      **kw).eval()


def test_masked_attention_matches_reference_and_has_no_nan():
    q, k, v = torch.randn(3, 2, 5, 8), torch.randn(3, 2, 7, 8), torch.randn(3, 2, 7, 8)
    valid = torch.rand(3, 7) > 0.4
    valid[2] = False  # a row with no valid key at all
    out = masked_attention(q, k, v, valid)
    assert torch.isfinite(out).all()
    assert (out[2] == 0).all()
    for n in range(2):
        w = (q[n] @ k[n].transpose(-1, -2) / 8 ** 0.5).masked_fill(~valid[n], float("-inf")).softmax(-1)
        torch.testing.assert_close(out[n], w @ v[n], atol=1e-5, rtol=1e-5)


def test_core_shapes_masks_and_gradients():
    core = _core().train()
    b, t = 2, 6
    video = ModalityInput(torch.randn(b, 3, t, 12), torch.rand(b, 3, t) > 0.3)
    audio = ModalityInput(torch.randn(b, 3, t, 6), torch.zeros(b, 3, t, dtype=torch.bool))  # all missing
    times = torch.arange(t).float()[None].repeat(b, 1) * 0.4
    x, valid = core({"video": video, "audio": audio}, times)
    assert x.shape == (b, 6, t, 32) and valid.shape == (b, 6, t)
    frame, seq = FrameHead(32, 5)(x, valid), SequenceHead(32, 5)(x, valid)
    assert frame.shape == (b, t, 5) and seq.shape == (b, 5)
    assert torch.isfinite(frame).all() and torch.isfinite(seq).all()
    (frame.sum() + seq.sum()).backward()
    assert all(p.grad is not None for n, p in core.named_parameters() if "audio" not in n)


def test_invalid_rows_do_not_change_valid_outputs():
    core = _core()
    times = torch.arange(4).float()[None] * 0.5
    feats = torch.randn(1, 2, 4, 12)
    valid = torch.tensor([[[True] * 4, [False] * 4]])
    x1, _ = core({"video": ModalityInput(feats, valid)}, times)
    feats2 = feats.clone()
    feats2[:, 1] = torch.randn(4, 12) * 100  # garbage in the missing view
    x2, _ = core({"video": ModalityInput(feats2, valid)}, times)
    torch.testing.assert_close(x1[:, 0], x2[:, 0])


def test_cross_sensor_attention_mixes_views_not_batch():
    """The released MultiTSF attends across batch x time (batch_first bug); ours must attend across views only."""
    core = _core(max_views=0)
    times = torch.arange(4).float()[None].repeat(2, 1)
    feats = torch.randn(2, 3, 4, 12)
    x, _ = core({"video": ModalityInput(feats)}, times)
    other = feats.clone()
    other[1, 2] = torch.randn(4, 12)  # change view 2 of sample 1
    y, _ = core({"video": ModalityInput(other)}, times)
    torch.testing.assert_close(x[0], y[0])            # sample 0 untouched: no mixing across the batch
    assert (x[1, 0] - y[1, 0]).abs().max() > 1e-4     # view 0 of sample 1 sees view 2


def test_any_number_of_views_and_view_permutation_without_view_embedding():
    core = _core(max_views=0)
    times = torch.arange(5).float()[None]
    for v in (1, 2, 7):
        x, _ = core({"video": ModalityInput(torch.randn(1, v, 5, 12))}, times)
        assert x.shape == (1, v, 5, 32)
    feats = torch.randn(1, 4, 5, 12)
    perm = torch.tensor([2, 0, 3, 1])
    seq = SequenceHead(32, 3).eval()
    a = seq(*core({"video": ModalityInput(feats)}, times))
    b = seq(*core({"video": ModalityInput(feats[:, perm])}, times))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_time_embedding_depends_on_seconds_not_index():
    emb = TimeEmbedding(16)
    assert torch.allclose(emb(torch.tensor([1.5])), emb(torch.tensor([1.5])))
    assert not torch.allclose(emb(torch.tensor([1.5])), emb(torch.tensor([1.6])))


def test_resampler_attends_only_within_window():
    rs = CrossAttentionResampler(4, 16, 2, window=0.15).eval()
    tokens = torch.randn(1, 10, 4)
    token_times = torch.arange(10).float()[None] * 0.1          # 10 Hz stream
    grid = torch.tensor([[0.0, 0.4, 2.0]])                       # 2.0 s is outside the stream
    out, valid = rs(tokens, token_times, None, grid)
    assert valid.tolist() == [[True, True, False]]
    tokens2 = tokens.clone()
    tokens2[0, 9] = 50.0                                         # far from 0.0 and 0.4
    out2, _ = rs(tokens2, token_times, None, grid)
    torch.testing.assert_close(out[0, :2], out2[0, :2])
