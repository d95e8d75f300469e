"""Reading lidar detection data: KITTI layout, Waymo-style `.npy` frames, PCD/PLY/LAS scans; the dataset.

Every reader returns points `(N, 4)` float32 `[x, y, z, intensity]` in the sensor frame (metres) and raises
`PointCloudFileError(path, reason)` on a bad file. Labels come back as lidar-frame boxes `(M, 7)`
`[x, y, z(centre), dx, dy, dz, heading]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from perception3d._errors import PointCloudFileError, PointCloudValueError
from perception3d.detection.boxes import boxes_to_corners_bev, iou_bev, limit_period
from perception3d.io import MAX_ABS_COORDINATE, check_content, check_point_count, load_npy_checked

__all__ = [
    "read_kitti_bin",
    "read_kitti_calib",
    "read_kitti_label",
    "read_waymo_npy",
    "read_scan",
    "points_in_boxes",
    "kitti_difficulty",
    "KittiDetectionDataset",
    "GTDatabase",
    "AugmentConfig",
    "augment",
    "collate_frames",
]


def read_kitti_bin(path: str | Path) -> np.ndarray:
    """A KITTI velodyne scan: float32 `(N, 4)` x, y, z, reflectance."""
    path = _existing_scan(path)
    size = path.stat().st_size
    if size % 16:
        raise PointCloudFileError(path, f"size {size} bytes is not a multiple of 16 (4 float32 per point)")
    check_content(path, ".bin")  # a .npy or a PLY named .bin is not read as float32 garbage
    check_point_count(path, size // 16)
    return _checked_scan(path, np.fromfile(path, dtype="<f4").reshape(-1, 4))


def read_waymo_npy(path: str | Path) -> np.ndarray:
    """A Waymo-style frame as OpenPCDet stores it: `(N, >=4)` with columns x, y, z, intensity[, elongation, ...].

    Waymo intensities are unbounded, so, as OpenPCDet does, `tanh` maps them into [0, 1).
    A `(N, 3)` array gets zero intensity.
    """
    path = _existing_scan(path)
    check_content(path, ".npy")
    arr = load_npy_checked(path)  # the row count is checked against max_points() before the body is read
    if arr.dtype.kind not in "fiu" or arr.ndim != 2 or arr.shape[1] < 3:
        raise PointCloudFileError(path, f"expected a numeric (N, >=3) array, got {arr.shape} {arr.dtype}")
    arr = _checked_scan(path, arr[:, :4].astype(np.float32))
    inten = np.tanh(arr[:, 3:4]) if arr.shape[1] >= 4 else np.zeros((len(arr), 1), np.float32)
    return np.concatenate([arr[:, :3], inten], 1)


# A sweep with fewer points than this is no lidar sweep (a 16-beam sensor returns thousands per sweep); the bar
# is low so that cropped test sweeps pass, high enough to refuse the 1-3 point files of a broken export.
MIN_SCAN_POINTS = 4


def _existing_scan(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise PointCloudFileError(path, "no such file")
    if not path.is_file():
        raise PointCloudFileError(path, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise PointCloudFileError(path, "empty file (0 bytes)")
    return path


def _checked_scan(path: Path, points: np.ndarray) -> np.ndarray:
    """A scan read from `path`, refused unless it has >= MIN_SCAN_POINTS points, all finite and within
    MAX_ABS_COORDINATE (x, y, z; a NaN or infinite intensity is the detector's input policy's business)."""
    if len(points) < MIN_SCAN_POINTS:
        raise PointCloudFileError(path, f"{len(points)} points; a lidar sweep needs at least {MIN_SCAN_POINTS}")
    xyz = points[:, :3]
    bad = int((~np.isfinite(xyz)).any(1).sum())
    if bad:
        raise PointCloudFileError(path, f"{bad} of {len(points)} points have NaN or infinite coordinates")
    far = int((np.abs(xyz) > MAX_ABS_COORDINATE).any(1).sum())
    if far:
        raise PointCloudFileError(path, f"{far} of {len(points)} points have a coordinate beyond "
                                        f"{MAX_ABS_COORDINATE:g} m (corrupt values)")
    return points


def _read_generic(path: Path) -> np.ndarray:
    """PCD / PLY / LAS / LAZ: through `perception3d.io` when present, else open3d / laspy directly."""
    try:
        from perception3d import io as p3io  # the `ops` issue's reader

        reader = getattr(p3io, "read_points", None)
    except ImportError:
        reader = None
    if reader is not None:
        cloud = reader(path)
        xyz = np.asarray(getattr(cloud, "xyz", getattr(cloud, "points", cloud)), dtype=np.float32)[:, :3]
        inten = getattr(cloud, "intensity", None)
        inten = np.zeros(len(xyz), np.float32) if inten is None else np.asarray(inten, np.float32).ravel()
        return np.concatenate([xyz, inten[:, None]], 1)
    suffix = path.suffix.lower()
    if suffix in (".las", ".laz"):
        import laspy

        try:
            las = laspy.read(path)
        except Exception as err:  # laspy raises many types on a bad file
            raise PointCloudFileError(path, f"unreadable LAS/LAZ ({err})") from None
        xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], 1).astype(np.float32)
        inten = np.asarray(las.intensity, np.float32) / 65535.0 if "intensity" in las.point_format.dimension_names \
            else np.zeros(len(xyz), np.float32)
        return np.concatenate([xyz, inten[:, None]], 1)
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    pcd = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in pcd.point:
        raise PointCloudFileError(path, "no points could be read")
    xyz = pcd.point.positions.numpy().astype(np.float32)
    inten = pcd.point.intensity.numpy().reshape(-1).astype(np.float32) if "intensity" in pcd.point \
        else np.zeros(len(xyz), np.float32)
    return np.concatenate([xyz, inten[:, None]], 1)


def read_scan(path: str | Path) -> np.ndarray:
    """Any supported scan -> float32 `(N, 4)` x, y, z, intensity. `.bin` is KITTI; `.npy` Waymo-style."""
    path = _existing_scan(path)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return read_kitti_bin(path)
    if suffix == ".npy":
        return read_waymo_npy(path)
    if suffix in (".pcd", ".ply", ".las", ".laz"):
        return _checked_scan(path, _read_generic(path))
    raise PointCloudFileError(path, f"unsupported scan format {suffix!r} (.bin .npy .pcd .ply .las .laz)")


def read_kitti_calib(path: str | Path) -> dict[str, np.ndarray]:
    """A KITTI calib file: `{"P2": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4), ...}`."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, vals = line.split(":", 1)
        v = np.array([float(x) for x in vals.split()])
        out[key.strip()] = v.reshape(3, 3) if v.size == 9 else v.reshape(3, 4) if v.size == 12 else v
    for key in ("R0_rect", "Tr_velo_to_cam"):
        if key not in out:
            raise PointCloudFileError(path, f"calib has no {key}")
    return out


