"""`omnisense convert`: official checkpoints to omnisense weights, with every key problem named.

A converter is a pure function in the model's file that renames (and, where the layouts differ, reshapes)
an official state dict into ours; a family may add a `describe_official(state, checkpoint=NAME)` that says
which variant (and keyword arguments) the checkpoint fills, its classes in the official order and its input
spec (the 4th entry of its `_registry.CONVERTERS` row). This module reads the official file without unpickling
code, runs both, checks the result against the variant's own state dict, and writes safetensors + `WeightsMeta`.
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
    official = read_foreign_checkpoint(checkpoint)
    try:
        ours = _registry.resolve(target)(official)
        # the family's `describe_official`, when it has one: variant, kwargs, classes and input of the checkpoint
        info = _registry.resolve(entry[3])(ours, checkpoint=Path(checkpoint).name) if len(entry) > 3 else {}
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else exc
        raise WeightsError(checkpoint, f"does not look like an official {family} checkpoint ({reason})") from None
    chosen = variant
    variant = variant or info.get("variant") or default_variant
    kwargs = dict(info.get("kwargs", {}))
    model = build_model(variant, **kwargs)
    base = compare_state(model.state_dict(), ours)
    report = ConversionReport(missing=base.missing, unexpected=base.unexpected, mis_shaped=base.mis_shaped,
                              matched=base.matched)
    if not report.ok and not allow_partial:
        raise WeightsError(checkpoint, f"does not fill {variant} (use --allow-partial to write anyway):\n"
                           + report.summary())
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
