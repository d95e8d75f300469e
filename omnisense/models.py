"""Every named model variant in one table, and `load_model`: a shipped name or a weights file to a ready model.

One way to register a variant: a row of `_VARIANTS`, "module:function", whose key is the function's name (so
`omnisense models`, configs and weights metadata all say `roitr_small` for `perception3d.models.roitr:roitr_small`).
A module is imported only when one of its variants is built, so listing names costs no import.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from omnisense._errors import OmnisenseError

if TYPE_CHECKING:
    from torch import nn

    from omnisense.weights import WeightsMeta

_VARIANTS: tuple[str, ...] = (
    # registration (RoITr, Yu et al. 2023)
    "perception3d.models.roitr:roitr_3dmatch",
    "perception3d.models.roitr:roitr_small",
    "perception3d.models.roitr:roitr_small_lidar",
    "perception3d.models.roitr:roitr_tiny",
    # shape classification and part segmentation (GPSFormer, Wang et al. 2024)
    "perception3d.models.gpsformer:gpsformer",
    "perception3d.models.gpsformer:gpsformer_elite",
    "perception3d.models.gpsformer:gpsformer_tiny",
    "perception3d.models.gpsformer:gpsformer_partseg",
    "perception3d.models.gpsformer:gpsformer_partseg_small",
    "perception3d.models.gpsformer:gpsformer_partseg_tiny",
    # lidar detection (FlatFormer, Liu et al. 2023; DSVT, Wang et al. 2023)
    "perception3d.models.flatformer:flatformer_waymo",
    "perception3d.models.flatformer:flatformer_small",
    "perception3d.models.flatformer:flatformer_tiny",
    "perception3d.models.dsvt:dsvt_pillar_waymo",
    "perception3d.models.dsvt:dsvt_voxel_waymo",
    "perception3d.models.dsvt:dsvt_pillar_small",
    "perception3d.models.dsvt:dsvt_pillar_tiny",
    "perception3d.models.dsvt:dsvt_voxel_tiny",
    # audio (AST, Gong et al. 2021; a small CNN baseline)
    "video.models.ast:ast_base",
    "video.models.ast:ast_small",
    "video.models.ast:ast_tiny",
    "video.models.ast:ast_micro",
    "video.models.audio_cnn:audio_cnn_small",
    "video.models.audio_cnn:audio_cnn_tiny",
    "video.models.audio_cnn:audio_cnn_small_stats",
    "video.models.audio_cnn:audio_cnn_tiny_stats",
    # action recognition (UniFormer, Li et al. 2022; ViViT factorised encoder, Arnab et al. 2021)
    "video.models.uniformer_light:uniformer_xxs_k400",
    "video.models.uniformer_light:uniformer_xs_k400",
    "video.models.uniformer:uniformer_small_k400",
    "video.models.uniformer:uniformer_base_k400",
    "video.models.uniformer:uniformer_tiny",
    "video.models.uniformer:uniformer_mini",
    "video.models.vivit:vivit_base_fe_k400",
    "video.models.vivit:vivit_large_fe_k400",
    "video.models.vivit:vivit_base_fe_frozen_k400",
    "video.models.vivit:vivit_tiny",
    "video.models.vivit:vivit_tiny_frozen",
    # multi-view, multi-modal fusion (MultiTSF)
    "fusion.multitsf:multitsf_paper",
    "fusion.multitsf:multitsf_small",
    "fusion.multitsf:multitsf_tiny",
)


class _VariantTable(Mapping):
    """name -> constructor, imported on first use; the name is the constructor's own `__name__`."""

    def __init__(self, rows: tuple[str, ...]):
        self._paths: dict[str, str] = {}
        for row in rows:
            module, _, name = row.partition(":")
            if name in self._paths:
                raise OmnisenseError(f"variant {name!r} is registered twice ({self._paths[name]} and {row})")
            self._paths[name] = module

    def module_of(self, name: str) -> str:
        return self._paths[name]

    def __getitem__(self, name: str) -> Callable[..., nn.Module]:
        fn = getattr(importlib.import_module(self._paths[name]), name)
        if fn.__name__ != name:
            raise OmnisenseError(f"variant {name!r} resolves to a function named {fn.__name__!r}")
        return fn

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self._paths


