"""`omnisense models`: the named variants of every package, the converters, and the shipped weights."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from fusion import _registry
from fusion._errors import OmnisenseError


def variants() -> dict[str, Callable[..., nn.Module]]:
    table: dict[str, Callable[..., nn.Module]] = {}
    for module in _registry.VARIANT_MODULES:
        for name, fn in _registry.resolve(module).VARIANTS.items():
            if name in table:
                raise OmnisenseError(f"variant {name!r} is defined twice (second in {module})")
            table[name] = fn
    return table


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build a named variant, e.g. `build_model("gpsformer_elite", num_classes=10)`."""
    table = variants()
    if name not in table:
        raise OmnisenseError(f"unknown model variant {name!r}; known: {', '.join(sorted(table)) or 'none'}")
    return table[name](**overrides)


OWN_PACKAGES = ("perception3d.", "video.", "fusion.")


def instantiate(spec: Any) -> Any:
    """Build `{"class_path": ..., "init_args": {...}}` (nested allowed), as a config or weights JSON spells it.

    Only classes of omnisense's own packages are built: a weights JSON is a user's file, and naming an
    arbitrary callable in it must not run it.
    """
    if isinstance(spec, dict) and "class_path" in spec:
        path = str(spec["class_path"])
        if not path.startswith(OWN_PACKAGES):
            raise OmnisenseError(f"refusing to build {path!r}: only classes of perception3d, video and fusion are built")
        module, _, name = path.rpartition(".")
        cls = _registry.resolve(f"{module}:{name}")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise OmnisenseError(f"{path!r} is not a model class")
        return cls(**{k: instantiate(v) for k, v in (spec.get("init_args") or {}).items()})
    if isinstance(spec, list):
        return [instantiate(v) for v in spec]
    return spec


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    """The model a weights file's metadata describes: a named `variant` (+ `model_kwargs`) or a `model` spec."""
    if meta.get("variant"):
        return build_model(meta["variant"], **meta.get("model_kwargs", {}))
    if isinstance(meta.get("model"), dict) and "class_path" in meta["model"]:
        return instantiate(meta["model"])
    raise OmnisenseError("the weights metadata names no model: neither 'variant' nor 'model' with a class_path")


def listing() -> dict[str, Any]:
    from fusion._weights import list_shipped

    rows = []
    for name, fn in sorted(variants().items()):
        module = getattr(fn, "__module__", "")
        doc = (fn.__doc__ or "").strip().splitlines()
        rows.append({"name": name, "module": module, "summary": doc[0] if doc else ""})
    converters = [{"name": k, "function": v[0], "variant": v[1]} for k, v in sorted(_registry.CONVERTERS.items())]
    return {"variants": rows, "converters": converters, "shipped_weights": list_shipped()}


def print_listing(listing: dict[str, Any]) -> None:
    from fusion._console import print_table

    print_table("model variants", ("name", "module", "summary"),
                ((r["name"], r["module"], r["summary"]) for r in listing["variants"]))
    print_table("shipped weights", ("name", "variant", "size_mb", "metrics"),
                ((r["name"], str(r["variant"]), str(r["size_mb"]), _metrics_text(r["metrics"]))
                 for r in listing["shipped_weights"]))
    print_table("converters for official checkpoints (omnisense convert NAME CKPT --output OUT)",
                ("name", "variant", "function"),
                ((r["name"], r["variant"], r["function"]) for r in listing["converters"]))


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
