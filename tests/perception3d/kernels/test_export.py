"""Deployment: both encoders export to ONNX (onnxruntime gives eager's output on another frame) and
compile with torch.compile (output equal to eager)."""

from __future__ import annotations

import pytest
import torch

from perception3d.kernels import dsvt, flatformer
from perception3d.kernels import ExportableEncoder, flatten_inputs

MODELS = {
    "flatformer": (lambda: flatformer("tiny"), (64, 64, 1)),
    "dsvt-pillar": (lambda: dsvt("pillar_tiny"), (64, 64, 1)),
    "dsvt-voxel": (lambda: dsvt("voxel_tiny"), (64, 64, 8)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_matches_eager_on_another_frame(name, make_coords, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    build, grid = MODELS[name]
    model = build().eval()
    coords = make_coords([150, 7], grid=grid)
    feats = torch.randn(coords.shape[0], 32)
    tensors, names = flatten_inputs(model, model.prepare(coords, 2))
    wrapper = ExportableEncoder(model).eval()
    all_names = ["feats"] + names
    dynamic = {n: {i: f"{n}_{i}" for i in range(t.ndim)} for n, t in zip(all_names, [feats] + tensors)}
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(wrapper, (feats, *tensors), str(path), input_names=all_names, output_names=["out"],
                      opset_version=17, dynamo=False, dynamic_axes=dynamic)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # a different frame: other sizes, a sample smaller than a group, three samples
    coords2 = make_coords([90, 40, 3], grid=grid, seed=5)
    feats2 = torch.randn(coords2.shape[0], 32)
    tensors2, _ = flatten_inputs(model, model.prepare(coords2, 3))
    with torch.no_grad():
        expect = wrapper(feats2, *tensors2)
    used = {i.name for i in session.get_inputs()}
    feed = {n: t.numpy() for n, t in zip(all_names, [feats2] + tensors2) if n in used}
    got = torch.from_numpy(session.run(None, feed)[0])
    assert got.shape == expect.shape
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_compile_matches_eager(name, make_coords):
    build, grid = MODELS[name]
    model = build().eval()
    torch._dynamo.reset()
    encode = torch.compile(model.encode, fullgraph=True, dynamic=True)
    for seed, sizes in ((0, [150, 7]), (5, [90, 40, 3])):  # two frames: the second reuses the graph
        coords = make_coords(sizes, grid=grid, seed=seed)
        feats = torch.randn(coords.shape[0], 32, requires_grad=True)
        inputs = model.prepare(coords, len(sizes))
        got = encode(feats, inputs)
        expect = model.encode(feats, inputs)
        torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-4)
        got.square().sum().backward()  # the compiled graph trains too
        assert feats.grad is not None and torch.isfinite(feats.grad).all()
    # the whole forward (index work included) compiles too, with graph breaks around the index work
    whole = torch.compile(model)
    out = whole(feats.detach(), coords, len(sizes))
    out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(out, expect.detach(), rtol=1e-4, atol=1e-4)
