"""Reader and numerics checks the corpus does not reach through the CLI: converted tensors of the wrong dtype or
non-finite, the eigen solvers on degenerate covariances, the clock checks of a recording manifest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnisense import _registry
from omnisense._errors import WeightsError


def identity(state):
    """A converter that keeps the keys as they are (the file already holds the variant's own names)."""
    return dict(state)


@pytest.fixture
def tiny_converter(monkeypatch):
    monkeypatch.setitem(_registry.CONVERTERS, "tiny-test", ("tests.fuzz.test_readers:identity", "audio_cnn_tiny",
                                                            "audio_classification"))
    from omnisense.models import build_model

    return build_model("audio_cnn_tiny").state_dict()


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.to(torch.int8) if t.is_floating_point() else t, "is int8"),
    (lambda t: torch.full_like(t, float("nan")) if t.is_floating_point() else t, "NaN or Inf"),
])
def test_convert_refuses_int8_and_nan_tensors(tiny_converter, tmp_path, damage, message):
    from safetensors.torch import save_file

    from omnisense.convert import convert

    src = tmp_path / "official.safetensors"
    save_file({k: damage(v).contiguous() for k, v in tiny_converter.items()}, src)
    with pytest.raises(WeightsError, match=message):
        convert("tiny-test", src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_accepts_the_same_tensors_whole(tiny_converter, tmp_path):
    from safetensors.torch import save_file

    from omnisense.convert import convert

    src = tmp_path / "official.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_converter.items()}, src)
    assert convert("tiny-test", src, tmp_path / "out.safetensors").ok


@pytest.mark.parametrize("points", [
    np.full((32, 3), 1e30), np.zeros((32, 3)), np.r_[np.zeros((31, 3)), [[1e30, 0, 0]]],
    np.random.default_rng(0).normal(size=(32, 3)) * 1e20,
], ids=["all-1e30", "all-zero", "one-1e30", "scale-1e20"])
def test_shape_features_and_normals_never_fail_on_degenerate_neighbourhoods(points):
    from perception3d.models.roitr import local_shape_features
    from perception3d.ops import estimate_normals

    x = torch.as_tensor(points, dtype=torch.float32)
    feats = local_shape_features(x, k=8)  # float32 covariances of 1e30 coordinates overflow to inf
    assert feats.shape == (32, 3) and torch.isfinite(feats).all()
    normals = estimate_normals(x.double(), k=8, backend="reference")
    assert normals.shape == (32, 3) and torch.isfinite(normals).all()


@pytest.mark.parametrize("clock, message", [
    ({"scale": 0}, "outside"), ({"scale": "fast"}, "not a finite number"), ({"scale": float("nan")}, "finite"),
    ({"offset": 1e7}, "offset"), ([1, 0], "must be an object"), ({"scale": 1.00005, "offset": -0.3}, None),
])
def test_clock_checks(clock, message, tmp_path):
    from fusion._errors import FileProblem
    from fusion.streams import _clock

    if message is None:
        assert _clock(clock, tmp_path, "cam1").scale == 1.00005
    else:
        with pytest.raises(FileProblem, match=message):
            _clock(clock, tmp_path, "cam1")
