"""Weights: safetensors plus one typed metadata record (`WeightsMeta`), verified on load; foreign checkpoints read
without unpickling code.

A weights pair is `<name>.safetensors` and `<name>.json`. The JSON is a `WeightsMeta`: how to build the model, its
`classes`, its `input` spec (the preprocessing, `meta.transforms()`), metrics, licence and source, the recipe and
config that produced it, and the sha256 of the safetensors file, checked on every load.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from omnisense._errors import OmnisenseError, WeightsError
from omnisense._io import write_bytes_atomic, write_json_atomic

SHIPPED_DIR = Path(__file__).parent / "shipped"
FORMAT = "omnisense-weights/2"

# Containers official checkpoints wrap their weights in (PySlowFast, mmaction2/mmdet3d, OpenPCDet, timm, Lightning).
_WRAPPER_KEYS = ("state_dict", "model_state", "model", "module", "net", "state")

# task -> the input spec class (a frozen dataclass with `from_dict`) that the task's library function takes.
# Training writes the same class into the metadata, so training and inference cannot prepare inputs differently.
TASKS: dict[str, str] = {
    "registration": "perception3d.registration.inference:RegistrationSpec",
    "detection": "perception3d.detection.inference:ScanSpec",
    "classification": "perception3d.classification.inference:CloudSpec",
    "part_segmentation": "perception3d.classification.inference:CloudSpec",
    "recognition": "video.recognition.inference:InputSpec",
    "audio_classification": "video.audio.inference:AudioSpec",
    "fusion": "fusion.inference:FusionSpec",
}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


@dataclass
class WeightsMeta:
    """What a weights file is and how to use it; one name per concept.

    Attributes:
        task: one of `TASKS` (which library function runs the model, which input spec it takes).
        model: how to build the model: `{"variant": NAME, "kwargs": {...}}` (a row of `omnisense.models.VARIANTS`)
            or `{"class_path": "package.module.Class", "init_args": {...}}` (classes of perception3d, video, fusion).
        classes: the output classes in the model's order (for part segmentation: the object categories).
        input: the input spec, the keyword arguments of the task's spec class (`transforms()` builds it).
        metrics: figures measured with these weights, by name.
        licence: the weights' licence.
        source: where they come from: `{"dataset": ...}` when trained here, `{"checkpoint", "sha256", "converter"}`
            when converted from an official checkpoint.
        recipe: the command or config that reproduces them.
        config: the resolved training config, when trained through `omnisense fit`.
        notes: anything else worth keeping (training history, caveats); code never reads it.
        vocabulary: what the classes are, in a few words ("procedural shapes"); classifiers state it in their output.
        rejection: for classifiers, the calibrated open-set rule: `{"score": "max_softmax" | "energy", "threshold",
            "calibration": {...}}` (`video.rejection.Rejection`); empty when never calibrated.
        name, format, file, sha256, num_tensors, num_parameters, created: the file's facts, written by `save_weights`.
    """

    task: str
    model: dict[str, Any]
    classes: list[str] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    licence: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    recipe: str = ""
    config: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    vocabulary: str = ""
    rejection: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    format: str = FORMAT
    file: str = ""
    sha256: str = ""
    num_tensors: int = 0
    num_parameters: int = 0
    created: str = ""
    path: Path | None = field(default=None, compare=False, repr=False)  # where it was read from; not written

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise OmnisenseError(f"unknown task {self.task!r}; tasks: {', '.join(TASKS)}")
        model = self.model
        by_variant = isinstance(model, dict) and isinstance(model.get("variant"), str)
        by_class = isinstance(model, dict) and isinstance(model.get("class_path"), str)
        if not (by_variant or by_class):
            raise OmnisenseError("'model' must name a variant ({'variant': ..., 'kwargs': {...}}) or a class "
                                 "({'class_path': ..., 'init_args': {...}})")

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, path: Path | None = None) -> "WeightsMeta":
        """Read a metadata record; unknown keys, a missing task or model, and old formats are errors naming `path`."""
        where = path or Path("<metadata>")
        if not isinstance(record, Mapping):
            raise WeightsError(where, "metadata is not a JSON object")
        if record.get("format") != FORMAT:
            raise WeightsError(where, f"metadata format {record.get('format')!r} is not {FORMAT!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"path"}
        unknown = sorted(set(record) - names)
        if unknown:
            raise WeightsError(where, f"unknown metadata key(s): {', '.join(unknown)}")
        for key in ("task", "model"):
            if key not in record:
                raise WeightsError(where, f"metadata has no {key!r}")
        try:
            return cls(**dict(record), path=path)
        except (OmnisenseError, TypeError) as err:
            raise WeightsError(where, str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}

    def describe_model(self) -> str:
        return self.model.get("variant") or self.model["class_path"]

    def build(self) -> nn.Module:
        """The model these weights belong to, freshly initialised."""
        from omnisense.models import build_model, instantiate

        if "variant" in self.model:
            return build_model(self.model["variant"], **self.model.get("kwargs", {}))
        return instantiate(self.model)

    def transforms(self) -> Any:
        """The input spec of this task, built from `input`: the preprocessing the weights were trained with."""
        module, _, name = TASKS[self.task].partition(":")
        spec_class = getattr(importlib.import_module(module), name)
        try:
            return spec_class.from_dict(self.input)
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(self.path or Path("<metadata>"), f"its input spec does not fit {name}: {err}") from None


def save_weights(path: str | Path, state_dict: Mapping[str, Tensor], meta: WeightsMeta, *,
                 overwrite: bool = False) -> Path:
    """Write `state_dict` to `path` (.safetensors) and `meta` to the `.json` beside it, atomically.

    The file facts of `meta` (name, format, file, sha256, tensor and parameter counts, created) are filled in.
    Refuses to replace an existing file unless `overwrite`.
    """
    from safetensors.torch import save

    path = Path(path).with_suffix(".safetensors")
    if path.exists() and not overwrite:
        raise WeightsError(path, "exists already; pass overwrite=True (or --overwrite) to replace it")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    data = save(tensors)
    record = dataclasses.replace(
        meta, name=path.stem, format=FORMAT, file=path.name, sha256=hashlib.sha256(data).hexdigest(),
        num_tensors=len(tensors), num_parameters=int(sum(t.numel() for t in tensors.values())),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), path=path)
    write_bytes_atomic(path, data)
    write_json_atomic(_meta_path(path), record.to_dict())
    return path


def update_meta(name_or_path: str | Path, **changes: Any) -> WeightsMeta:
    """Rewrite the metadata of an existing weights pair with `changes` (say `rejection=`), tensors untouched.

    The file's sha256 is checked first, and the file facts (name, sha256, counts, created) cannot be changed here.
    """
    facts = {"name", "format", "file", "sha256", "num_tensors", "num_parameters", "created", "path"}
    bad = sorted(set(changes) & facts | set(changes) - {f.name for f in dataclasses.fields(WeightsMeta)})
    if bad:
        raise OmnisenseError(f"cannot change {', '.join(bad)} with update_meta")
    meta = read_meta(name_or_path)
    if sha256_file(meta.path) != meta.sha256:
        raise WeightsError(meta.path, f"sha256 does not match {_meta_path(meta.path).name}: not updating it")
    meta = dataclasses.replace(meta, **changes)
    write_json_atomic(_meta_path(meta.path), meta.to_dict())
    return meta


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped name ("roitr_small_cgal") or a path to a `.safetensors` file -> the file's path."""
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and not path.exists() and "/" not in name_or_path and not path.suffix:
        return shipped_weights(name_or_path)
    return path


