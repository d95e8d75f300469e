"""`omnisense convert`: official checkpoints to omnisense weights, with every key problem named.

A converter is a pure function in the model's file that renames (and, where the layouts differ, reshapes)
an official state dict into ours. This module reads the official file without unpickling code, runs the
converter, checks the result against the variant's own state dict, and writes safetensors + `WeightsMeta`.

A converter returns the state dict, or `(state dict, info)` where `info` may hold "kwargs" (constructor
options the official weights need, e.g. RoITr's `exclude_self`: the variant is built with them and the
metadata records them, so the converted file runs with no further flag), "classes" (the official class list,
in the checkpoint's order) and "input" (fields of the task's input spec). A family may instead (or as well) add a
`describe_official(state, checkpoint=NAME)` that says which variant (and keyword arguments) the checkpoint fills,
its classes in the official order and its input spec (the 4th entry of its `_registry.CONVERTERS` row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from omnisense import _registry
from omnisense._errors import OmnisenseError, WeightsError
from omnisense.weights import (KeyReport, WeightsMeta, compare_state, read_foreign_checkpoint, save_weights,
                               sha256_file)


class ConversionReport(KeyReport):
    output: Path | None = None

    def summary(self) -> str:
        text = super().summary()
        return text + (f"\nwritten: {self.output}" if self.output else "")


def _input_spec(task: str, model: nn.Module) -> dict[str, Any]:
    """What the converted model's own configuration says about its input; the rest is the spec's defaults."""
    if task == "detection":
        return {"point_range": list(model.grid.point_range), "voxel_size": list(model.grid.voxel_size)}
    if task == "audio_classification":
        from video.audio.frontend import AST_AUDIOSET_MEAN, AST_AUDIOSET_STD

        return {"num_mel_bins": int(getattr(model, "input_fdim", 128)),
                "target_frames": int(getattr(model, "input_tdim", 1024)),
                "mean": AST_AUDIOSET_MEAN, "std": AST_AUDIOSET_STD}
    return {}


def convert(family: str, checkpoint: Path, output: Path, *, variant: str | None = None,
            allow_partial: bool = False) -> ConversionReport:
    from omnisense.models import build_model

    if family not in _registry.CONVERTERS:
        known = ", ".join(sorted(_registry.CONVERTERS)) or "none yet"
        raise OmnisenseError(f"no converter named {family!r}; converters: {known}")
    entry = _registry.CONVERTERS[family]
    target, default_variant, task = entry[:3]
    official = read_flax_checkpoint(checkpoint) if _is_flax_msgpack(checkpoint) else read_foreign_checkpoint(checkpoint)
    try:
        ours = _registry.resolve(target)(official)
        ours, info = ours if isinstance(ours, tuple) else (ours, {})
        # the family's `describe_official`, when it has one: variant, kwargs, classes and input of the checkpoint
        if len(entry) > 3:
            info = {**info, **_registry.resolve(entry[3])(ours, checkpoint=Path(checkpoint).name)}
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else exc
        raise WeightsError(checkpoint, f"does not look like an official {family} checkpoint ({reason})") from None
    chosen = variant
    variant = variant or info.get("variant") or default_variant
    kwargs = dict(info.get("kwargs", {}))
    model = build_model(variant, **kwargs)
    for name, tensor in model.state_dict().items():  # an int8 tensor where the model has floats is not a weight
        got = ours.get(name)
        if got is not None and tensor.is_floating_point() and not got.is_floating_point():
            raise WeightsError(checkpoint, f"tensor {name!r} is {str(got.dtype).replace('torch.', '')}, the model's is "
                                           f"{str(tensor.dtype).replace('torch.', '')} (quantised checkpoints are not "
                                           "supported)")
    base = compare_state(model.state_dict(), ours)
    report = ConversionReport(missing=base.missing, unexpected=base.unexpected, mis_shaped=base.mis_shaped,
                              matched=base.matched)
    if not report.ok and not allow_partial:
        raise WeightsError(checkpoint, f"does not fill {variant} (use --allow-partial to write anyway): "
                           + report.summary().replace("\n", "; "))  # one line, every tensor still named
    state = {k: v for k, v in ours.items() if k in model.state_dict()}
    meta = WeightsMeta(
        task=task, model={"variant": variant, "kwargs": kwargs},
        input={**_input_spec(task, model), **info.get("input", {})},
        classes=list(info.get("classes") or getattr(model, "class_names", []) or []),
        licence="the official checkpoint's licence (see its repository)",
        source={"checkpoint": Path(checkpoint).name, "sha256": sha256_file(checkpoint), "converter": family},
        recipe=f"omnisense convert {family} {Path(checkpoint).name} --output {Path(output).name}"
               + (f" --variant {chosen}" if chosen else ""),
        notes={**info.get("notes", {}), "missing": report.missing, "unexpected": report.unexpected})
    report.output = save_weights(output, state, meta)
    return report


def _is_flax_msgpack(path: Path) -> bool:
    """A flax.serialization file (scenic's `checkpoint_N`): a msgpack map, where PyTorch files start with a zip
    header ('PK') or a pickle protocol opcode (0x80 then the protocol number)."""
    if path.suffix in (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".pkl") or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


def read_flax_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Flax checkpoint (`flax.training.checkpoints.save_checkpoint`: `flax.serialization.to_bytes` of the
    train state, msgpack) without JAX into a flat "a/b/c" -> numpy array dict.

    flax writes arrays as msgpack extension type 1 holding msgpack (shape, dtype name, raw bytes), numpy scalars
    as type 3 (the same, 0-d), Python complex numbers as type 2, and splits arrays over 2**30 bytes into chunked
    maps ("__msgpack_chunked_array__"); lists and tuples are maps with the keys "0", "1", ... Only arrays are
    kept (optimiser state included: a converter picks the model's tree).
    """
    import numpy as np

    try:
        import msgpack
    except ImportError:
        raise OmnisenseError("reading a Flax checkpoint needs msgpack: pip install msgpack") from None
    path = Path(path)

    def ext_hook(code: int, data: bytes):
        if code == 1:  # ndarray
            shape, dtype, buffer = msgpack.unpackb(data)
            return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)
        if code == 3:  # numpy scalar, packed as a 0-d array
            shape, dtype, buffer = msgpack.unpackb(data)
            return np.frombuffer(buffer, dtype=np.dtype(dtype))[0]
        return msgpack.ExtType(code, data)  # 2: a Python complex, never a weight

    try:
        tree = msgpack.unpackb(path.read_bytes(), ext_hook=ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.UnpackException) as exc:
        raise WeightsError(path, f"not a readable Flax (msgpack) checkpoint ({exc})") from None
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and "__msgpack_chunked_array__" in node:
            chunks = [node["chunks"][str(i)] for i in range(len(node["chunks"]))]
            shape = [node["shape"][str(i)] for i in range(len(node["shape"]))]
            flat[prefix] = np.concatenate([c.reshape(-1) for c in chunks]).reshape(shape)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, np.ndarray):
            flat[prefix] = node
    walk(tree, "")
    if not flat:
        raise WeightsError(path, "holds no arrays")
    return flat
