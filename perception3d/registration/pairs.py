"""Registration pairs: a generator from any scan or mesh, and readers of pair lists and the 3DMatch layout.

The generator makes (source, target, transform) from one cloud, as Predator / RPM-Net make partial pairs:
each side keeps the points nearest a random viewing direction (a view-dependent crop), is thinned to a random
density, gets noise, and the source is moved by a uniform random rotation (on SO(3)) and a translation.
The transform maps SOURCE into TARGET's frame: target ~= source @ R.T + t.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception3d._errors import PointCloudFileError
from perception3d._io import atomic_write


def uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix [3, 3] drawn uniformly from SO(3) (unit quaternion from a 4D Gaussian)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def view_crop(points: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Keep the share `keep` of the points nearest a random viewpoint far out in a random direction."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    score = (points - points.mean(0)) @ direction
    k = max(int(round(keep * len(points))), 1)
    return points[np.argsort(-score)[:k]]


@dataclass(frozen=True)
class PairConfig:
    """How a pair is made. Lengths are fractions of the cloud's extent (largest side of its bounding box).

    keep: range of the share of points each side keeps after its view crop (overlap falls as it drops).
    density: range of the share of the cropped points kept at random.
    noise: Gaussian noise sigma; translation: range of the source's offset.
    """

    keep: tuple[float, float] = (0.6, 0.9)
    density: tuple[float, float] = (0.6, 1.0)
    noise: float = 0.002
    translation: float = 0.5


def make_pair(points: np.ndarray, rng: np.random.Generator,
              config: PairConfig = PairConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One partial, rotated pair from a cloud [N, 3]: (source [Ns, 3], target [Nt, 3], transform [4, 4])."""
    points = np.asarray(points, dtype=np.float64)[:, :3]
    extent = float(np.ptp(points, axis=0).max())
    sides = []
    for _ in range(2):
        side = view_crop(points, rng.uniform(*config.keep), rng)
        n = max(int(round(rng.uniform(*config.density) * len(side))), 1)
        side = side[rng.choice(len(side), n, replace=False)]
        sides.append(side + rng.normal(scale=config.noise * extent, size=side.shape))
    src_world, tgt = sides
    rot = uniform_rotation(rng)
    trans = rng.uniform(-config.translation, config.translation, size=3) * extent
    # source frame: world -> source is x_s = R^T (x_w - t), so source -> target(world) is x_w = R x_s + t.
    src = (src_world - trans) @ rot
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rot, trans
    return src, tgt, transform


def overlapping_crops(points: np.ndarray, rng: np.random.Generator, *, window: float = 0.75,
                      translation: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pair from a large scene (an airborne lidar tile, a map): two windows along its longest horizontal axis.

    The target keeps the last `window` share of that axis, the source the first `window` share: they share
    2 * window - 1 of it (by default half the scene, two thirds of each window). Both are in the scene's own
    frame centred on its centroid; the source is then moved by a uniform SO(3) rotation and a translation of up
    to `translation` x the scene's extent. Returns (source [Ns, 3], target [Nt, 3], transform [4, 4] source ->
    target).
    """
    points = np.asarray(points, dtype=np.float64)[:, :3]
    points = points - points.mean(0)
    axis = int(np.argmax(np.ptp(points[:, :2], axis=0)))
    lo, span = points[:, axis].min(), float(np.ptp(points[:, axis]))
    u = (points[:, axis] - lo) / span
    src_world, tgt = points[u <= window], points[u >= 1 - window]
    rot = uniform_rotation(rng)
    trans = rng.uniform(-translation, translation, size=3) * float(np.ptp(points, axis=0).max())
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rot, trans
    return (src_world - trans) @ rot, tgt, transform


def sector_crop(points: np.ndarray, rng: np.random.Generator, degrees: float = 90.0) -> np.ndarray:
    """The points of a sweep [N, 3] (sensor frame, z up) within a random azimuth sector of `degrees`."""
    heading = rng.uniform(-np.pi, np.pi)
    azimuth = np.arctan2(points[:, 1], points[:, 0]) - heading
    offset = np.abs((azimuth + np.pi) % (2 * np.pi) - np.pi)  # angle to the sector's centre line, [0, pi]
    return points[offset <= np.radians(degrees) / 2]


def sweep_pair(source: np.ndarray, target: np.ndarray, transform: np.ndarray, rng: np.random.Generator, *,
               sector: float | None = None, translation: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A benchmark pair from two sweeps in their sensor frames and the source -> target `transform` [4, 4].

    With `sector` (degrees) the source keeps only that azimuth sector (the low-overlap case: a 90-degree sector of a
    full sweep overlaps about a quarter of the target). The source is then moved by a uniform SO(3) rotation and a
    translation of up to `translation` (the sweeps' unit) on each axis. Returns (source, target, transform source ->
    target), the convention of `make_pair`.
    """
    src = np.asarray(source, dtype=np.float64)[:, :3]
    if sector is not None:
        src = sector_crop(src, rng, sector)
    move = np.eye(4)
    move[:3, :3], move[:3, 3] = uniform_rotation(rng), rng.uniform(-translation, translation, size=3)
    # x_moved = M x_src, so moved -> target is T M^-1.
    moved = src @ move[:3, :3].T + move[:3, 3]
    return moved, np.asarray(target, dtype=np.float64)[:, :3], np.asarray(transform, np.float64) @ np.linalg.inv(move)