VARIANTS = _VariantTable(_VARIANTS)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build a named variant, e.g. `build_model("gpsformer_elite", num_classes=10)`."""
    if name not in VARIANTS:
        raise OmnisenseError(f"unknown model variant {name!r}; known: {', '.join(sorted(VARIANTS))}")
    return VARIANTS[name](**overrides)


OWN_PACKAGES = ("perception3d.", "video.", "fusion.")


def instantiate(spec: Any) -> Any:
    """Build `{"class_path": ..., "init_args": {...}}` (nested allowed), as a config or weights JSON spells it.

    Only model classes of omnisense's library packages are built: a weights JSON is a user's file, and naming an
    arbitrary callable in it must not run it.
    """
    from torch import nn

    if isinstance(spec, dict) and "class_path" in spec:
        path = str(spec["class_path"])
        if not path.startswith(OWN_PACKAGES):
            raise OmnisenseError(f"refusing to build {path!r}: only classes of perception3d, video and fusion are built")
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise OmnisenseError(f"{path!r} is not a model class")
        return cls(**{k: instantiate(v) for k, v in (spec.get("init_args") or {}).items()})
    if isinstance(spec, list):
        return [instantiate(v) for v in spec]
    return spec


def load_model(name_or_path: str | Path, *, device: str = "cpu", task: str | None = None
               ) -> tuple[nn.Module, WeightsMeta]:
    """A model with its weights, in eval mode on `device`, and the weights' metadata.

    Args:
        name_or_path: a shipped name (`omnisense models` lists them, e.g. "roitr_small_cgal"), a `.safetensors`
            file with its `.json` beside it, or a Lightning `.ckpt` of an omnisense training run.
        device: "cpu", "cuda", "cuda:1", ...
        task: when given, weights of another task are refused (a detector handed to `classify`, say).

    Returns:
        (model, meta): `meta.classes`, `meta.input`, `meta.transforms()` say how to feed and read the model.
    """
    from omnisense.weights import WeightsError, load_model_weights, read_weights

    if Path(str(name_or_path)).suffix == ".ckpt":  # a run of `omnisense fit`, read with weights_only=True
        from omnisense.checkpoints import read_checkpoint

        state, meta = read_checkpoint(name_or_path)
    else:
        state, meta = read_weights(name_or_path)
    if task is not None and meta.task != task:
        raise WeightsError(meta.path, f"holds {meta.task} weights ({meta.describe_model()}), not {task} weights")
    try:
        model = meta.build()
    except OmnisenseError as err:
        raise WeightsError(meta.path or Path(str(name_or_path)), str(err)) from None
    report = load_model_weights(model, state, strict=False)
    if not report.ok:
        raise WeightsError(meta.path or Path(str(name_or_path)),
                           f"does not fit the model its metadata names ({meta.describe_model()}):\n{report.summary()}")
    return model.to(device).eval(), meta


def list_models() -> list[str]:
    """The names of the shipped weights, for `load_model`."""
    from omnisense.weights import SHIPPED_DIR

    return sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))


def listing() -> dict[str, Any]:
    """What `omnisense models` prints: the variants (with their docstrings' first line), weights, converters."""
    from omnisense import _registry
    from omnisense.weights import list_shipped

    rows = []
    for name in sorted(VARIANTS):
        doc = (VARIANTS[name].__doc__ or "").strip().splitlines()
        rows.append({"name": name, "module": VARIANTS.module_of(name), "summary": doc[0] if doc else ""})
    converters = [{"name": k, "function": v[0], "variant": v[1]} for k, v in sorted(_registry.CONVERTERS.items())]
    return {"variants": rows, "converters": converters, "shipped_weights": list_shipped()}


def print_listing(listing: dict[str, Any]) -> None:
    from omnisense._console import print_table

    print_table("model variants", ("name", "module", "summary"),
                ((r["name"], r["module"], r["summary"]) for r in listing["variants"]))
    print_table("shipped weights (omnisense.load_model(NAME))", ("name", "task", "model", "size_mb", "metrics"),
                ((r["name"], r["task"], str(r["model"]), str(r["size_mb"]), _metrics_text(r["metrics"]))
                 for r in listing["shipped_weights"]))
    print_table("converters for official checkpoints (omnisense convert NAME CKPT --output OUT)",
                ("name", "variant", "function"),
                ((r["name"], r["variant"], r["function"]) for r in listing["converters"]))


def _metrics_text(metrics: dict[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(flat.items())[:4])
