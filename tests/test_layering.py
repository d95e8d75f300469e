"""The package layering: perception3d and video are leaves; video and fusion import from this repo."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"perception3d": {"fusion", "video"}, "video": {"fusion", "perception3d"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_leaf_packages_do_not_import_fusion_or_each_other(package):
    offences = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                offences.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offences, "\n".join(offences)


def test_layering_check_sees_an_offence(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom omnisense.cli import main\n")
    assert (2, "omnisense.cli") in _imports(bad)


@pytest.mark.parametrize("name", ["perception3d", "video", "fusion"])
def test_generic_package_names_import_from_this_repo(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name
