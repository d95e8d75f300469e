"""PointBatch validation and the backend switch."""

from __future__ import annotations

import pytest
import torch

from perception3d import PointCloudValueError
from perception3d.ops import PointBatch, knn, offsets_from_sizes
from perception3d.ops import _backend


def test_point_batch_round_trip():
    coords = [torch.rand(3, 3), torch.rand(0, 3), torch.rand(2, 3)]
    batch = PointBatch.from_list(coords)
    assert batch.batch_size == 3
    assert batch.sizes.tolist() == [3, 0, 2]
    assert batch.batch_index.tolist() == [0, 0, 0, 2, 2]
    parts = batch.split()
    assert [c.shape[0] for c, _ in parts] == [3, 0, 2]
    assert torch.equal(parts[2][0], coords[2]) and parts[2][1].shape == (2, 1)


@pytest.mark.parametrize("bad", ["nan-coord", "offsets-not-zero-first", "offsets-decreasing", "offsets-total",
                                 "feat-rows", "coord-shape"])
def test_point_batch_rejects(bad):
    coord, feat, offsets = torch.rand(5, 3), torch.rand(5, 2), offsets_from_sizes([2, 3])
    if bad == "nan-coord":
        coord[1, 2] = float("inf")
    elif bad == "offsets-not-zero-first":
        offsets = torch.tensor([1, 2, 5])
    elif bad == "offsets-decreasing":
        offsets = torch.tensor([0, 4, 3, 5])
    elif bad == "offsets-total":
        offsets = torch.tensor([0, 2, 4])
    elif bad == "feat-rows":
        feat = torch.rand(4, 2)
    else:
        coord = torch.rand(5, 2)
    with pytest.raises(PointCloudValueError):
        PointBatch(coord, feat, offsets)


def test_point_batch_is_frozen():
    batch = PointBatch.from_list([torch.rand(2, 3)])
    with pytest.raises(AttributeError):
        batch.coord = torch.rand(2, 3)


def test_environment_forces_the_reference(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(_backend.ENV_VAR, "reference")
    assert _backend.choose("knn", None, cpu, cpu=("scipy",), gpu=(), available=("reference", "scipy")) == "reference"
    monkeypatch.setenv(_backend.ENV_VAR, "auto")
    assert _backend.choose("knn", None, cpu, cpu=("scipy",), gpu=(), available=("reference", "scipy")) == "scipy"
    # an explicit argument wins over the environment
    monkeypatch.setenv(_backend.ENV_VAR, "reference")
    assert _backend.choose("knn", "scipy", cpu, cpu=("scipy",), gpu=(), available=("reference", "scipy")) == "scipy"


def test_bad_backend_names_are_errors(monkeypatch):
    monkeypatch.setenv(_backend.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="OMNISENSE_OPS_BACKEND"):
        knn(torch.rand(1, 2, 3), torch.rand(1, 4, 3), 1)
    monkeypatch.delenv(_backend.ENV_VAR)
    with pytest.raises(ValueError, match="unknown backend"):
        knn(torch.rand(1, 2, 3), torch.rand(1, 4, 3), 1, backend="cuda-magic")
    with pytest.raises(ValueError, match="cannot run"):
        _backend.choose("knn", "scipy", torch.device("cuda"), cpu=(), gpu=(), available=("reference", "scipy"))