def self_pair_copy(sweep: np.ndarray, rng: np.random.Generator, *, keep: float = 0.7,
                   noise: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A single sweep [N, 3] against a copy of itself: (copy, sweep, identity). The copy keeps a random `keep` share
    of the points with Gaussian noise of `noise` (the sweep's unit), so the two share no exact points; `sweep_pair`
    then moves and crops it."""
    sweep = np.asarray(sweep, dtype=np.float64)[:, :3]
    copy = sweep[rng.random(len(sweep)) < keep]
    return copy + rng.normal(scale=noise, size=copy.shape), sweep, np.eye(4)


@dataclass(frozen=True)
class SweepPairConfig:
    """How a training pair is drawn from two sweeps (`random_sweep_pair`).

    sector_share: the probability that the source is cut to an azimuth sector (low overlap); sector: its range of
    widths in degrees (90 degrees of a full sweep against the next full sweep is about 25% of the target, the
    benchmark's low-overlap case). density: range of the share of each side's points kept at random. noise:
    Gaussian sigma in the sweeps' unit. translation: the source's offset per axis, in the sweeps' unit.
    """

    sector_share: float = 0.6
    sector: tuple[float, float] = (80.0, 200.0)
    density: tuple[float, float] = (0.5, 1.0)
    noise: float = 0.01
    translation: float = 10.0


def random_sweep_pair(source: np.ndarray, target: np.ndarray, transform: np.ndarray, rng: np.random.Generator,
                      config: SweepPairConfig = SweepPairConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A training pair from two sweeps [N, 3], [M, 3] (sensor frames, z up) and the source -> target `transform`:
    each side thinned and noised, the source cut to a random sector with probability `config.sector_share`, then
    moved by a uniform SO(3) rotation and a translation (`sweep_pair`). Returns (source, target, transform)."""
    sides = []
    for pts in (source, target):
        pts = np.asarray(pts, dtype=np.float64)[:, :3]
        keep = rng.uniform(*config.density)
        pts = pts[rng.random(len(pts)) < keep]
        sides.append(pts + rng.normal(scale=config.noise, size=pts.shape))
    sector = rng.uniform(*config.sector) if rng.random() < config.sector_share else None
    return sweep_pair(sides[0], sides[1], transform, rng, sector=sector, translation=config.translation)


# ---------------------------------------------------------------------------------------------------------------
# Readers


@dataclass(frozen=True)
class PairEntry:
    """One pair of a list: the two cloud files and the source -> target transform [4, 4]."""

    source: Path
    target: Path
    transform: np.ndarray


def read_pair_list(path: str | Path) -> list[PairEntry]:
    """The generic pair list: a CSV with header `source,target,t00,...,t33` (row-major 4x4).

    Paths are relative to the CSV's folder unless absolute.
    """
    path = Path(path)
    if not path.is_file():
        raise PointCloudFileError(path, "pair list not found")
    entries = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["source", "target"] or len(header) != 18:
            raise PointCloudFileError(path, "expected a header 'source,target,t00,...,t33' (18 columns)")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 18:
                raise PointCloudFileError(path, f"line {line_no}: expected 18 columns, got {len(row)}")
            try:
                t = np.array([float(v) for v in row[2:]]).reshape(4, 4)
            except ValueError as err:
                raise PointCloudFileError(path, f"line {line_no}: {err}") from None
            if not np.isfinite(t).all() or not np.allclose(t[3], [0, 0, 0, 1]):
                raise PointCloudFileError(path, f"line {line_no}: not a rigid 4x4 transform")
            src, tgt = (Path(v) if Path(v).is_absolute() else path.parent / v for v in row[:2])
            entries.append(PairEntry(src, tgt, t))
    return entries


def write_pair_list(path: str | Path, entries: list[PairEntry]) -> None:
    """Write a pair list readable by `read_pair_list` (paths relative to the CSV's folder when inside it)."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["source", "target", *(f"t{i}{j}" for i in range(4) for j in range(4))])
            for e in entries:
                names = []
                for p in (e.source, e.target):
                    try:
                        names.append(str(Path(p).relative_to(path.parent)))
                    except ValueError:
                        names.append(str(p))
                w.writerow([*names, *(repr(float(v)) for v in np.asarray(e.transform).reshape(-1))])

    atomic_write(path, write)


@dataclass(frozen=True)
class ThreeDMatchPair:
    """A 3DMatch benchmark pair: fragment indices (source i, target j) in a scene and the 4x4 of gt.log."""

    scene: str
    source_index: int
    target_index: int
    transform: np.ndarray

    def fragment_paths(self, root: Path) -> tuple[Path, Path]:
        """`<root>/<scene>/cloud_bin_<i>.<ext>` for the first extension present (.pth, .ply, .npy)."""
        paths = []
        for index in (self.source_index, self.target_index):
            for ext in (".npy", ".ply", ".pth"):
                p = Path(root) / self.scene / f"cloud_bin_{index}{ext}"
                if p.exists():
                    break
            paths.append(p)
        return paths[0], paths[1]


def read_gt_log(path: str | Path) -> list[ThreeDMatchPair]:
    """A 3DMatch `gt.log`: blocks of one line `i j n` and four lines of the 4x4 transform.

    Each header `i j n` names fragments i and j; as in GeoTransformer's 3DMatch metadata (frag_id0 = reference,
    frag_id1 = source), the transform maps fragment j (the source) into fragment i's frame (the target).
    The scene is the log's folder name.
    """
    path = Path(path)
    if not path.is_file():
        raise PointCloudFileError(path, "gt.log not found")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) % 5:
        raise PointCloudFileError(path, f"{len(lines)} non-empty lines is not a multiple of 5 (header + 4x4)")
    pairs = []
    for b in range(0, len(lines), 5):
        head = lines[b]
        try:
            i, j = int(head[0]), int(head[1])
            t = np.array([[float(v) for v in row] for row in lines[b + 1: b + 5]])
        except (ValueError, IndexError) as err:
            raise PointCloudFileError(path, f"block at line {b + 1}: {err}") from None
        if t.shape != (4, 4):
            raise PointCloudFileError(path, f"block at line {b + 1}: the transform is not 4x4")
        pairs.append(ThreeDMatchPair(path.parent.name, source_index=j, target_index=i, transform=t))
    return pairs


def read_3dmatch_benchmark(root: str | Path) -> list[ThreeDMatchPair]:
    """Every pair of a benchmark folder laid out as `<root>/<scene>/gt.log` (3DMatch or 3DLoMatch)."""
    root = Path(root)
    logs = sorted(root.glob("*/gt.log"))
    if not logs:
        raise PointCloudFileError(root, "no <scene>/gt.log under this folder")
    return [p for log in logs for p in read_gt_log(log)]


# ---------------------------------------------------------------------------------------------------------------
# The rotated benchmarks (RoITr's Rotated 3DMatch / 3DLoMatch protocol)


def rotate_pair(source: np.ndarray, target: np.ndarray, transform: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rotated variant of a pair: each cloud turned by its own uniform SO(3) rotation about the origin.

    As in RoITr's Rotated 3DMatch / 3DLoMatch, both fragments are rotated independently and the ground truth
    follows: with x_s' = R_s x_s and x_t' = R_t x_t, the source -> target transform becomes
    H_t T H_s^-1 (H = the rotation as a 4x4). Returns (source' [N, 3], target' [M, 3], transform' [4, 4]).
    """
    rot_s, rot_t = uniform_rotation(rng), uniform_rotation(rng)
    h_s, h_t = np.eye(4), np.eye(4)
    h_s[:3, :3], h_t[:3, :3] = rot_s, rot_t
    new = h_t @ np.asarray(transform, np.float64) @ h_s.T  # H_s^-1 = H_s^T for a pure rotation
    return np.asarray(source, np.float64) @ rot_s.T, np.asarray(target, np.float64) @ rot_t.T, new


# ---------------------------------------------------------------------------------------------------------------
# Predator / RoITr 3DMatch info pickles (read without executing code)

_PKL_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def _safe_unpickle(path: Path):
    """Load a pickle that may hold only builtin containers, strings, numbers and numpy arrays.

    Any other global (a class, a function: the way a pickle runs code) is refused with PointCloudFileError,
    the same guarantee as torch.load(weights_only=True).
    """
    import pickle

    class _Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _PKL_ALLOWED:
                raise PointCloudFileError(path, f"refusing to load {module}.{name}: only numpy arrays, lists, "
                                          "dicts, strings and numbers are read from an info pickle")
            return super().find_class(module, name)

    try:
        with path.open("rb") as f:
            return _Restricted(f).load()
    except PointCloudFileError:
        raise
    except Exception as err:  # truncated or not a pickle
        raise PointCloudFileError(path, f"not a readable info pickle ({type(err).__name__}: {err})") from None


def read_3dmatch_info(path: str | Path, root: str | Path | None = None) -> list[PairEntry]:
    """A Predator-style 3DMatch / 3DLoMatch info pickle (`3DMatch.pkl`, `3DLoMatch.pkl`, RoITr's `*_info.pkl`).

    The file is a dict of parallel lists: 'src' and 'tgt' (fragment paths relative to the data root), 'rot'
    [N, 3, 3] and 'trans' [N, 3, 1] mapping each source fragment into its target's frame, and 'overlap'.
    Paths are resolved against `root` (default: the pickle's folder). The transform is read as given.
    """
    path = Path(path)
    if not path.is_file():
        raise PointCloudFileError(path, "info pickle not found")
    info = _safe_unpickle(path)
    keys = ("src", "tgt", "rot", "trans")
    if not isinstance(info, dict) or any(k not in info for k in keys):
        raise PointCloudFileError(path, f"expected a dict with keys {', '.join(keys)}")
    n = len(info["src"])
    if any(len(info[k]) != n for k in keys):
        raise PointCloudFileError(path, "'src', 'tgt', 'rot' and 'trans' have different lengths")
    base = Path(root) if root is not None else path.parent
    entries = []
    for i in range(n):
        rot = np.asarray(info["rot"][i], np.float64)
        trans = np.asarray(info["trans"][i], np.float64).reshape(-1)
        if rot.shape != (3, 3) or trans.shape != (3,) or not (np.isfinite(rot).all() and np.isfinite(trans).all()):
            raise PointCloudFileError(path, f"pair {i}: 'rot' must be 3x3 and 'trans' 3 finite values")
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = rot, trans
        entries.append(PairEntry(base / str(info["src"][i]), base / str(info["tgt"][i]), t))
    return entries


# ---------------------------------------------------------------------------------------------------------------
# KITTI odometry pairs (the FCGF / Predator / GeoTransformer protocol)


def _read_rows_of_12(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise PointCloudFileError(path, f"{what} not found")
    try:
        rows = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise PointCloudFileError(path, f"{what}: {err}") from None
    if rows.shape[1] != 12 or not np.isfinite(rows).all():
        raise PointCloudFileError(path, f"{what}: expected 12 finite numbers per line, got {rows.shape[1]}")
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, :4] = rows.reshape(-1, 3, 4)
    return out


def read_kitti_calib(path: str | Path) -> np.ndarray:
    """`Tr` of a KITTI odometry `calib.txt`: the [4, 4] velodyne -> camera-0 transform."""
    path = Path(path)
    if not path.is_file():
        raise PointCloudFileError(path, "calib.txt not found")
    for line in path.read_text().splitlines():
        if line.startswith("Tr:"):
            values = line.split()[1:]
            if len(values) != 12:
                raise PointCloudFileError(path, f"'Tr:' has {len(values)} numbers, expected 12")
            t = np.eye(4)
            t[:3, :4] = np.array([float(v) for v in values]).reshape(3, 4)
            return t
    raise PointCloudFileError(path, "no 'Tr:' line (the velodyne -> camera transform)")


def kitti_pairs(root: str | Path, sequence: int | str, *, min_distance: float = 10.0,
                window: int = 100) -> list[PairEntry]:
    """KITTI odometry registration pairs of one sequence, FCGF's selection (used by Predator and GeoTransformer).

    Layout: `<root>/poses/<seq>.txt` (camera-0 poses, 12 numbers a line), `<root>/sequences/<seq>/calib.txt`
    and `<root>/sequences/<seq>/velodyne/<frame:06d>.bin`. From frame i, the partner j is the last frame before
    the first one more than `min_distance` metres away (looking `window` frames ahead); the next pair starts at
    j + 1. Target = frame i, source = frame j; the transform maps velodyne j into velodyne i:
    Tr^-1 P_i^-1 P_j Tr. The benchmark papers refine these ground truths with ICP; that step is not done here.
    """
    root, seq = Path(root), f"{int(sequence):02d}"
    poses = _read_rows_of_12(root / "poses" / f"{seq}.txt", "poses file")
    tr = read_kitti_calib(root / "sequences" / seq / "calib.txt")
    velodyne = root / "sequences" / seq / "velodyne"
    positions = poses[:, :3, 3]
    entries, i = [], 0
    while i < len(poses):
        dist = np.linalg.norm(positions[i: i + window] - positions[i], axis=1)
        far = np.nonzero(dist > min_distance)[0]
        if len(far) == 0:
            i += 1
            continue
        j = i + max(int(far[0]) - 1, 1)
        t = np.linalg.inv(tr) @ np.linalg.inv(poses[i]) @ poses[j] @ tr
        entries.append(PairEntry(velodyne / f"{j:06d}.bin", velodyne / f"{i:06d}.bin", t))
        i = j + 1
    return entries
