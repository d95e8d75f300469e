"""The package's one atomic writer: an output appears whole or not at all, with the mode `open()` would give it.

Every file fusion (and the omnisense application, through `omnisense._io`) writes goes through `atomic_write`
or its bytes/text/JSON helpers. The same code lives in `video/_io.py`, `perception3d/_io.py` and `fusion/_io.py`:
the packages may not import each other, and tests/test_atomic_writers.py checks the copies stay equal.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def _default_mode() -> int:
    """0o666 less the process umask: the mode `open()` gives a new file (mkstemp alone makes 0600)."""
    try:  # Linux >= 4.7 reports the umask without changing it (os.umask is a race between threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    The temporary file keeps the target's suffix (writers that pick a format by extension still work) and is
    removed if `write` or the rename fails, so `path` is the new file whole, or untouched. The new file gets
    0o666 less the umask (0644 under the usual 022), like a file made by `open()`.

    Args:
        path: the output; missing parent folders are made.
        write: writes the whole content to the path it is given (an existing empty file).

    Returns:
        `path`, as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically; Paths, arrays and tensors become strings and lists."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