def read_kitti_label(path: str | Path, calib: dict[str, np.ndarray]):
    """KITTI label_2 -> (boxes `(M, 7)` lidar frame, names, truncated `(M,)`, occluded `(M,)`).

    The camera-frame bottom centre is mapped to the lidar frame through `R0_rect` and `Tr_velo_to_cam`;
    `heading = -rotation_y - pi/2`.
    """
    names, rows = [], []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) < 15:
            continue
        names.append(f[0])
        rows.append([float(x) for x in f[1:15]])
    if not rows:
        return np.zeros((0, 7)), [], np.zeros(0), np.zeros(0, np.int64)
    a = np.array(rows)
    trunc, occ = a[:, 0], a[:, 1].astype(np.int64)
    h, w, l = a[:, 7], a[:, 8], a[:, 9]
    loc_cam = a[:, 10:13]
    ry = a[:, 13]
    # camera (rectified) -> lidar: x_rect = R0 (T_v2c [x; 1])
    r0 = calib["R0_rect"]
    tr = np.vstack([calib["Tr_velo_to_cam"], [0, 0, 0, 1]])
    r0_4 = np.eye(4)
    r0_4[:3, :3] = r0
    inv = np.linalg.inv(r0_4 @ tr)
    loc = (np.concatenate([loc_cam, np.ones((len(a), 1))], 1) @ inv.T)[:, :3]
    boxes = np.concatenate([loc[:, :2], (loc[:, 2] + h / 2)[:, None], l[:, None], w[:, None], h[:, None],
                            limit_period(torch.from_numpy(-ry - np.pi / 2)).numpy()[:, None]], 1)
    return boxes, names, trunc, occ


def points_in_boxes(points: Tensor, boxes: Tensor) -> Tensor:
    """Which points lie inside which boxes: points `(N, >=3)`, boxes `(M, 7)` -> `(N, M)` bool."""
    if boxes.shape[0] == 0 or points.shape[0] == 0:
        return torch.zeros(points.shape[0], boxes.shape[0], dtype=torch.bool, device=points.device)
    rel = points[:, None, :3] - boxes[None, :, :3]  # (N, M, 3)
    c, s = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    lx = rel[..., 0] * c + rel[..., 1] * s
    ly = -rel[..., 0] * s + rel[..., 1] * c
    return (lx.abs() <= boxes[:, 3] / 2) & (ly.abs() <= boxes[:, 4] / 2) & (rel[..., 2].abs() <= boxes[:, 5] / 2)


# min points per difficulty (easy, moderate, hard); they stand in for KITTI's 2D box heights (40/25/25 px),
# since the simulated set has no camera image
_DIFFICULTY = ((0, 0.15, 50), (1, 0.30, 20), (2, 0.50, 5))