def read_meta(name_or_path: str | Path) -> WeightsMeta:
    """The metadata of a weights file (or shipped name), without reading the tensors."""
    path = resolve_weights(name_or_path)
    meta_file = _meta_path(path)
    if not path.exists():
        raise WeightsError(path, "no such weights file")
    if path.suffix != ".safetensors":
        raise WeightsError(path, "omnisense weights are .safetensors files; convert foreign checkpoints with "
                           "`omnisense convert`")
    if not meta_file.exists():
        raise WeightsError(path, f"no metadata beside it ({meta_file.name}): the model it belongs to is unknown")
    try:
        record = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(meta_file, f"metadata is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    meta = WeightsMeta.from_dict(record, path=meta_file)
    meta.path = path
    return meta


def read_weights(name_or_path: str | Path, *, verify: bool = True) -> tuple[dict[str, Tensor], WeightsMeta]:
    """Read a weights pair (or shipped name); checks the sha256 recorded in its JSON. Returns (state_dict, meta).

    The file is read once: its bytes are hashed and then parsed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    meta = read_meta(name_or_path)
    path = meta.path
    data = path.read_bytes()
    if verify and hashlib.sha256(data).hexdigest() != meta.sha256:
        raise WeightsError(path, f"sha256 does not match {_meta_path(path).name}: the file is corrupt or was changed")
    try:
        return load(data), meta
    except (SafetensorError, ValueError) as exc:
        raise WeightsError(path, f"not a readable safetensors file ({exc})") from None


def read_foreign_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint into a flat name -> tensor dict, never running code from the file.

    `.safetensors` is read directly (its header checked against the file's length); `.pth/.pt/.ckpt/.bin/.pkl` go
    through `torch.load(weights_only=True)`, which refuses pickled objects other than tensors and plain containers.
    Nested wrappers ('state_dict', 'model_state', 'model', 'module', ...) are unwrapped. A floating tensor holding
    NaN or Inf is refused.
    """
    path = _existing_file(path, "checkpoint")
    if path.suffix == ".safetensors" or _content_kind(path) == "safetensors":
        state = read_safetensors(path)
    else:
        state = flatten_state(safe_torch_load(path), source=path)
    check_finite(state, path)
    return state


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise WeightsError(path, f"no such {what} file")
    if not path.is_file():
        raise WeightsError(path, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise WeightsError(path, "empty file (0 bytes)")
    return path


def _content_kind(path: Path) -> str:
    """'torch-zip', 'pickle', 'safetensors' or a short description of what else the file holds."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    for magic, what in ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"\x93NUMPY", "a NumPy array"),
                        (b"ply", "a PLY file"), (b"RIFF", "a RIFF file")):
        if head.startswith(magic):
            return what
    return "unknown bytes"


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """A safetensors file, its header checked first: the declared tensors must lie inside the file (a truncated
    file names the first tensor it cuts), and the header must be a JSON object."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 0 or n > size - 8:
            raise WeightsError(path, f"not a readable weights file: truncated or not safetensors (the header "
                                     f"declares {max(n, 0)} bytes, the file holds {max(size - 8, 0)} after the length)")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeightsError(path, "not a readable weights file: its safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise WeightsError(path, "not a readable weights file: its safetensors header is not a JSON object")
    body = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1] if isinstance(info, dict) else None
        if not isinstance(end, int) or end > body:
            raise WeightsError(path, f"truncated safetensors: tensor {name!r} ends at byte {end} of the data, the "
                                     f"file holds {body}")
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightsError(path, f"not a readable weights file ({str(exc).splitlines()[0][:100]})") from None


def safe_torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)` with every failure one WeightsError naming the file (never advising to
    unpickle: a file that holds more than tensors is refused, full stop)."""
    import zipfile

    kind = _content_kind(path)
    if kind == "safetensors":
        raise WeightsError(path, "is a safetensors weights file, not a PyTorch checkpoint")
    if kind not in ("torch-zip", "pickle"):
        raise WeightsError(path, f"not a readable PyTorch checkpoint (content: {kind})")
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(path, "refused: it holds pickled Python objects beyond tensors and plain containers, "
                                 "which are never unpickled here") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise WeightsError(path, f"damaged or truncated PyTorch checkpoint ({first})") from None


def check_finite(state: Mapping[str, Tensor], path: Path) -> None:
    """Refuse floating tensors holding NaN or Inf, naming the first."""
    for name, tensor in state.items():
        if isinstance(tensor, Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(path, f"tensor {name!r} holds NaN or Inf")


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


def load_model_weights(model: nn.Module, state: Mapping[str, Tensor], *, strict: bool = True,
                       source: str | Path = "<state dict>") -> KeyReport:
    """Load `state` into `model`, reporting every missing, unexpected or mis-shaped tensor by name.

    With `strict`, any mismatch raises WeightsError naming `source` and listing them all; without, the matching
    tensors load and the report says what did not.
    """
    # Buffers that are not saved by design (non-persistent) are not in state_dict(), so they never show up.
    own = model.state_dict()
    report = compare_state(own, state)
    if strict and not report.ok:
        raise WeightsError(Path(source), "does not fit the model:\n" + report.summary())
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fitting, strict=False)
    return report


def checkpoint_state(ckpt_path: str | Path, *, prefix: str = "model.") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of a Lightning checkpoint's `prefix` sub-module (prefix removed) and the whole checkpoint.

    Read with `weights_only=True`; a missing file, a file holding more than tensors, or no tensor under the
    prefix is a WeightsError naming the file.
    """
    ckpt_path = Path(ckpt_path)
    ckpt = read_training_checkpoint(ckpt_path, require=("state_dict",))
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise WeightsError(ckpt_path, f"no tensors under the prefix {prefix!r}")
    return state, ckpt


def read_training_checkpoint(path: str | Path, *, require: tuple[str, ...] = ("state_dict", "global_step", "epoch")
                             ) -> dict[str, Any]:
    """A Lightning training checkpoint, read with `weights_only=True` and checked: a dict with a `state_dict` of
    tensors (all finite) and the loop state (`global_step`, `epoch`; `require` names the keys that must be there). Anything else (missing, empty, truncated,
    random bytes, pickled objects, safetensors weights, a foreign checkpoint) is one WeightsError naming the file.
    """
    path = _existing_file(path, "checkpoint")
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, Mapping):
        raise WeightsError(path, f"not a Lightning training checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in require if k not in ckpt]
    if missing:
        raise WeightsError(path, f"not a Lightning training checkpoint (no {', '.join(repr(k) for k in missing)})")
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(path, "not a Lightning training checkpoint ('state_dict' is not a dict of tensors)")
    check_finite(state, path)
    return dict(ckpt)


def export_checkpoint(ckpt_path: str | Path, out_path: str | Path, meta: WeightsMeta, *, prefix: str = "model.",
                      overwrite: bool = False) -> Path:
    """Turn a Lightning checkpoint of an omnisense task into a weights pair of its `model` sub-module.

    The checkpoint is read with `weights_only=True`; the resolved config saved beside it (config.yaml in the
    run folder) becomes `meta.config` when `meta` has none, and the step and epoch go into `meta.notes`.
    """
    import yaml

    ckpt_path = Path(ckpt_path)
    state, ckpt = checkpoint_state(ckpt_path, prefix=prefix)
    notes = {"trained_steps": int(ckpt.get("global_step", 0)), "trained_epochs": int(ckpt.get("epoch", 0)),
             **meta.notes}
    config = meta.config
    for candidate in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if candidate.exists() and config is None:
            config = yaml.safe_load(candidate.read_text())
    return save_weights(out_path, state, dataclasses.replace(meta, notes=notes, config=config), overwrite=overwrite)


def shipped_weights(name: str) -> Path:
    """Path of a weights file shipped with omnisense (omnisense/shipped/<name>.safetensors)."""
    path = SHIPPED_DIR / f"{name}.safetensors"
    if not path.exists():
        available = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
        raise WeightsError(path, f"no shipped weights named {name!r}; shipped: {', '.join(available) or 'none yet'}")
    return path


def list_shipped() -> list[dict[str, Any]]:
    """One row per shipped weights file: name, task, model, size and metrics."""
    rows = []
    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        meta = read_meta(path)
        rows.append({"name": path.stem, "task": meta.task, "model": meta.describe_model(),
                     "size_mb": round(path.stat().st_size / 1e6, 2), "metrics": meta.metrics})
    return rows
