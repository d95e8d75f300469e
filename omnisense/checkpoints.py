"""From a training run to weights: the metadata of a Lightning checkpoint of `omnisense fit`, and its export.

`omnisense fit` writes `<run>/config.yaml` (the resolved config) beside `<run>/checkpoints/*.ckpt` and, with the
CSV logger, `<run>/metrics.csv`. From these three this module derives a complete `WeightsMeta`: the task, how to
build the model, the classes, the input spec (the preprocessing the data module trained with), the resolved config
and the last validation metrics. `export` writes the weights pair through `omnisense.weights.export_checkpoint`;
`load_model` reads a `.ckpt` directly through `read_checkpoint`. Checkpoints are read with
`torch.load(weights_only=True)`; the config with `yaml.safe_load`.
"""

from __future__ import annotations

import csv
import inspect
from pathlib import Path
from typing import Any

from omnisense._errors import WeightsError


def run_config(ckpt_path: Path) -> tuple[dict[str, Any], Path]:
    """The resolved config of the run a checkpoint belongs to, and its file."""
    import yaml

    ckpt_path = Path(ckpt_path)
    for candidate in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if candidate.is_file():
            config = yaml.safe_load(candidate.read_text())
            if not isinstance(config, dict) or "model" not in config:
                raise WeightsError(candidate, "not the resolved config of an `omnisense fit` run (no 'model')")
            return config, candidate
    raise WeightsError(ckpt_path, "no config.yaml of its run beside it (in the run folder or beside the file): "
                       "the model it belongs to is unknown")


def validation_metrics(ckpt_path: Path) -> dict[str, float]:
    """The last logged value of every validation metric (`val...` columns of the run's CSV log), by name."""
    ckpt_path = Path(ckpt_path)
    for candidate in (ckpt_path.parent.parent / "metrics.csv", ckpt_path.parent / "metrics.csv"):
        if candidate.is_file():
            last: dict[str, float] = {}
            with open(candidate, newline="") as f:
                for row in csv.DictReader(f):
                    for key, value in row.items():
                        if key and key.startswith("val") and value not in (None, ""):
                            try:
                                last[key] = float(value)
                            except ValueError:
                                pass
            return last
    return {}


def _init(node: Any) -> dict[str, Any]:
    return dict(node.get("init_args") or {}) if isinstance(node, dict) else {}


def _recognition_fps(data_args: dict[str, Any]) -> float | None:
    """The frame rate of the training videos: the first training clip's, or the generator's for a `tiny` set."""
    root = data_args.get("root")
    if root and (Path(root) / "train.csv").is_file():
        with open(Path(root) / "train.csv", newline="") as f:
            first = next(csv.DictReader(f), None)
        if first and first.get("path"):
            from video.io import VideoReader

            return float(VideoReader(Path(root) / first["path"]).fps)
    if data_args.get("tiny"):
        from video.recognition.synthetic import make_actions

        return float(inspect.signature(make_actions).parameters["fps"].default)
    return None


