"""GPU checks (marker `cuda`; skipped without a GPU). Not run in this project's CPU-only sessions yet."""

from __future__ import annotations

import pytest
import torch

from perception3d.kernels import dsvt, flatformer


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["flatformer", "dsvt-pillar", "dsvt-voxel"])
def test_cuda_matches_cpu_reference(name, make_coords, use_backend):
    build, grid = {
        "flatformer": (lambda: flatformer("tiny"), (64, 64, 1)),
        "dsvt-pillar": (lambda: dsvt("pillar_tiny"), (64, 64, 1)),
        "dsvt-voxel": (lambda: dsvt("voxel_tiny"), (64, 64, 8)),
    }[name]
    model = build().eval()
    coords = make_coords([120, 5, 40], grid=grid)
    feats = torch.randn(coords.shape[0], 32)
    use_backend(model, "reference")
    expect = model.double()(feats.double(), coords, 3)
    expect = expect[0] if isinstance(expect, tuple) else expect
    use_backend(model, "sdpa")
    model = model.float().cuda()
    got = model(feats.cuda(), coords.cuda(), 3)
    got = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(got.cpu().double(), expect, rtol=1e-3, atol=1e-3)
