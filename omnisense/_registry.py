"""The explicit tables that wire capabilities into the CLI: no decorators, no import-time magic.

Each entry names a module (and function) as a string; it is imported only when used, so a capability
whose optional pieces are missing never breaks `omnisense --help` or another capability.
A capability's issue adds its rows here.
"""

from __future__ import annotations

import importlib
from typing import Any

# `omnisense <command> ...`: modules with `HELP: str`, `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, str] = {
    "register": "omnisense.commands.register",
    "detect": "omnisense.commands.detect",
    "classify": "omnisense.commands.classify",
    "recognize": "omnisense.commands.recognize",
    "classify-audio": "omnisense.commands.classify_audio",
    "fuse": "omnisense.commands.fuse",
}

# `omnisense bench <name> ...`: modules with `HELP`, `add_arguments(parser)` and `run(args) -> dict`
# (see omnisense.bench._common.BenchReport).
BENCHES: dict[str, str] = {
    "kernels": "omnisense.bench.kernels",
    "ops": "omnisense.bench.ops",
    "registration": "omnisense.bench.registration",
    "detect": "omnisense.bench.detect",
    "classify": "omnisense.bench.classify",
    "video": "omnisense.bench.video",
    "startup": "omnisense.bench.startup",
    "commands": "omnisense.bench.commands",
    "contention": "omnisense.bench.contention",
    "people": "omnisense.bench.people",
    "batch": "omnisense.bench.batch",
}

# `omnisense data make <name> --seed S --out DIR [--size tiny|small|full]`:
# "module:function" with signature `fn(out: Path, *, seed: int, size: str) -> dict` (a summary).
GENERATORS: dict[str, str] = {
    "blobs": "omnisense.train.debug:make_blobs",
    "shapes": "perception3d.classification.datasets:write_shapes",
    "parts": "perception3d.classification.datasets:write_parts",
    "actions": "video.recognition.synthetic:make_actions",
    "multiview-recordings": "fusion.recordings.synthetic:make_multiview_recordings",
    "vtest-views": "omnisense.data:make_vtest_views",
    "registration-pairs": "omnisense.train.registration:make_registration_pairs",
    "sweep-pairs": "omnisense.train.registration:make_sweep_pairs",
    "audio-events": "video.audio.datasets:make_audio_events",
    "real-sounds": "omnisense.train.real_sounds:make_real_sounds",
    "lidar-scenes": "perception3d.detection.simulator:make_lidar_scenes",
}

# `omnisense convert <name> CHECKPOINT --output OUT`: "module:function" mapping an official state dict
# (flat, str -> Tensor) to ours, the variant whose keys it must fill, the task the weights serve and, optionally,
# "module:describe_official" giving the checkpoint's variant, kwargs, official classes and input spec.
CONVERTERS: dict[str, tuple[str, ...]] = {
    "uniformer": ("video.models.uniformer:convert_official", "uniformer_small_k400", "recognition",
                  "video.models.uniformer:describe_official"),
    "roitr": ("perception3d.models.roitr:convert_official", "roitr_3dmatch", "registration"),
    "multitsf": ("fusion.multitsf:convert_official", "multitsf_paper", "fusion"),
    "vivit-scenic": ("video.models.vivit:convert_scenic", "vivit_base_fe_k400", "recognition"),
    "ast": ("video.models.ast:convert_official_ast", "ast_base", "audio_classification",
            "video.models.ast:describe_official"),
    "dsvt-openpcdet": ("perception3d.models.dsvt:convert_openpcdet_dsvt", "dsvt_pillar_waymo", "detection",
                       "perception3d.models.dsvt:describe_official"),
    "flatformer-mmdet3d": ("perception3d.models.flatformer:convert_mmdet3d_flatformer", "flatformer_waymo",
                           "detection", "perception3d.models.flatformer:describe_official"),
}

# `omnisense demo`: (section name, "module:function"), run in this order; each function has the
# signature `fn(ctx: omnisense.demo.DemoContext) -> omnisense.demo.DemoSection`.
DEMO_PARTS: list[tuple[str, str]] = [
    ("engine", "omnisense.demo.engine:demo"),
    ("registration", "omnisense.demo.registration:demo"),
    ("detection", "omnisense.demo.detection:demo"),
    ("classify", "omnisense.demo.classify:demo"),
    ("video", "omnisense.demo.video:demo"),
    ("audio", "omnisense.demo.audio:demo"),
    ("fusion", "omnisense.demo.fusion:demo"),
]


def resolve(target: str) -> Any:
    """Import "package.module:attribute" (or a bare module path) and return the object."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module
