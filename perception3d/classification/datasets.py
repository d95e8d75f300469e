"""Shape-classification and part-segmentation data: the procedural set and readers for the real benchmarks.

Every reader returns numpy arrays; none downloads anything. The layouts are those the papers' loaders read:
- ModelNet40 `modelnet40_ply_hdf5_2048/`: `ply_data_{train,test}{i}.h5` (datasets `data` [S, 2048, 3]
  float32 and `label` [S, 1]), listed in `{train,test}_files.txt`, class names in `shape_names.txt`.
- ModelNet40 `modelnet40_normal_resampled/`: `<class>/<class>_0001.txt` with 10,000 lines `x,y,z,nx,ny,nz`,
  `modelnet40_shape_names.txt`, and the splits `modelnet40_{train,test}.txt` (one `airplane_0001` a line).
- ScanObjectNN `h5_files/main_split/*.h5` (e.g. `training_objectdataset_augmentedrot_scale75.h5`, the
  PB_T50_RS variant): `data` [S, 2048, 3], `label` [S] (15 classes), optional `mask` [S, 2048].
- ShapeNetPart `shapenetcore_partanno_segmentation_benchmark_v0_normal/`: `<synset>/<id>.txt` with lines
  `x y z nx ny nz part`, `synsetoffset2category.txt`, and `train_test_split/shuffled_{train,val,test}_file_list.json`
  (entries `shape_data/<synset>/<id>`); part labels 0..49 are global across the 16 categories.
h5 files need `h5py` (imported when used).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception3d._errors import PointCloudFileError, PointCloudValueError
from perception3d._io import write_bytes_atomic, write_text_atomic
from perception3d.classification.parts import PART_CATEGORIES, PART_NAMES, make_part_split
from perception3d.classification.shapes import CLASSES, make_split

__all__ = [
    "SCANOBJECTNN_CLASSES",
    "SHAPENETPART_PARTS",
    "ShapeSet",
    "read_modelnet40_h5",
    "read_parts",
    "read_modelnet40_normal",
    "read_scanobjectnn_h5",
    "read_shapenetpart",
    "read_shapes",
    "write_parts",
    "write_shapes",
]

SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow",
    "sink", "sofa", "toilet",
)

# ShapeNetPart: the global part labels of each of the 16 categories (50 parts in all).
SHAPENETPART_PARTS: dict[str, tuple[int, ...]] = {
    "Airplane": (0, 1, 2, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 9, 10, 11), "Chair": (12, 13, 14, 15),
    "Earphone": (16, 17, 18), "Guitar": (19, 20, 21), "Knife": (22, 23), "Lamp": (24, 25, 26, 27),
    "Laptop": (28, 29), "Motorbike": (30, 31, 32, 33, 34, 35), "Mug": (36, 37), "Pistol": (38, 39, 40),
    "Rocket": (41, 42, 43), "Skateboard": (44, 45, 46), "Table": (47, 48, 49),
}

# Samples per class (train, test) and points per sample of the procedural set's sizes.
SHAPES_SIZES: dict[str, tuple[int, int, int]] = {"tiny": (4, 2, 256), "small": (100, 30, 1024), "full": (300, 60, 2048)}


@dataclass
class ShapeSet:
    """A labelled set of point clouds.

    Attributes:
        points: [S, N, 3] float32 coordinates (or [S, N, 6] with normals where the reader keeps them).
        labels: [S] int64 class ids.
        classes: class names in label order.
        parts: [S, N] int64 per-point part labels (ShapeNetPart only), else None.
    """

    points: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    parts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


# ---- the procedural set ------------------------------------------------------------------------------

def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def write_shapes(out: Path, *, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """Write the procedural shape set to `out/{train,test}.npz` and `out/classes.txt`.

    The two splits come from independent random streams (seed and seed + 1_000_003), so no test sample
    repeats a training one. Sizes: tiny 4 / 2 samples per class at 256 points, small 100 / 30 at 1024,
    full 300 / 60 at 2048.
    """
    if size not in SHAPES_SIZES:
        raise ValueError(f"size must be one of {sorted(SHAPES_SIZES)}, got {size!r}")
    per_train, per_test, num_points = SHAPES_SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, per_class, split_seed in (("train", per_train, seed), ("test", per_test, seed + 1_000_003)):
        points, labels = make_split(split_seed, per_class, num_points)
        _write_npz(out / f"{split}.npz", points=points, labels=labels)
    write_text_atomic(out / "classes.txt", "\n".join(CLASSES) + "\n")
    return {"classes": len(CLASSES), "train_samples": per_train * len(CLASSES),
            "test_samples": per_test * len(CLASSES), "points": num_points}


def read_shapes(root: str | Path, split: str) -> ShapeSet:
    """Read a split written by `write_shapes` (`omnisense data make shapes`)."""
    root = Path(root)
    path, arrays = _read_split(root, split, "shapes", {"points": np.float32, "labels": np.int64})
    points, labels = arrays["points"], arrays["labels"]
    classes_file = root / "classes.txt"
    classes = tuple(classes_file.read_text().split()) if classes_file.exists() else CLASSES
    _check_set(path, points, labels, len(classes))
    return ShapeSet(points, labels, classes)


# Samples per category (train, test) and points per sample of the procedural part set's sizes.
PARTS_SIZES: dict[str, tuple[int, int, int]] = {"tiny": (3, 2, 256), "small": (150, 40, 1024)}


def write_parts(out: Path, *, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """Write the procedural part set (perception3d.classification.parts) to `out/{train,test}.npz` + `parts.json`.

    Each split holds `points` [S, N, 3], `parts` [S, N] (global part labels) and `categories` [S]; the two
    splits come from independent random streams. Sizes: tiny 3 / 2 per category at 256 points, small 150 / 40
    at 1024.
    """
    if size not in PARTS_SIZES:
        raise ValueError(f"size must be one of {sorted(PARTS_SIZES)}, got {size!r}")
    per_train, per_test, num_points = PARTS_SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, per_category, split_seed in (("train", per_train, seed), ("test", per_test, seed + 1_000_003)):
        points, parts, categories = make_part_split(split_seed, per_category, num_points)
        _write_npz(out / f"{split}.npz", points=points, parts=parts, categories=categories)
    write_text_atomic(out / "parts.json", json.dumps({"categories": list(PART_CATEGORIES), "parts": list(PART_NAMES)}, indent=1))
    return {"categories": len(PART_CATEGORIES), "parts": len(PART_NAMES), "train_samples": per_train * len(PART_CATEGORIES),
            "test_samples": per_test * len(PART_CATEGORIES), "points": num_points}


def read_parts(root: str | Path, split: str) -> ShapeSet:
    """Read a split written by `write_parts` (`omnisense data make parts`): labels are category ids."""
    path, arrays = _read_split(Path(root), split, "parts",
                               {"points": np.float32, "parts": np.int64, "categories": np.int64})
    points, parts, categories = arrays["points"], arrays["parts"], arrays["categories"]
    _check_set(path, points, categories, len(PART_CATEGORIES))
    if parts.shape != points.shape[:2] or parts.min(initial=0) < 0 or parts.max(initial=0) >= len(PART_NAMES):
        raise PointCloudFileError(path, f"part labels {parts.shape} do not fit points {points.shape} and "
                                        f"{len(PART_NAMES)} parts")
    return ShapeSet(points, categories, PART_CATEGORIES, parts)


def _read_split(root: Path, split: str, generator: str, dtypes: dict[str, type]) -> tuple[Path, dict[str, np.ndarray]]:
    """`root/<split>.npz` (written by `omnisense data make <generator>`) read without pickles, each named array
    cast to its dtype; a missing file or array is a PointCloudFileError naming the file."""
    path = root / f"{split}.npz"
    if not path.exists():
        raise PointCloudFileError(path, f"missing; write the set with `omnisense data make {generator} --out {root}`")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return path, {name: arrays[name].astype(dtype) for name, dtype in dtypes.items()}
    except (OSError, ValueError, KeyError) as exc:
        raise PointCloudFileError(path, f"not a {generator} split ({exc})") from None


def _check_set(path: Path, points: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if points.ndim != 3 or points.shape[-1] < 3 or len(points) != len(labels):
        raise PointCloudFileError(path, f"points {points.shape} and labels {labels.shape} do not form a set")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise PointCloudFileError(path, f"labels outside 0..{num_classes - 1}")
    if not np.isfinite(points).all():
        raise PointCloudFileError(path, "NaN or infinite coordinates")


# ---- ModelNet40 ----------------------------------------------------------------------------------------

def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise PointCloudValueError("reading .h5 files needs h5py: pip install h5py") from None
    return h5py


def _read_h5_arrays(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    h5py = _h5py()
    if not path.exists():
        raise PointCloudFileError(path, "no such file")
    try:
        with h5py.File(path, "r") as f:
            missing = [n for n in names if n not in f]
            if missing:
                raise PointCloudFileError(path, f"has no dataset {missing[0]!r} (has {sorted(f.keys())})")
            arrays = {n: np.asarray(f[n]) for n in names}
            if "mask" in f:
                arrays["mask"] = np.asarray(f["mask"])
            return arrays
    except OSError as exc:
        raise PointCloudFileError(path, f"not a readable HDF5 file ({exc})") from None


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise PointCloudFileError(path, "no such file")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_modelnet40_h5(root: str | Path, split: str = "train") -> ShapeSet:
    """ModelNet40 `modelnet40_ply_hdf5_2048`: every file of `{split}_files.txt`, concatenated."""
    root = Path(root)
    classes = tuple(_read_lines(root / "shape_names.txt"))
    points, labels = [], []
    for entry in _read_lines(root / f"{split}_files.txt"):
        path = root / Path(entry).name  # the lists name files as data/modelnet40_ply_hdf5_2048/<file>
        arrays = _read_h5_arrays(path, ("data", "label"))
        data, label = arrays["data"].astype(np.float32), arrays["label"].reshape(-1).astype(np.int64)
        _check_set(path, data, label, len(classes))
        points.append(data)
        labels.append(label)
    if not points:
        raise PointCloudFileError(root / f"{split}_files.txt", "lists no files")
    return ShapeSet(np.concatenate(points), np.concatenate(labels), classes)


def read_modelnet40_normal(root: str | Path, split: str = "train", *, num_points: int = 1024,
                           normals: bool = False) -> ShapeSet:
    """ModelNet40 `modelnet40_normal_resampled`: the first `num_points` points of each listed sample.

    The files are already uniformly resampled, so their first points are a fair subset (what the
    PointNet++ loader does without FPS).
    """
    root = Path(root)
    classes = tuple(_read_lines(root / "modelnet40_shape_names.txt"))
    index = {name: i for i, name in enumerate(classes)}
    points, labels = [], []
    for name in _read_lines(root / f"modelnet40_{split}.txt"):
        category = name.rsplit("_", 1)[0]
        if category not in index:
            raise PointCloudFileError(root / f"modelnet40_{split}.txt", f"{name}: unknown class {category!r}")
        path = root / category / f"{name}.txt"
        if not path.exists():
            raise PointCloudFileError(path, "listed in the split but missing")
        try:
            data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError as exc:
            raise PointCloudFileError(path, f"not comma-separated numbers ({exc})") from None
        if data.shape[1] != 6:
            raise PointCloudFileError(path, f"expected 6 values a line (x,y,z,nx,ny,nz), got {data.shape[1]}")
        if len(data) < num_points:
            raise PointCloudFileError(path, f"{len(data)} points, fewer than the {num_points} asked for")
        points.append(data[:num_points, : 6 if normals else 3])
        labels.append(index[category])
    return ShapeSet(np.stack(points), np.array(labels, dtype=np.int64), classes)


# ---- ScanObjectNN --------------------------------------------------------------------------------------

def read_scanobjectnn_h5(path: str | Path, *, drop_background: bool = False) -> ShapeSet:
    """ScanObjectNN h5 (e.g. `main_split/test_objectdataset_augmentedrot_scale75.h5`, PB_T50_RS).

    Args:
        path: the .h5 file.
        drop_background: with a `mask` dataset, move background points (mask == -1) out by replacing each
            with a random object point of the same sample (keeps N fixed); without a mask, an error.
    """
    path = Path(path)
    arrays = _read_h5_arrays(path, ("data", "label"))
    points = arrays["data"][..., :3].astype(np.float32)
    labels = arrays["label"].reshape(-1).astype(np.int64)
    _check_set(path, points, labels, len(SCANOBJECTNN_CLASSES))
    if drop_background:
        if "mask" not in arrays:
            raise PointCloudFileError(path, "drop_background asked for, but the file has no 'mask'")
        rng = np.random.default_rng(0)
        for i, mask in enumerate(arrays["mask"]):
            fg = np.flatnonzero(mask != -1)
            bg = np.flatnonzero(mask == -1)
            if len(fg) and len(bg):
                points[i, bg] = points[i, rng.choice(fg, len(bg))]
    return ShapeSet(points, labels, SCANOBJECTNN_CLASSES)


# ---- ShapeNetPart --------------------------------------------------------------------------------------

def read_shapenetpart(root: str | Path, split: str = "train", *, num_points: int = 2048, seed: int = 0) -> ShapeSet:
    """ShapeNetPart (normal version): points, the object category as the label, and per-point part labels.

    Samples have different sizes; each is resampled to `num_points` (without replacement when it has
    enough points, else with), seeded. `labels` are category ids in the order of `synsetoffset2category.txt`.
    """
    root = Path(root)
    categories, synset_to_id = [], {}
    for line in _read_lines(root / "synsetoffset2category.txt"):
        name, synset = line.split()
        synset_to_id[synset] = len(categories)
        categories.append(name)
    listing = root / "train_test_split" / f"shuffled_{split}_file_list.json"
    if not listing.exists():
        raise PointCloudFileError(listing, "no such file")
    try:
        entries = json.loads(listing.read_text())
    except json.JSONDecodeError as exc:
        raise PointCloudFileError(listing, f"not JSON ({exc})") from None
    rng = np.random.default_rng(seed)
    points, labels, parts = [], [], []
    for entry in entries:
        _, synset, shape_id = entry.split("/")
        if synset not in synset_to_id:
            raise PointCloudFileError(listing, f"{entry}: synset {synset} not in synsetoffset2category.txt")
        path = root / synset / f"{shape_id}.txt"
        if not path.exists():
            raise PointCloudFileError(path, "listed in the split but missing")
        try:
            data = np.loadtxt(path, dtype=np.float32, ndmin=2)
        except ValueError as exc:
            raise PointCloudFileError(path, f"not whitespace-separated numbers ({exc})") from None
        if data.shape[1] != 7 or len(data) == 0:
            raise PointCloudFileError(path, f"expected lines of 7 values (x y z nx ny nz part), got shape {data.shape}")
        category = categories[synset_to_id[synset]]
        part = data[:, 6].astype(np.int64)
        allowed = SHAPENETPART_PARTS.get(category)
        if allowed is not None and not np.isin(part, allowed).all():
            raise PointCloudFileError(path, f"part labels {sorted(set(part) - set(allowed))} are not parts of {category}")
        choice = rng.choice(len(data), num_points, replace=len(data) < num_points)
        points.append(data[choice, :3])
        parts.append(part[choice])
        labels.append(synset_to_id[synset])
    return ShapeSet(np.stack(points), np.array(labels, dtype=np.int64), tuple(categories), np.stack(parts))
