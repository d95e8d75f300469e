"""Weights: safetensors plus a JSON of metadata, verified on load; foreign checkpoints read without unpickling code.

A weights pair is `<name>.safetensors` and `<name>.json`. The JSON holds what a user needs to use the
weights: the variant, categories, input spec, the config that produced them, metrics, and the sha256 of
the safetensors file, checked on every load.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from fusion._errors import WeightsError
from fusion._io import write_bytes_atomic, write_json_atomic

SHIPPED_DIR = Path(__file__).parent / "shipped"

# Containers official checkpoints wrap their weights in (PySlowFast, mmaction2/mmdet3d, OpenPCDet, timm, Lightning).
_WRAPPER_KEYS = ("state_dict", "model_state", "model", "module", "net", "state")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_weights(path: str | Path, state_dict: Mapping[str, Tensor], meta: Mapping[str, Any] | None = None,
                 *, overwrite: bool = False) -> Path:
    """Write `state_dict` to `path` (.safetensors) and its metadata to the `.json` beside it, atomically.

    Args:
        path: target file; the suffix is forced to `.safetensors`.
        state_dict: name -> tensor; tensors are made contiguous and moved to the CPU.
        meta: JSON-serialisable metadata (variant, categories, input spec, config, metrics, ...).
        overwrite: refuse to replace an existing file unless set.
    """
    from safetensors.torch import save

    path = Path(path).with_suffix(".safetensors")
    if path.exists() and not overwrite:
        raise WeightsError(path, "exists already; pass overwrite=True (or --overwrite) to replace it")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    data = save(tensors)
    write_bytes_atomic(path, data)
    record = dict(meta or {})
    record.update({
        "format": "omnisense-weights/1",
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "num_tensors": len(tensors),
        "num_parameters": int(sum(t.numel() for t in tensors.values())),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    write_json_atomic(_meta_path(path), record)
    return path


def load_weights(path: str | Path, *, verify: bool = True) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a weights pair; checks the sha256 recorded in its JSON. Returns (state_dict, meta)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise WeightsError(path, "no such weights file")
    if path.suffix != ".safetensors":
        raise WeightsError(path, "omnisense weights are .safetensors files; convert foreign checkpoints with `omnisense convert`")
    meta: dict[str, Any] = {}
    meta_file = _meta_path(path)
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise WeightsError(meta_file, f"metadata is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if verify and meta.get("sha256") and sha256_file(path) != meta["sha256"]:
            raise WeightsError(path, f"sha256 does not match {meta_file.name}: the file is corrupt or was changed")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(path, f"not a readable safetensors file ({exc})") from None
    return state, meta


def read_foreign_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint into a flat name -> tensor dict, never running code from the file.

    `.safetensors` is read directly; `.pth/.pt/.ckpt/.bin/.pkl` go through `torch.load(weights_only=True)`,
    which refuses pickled objects other than tensors and plain containers. Nested wrappers
    ('state_dict', 'model_state', 'model', 'module', ...) are unwrapped.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(path, "no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(path, f"refused: holds pickled objects beyond tensors, which are not loaded for safety ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(path, f"not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    return flatten_state(obj, source=path)


def flatten_state(obj: Any, *, source: Path | None = None) -> dict[str, Tensor]:
    """Unwrap the usual checkpoint containers down to the dict of tensors."""
    seen = 0
    while isinstance(obj, Mapping) and seen < 4:
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors and len(tensors) >= len(obj) / 2:
            return {str(k): v for k, v in tensors.items()}
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj, seen = inner, seen + 1
    raise WeightsError(source or Path("<checkpoint>"), "found no state dict of tensors inside the checkpoint")


@dataclass
class KeyReport:
    """How a state dict fits a model: every missing, unexpected and mis-shaped tensor by name."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    def summary(self) -> str:
        lines = [f"{self.matched} tensors matched"]
        if self.missing:
            lines.append(f"{len(self.missing)} missing: " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} unexpected: " + ", ".join(self.unexpected))
        for name, got, want in self.mis_shaped:
            lines.append(f"mis-shaped {name}: checkpoint {list(got)}, model {list(want)}")
        return "\n".join(lines)


def compare_state(model_state: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> KeyReport:
    report = KeyReport()
    for name, want in model_state.items():
        if name not in state:
            report.missing.append(name)
        elif tuple(state[name].shape) != tuple(want.shape):
            report.mis_shaped.append((name, tuple(state[name].shape), tuple(want.shape)))
        else:
            report.matched += 1
    report.unexpected = [k for k in state if k not in model_state]
    return report


def load_model_weights(model: nn.Module, source: str | Path | Mapping[str, Tensor], *, strict: bool = True) -> KeyReport:
    """Load weights into `model`, reporting every missing, unexpected or mis-shaped tensor by name.

    With `strict`, any mismatch raises WeightsError listing them all; without, the matching tensors load.
    """
    path = Path(source) if isinstance(source, (str, Path)) else Path("<state dict>")
    state = load_weights(source)[0] if isinstance(source, (str, Path)) else dict(source)
    # Buffers that are not saved by design (non-persistent) are not in state_dict(), so they never show up.
    own = model.state_dict()
    report = compare_state(own, state)
    if strict and not report.ok:
        raise WeightsError(path, "does not fit the model:\n" + report.summary())
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fitting, strict=False)
    return report


def checkpoint_state(ckpt_path: str | Path, *, prefix: str = "model.") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of a Lightning checkpoint's `prefix` sub-module (prefix removed) and the whole checkpoint.

    Read with `weights_only=True`; a missing file, a file holding more than tensors, or no tensor under the
    prefix is a WeightsError naming the file.
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.exists():
        raise WeightsError(ckpt_path, "no such checkpoint file")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(ckpt_path, f"refused: holds objects beyond tensors ({str(exc).splitlines()[0]})") from None
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise WeightsError(ckpt_path, f"no tensors under the prefix {prefix!r}")
    return state, ckpt


def export_checkpoint(ckpt_path: str | Path, out_path: str | Path, *, prefix: str = "model.",
                      meta: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Turn a Lightning checkpoint of an omnisense task into a weights pair of its `model` sub-module.

    The checkpoint is read with `weights_only=True`; the resolved config saved beside it (config.yaml in the
    run folder) is copied into the metadata when present.
    """
    import yaml

    ckpt_path = Path(ckpt_path)
    state, ckpt = checkpoint_state(ckpt_path, prefix=prefix)
    record = dict(meta or {})
    record.setdefault("trained_steps", int(ckpt.get("global_step", 0)))
    record.setdefault("trained_epochs", int(ckpt.get("epoch", 0)))
    for candidate in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if candidate.exists() and "config" not in record:
            record["config"] = yaml.safe_load(candidate.read_text())
    return save_weights(out_path, state, record, overwrite=overwrite)


def shipped_weights(name: str) -> Path:
    """Path of a weights file shipped with omnisense (fusion/shipped/<name>.safetensors)."""
    path = SHIPPED_DIR / f"{name}.safetensors"
    if not path.exists():
        available = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
        raise WeightsError(path, f"no shipped weights named {name!r}; shipped: {', '.join(available) or 'none yet'}")
    return path


def list_shipped() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        meta_file = _meta_path(path)
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        variant = meta.get("variant") or (meta.get("model") or {}).get("class_path", "").rpartition(".")[2] or None
        rows.append({"name": path.stem, "variant": variant, "size_mb": round(path.stat().st_size / 1e6, 2),
                     "metrics": meta.get("metrics", {})})
    return rows
