"""`omnisense convert`: official checkpoints to omnisense weights, with every key problem named.

A converter is a pure function in the model's file that renames (and, where the layouts differ, reshapes)
an official state dict into ours. This module reads the official file without unpickling code, runs the
converter, checks the result against the variant's own state dict, and writes safetensors + `WeightsMeta`.
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
        return {"point_range": list(model.geometry.point_range)}
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
    target, default_variant, task = _registry.CONVERTERS[family]
    variant = variant or default_variant
    official = read_foreign_checkpoint(checkpoint)
    try:
        ours = _registry.resolve(target)(official)
    except (KeyError, ValueError) as exc:
        raise WeightsError(checkpoint, f"does not look like an official {family} checkpoint ({exc})") from None
    model = build_model(variant)
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
        task=task, model={"variant": variant, "kwargs": {}}, input=_input_spec(task, model),
        classes=list(getattr(model, "class_names", []) or []),
        licence="the official checkpoint's licence (see its repository)",
        source={"checkpoint": checkpoint.name, "sha256": sha256_file(checkpoint), "converter": family},
        recipe=f"omnisense convert {family} {checkpoint.name} --output {Path(output).name}"
               + (f" --variant {variant}" if variant != default_variant else ""),
        notes={"missing": report.missing, "unexpected": report.unexpected})
    report.output = save_weights(output, state, meta)
    return report
