"""Arrays that training and inference read from `.npz` / `.npy` files, checked before use.

`load_arrays(path, keys)` returns the named arrays of an `.npz` (or the one array of an `.npy`), never unpickled,
or raises one `FileProblem` naming the file and the key: missing or empty file, truncated or not an archive,
a missing key, a non-numeric dtype, NaN or Inf in a float array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from omnisense._errors import FileProblem


def load_arrays(path: str | Path, keys: Sequence[str], *, finite: bool = True) -> dict[str, np.ndarray]:
    """The arrays `keys` of the `.npz` at `path`, each numeric (and finite when `finite`)."""
    path = Path(path)
    if not path.is_file():
        raise FileProblem(path, "missing" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise FileProblem(path, "empty file (0 bytes)")
    out = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise FileProblem(path, "not an .npz archive")
            for key in keys:
                if key not in archive.files:
                    raise FileProblem(path, f"no array {key!r} (it holds {', '.join(archive.files) or 'nothing'})")
                out[key] = archive[key]
    except FileProblem:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise FileProblem(path, f"not a readable .npz archive ({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})") from None
    for key, arr in out.items():
        if arr.dtype.kind not in "fiub":
            raise FileProblem(path, f"array {key!r}: {arr.dtype} is not numeric")
        if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise FileProblem(path, f"array {key!r}: {int((~np.isfinite(arr)).sum())} values are NaN or infinite")
    return out
