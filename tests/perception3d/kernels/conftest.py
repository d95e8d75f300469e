"""Fixtures for the kernel tests: random voxel coordinates with chosen per-sample counts."""

from __future__ import annotations

import pytest
import torch

from perception3d.kernels._attention import GroupAttention


def random_coords(sizes: list[int], *, grid: tuple[int, int, int] = (64, 64, 1), seed: int = 0) -> torch.Tensor:
    """LongTensor[M, 4] (batch, z, y, x): sizes[b] distinct random cells of an (nx, ny, nz) grid for sample b."""
    nx, ny, nz = grid
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(sizes):
        flat = torch.randperm(nx * ny * nz, generator=gen)[:n]
        z, rest = flat // (nx * ny), flat % (nx * ny)
        rows.append(torch.stack([torch.full((n,), b), z, rest // nx, rest % nx], dim=1))
    return torch.cat(rows) if rows else torch.zeros(0, 4, dtype=torch.long)


def set_backend(model: torch.nn.Module, backend: str) -> None:
    for module in model.modules():
        if isinstance(module, GroupAttention):
            module.backend = backend


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny ops; on a shared 2-core machine intra-op threads only add contention
    (measured: 84 tests in 5 s with one thread, over 2 min with two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_coords():
    return random_coords


@pytest.fixture
def use_backend():
    return set_backend
