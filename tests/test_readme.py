"""The README's Python API: every block runs, on the registry-packaged sample data, in at most three lines of use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _use_lines(block: str) -> list[str]:
    """The lines that do something: neither imports nor blank."""
    return [line for line in block.splitlines()
            if line.strip() and not line.startswith(("import ", "from "))]


def test_the_readme_has_the_api_blocks():
    blocks = _api_blocks()
    assert len(blocks) >= 7
    for needle in ("load_model", "register(", "detect_points(", "recognize(", "AudioClassifier(", "classify(",
                   "fuse_recording("):
        assert any(needle in block for block in blocks), needle


@pytest.mark.parametrize("index", range(len(_api_blocks())))
def test_readme_block_runs_in_three_lines(index, sample_data, capsys):
    block = _api_blocks()[index]
    assert len(_use_lines(block)) <= 3, block
    for source in re.findall(r'sample_data\("([a-z0-9-]+)"\)', block):
        sample_data(source)  # skips with a reason outside CI when a registry source cannot be fetched
    exec(compile(block, f"README.md Python API block {index}", "exec"), {"__name__": "readme"})