def kitti_difficulty(occluded: np.ndarray, truncated: np.ndarray, num_points: np.ndarray) -> np.ndarray:
    """KITTI-style difficulty: 0 easy, 1 moderate, 2 hard, -1 none (ignored by every level).

    A box is at level d when occluded <= max_occ[d], truncated <= max_trunc[d] and it has at least
    min_points[d] lidar returns; like KITTI, the levels are cumulative (moderate includes easy).
    """
    diff = np.full(len(occluded), -1, np.int64)
    for level in (2, 1, 0):
        occ, trunc, pts = _DIFFICULTY[level]
        ok = (occluded <= occ) & (truncated <= trunc) & (num_points >= pts)
        diff[ok] = level
    return diff


@dataclass(frozen=True)
class AugmentConfig:
    """Global augmentations of the FlatFormer / DSVT recipes (ranges in radians, metres)."""

    flip_x: bool = True
    flip_y: bool = True
    rotation: float = math.pi / 4
    scale: tuple[float, float] = (0.95, 1.05)
    translation_std: float = 0.5
    gt_sampling: dict[str, int] | None = None  # class -> number of sampled objects per frame
    gt_min_points: int = 5


def augment(points: np.ndarray, boxes: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """Random flips, rotation about z, scaling and translation of a frame and its boxes (copies)."""
    points, boxes = points.copy(), boxes.copy()
    if cfg.flip_x and rng.random() < 0.5:  # mirror across the x axis: y -> -y
        points[:, 1] *= -1
        boxes[:, 1] *= -1
        boxes[:, 6] *= -1
    if cfg.flip_y and rng.random() < 0.5:  # mirror across the y axis: x -> -x
        points[:, 0] *= -1
        boxes[:, 0] *= -1
        boxes[:, 6] = np.pi - boxes[:, 6]
    if cfg.rotation:
        a = rng.uniform(-cfg.rotation, cfg.rotation)
        c, s = math.cos(a), math.sin(a)
        rot = np.array([[c, -s], [s, c]])
        points[:, :2] = points[:, :2] @ rot.T
        boxes[:, :2] = boxes[:, :2] @ rot.T
        boxes[:, 6] += a
    s = rng.uniform(*cfg.scale)
    points[:, :3] *= s
    boxes[:, :6] *= s
    if cfg.translation_std:
        t = rng.normal(0, cfg.translation_std, 3)
        points[:, :3] += t
        boxes[:, :3] += t
    boxes[:, 6] = (boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi
    return points.astype(np.float32), boxes


class GTDatabase:
    """Ground-truth sampling (SECOND's "GT-aug"): objects cut from the training frames, pasted into others.

    Each entry is one labelled object with at least `min_points` returns, stored as its box and the points
    inside it. Pasting drops any sample whose BEV footprint overlaps a box already in the frame, and removes
    the frame's points that fall inside each pasted box.
    """

    def __init__(self, entries: dict[str, list[tuple[np.ndarray, np.ndarray]]]):
        self.entries = entries

    @classmethod
    def build(cls, dataset: "KittiDetectionDataset", min_points: int = 5) -> "GTDatabase":
        entries: dict[str, list] = {n: [] for n in dataset.class_names}
        for i in range(len(dataset.ids)):
            points, boxes, names, _, _ = dataset.read_frame(i)
            if len(boxes) == 0:
                continue
            inside = points_in_boxes(torch.from_numpy(points), torch.from_numpy(boxes).float()).numpy()
            for k, name in enumerate(names):
                if name in entries and inside[:, k].sum() >= min_points:
                    entries[name].append((boxes[k].copy(), points[inside[:, k]].copy()))
        return cls(entries)

    def sample(self, points: np.ndarray, boxes: np.ndarray, names: list[str], counts: dict[str, int],
               rng: np.random.Generator):
        new_boxes, new_names, new_points = [], [], []
        existing = torch.from_numpy(boxes).float()
        for name, count in counts.items():
            pool = self.entries.get(name, [])
            if not pool or count <= 0:
                continue
            for j in rng.choice(len(pool), size=min(count, len(pool)), replace=False):
                box, pts = pool[j]
                cand = torch.from_numpy(box[None]).float()
                if existing.shape[0] and iou_bev(cand, existing).max() > 0:
                    continue
                existing = torch.cat([existing, cand])
                new_boxes.append(box)
                new_names.append(name)
                new_points.append(pts)
        if not new_boxes:
            return points, boxes, names
        nb = np.stack(new_boxes)
        inside = points_in_boxes(torch.from_numpy(points), torch.from_numpy(nb).float()).any(1).numpy()
        points = np.concatenate([points[~inside]] + new_points).astype(np.float32)
        return points, np.concatenate([boxes, nb]), list(names) + new_names


class KittiDetectionDataset(torch.utils.data.Dataset):
    """A KITTI-layout detection split (`root/training/{velodyne,label_2,calib}`, `root/ImageSets/<split>.txt`).

    Items are dicts: `points` float32 `(N, 4)`, `boxes` `(M, 7)`, `labels` `(M,)` (index into
    `class_names`), `difficulty` `(M,)` (-1: no level) and `num_points` `(M,)` (both zero when augmenting),
    `frame_id`. Points outside `point_range` are
    dropped (and counted in `dropped`); boxes whose centre is outside it are dropped.
    """

    def __init__(self, root: str | Path, split: str, class_names: tuple[str, ...], point_range: tuple[float, ...],
                 augment_cfg: AugmentConfig | None = None, seed: int = 0):
        self.root = Path(root)
        listing = self.root / "ImageSets" / f"{split}.txt"
        if not listing.is_file():
            raise PointCloudFileError(listing, "split listing missing (is this a KITTI-layout folder?)")
        self.ids = [s for s in listing.read_text().split() if s]
        self.class_names = tuple(class_names)
        self.point_range = tuple(point_range)
        self.augment_cfg = augment_cfg
        self.seed = seed
        self._draws = 0  # every read draws fresh augmentations, reproducibly from the seed
        self.db: GTDatabase | None = None
        if augment_cfg is not None and augment_cfg.gt_sampling:
            self.db = GTDatabase.build(self, augment_cfg.gt_min_points)

    def __len__(self) -> int:
        return len(self.ids)

    def read_frame(self, i: int):
        fid = self.ids[i]
        base = self.root / "training"
        points = read_kitti_bin(base / "velodyne" / f"{fid}.bin")
        label = base / "label_2" / f"{fid}.txt"
        if label.is_file():
            calib = read_kitti_calib(base / "calib" / f"{fid}.txt")
            boxes, names, trunc, occ = read_kitti_label(label, calib)
        else:
            boxes, names, trunc, occ = np.zeros((0, 7)), [], np.zeros(0), np.zeros(0, np.int64)
        return points, boxes, names, trunc, occ

    def __getitem__(self, i: int) -> dict:
        points, boxes, names, trunc, occ = self.read_frame(i)
        keep = np.array([n in self.class_names for n in names], dtype=bool)
        boxes, trunc, occ = boxes[keep], trunc[keep], occ[keep]
        names = [n for n, k in zip(names, keep) if k]
        points = points[np.isfinite(points).all(1)]
        difficulty = np.zeros(len(boxes), np.int64)
        npts = np.zeros(len(boxes), np.int64)
        if self.augment_cfg is not None:
            self._draws += 1
            rng = np.random.default_rng([self.seed, self._draws, i])
            if self.db is not None:
                points, boxes, names = self.db.sample(points, boxes, names, self.augment_cfg.gt_sampling, rng)
            points, boxes = augment(points, boxes, self.augment_cfg, rng)
            npts = np.zeros(len(boxes), np.int64)
            difficulty = np.zeros(len(boxes), np.int64)
        else:
            npts = points_in_boxes(torch.from_numpy(points), torch.from_numpy(boxes).float()).sum(0).numpy()
            difficulty = kitti_difficulty(occ, trunc, npts)
        x0, y0, z0, x1, y1, z1 = self.point_range
        inr = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1) \
            & (points[:, 2] >= z0) & (points[:, 2] < z1)
        binr = (boxes[:, 0] >= x0) & (boxes[:, 0] < x1) & (boxes[:, 1] >= y0) & (boxes[:, 1] < y1)
        labels = np.array([self.class_names.index(n) for n in names], np.int64)
        return {"points": torch.from_numpy(points[inr]), "boxes": torch.from_numpy(boxes[binr]).float(),
                "labels": torch.from_numpy(labels[binr]),
                "difficulty": torch.from_numpy(difficulty[binr]), "num_points": torch.from_numpy(npts[binr]),
                "frame_id": self.ids[i], "dropped": int((~inr).sum())}


def collate_frames(items: list[dict]) -> dict:
    """Batch frames: points concatenated with a `batch_index`, boxes as lists."""
    if not items:
        raise PointCloudValueError("empty batch")
    points = torch.cat([it["points"] for it in items])
    batch_index = torch.cat([torch.full((len(it["points"]),), b, dtype=torch.long) for b, it in enumerate(items)])
    return {"points": points, "batch_index": batch_index, "batch_size": len(items),
            "boxes": [it["boxes"] for it in items], "labels": [it["labels"] for it in items],
            "difficulty": [it["difficulty"] for it in items], "num_points": [it["num_points"] for it in items],
            "frame_id": [it["frame_id"] for it in items]}
