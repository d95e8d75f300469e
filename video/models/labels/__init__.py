"""Class lists of the datasets official video and audio checkpoints were trained on, in their official order.

Facts copied as data from the official repositories (names only, one per line, row i = logit i):
- kinetics400.txt: Sense-X/UniFormer `video_classification/data_list/k400/kinetics_400_categroies.txt`,
  sorted by its index column.
- kinetics600.txt: the same repository's `data_list/k600/k600_{common,special}_category.list`, sorted by index,
  underscores read as spaces.
- something_something_v2.txt: the same repository's `data_list/sthv2/category.txt`.
- audioset.txt: YuanGongND/ast `egs/audioset/data/class_labels_indices.csv`, the display names by index.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LABEL_SETS", "read_labels"]

LABEL_SETS = {"kinetics400": 400, "kinetics600": 600, "something_something_v2": 174, "audioset": 527}


def read_labels(name: str) -> list[str]:
    """The class names of `name` (one of `LABEL_SETS`) in the official order."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    names = (Path(__file__).parent / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    if len(names) != LABEL_SETS[name]:
        raise ValueError(f"{name}.txt holds {len(names)} names, expected {LABEL_SETS[name]}")
    return names
