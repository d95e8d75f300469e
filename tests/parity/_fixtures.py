"""Reading the official-output fixtures of tests/fixtures/parity/<family>/ (made by tools/parity/<family>.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
ATOL = RTOL = 1e-4


def load(family: str, name: str = "fixture.safetensors") -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """`({"official": state, "input": {...}, "output": {...}, ...}, metadata)` of one fixture file."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    with safe_open(str(ROOT / family / name), framework="pt") as f:
        meta = f.metadata() or {}
        for key in f.keys():
            group, _, rest = key.partition(".")
            groups.setdefault(group, {})[rest] = f.get_tensor(key)
    return groups, meta


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
