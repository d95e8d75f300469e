"""With the CPU patch, spconv SubMConv3d on CPU matches a dense Conv3d, forward and backward, call after call."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("spconv")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the patch is for machines without a GPU")
@pytest.mark.parametrize("threads", [1, 2])
def test_submconv_on_cpu_matches_dense_conv_repeatedly(threads):
    import spconv.pytorch as spconv

    from perception3d._spconv_compat import patch_spconv_for_cpu

    assert patch_spconv_for_cpu()
    assert patch_spconv_for_cpu()  # idempotent
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        shape = (6, 7, 5)  # z, y, x
        # a fully occupied grid: submanifold conv then equals a dense conv with zero padding
        zyx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
        indices = torch.cat([torch.zeros(len(zyx), 1, dtype=torch.long), zyx], 1).int()
        conv = spconv.SubMConv3d(4, 3, kernel_size=3, padding=1, bias=True, algo=spconv.ConvAlgo.Native)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
            conv.bias.copy_(torch.randn(3, generator=g))
        # the same weights as a dense Conv3d; spconv stores them [out, kz, ky, kx, in]
        dense_w = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_()
        # several calls: unpatched spconv on 2 threads goes wrong from about the second call on
        for _ in range(6):
            conv.zero_grad()
            feats = torch.randn(len(zyx), 4, generator=g, requires_grad=True)
            out = conv(spconv.SparseConvTensor(feats, indices, list(shape), 1))
            target = torch.randn(out.features.shape, generator=g)
            (out.features * target).sum().backward()

            dense_in = feats.detach().T.reshape(1, 4, *shape).clone().requires_grad_()
            dense_w.grad = None
            dense_out = torch.nn.functional.conv3d(dense_in, dense_w, conv.bias.detach(), padding=1)
            torch.testing.assert_close(out.features.detach().T.reshape(1, 3, *shape), dense_out.detach(),
                                       rtol=1e-4, atol=1e-4)
            (dense_out * target.T.reshape(1, 3, *shape)).sum().backward()
            torch.testing.assert_close(feats.grad, dense_in.grad.reshape(4, -1).T, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(conv.weight.grad, dense_w.grad.permute(0, 2, 3, 4, 1), rtol=1e-4, atol=1e-4)
        assert torch.get_num_threads() == threads  # the patch restores the thread count
    finally:
        torch.set_num_threads(before)