def checkpoint_meta(ckpt_path: str | Path, ckpt: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(WeightsMeta without the file facts, the state-dict prefix of the inference model) of a fit checkpoint.

    Raises:
        WeightsError: no run config, or a task with no inference command (the debug MLP, say).
    """
    from omnisense.weights import WeightsMeta, checkpoint_state

    ckpt_path = Path(ckpt_path)
    config, config_file = run_config(ckpt_path)
    if ckpt is None:
        ckpt = checkpoint_state(ckpt_path)[1]
    task_node, data_node = config["model"], config.get("data") or {}
    task_class = str(task_node.get("class_path", "")) if isinstance(task_node, dict) else ""
    data_class = str(data_node.get("class_path", "")) if isinstance(data_node, dict) else ""
    targs, dargs = _init(task_node), _init(data_node)
    inner = targs.get("model") if isinstance(targs.get("model"), dict) else {}
    inner_class = str(inner.get("class_path", ""))
    prefix, classes, spec = "model.", list(targs.get("class_names") or []), {}

    if task_class.endswith("DetectionTask"):
        from omnisense.models import build_model

        variant = targs.get("variant", "flatformer_small")
        task, model = "detection", {"variant": variant, "kwargs": {}}
        detector = build_model(variant)
        classes = list(getattr(detector, "class_names", None) or ("Car", "Pedestrian", "Cyclist"))
        spec = {"point_range": [float(v) for v in detector.geometry.point_range]}
    elif task_class.endswith("RegistrationTask"):
        task, model = "registration", inner
        spec = {"num_points": int(dargs["num_points"])} if "num_points" in dargs else {}
    elif data_class.endswith("AudioClassificationData"):
        state = next((v for k, v in ckpt.items() if k.endswith("AudioClassificationData") and isinstance(v, dict)),
                     None)
        if state is None:
            raise WeightsError(ckpt_path, "holds no audio data-module state (class names, input spec)")
        task, model, classes, spec = "audio_classification", inner, list(state["class_names"]), state["input_spec"]
    elif inner_class == "video.recognition.recognizer.VideoRecognizer":
        task, model, prefix = "recognition", _init(inner)["backbone"], "model.backbone."
        transform = {"test_short_side": 72, "crop_size": 64, **dargs}
        spec = {"clip_len": int(dargs.get("clip_len", 8)), "frame_interval": int(dargs.get("frame_interval", 2)),
                "fps": _recognition_fps(dargs), "short_side": int(transform["test_short_side"]),
                "crop_size": int(transform["crop_size"])}
        if "mean" in dargs:
            spec["mean"], spec["std"] = list(dargs["mean"]), list(dargs["std"])
    elif inner_class.startswith("perception3d.models.gpsformer.GPSFormer") and not inner_class.endswith("PartSeg"):
        task, model = "classification", inner
        spec = {"num_points": int(dargs.get("num_points", 1024))}
    else:
        raise WeightsError(ckpt_path, f"cannot export a {task_class.rsplit('.', 1)[-1] or 'run'} of "
                           f"{inner_class or data_class or 'this model'}: no inference command serves it")
    if not model or "class_path" not in model and "variant" not in model:
        raise WeightsError(config_file, "names no model to build")
    meta = WeightsMeta(
        task=task, model=model, classes=classes, input=spec, metrics=validation_metrics(ckpt_path),
        source={"checkpoint": ckpt_path.name,
                "dataset": "a tiny generated set" if dargs.get("tiny") else str(dargs.get("root") or "")},
        licence="trained with omnisense", recipe=f"omnisense fit --config {config_file}", config=config)
    return meta, prefix


def read_checkpoint(ckpt_path: str | Path) -> tuple[dict[str, Any], Any]:
    """(state dict of the inference model, WeightsMeta) of a fit checkpoint, without writing anything."""
    from omnisense.weights import checkpoint_state

    ckpt_path = Path(ckpt_path)
    ckpt = checkpoint_state(ckpt_path)[1]
    meta, prefix = checkpoint_meta(ckpt_path, ckpt)
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise WeightsError(ckpt_path, f"no tensors under the prefix {prefix!r}")
    meta.path = ckpt_path
    meta.notes = {"trained_steps": int(ckpt.get("global_step", 0)), "trained_epochs": int(ckpt.get("epoch", 0))}
    return state, meta


def export(ckpt_path: str | Path, output: str | Path, *, overwrite: bool = False) -> Path:
    """Write `<output>.safetensors` + `.json` for a fit checkpoint, through `omnisense.weights.export_checkpoint`."""
    from omnisense.weights import export_checkpoint

    meta, prefix = checkpoint_meta(ckpt_path)
    return export_checkpoint(ckpt_path, Path(output).with_suffix(".safetensors"), meta, prefix=prefix,
                             overwrite=overwrite)
