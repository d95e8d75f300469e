"""The package layering, checked on every import statement (parsed with ast, never executed).

Floors, each importing only those below: `perception3d`, `video` -> `fusion` -> `omnisense`; within the
application, `omnisense.commands` and `omnisense.train` never import each other; `tools/` is never imported by
the packages. Imports inside functions count as much as those at module top. And `omnisense --help` never
imports torch (the parser imports every command and bench module, so none may import torch at top).
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (the files, as a folder under the repo) -> the modules they may not import (a name and everything under it)
RULES: dict[str, tuple[str, ...]] = {
    "perception3d": ("video", "fusion", "omnisense", "tools"),
    "video": ("perception3d", "fusion", "omnisense", "tools"),
    "fusion": ("omnisense", "tools"),
    "omnisense": ("tools",),
    "omnisense/commands": ("omnisense.train",),
    "omnisense/train": ("omnisense.commands",),
}

def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """Every module a file imports, as absolute dotted names with their line: `import a.b`, `from a import b`
    (both `a` and `a.b`, since b may be a module), relative imports resolved against the file's package, and
    `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module:
                found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}" if module else alias.name)
                      for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def offences(folder: str, forbidden: tuple[str, ...], root: Path = REPO) -> set[tuple[str, str, int]]:
    """(file, imported module, line) for each import in `root/folder/**.py` of a forbidden module."""
    found = set()
    for path in sorted((root / folder).rglob("*.py")):
        for line, name in imports(path, root):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.add((path.relative_to(root).as_posix(), name, line))
    return found


@pytest.mark.parametrize("folder", sorted(RULES))
def test_layering(folder):
    found = offences(folder, RULES[folder])
    lines = sorted(f"{file}:{line} imports {name}" for file, name, line in found)
    assert not lines, f"{folder} may not import {', '.join(RULES[folder])}:\n" + "\n".join(lines)


def test_the_checker_sees_an_offence(tmp_path):
    (tmp_path / "perception3d" / "ops").mkdir(parents=True)
    (tmp_path / "perception3d" / "__init__.py").write_text("")
    (tmp_path / "perception3d" / "ops" / "__init__.py").write_text("from .. import io\n")
    (tmp_path / "perception3d" / "ops" / "bad.py").write_text(
        "import os\n"
        "from omnisense.cli import main\n"
        "def f():\n"
        "    import video.io\n"
        "    from fusion import core\n"
        "    return importlib.import_module('tools.export')\n"
        "from ..io import read_points\n")
    found = offences("perception3d", RULES["perception3d"], root=tmp_path)
    names = {(name, line) for _, name, line in found}
    assert {("omnisense.cli", 2), ("video.io", 4), ("fusion", 5), ("tools.export", 6)} <= names
    assert (7, "perception3d.io") in imports(tmp_path / "perception3d" / "ops" / "bad.py", tmp_path)
    assert (1, "perception3d") in imports(tmp_path / "perception3d" / "ops" / "__init__.py", tmp_path)
    assert not any(name.startswith("perception3d") or name == "os" for _, name, _ in found)


@pytest.mark.parametrize("name", ["perception3d", "video", "fusion", "omnisense"])
def test_package_names_import_from_this_repo(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


# ---- `omnisense --help` stays light: no torch

_CHECK = "import sys; print('torch imported:', 'torch' in sys.modules)"
_RUN_HELP = ("import runpy, sys; sys.argv = ['omnisense'] + ARGS\n"
             "try:\n    runpy.run_module('omnisense', run_name='__main__', alter_sys=True)\n"
             "except SystemExit:\n    pass\n" + _CHECK)


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["bench", "--help"], ["register", "--help"]], ids=" ".join)
def test_omnisense_help_does_not_import_torch(args):
    # runpy runs the package's __main__ exactly as `python -m omnisense ARGS` does, then the check runs
    proc = _python(_RUN_HELP.replace("ARGS", repr(args)))
    assert proc.returncode == 0, proc.stderr
    assert "usage: omnisense" in proc.stdout
    assert proc.stdout.rstrip().endswith("torch imported: False"), proc.stdout[-500:]


def test_building_the_parser_does_not_import_torch():
    proc = _python("import omnisense.cli as c; c.build_parser()\n" + _CHECK)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "torch imported: False"
