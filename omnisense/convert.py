"""`omnisense convert`: official checkpoints to omnisense weights, with every key problem named.

A converter is a pure function in the model's file that renames (and, where the layouts differ, reshapes)
an official state dict into ours. This module reads the official file without unpickling code, runs the
converter, checks the result against the variant's own state dict, and writes safetensors + JSON.
"""

from __future__ import annotations

from pathlib import Path

from omnisense import _registry
from omnisense._errors import OmnisenseError, WeightsError
from omnisense.weights import KeyReport, compare_state, read_foreign_checkpoint, save_weights, sha256_file


class ConversionReport(KeyReport):
    output: Path | None = None

    def summary(self) -> str:
        text = super().summary()
        return text + (f"\nwritten: {self.output}" if self.output else "")


def convert(family: str, checkpoint: Path, output: Path, *, variant: str | None = None,
            allow_partial: bool = False) -> ConversionReport:
    from omnisense.models import build_model

    if family not in _registry.CONVERTERS:
        known = ", ".join(sorted(_registry.CONVERTERS)) or "none yet"
        raise OmnisenseError(f"no converter named {family!r}; converters: {known}")
    target, default_variant = _registry.CONVERTERS[family]
    variant = variant or default_variant
    official = read_foreign_checkpoint(checkpoint)
    try:
        ours = _registry.resolve(target)(official)
    except (KeyError, ValueError) as exc:
        raise WeightsError(checkpoint, f"does not look like an official {family} checkpoint ({exc})") from None
    model = build_model(variant)
    base = compare_state(model.state_dict(), ours)
    report = ConversionReport(missing=base.missing, unexpected=base.unexpected, mis_shaped=base.mis_shaped,
                              matched=base.matched)
    if not report.ok and not allow_partial:
        raise WeightsError(checkpoint, f"does not fill {variant} (use --allow-partial to write anyway):\n"
                           + report.summary())
    state = {k: v for k, v in ours.items() if k in model.state_dict()}
    report.output = save_weights(output, state, {
        "variant": variant, "converted_from": checkpoint.name, "source_sha256": sha256_file(checkpoint),
        "converter": family, "missing": report.missing, "unexpected": report.unexpected,
    })
    return report
