"""Action-recognition datasets: Kinetics-style lists and folders, Something-Something-style annotations.

Sources of samples (each gives `(list[VideoSample], class_names)`):
- `read_list(file, root)`: a CSV with a `path,label` header (extra columns ignored; PySlowFast's lists),
  or header-less lines `path label` / `path,label` (mmaction2's VideoDataset lists). Labels are class
  names or integer indices; paths are relative to `root`.
- `scan_class_folders(root)`: Kinetics' folder-per-class layout, `root/<class>/<video>.<ext>`.
- `read_something_something(annotations, labels, video_root)`: SSv2's JSON (`[{"id", "template", ...}]`
  and `{"template": index}`), videos named `<id>.webm`; templates lose their square brackets as in the
  official label file.

`VideoClipDataset` decodes clips on the fly (the reader is opened inside `__getitem__`, so DataLoader
workers never share a decoder, dmlc/decord#294). A file that cannot be decoded is skipped with a warning
and counted (`dataset.skipped`), and the next sample is used in its place.
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from video._errors import MediaFileError, VideoValueError
from video.io import VideoReader
from video.sampling import dense_clip, segment_clip, test_clips, train_clips
from video.transforms import ClipTransform, to_clip

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
SAMPLING = ("uniform", "dense", "segment")


@dataclass(frozen=True)
class VideoSample:
    path: Path
    label: int


def _label_index(label: str, class_names: list[str], grow: bool) -> int:
    label = label.strip()
    if label.lstrip("-").isdigit():
        return int(label)
    if label not in class_names:
        if not grow:
            raise VideoValueError(f"unknown class {label!r}")
        class_names.append(label)
    return class_names.index(label)


def read_list(file: str | Path, root: str | Path | None = None, class_names: Sequence[str] | None = None
              ) -> tuple[list[VideoSample], list[str]]:
    """Read a Kinetics-style list (see the module docstring).

    Args:
        file: the list.
        root: folder the paths are relative to (default: the list's folder).
        class_names: names in label order; without it, names are collected in order of appearance
            (or read from `classes.txt` beside the list when present).
    """
    file = Path(file)
    root = Path(root) if root is not None else file.parent
    if not file.is_file():
        raise MediaFileError(file, "no such list file")
    if class_names is None and (file.parent / "classes.txt").is_file():
        class_names = (file.parent / "classes.txt").read_text().split()
    names = list(class_names or [])
    grow = class_names is None
    lines = [ln for ln in file.read_text().splitlines() if ln.strip()]
    samples = []
    if lines and lines[0].replace(" ", "").lower().startswith("path,label"):
        for row in csv.DictReader(lines):
            samples.append(VideoSample(root / row["path"], _label_index(row["label"], names, grow)))
    else:
        for ln in lines:
            path, _, label = ln.strip().rpartition("," if "," in ln else " ")
            samples.append(VideoSample(root / path.strip(), _label_index(label, names, grow)))
    return samples, names


def scan_class_folders(root: str | Path) -> tuple[list[VideoSample], list[str]]:
    """`root/<class>/<video>`: classes sorted by name (Kinetics' convention)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = [VideoSample(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
               if f.suffix.lower() in VIDEO_EXTENSIONS]
    return samples, classes


def read_something_something(annotations: str | Path, labels: str | Path, video_root: str | Path,
                             ext: str = ".webm") -> tuple[list[VideoSample], list[str]]:
    """Something-Something v2 annotations; labels ordered by the index in the labels JSON."""
    label_map = json.loads(Path(labels).read_text())
    names = [name for name, _ in sorted(label_map.items(), key=lambda kv: int(kv[1]))]
    index = {name: int(i) for name, i in label_map.items()}
    samples = []
    for item in json.loads(Path(annotations).read_text()):
        template = item["template"].replace("[", "").replace("]", "")
        if template not in index:
            raise VideoValueError(f"{annotations}: template {template!r} is not in {labels}")
        samples.append(VideoSample(Path(video_root) / f"{item['id']}{ext}", index[template]))
    return samples, names


class VideoClipDataset(Dataset):
    """Decoded, sampled and augmented clips.

    Args:
        samples: the videos and labels.
        clip_len: frames per clip (the number of segments for "segment" sampling).
        frame_interval: stride between sampled frames ("uniform" and "dense").
        train: random clips and augmentation; otherwise `num_clips` x `num_crops` fixed views.
        sampling: "uniform" (mmaction2 SampleFrames), "dense" (PySlowFast) or "segment" (SSv2 / TSN).
        transform: the spatial pipeline.
        num_clips: temporal views at test time (and clips per sample at train time for "uniform").
        num_crops: spatial views at test time (1 or 3).
        backend: decoder backend of `VideoReader`.

    Items: `(clip, label)`; train: `uint8 [3, T, S, S]` (`[num_clips, 3, T, S, S]` when num_clips > 1);
    test: `uint8 [V, 3, T, S, S]` with V = num_clips * num_crops, clip-major.
    """

    def __init__(self, samples: Sequence[VideoSample], *, clip_len: int = 8, frame_interval: int = 2,
                 train: bool = True, sampling: str = "uniform", transform: ClipTransform | None = None,
                 num_clips: int = 1, num_crops: int = 1, backend: str = "auto"):
        if sampling not in SAMPLING:
            raise VideoValueError(f"sampling must be one of {SAMPLING}, not {sampling!r}")
        self.samples = list(samples)
        self.clip_len, self.frame_interval = clip_len, frame_interval
        self.train, self.sampling = train, sampling
        self.transform = transform or ClipTransform()
        self.num_clips, self.num_crops = num_clips, num_crops
        self.backend = backend
        self.skipped = 0
        self.bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def _indices(self, n: int, rng: np.random.Generator | None) -> np.ndarray:
        """Frame indices `[num_clips, clip_len]`."""
        if self.sampling == "uniform":
            if rng is not None:
                return train_clips(n, clip_len=self.clip_len, frame_interval=self.frame_interval,
                                   num_clips=self.num_clips, rng=rng)
            return test_clips(n, clip_len=self.clip_len, frame_interval=self.frame_interval, num_clips=self.num_clips)
        if self.sampling == "dense":
            return np.stack([dense_clip(n, clip_len=self.clip_len, frame_interval=self.frame_interval, rng=rng,
                                        view=v, num_views=self.num_clips) for v in range(self.num_clips)])
        return np.stack([segment_clip(n, num_segments=self.clip_len, rng=rng, view=v, num_views=self.num_clips)
                         for v in range(self.num_clips)])

    def load(self, index: int, rng: np.random.Generator | None) -> torch.Tensor:
        sample = self.samples[index]
        reader = VideoReader(sample.path, backend=self.backend)
        inds = self._indices(len(reader), rng)  # [num_clips, clip_len]
        frames = reader.get_frames(inds.reshape(-1))
        clips = to_clip(frames).unflatten(1, inds.shape)  # [3, num_clips, clip_len, H, W]
        views = []
        for k in range(inds.shape[0]):
            clip = clips[:, k]
            if rng is not None:
                views.append(self.transform.train(clip, rng)[None])
            else:
                views.append(self.transform.test(clip, self.num_crops))
        out = torch.cat(views)  # [V, 3, T, S, S]
        return out[0] if (rng is not None and out.shape[0] == 1) else out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for attempt in range(min(len(self), 20)):
            i = (index + attempt) % len(self)
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item())) if self.train else None
            try:
                return self.load(i, rng), self.samples[i].label
            except MediaFileError as err:
                self.skipped += 1
                self.bad.add(self.samples[i].path)
                warnings.warn(f"skipping unreadable video ({err}); {self.skipped} skipped so far", stacklevel=2)
        raise MediaFileError(self.samples[index].path, "this and the next 19 videos could not be read")
