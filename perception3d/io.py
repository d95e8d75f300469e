"""Point-cloud and mesh files: read into `PointCloudData` / `MeshData`, write atomically.

| extension | read | write | notes |
|---|---|---|---|
| .ply | ascii and binary, vertices (+ faces) | binary or ascii | own parser: a truncated or malformed file is an error |
| .pcd | ascii, binary (own parser); binary_compressed (open3d) | ascii or binary | |
| .xyz, .txt, .pts | `x y z`, `x y z intensity` or `x y z nx ny nz` per line | same | `#` comments, spaces or commas |
| .npy | `[N, 3]`, `[N, 4]` (+ intensity) or `[N, 6]` (+ normals) | same | never unpickled |
| .bin | KITTI velodyne: N x 4 float32 (x y z reflectance) | same | size must be a multiple of 16 bytes |
| .las, .laz | laspy (lazrs for .laz) | same | xyz relative to `origin` (the file's offsets) |
| .off, .obj | meshes (`read_mesh`), vertices or area-sampled points | - | polygons are fan-triangulated |

Every bad input raises `PointCloudFileError(path, reason)`; arrays given in memory that cannot be points raise
`PointCloudValueError`. Optional packages (laspy, open3d) are imported only when a file needs them.

What is checked before any point is used: the content matches the extension (`check_content`: a `.npy` named
`.bin`, a JPEG named `.ply` are refused, not read as garbage); dtype and shape; every coordinate finite and within
`MAX_ABS_COORDINATE` (a 1e30 outlier is refused, it never reaches a solver); the declared length against the actual
one (a LAS file cut on a record boundary is refused, not read as half the points).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from perception3d._errors import PointCloudFileError, PointCloudValueError
from perception3d._io import atomic_write

# Coordinates beyond 1e9 (metres, or the file's unit) are corrupt: Earth-fixed frames stay below 1e7 m, and a
# larger value only ruins every distance computed afterwards (and overflows float32 squares at 1e19).
MAX_ABS_COORDINATE = 1e9

# The most points one file may hold, checked from its header before the points are read (.npy, .bin, .las/.laz,
# .ply, .pcd) and after reading for the others: a 10-million-point cloud runs through register, detect and
# classify within a few GB (README, "Bad input"); a billion-point file is refused, not allocated.
MAX_POINTS = 20_000_000
MAX_POINTS_ENV = "OMNISENSE_MAX_POINTS"


def max_points() -> int:
    """MAX_POINTS, or the OMNISENSE_MAX_POINTS environment variable when set."""
    import os

    value = os.environ.get(MAX_POINTS_ENV)
    try:
        return int(value) if value else MAX_POINTS
    except ValueError:
        return MAX_POINTS


def check_point_count(path: str | Path, n: int) -> None:
    """Refuse a file declaring more than `max_points()` points, before they are read."""
    limit = max_points()
    if n > limit:
        raise PointCloudFileError(path, f"{n:,} points is above the limit of {limit:,} points per file "
                                        f"({MAX_POINTS_ENV} raises it)")


POINT_EXTENSIONS = (".ply", ".pcd", ".xyz", ".txt", ".pts", ".npy", ".bin", ".las", ".laz", ".off", ".obj")
MESH_EXTENSIONS = (".off", ".obj", ".ply")


# ---------------------------------------------------------------- data

def _check_rows(name: str, value: np.ndarray | None, n: int, width: int | None) -> np.ndarray | None:
    if value is None:
        return None
    value = np.asarray(value)
    want = (n,) if width is None else (n, width)
    if value.shape != want:
        raise PointCloudValueError(f"{name}: expected shape {want}, got {value.shape}")
    return value


@dataclass(frozen=True)
class PointCloudData:
    """One point cloud, validated on creation.

    Attributes:
        xyz: `float32 [N, 3]` coordinates (metres for lidar), N >= 1, all finite.
        normals: optional `float32 [N, 3]`.
        colors: optional `float32 [N, 3]` RGB in [0, 1].
        intensity: optional `float32 [N]` (KITTI reflectance, LAS intensity as stored).
        origin: `float64 [3]` added to xyz to get the file's absolute coordinates (non-zero for LAS, whose
            georeferenced coordinates would lose centimetres in float32).
    """

    xyz: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    intensity: np.ndarray | None = None
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        xyz = np.asarray(self.xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.issubdtype(xyz.dtype, np.number):
            raise PointCloudValueError(f"xyz: expected a numeric array [N, 3], got shape {xyz.shape} {xyz.dtype}")
        if xyz.shape[0] == 0:
            raise PointCloudValueError("no points (empty cloud)")
        xyz = np.ascontiguousarray(xyz, dtype=np.float32)
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        if bad:
            raise PointCloudValueError(f"{bad} of {len(xyz)} points have NaN or infinite coordinates")
        far = int((np.abs(xyz) > MAX_ABS_COORDINATE).any(axis=1).sum())
        if far:
            raise PointCloudValueError(f"{far} of {len(xyz)} points have a coordinate beyond {MAX_ABS_COORDINATE:g} "
                                       f"(max |value| {float(np.abs(xyz).max()):.3g}): corrupt values")
        n = len(xyz)
        object.__setattr__(self, "xyz", xyz)
        for name, width in (("normals", 3), ("colors", 3), ("intensity", None)):
            value = _check_rows(name, getattr(self, name), n, width)
            if value is not None:
                object.__setattr__(self, name, np.ascontiguousarray(value, dtype=np.float32))
        object.__setattr__(self, "origin", np.asarray(self.origin, dtype=np.float64).reshape(3))

    def __len__(self) -> int:
        return len(self.xyz)

    def to_torch(self) -> dict:
        """The arrays as torch tensors (shared memory), None where absent."""
        import torch

        return {name: None if getattr(self, name) is None else torch.from_numpy(getattr(self, name))
                for name in ("xyz", "normals", "colors", "intensity")}


@dataclass(frozen=True)
class MeshData:
    """A triangle mesh: `vertices float32 [V, 3]` and `faces int64 [F, 3]` (indices into vertices)."""

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
            raise PointCloudValueError(f"mesh vertices: expected [V >= 1, 3], got {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise PointCloudValueError("mesh vertices: NaN or infinite coordinates")
        if (np.abs(vertices) > MAX_ABS_COORDINATE).any():
            raise PointCloudValueError(f"mesh vertices: a coordinate beyond {MAX_ABS_COORDINATE:g} (corrupt values)")
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise PointCloudValueError(f"mesh faces: indices outside [0, {len(vertices)})")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)

    def sample(self, n: int, seed: int = 0) -> PointCloudData:
        """n points uniform on the surface (area-weighted), with the faces' normals."""
        return sample_mesh(self, n, seed)


def sample_mesh(mesh: MeshData, n: int, seed: int = 0) -> PointCloudData:
    """Draw n points uniformly on a mesh's surface: a face by area, then uniform barycentric coordinates.

    Args:
        mesh: a mesh with at least one face of non-zero area.
        n: points to draw (>= 1).
        seed: the same seed draws the same points.

    Returns:
        PointCloudData with xyz and the unit normals of the faces the points lie on.
    """
    if n < 1:
        raise PointCloudValueError(f"sample_mesh: n must be >= 1, got {n}")
    tri = mesh.vertices.astype(np.float64)[mesh.faces]  # [F, 3 corners, 3]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    if len(area) == 0 or area.sum() <= 0:
        raise PointCloudValueError("sample_mesh: the mesh has no face of non-zero area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(area), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1  # fold the unit square onto the triangle
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tri[face]
    xyz = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[face] / (2 * area[face])[:, None]
    return PointCloudData(xyz, normals=normals)


# ---------------------------------------------------------------- reading

def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise PointCloudFileError(path, "no such file")
    if path.is_dir():
        raise PointCloudFileError(path, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise PointCloudFileError(path, "empty file (0 bytes)")
    return path


def _extension(path: Path, allowed: tuple[str, ...]) -> str:
    ext = path.suffix.lower()
    if ext not in allowed:
        raise PointCloudFileError(path, f"unknown extension {ext or '(none)'!r}; expected one of {', '.join(allowed)}")
    return ext


# (magic bytes at offset 0, kind, what it is); MP4/MOV are recognised by "ftyp" at offset 4
_MAGIC = ((b"\x93NUMPY", "npy", "a NumPy .npy array"), (b"ply\n", "ply", "a PLY file"), (b"ply\r", "ply", "a PLY file"),
          (b"LASF", "las", "a LAS/LAZ file"), (b"PK\x03\x04", "zip", "a zip archive"),
          (b"\xff\xd8\xff", "jpeg", "a JPEG image"), (b"\x89PNG", "png", "a PNG image"), (b"GIF8", "gif", "a GIF image"),
          (b"RIFF", "riff", "a RIFF file (WAV/AVI)"), (b"fLaC", "flac", "FLAC audio"), (b"OggS", "ogg", "an Ogg file"),
          (b"\x1a\x45\xdf\xa3", "mkv", "a Matroska/WebM video"), (b"\x1f\x8b", "gzip", "gzip-compressed data"),
          (b"BZh", "bzip2", "bzip2-compressed data"), (b"\x80\x02", "pickle", "a Python pickle"),
          (b"\x80\x04", "pickle", "a Python pickle"))
# the content kind each extension must have (None: a text format or raw floats, which no magic may claim)
_OWN_KIND = {".npy": "npy", ".ply": "ply", ".las": "las", ".laz": "las"}


def sniff(path: str | Path) -> tuple[str, str] | None:
    """(kind, description) of a file's content from its first bytes, or None when no known magic matches."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[4:8] == b"ftyp":
        return "mp4", "an MP4/MOV video"
    for magic, kind, what in _MAGIC:
        if head.startswith(magic):
            return kind, what
    return None


def check_content(path: str | Path, ext: str | None = None) -> None:
    """Refuse a file whose content is another format than its extension says (format by content, not by name).

    Raises:
        PointCloudFileError: e.g. "content is a NumPy .npy array, not a .bin file".
    """
    path = Path(path)
    ext = (ext or path.suffix).lower()
    try:
        found = sniff(path)
    except OSError as err:
        raise PointCloudFileError(path, f"cannot read ({err.strerror or err})") from None
    if found is not None and found[0] != _OWN_KIND.get(ext):
        raise PointCloudFileError(path, f"content is {found[1]}, not a {ext} file")


def _build(path: Path, **arrays) -> PointCloudData:
    check_point_count(path, len(arrays["xyz"]))
    try:
        return PointCloudData(**arrays)
    except PointCloudValueError as err:
        raise PointCloudFileError(path, str(err)) from None


def read_points(path: str | Path, *, mesh_samples: int | None = None, seed: int = 0) -> PointCloudData:
    """Read a point cloud (or a mesh's points) from any supported file.

    Args:
        path: the file; its extension picks the reader (see the module's table).
        mesh_samples: for a mesh file (.off, .obj, a .ply with faces): None returns its vertices, n returns
            n points drawn uniformly on its surface with face normals.
        seed: the sampling seed.

    Raises:
        PointCloudFileError: missing, empty, truncated or malformed file, unknown extension, no points,
            NaN or infinite coordinates.
    """
    path = _existing(path)
    ext = _extension(path, POINT_EXTENSIONS)
    check_content(path, ext)
    if ext in (".off", ".obj") or (ext == ".ply" and mesh_samples is not None):
        mesh = read_mesh(path)
        if mesh_samples is None:
            return _build(path, xyz=mesh.vertices)
        if not len(mesh.faces):
            raise PointCloudFileError(path, "asked to sample a mesh, but the file has no faces")
        try:
            return sample_mesh(mesh, mesh_samples, seed)
        except PointCloudValueError as err:
            raise PointCloudFileError(path, str(err)) from None
    reader: Callable[[Path], dict] = {
        ".ply": _read_ply_points, ".pcd": _read_pcd, ".xyz": _read_text, ".txt": _read_text, ".pts": _read_text,
        ".npy": _read_npy, ".bin": _read_kitti_bin, ".las": _read_las, ".laz": _read_las,
    }[ext]
    try:
        arrays = reader(path)
    except OSError as err:  # unreadable (permissions, a vanished network file): the file and the reason
        raise PointCloudFileError(path, f"cannot read ({err.strerror or err})") from None
    return _build(path, **arrays)


def read_mesh(path: str | Path) -> MeshData:
    """Read a triangle mesh from .off, .obj or .ply (polygons are fan-triangulated).

    Raises:
        PointCloudFileError: as read_points, and a file with no faces or face indices out of range.
    """
    path = _existing(path)
    ext = _extension(path, MESH_EXTENSIONS)
    check_content(path, ext)
    try:
        vertices, faces = _read_mesh_arrays(path, ext)
    except OSError as err:
        raise PointCloudFileError(path, f"cannot read ({err.strerror or err})") from None
    try:
        return MeshData(vertices, faces)
    except PointCloudValueError as err:
        raise PointCloudFileError(path, str(err)) from None


def _read_mesh_arrays(path: Path, ext: str) -> tuple[np.ndarray, np.ndarray]:
    if ext == ".off":
        vertices, faces = _read_off(path)
    elif ext == ".obj":
        vertices, faces = _read_obj(path)
    else:
        elements = _read_ply(path)
        vertices = _ply_columns(path, elements, ("x", "y", "z"))
        if "face" not in elements:
            raise PointCloudFileError(path, "a PLY without a face element is not a mesh")
        faces = _triangulate(elements["face"]["__faces__"])
    return vertices, faces


def _triangulate(polygons: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(polygons, np.ndarray):  # already [F, k]
        polygons = list(polygons) if polygons.shape[1] != 3 else [polygons]
        if len(polygons) == 1 and polygons[0].ndim == 2:
            return polygons[0]
    tris = []
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.int64)
        if len(poly) < 3:
            continue
        tris.append(np.stack([np.full(len(poly) - 2, poly[0]), poly[1:-1], poly[2:]], axis=1))
    return np.concatenate(tris) if tris else np.zeros((0, 3), dtype=np.int64)


# ---- PLY

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _read_ply(path: Path, stop_after: str | None = None) -> dict[str, dict]:
    """Parse a PLY file into {element: {property: array}}; a face element's lists go under '__faces__'.

    Args:
        stop_after: an element name; the elements after it are not parsed (points need only 'vertex').
    """
    with open(path, "rb") as fh:
        if fh.readline().strip() != b"ply":
            raise PointCloudFileError(path, "not a PLY file (no 'ply' magic line)")
        fmt, elements = None, []
        while True:
            line = fh.readline()
            if not line:
                raise PointCloudFileError(path, "truncated PLY header (no end_header)")
            words = line.decode("ascii", errors="replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format" and len(words) >= 2:
                fmt = words[1]
            elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]], None))
            elif (words[0] == "property" and elements and len(words) == 5 and words[1] == "list"
                  and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES):
                elements[-1][2].append((words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]]))
            else:
                raise PointCloudFileError(path, f"malformed PLY header line: {line.strip()[:80]!r}")
        if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
            raise PointCloudFileError(path, f"unsupported PLY format {fmt!r}")
        body = fh.read()
    if stop_after is not None:
        names = [name for name, _, _ in elements]
        if stop_after in names:
            elements = elements[:names.index(stop_after) + 1]
    if fmt == "ascii":
        return _ply_ascii(path, body, elements)
    return _ply_binary(path, body, elements, "<" if fmt == "binary_little_endian" else ">")


def _ply_binary(path: Path, body: bytes, elements, endian: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    pos = 0
    for name, count, props in elements:
        if all(list_type is None for _, _, list_type in props):
            dtype = np.dtype([(p, endian + t) for p, t, _ in props])
            need = dtype.itemsize * count
            if pos + need > len(body):
                raise PointCloudFileError(path, f"truncated PLY: element '{name}' needs {need} bytes, "
                                                f"{max(0, len(body) - pos)} left")
            rec = np.frombuffer(body, dtype=dtype, count=count, offset=pos)
            out[name] = {p: rec[p] for p, _, _ in props}
            pos += need
            continue
        if len(props) != 1:
            raise PointCloudFileError(path, f"PLY element '{name}': list properties mixed with others are not supported")
        prop, item_t, count_t = props[0]
        lists, pos = _ply_binary_lists(path, body, pos, count, np.dtype(endian + count_t), np.dtype(endian + item_t), name)
        out[name] = {"__faces__": lists}
    return out


def _ply_binary_lists(path, body, pos, count, count_dt, item_dt, name):
    if count == 0:
        return np.zeros((0, 3), dtype=np.int64), pos
    if pos + count_dt.itemsize > len(body):
        raise PointCloudFileError(path, f"truncated PLY: element '{name}' is missing")
    first = int(np.frombuffer(body, dtype=count_dt, count=1, offset=pos)[0])
    # fast path: every list has the first list's length (all triangles, say)
    rec = np.dtype([("n", count_dt), ("v", item_dt, (first,))])
    if first > 0 and pos + rec.itemsize * count <= len(body):
        arr = np.frombuffer(body, dtype=rec, count=count, offset=pos)
        if (arr["n"] == first).all():
            return arr["v"].astype(np.int64), pos + rec.itemsize * count
    lists = []
    for _ in range(count):
        if pos + count_dt.itemsize > len(body):
            raise PointCloudFileError(path, f"truncated PLY: element '{name}' ends early")
        k = int(np.frombuffer(body, dtype=count_dt, count=1, offset=pos)[0])
        pos += count_dt.itemsize
        if pos + k * item_dt.itemsize > len(body):
            raise PointCloudFileError(path, f"truncated PLY: element '{name}' ends early")
        lists.append(np.frombuffer(body, dtype=item_dt, count=k, offset=pos).astype(np.int64))
        pos += k * item_dt.itemsize
    return lists, pos


def _ply_ascii(path: Path, body: bytes, elements) -> dict[str, dict]:
    lines = body.decode("ascii", errors="replace").splitlines()
    lines = [ln for ln in lines if ln.strip()]
    out: dict[str, dict] = {}
    pos = 0
    for name, count, props in elements:
        chunk = lines[pos:pos + count]
        if len(chunk) < count:
            raise PointCloudFileError(path, f"truncated PLY: element '{name}' has {len(chunk)} of {count} lines")
        pos += count
        if any(list_type is not None for _, _, list_type in props):
            lists = []
            for i, ln in enumerate(chunk):
                words = ln.split()
                try:
                    k = int(words[0])
                    lists.append(np.array(words[1:1 + k], dtype=np.int64))
                except (ValueError, IndexError):
                    raise PointCloudFileError(path, f"malformed PLY list in element '{name}' line {i + 1}") from None
                if len(lists[-1]) != k:
                    raise PointCloudFileError(path, f"malformed PLY list in element '{name}' line {i + 1}")
            out[name] = {"__faces__": lists}
            continue
        try:
            table = np.loadtxt(chunk, dtype=np.float64, ndmin=2, comments=None) if count else np.zeros((0, len(props)))
            if table.shape != (count, len(props)):
                raise ValueError
        except ValueError:
            raise PointCloudFileError(path, f"malformed PLY: element '{name}' rows are not {len(props)} numbers") from None
        out[name] = {p: table[:, i].astype(t) for i, (p, t, _) in enumerate(props)}  # declared types: uchar colours
    return out


def _ply_columns(path: Path, elements: dict, names: tuple[str, ...]) -> np.ndarray:
    vertex = elements.get("vertex")
    if vertex is None:
        raise PointCloudFileError(path, "PLY has no vertex element")
    missing = [n for n in names if n not in vertex]
    if missing:
        raise PointCloudFileError(path, f"PLY vertex element lacks {', '.join(missing)}")
    return np.stack([np.asarray(vertex[n], dtype=np.float64) for n in names], axis=1)


def _read_ply_points(path: Path) -> dict:
    elements = _read_ply(path, stop_after="vertex")
    vertex = elements.get("vertex", {})
    arrays = {"xyz": _ply_columns(path, elements, ("x", "y", "z"))}
    if all(n in vertex for n in ("nx", "ny", "nz")):
        arrays["normals"] = _ply_columns(path, elements, ("nx", "ny", "nz"))
    for rgb in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(n in vertex for n in rgb):
            colors = np.stack([vertex[n] for n in rgb], axis=1)
            arrays["colors"] = colors / 255.0 if colors.dtype.kind in "iu" else colors
            break
    for name in ("intensity", "scalar_intensity", "reflectance", "scalar_Intensity"):
        if name in vertex:
            arrays["intensity"] = vertex[name]
            break
    return arrays


# ---- PCD

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
              ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}


def _read_pcd(path: Path) -> dict:
    header: dict[str, list[str]] = {}
    with open(path, "rb") as fh:
        while True:
            line = fh.readline()
            if not line:
                raise PointCloudFileError(path, "truncated PCD header (no DATA line)")
            words = line.decode("ascii", errors="replace").split()
            if not words or words[0].startswith("#"):
                continue
            header[words[0].upper()] = words[1:]
            if words[0].upper() == "DATA":
                break
        body = fh.read()
    try:
        fields = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        points = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        mode = header["DATA"][0].lower()
        # PCL pads with repeated '_' fields: give repeats unique names
        fields = [f if f not in fields[:i] else f"{f}__{i}" for i, f in enumerate(fields)]
        kinds = dict(zip(fields, (t.upper() for t in types), strict=True))
        dtype = np.dtype([(f, _PCD_TYPES[(t.upper(), s)], (c,) if c > 1 else ())
                          for f, s, t, c in zip(fields, sizes, types, counts, strict=True)])
    except (KeyError, ValueError, IndexError):
        raise PointCloudFileError(path, "malformed PCD header (FIELDS/SIZE/TYPE/COUNT/POINTS)") from None
    if mode == "ascii":
        rows = [ln.split() for ln in body.decode("ascii", errors="replace").splitlines() if ln.strip()]
        if len(rows) < points:
            raise PointCloudFileError(path, f"truncated PCD: {len(rows)} of {points} points")
        try:
            table = np.array(rows[:points], dtype=np.float64).reshape(points, sum(counts))
        except ValueError:
            raise PointCloudFileError(path, "malformed PCD: rows do not match FIELDS") from None
        cols, start = {}, 0
        for f, c in zip(fields, counts):
            cols[f] = table[:, start] if c == 1 else table[:, start:start + c]
            start += c
    elif mode == "binary":
        if len(body) < dtype.itemsize * points:
            raise PointCloudFileError(path, f"truncated PCD: {len(body)} bytes for {points} points of "
                                            f"{dtype.itemsize} bytes")
        rec = np.frombuffer(body, dtype=dtype, count=points)
        cols = {f: rec[f] for f in fields}
    elif mode == "binary_compressed":
        return _read_pcd_open3d(path, points)
    else:
        raise PointCloudFileError(path, f"unsupported PCD DATA mode {mode!r}")
    if not all(f in cols for f in ("x", "y", "z")):
        raise PointCloudFileError(path, "PCD has no x, y, z fields")
    arrays = {"xyz": np.stack([cols["x"], cols["y"], cols["z"]], axis=1)}
    if all(f in cols for f in ("normal_x", "normal_y", "normal_z")):
        arrays["normals"] = np.stack([cols["normal_x"], cols["normal_y"], cols["normal_z"]], axis=1)
    color_field = "rgb" if "rgb" in cols else "rgba" if "rgba" in cols else None
    if color_field is not None:
        # 0xRRGGBB packed in 4 bytes: a float's bits (TYPE F, PCL's usual) or an integer (TYPE U/I)
        raw = np.asarray(cols[color_field])
        if kinds[color_field] == "F":
            packed = np.ascontiguousarray(raw, dtype=np.float32).view(np.uint32)
        else:
            packed = raw.astype(np.int64).astype(np.uint32)
        arrays["colors"] = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1) / 255.0
    if "intensity" in cols:
        arrays["intensity"] = cols["intensity"]
    return arrays


def _read_pcd_open3d(path: Path, points: int) -> dict:
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    pc = o3d.io.read_point_cloud(str(path), format="pcd")
    xyz = np.asarray(pc.points)
    if len(xyz) != points:
        raise PointCloudFileError(path, f"corrupt compressed PCD: open3d read {len(xyz)} of {points} points")
    arrays = {"xyz": xyz}
    if pc.has_normals():
        arrays["normals"] = np.asarray(pc.normals)
    if pc.has_colors():
        arrays["colors"] = np.asarray(pc.colors)
    return arrays


# ---- text, npy, KITTI bin, LAS

_NUMBER_ROW = re.compile(rb"[,\s]+")


def _columns_to_arrays(path: Path, table: np.ndarray, what: str) -> dict:
    width = table.shape[1] if table.ndim == 2 else -1
    if width == 3:
        return {"xyz": table}
    if width == 4:
        return {"xyz": table[:, :3], "intensity": table[:, 3]}
    if width == 6:
        return {"xyz": table[:, :3], "normals": table[:, 3:6]}
    raise PointCloudFileError(path, f"{what} with {width} columns; expected 3 (x y z), 4 (+ intensity) or 6 (+ normals)")


def _read_text(path: Path) -> dict:
    try:  # the fast C parser; on any trouble, the line-by-line reader below names the bad line
        with open(path, "rb") as fh:
            lines = [ln.replace(b",", b" ") for ln in fh]
        table = np.loadtxt(lines, dtype=np.float64, comments="#", ndmin=2)
        if table.shape[0] > 0 and table.shape[1] != 1:
            return _columns_to_arrays(path, table, "text file")
    except ValueError:
        pass
    rows, numbers = [], []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            line = line.split(b"#", 1)[0].strip()
            if not line:
                continue
            try:
                rows.append([float(w) for w in _NUMBER_ROW.split(line)])
            except ValueError:
                raise PointCloudFileError(path, f"line {number} is not numbers: {line[:60]!r}") from None
            numbers.append(number)
    if not rows:
        raise PointCloudFileError(path, "no points (only comments or blank lines)")
    # a lone point count on the first line (some .xyz writers) is not a point
    if len(rows[0]) == 1 and len(rows) > 1:
        rows, numbers = rows[1:], numbers[1:]
    for row, number in zip(rows, numbers):
        if len(row) != len(rows[0]):
            raise PointCloudFileError(path, f"line {number} has {len(row)} values, line {numbers[0]} has {len(rows[0])}")
    return _columns_to_arrays(path, np.array(rows, dtype=np.float64), "text file")


def _read_npy(path: Path) -> dict:
    table = load_npy_checked(path)
    if table.dtype.kind not in "fiu" or table.ndim != 2:  # no bool, complex, strings or records
        raise PointCloudFileError(path, f"expected a numeric array [N, 3|4|6], got {table.shape} {table.dtype}")
    return _columns_to_arrays(path, table, ".npy array")


def load_npy_checked(path: Path) -> np.ndarray:
    """An .npy array (never unpickled) whose row count is checked against `max_points()` from its header,
    before the body is read."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if mapped.ndim >= 1:
            check_point_count(path, int(mapped.shape[0]))
        table = np.array(mapped)
        del mapped
    except PointCloudFileError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise PointCloudFileError(path, f"not a readable .npy array ({str(err)[:80]})") from None
    return table


def _read_kitti_bin(path: Path) -> dict:
    size = path.stat().st_size
    check_point_count(path, size // 16)
    if size % 16:
        raise PointCloudFileError(path, f"KITTI .bin size {size} bytes is not a multiple of 16 (N x 4 float32)")
    table = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    return {"xyz": table[:, :3], "intensity": table[:, 3]}


def _read_las(path: Path) -> dict:
    import laspy

    try:
        with laspy.open(path) as reader:
            check_point_count(path, int(reader.header.point_count))
        las = laspy.read(path)
    except PointCloudFileError:
        raise
    except Exception as err:  # laspy raises many kinds (LaspyException, ValueError, struct.error, ...)
        raise PointCloudFileError(path, f"unreadable LAS/LAZ ({type(err).__name__}: {str(err)[:80]})") from None
    declared, got = int(las.header.point_count), len(las.points)
    if got != declared:
        raise PointCloudFileError(path, f"truncated LAS/LAZ: {got} of the {declared} points the header declares")
    if path.suffix.lower() == ".las":  # uncompressed: the point records must all be in the file
        need = int(las.header.offset_to_point_data) + declared * int(las.header.point_format.size)
        size = path.stat().st_size
        if size < need:
            raise PointCloudFileError(path, f"truncated LAS: {size} bytes, the header declares {declared} points "
                                            f"ending at byte {need}")
    origin = np.asarray(las.header.offsets, dtype=np.float64)
    scales = np.asarray(las.header.scales, dtype=np.float64)
    # integer counts times the scale: exact relative to the file's offsets, unlike absolute UTM in float32
    xyz = np.stack([np.asarray(las.X) * scales[0], np.asarray(las.Y) * scales[1], np.asarray(las.Z) * scales[2]], axis=1)
    arrays = {"xyz": xyz, "origin": origin, "intensity": np.asarray(las.intensity, dtype=np.float32)}
    names = set(las.point_format.dimension_names)
    if {"red", "green", "blue"} <= names:
        arrays["colors"] = np.stack([las.red, las.green, las.blue], axis=1) / 65535.0
    return arrays


# ---- meshes

def _read_off(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    text = path.read_text(errors="replace")
    tokens = re.sub(r"#[^\n]*", " ", text).split()
    if not tokens:
        raise PointCloudFileError(path, "empty OFF file")
    first = tokens[0].upper()
    if first == "OFF":
        tokens = tokens[1:]
    elif first.startswith("OFF") and first[3:].isdigit():  # ModelNet's "OFF490 518 0" (no newline after the magic)
        tokens = [first[3:]] + tokens[1:]
    elif first.endswith("OFF"):
        raise PointCloudFileError(path, f"unsupported OFF variant {tokens[0]!r} (only plain OFF)")
    else:
        raise PointCloudFileError(path, "not an OFF file (no 'OFF' magic)")
    try:
        nv, nf = int(tokens[0]), int(tokens[1])
        values = tokens[3:]
        vertices = np.array(values[:3 * nv], dtype=np.float64)
    except (ValueError, IndexError):
        raise PointCloudFileError(path, "malformed OFF header or vertices") from None
    if len(vertices) != 3 * nv:
        raise PointCloudFileError(path, f"truncated OFF: {len(vertices) // 3} of {nv} vertices")
    rest = values[3 * nv:]
    if len(rest) == 4 * nf and nf and all(t == "3" for t in rest[::4]):  # all triangles: no loop
        try:
            return vertices.reshape(nv, 3), np.array(rest, dtype=np.int64).reshape(nf, 4)[:, 1:]
        except ValueError:
            raise PointCloudFileError(path, "malformed OFF faces") from None
    faces, pos = [], 0
    try:
        for _ in range(nf):
            k = int(rest[pos])
            faces.append(np.array(rest[pos + 1:pos + 1 + k], dtype=np.int64))
            if len(faces[-1]) != k:
                raise IndexError
            pos += 1 + k
    except (ValueError, IndexError):
        raise PointCloudFileError(path, f"truncated or malformed OFF: face {len(faces) + 1} of {nf}") from None
    return vertices.reshape(nv, 3), _triangulate(faces) if faces else np.zeros((0, 3), dtype=np.int64)


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            if words[0] == "v":
                vertices.append([float(w) for w in words[1:4]])
                if len(vertices[-1]) != 3:
                    raise ValueError
            elif words[0] == "f":
                idx = [int(w.split("/")[0]) for w in words[1:]]
                # OBJ is 1-based; negative indices count back from the latest vertex
                faces.append(np.array([i - 1 if i > 0 else len(vertices) + i for i in idx], dtype=np.int64))
        except ValueError:
            raise PointCloudFileError(path, f"malformed OBJ line {number}: {line[:60]!r}") from None
    if not vertices:
        raise PointCloudFileError(path, "no vertices ('v' lines)")
    return np.array(vertices, dtype=np.float64), _triangulate(faces)


# ---------------------------------------------------------------- writing

def write_points(path: str | Path, points: PointCloudData | np.ndarray, *, normals: np.ndarray | None = None,
                 colors: np.ndarray | None = None, intensity: np.ndarray | None = None,
                 binary: bool = True) -> Path:
    """Write a point cloud atomically (temporary file + os.replace), in the format of the path's extension.

    Args:
        path: .ply, .pcd, .xyz/.txt/.pts, .npy, .bin (KITTI), .las or .laz.
        points: a PointCloudData, or xyz `[N, 3]` (then normals / colors / intensity may be given).
        binary: PLY and PCD as binary (True) or ascii.

    Raises:
        PointCloudValueError: the points cannot be a cloud (empty, NaN, wrong shapes).
        PointCloudFileError: an extension that cannot be written.
    """
    if not isinstance(points, PointCloudData):
        points = PointCloudData(points, normals=normals, colors=colors, intensity=intensity)
    elif any(v is not None for v in (normals, colors, intensity)):
        points = replace(points, **{k: v for k, v in (("normals", normals), ("colors", colors),
                                                      ("intensity", intensity)) if v is not None})
    path = Path(path)
    ext = _extension(path, (".ply", ".pcd", ".xyz", ".txt", ".pts", ".npy", ".bin", ".las", ".laz"))
    writer = {".ply": lambda p: _write_ply(p, points, binary), ".pcd": lambda p: _write_pcd(p, points, binary),
              ".xyz": lambda p: _write_text(p, points), ".txt": lambda p: _write_text(p, points),
              ".pts": lambda p: _write_text(p, points), ".npy": lambda p: _write_npy(p, points),
              ".bin": lambda p: _write_kitti_bin(p, points), ".las": lambda p: _write_las(p, points),
              ".laz": lambda p: _write_las(p, points)}[ext]
    return atomic_write(path, writer)


def _write_ply(path: Path, pc: PointCloudData, binary: bool) -> None:
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    cols = [pc.xyz]
    if pc.normals is not None:
        fields += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
        cols.append(pc.normals)
    if pc.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        cols.append(np.clip(np.round(pc.colors * 255), 0, 255))
    if pc.intensity is not None:
        fields += [("intensity", "f4")]
        cols.append(pc.intensity[:, None])
    names = {"f4": "float", "u1": "uchar"}
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment written by omnisense",
              f"element vertex {len(pc)}"] + [f"property {names[t]} {n}" for n, t in fields] + ["end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        table = np.concatenate([c.astype(np.float64) for c in cols], axis=1)
        if binary:
            rec = np.empty(len(pc), dtype=[(n, "<" + t) for n, t in fields])
            for i, (n, _) in enumerate(fields):
                rec[n] = table[:, i]
            fh.write(rec.tobytes())
        else:
            fmt = " ".join("%d" if t == "u1" else "%.9g" for _, t in fields)
            np.savetxt(fh, table, fmt=fmt)


def _write_pcd(path: Path, pc: PointCloudData, binary: bool) -> None:
    fields, cols = ["x", "y", "z"], [pc.xyz]
    if pc.normals is not None:
        fields += ["normal_x", "normal_y", "normal_z"]
        cols.append(pc.normals)
    if pc.intensity is not None:
        fields.append("intensity")
        cols.append(pc.intensity[:, None])
    table = np.concatenate(cols, axis=1).astype(np.float32)
    header = ["# .PCD v0.7 - written by omnisense", "VERSION 0.7", "FIELDS " + " ".join(fields),
              "SIZE " + " ".join(["4"] * len(fields)), "TYPE " + " ".join(["F"] * len(fields)),
              "COUNT " + " ".join(["1"] * len(fields)), f"WIDTH {len(pc)}", "HEIGHT 1",
              "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {len(pc)}", f"DATA {'binary' if binary else 'ascii'}"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            fh.write(table.astype("<f4").tobytes())
        else:
            np.savetxt(fh, table, fmt="%.9g")


def _write_text(path: Path, pc: PointCloudData) -> None:
    table = pc.xyz
    if pc.normals is not None:
        table = np.concatenate([pc.xyz, pc.normals], axis=1)
    elif pc.intensity is not None:
        table = np.concatenate([pc.xyz, pc.intensity[:, None]], axis=1)
    np.savetxt(path, table, fmt="%.9g")


def _write_npy(path: Path, pc: PointCloudData) -> None:
    table = pc.xyz
    if pc.normals is not None:
        table = np.concatenate([pc.xyz, pc.normals], axis=1)
    elif pc.intensity is not None:
        table = np.concatenate([pc.xyz, pc.intensity[:, None]], axis=1)
    with open(path, "wb") as fh:
        np.save(fh, table)


def _write_kitti_bin(path: Path, pc: PointCloudData) -> None:
    intensity = pc.intensity if pc.intensity is not None else np.zeros(len(pc), dtype=np.float32)
    np.concatenate([pc.xyz, intensity[:, None]], axis=1).astype("<f4").tofile(path)


def _write_las(path: Path, pc: PointCloudData) -> None:
    import laspy

    fmt = 2 if pc.colors is not None else 0
    header = laspy.LasHeader(point_format=fmt, version="1.2")
    header.offsets = pc.origin
    header.scales = np.array([1e-4, 1e-4, 1e-4])
    las = laspy.LasData(header)
    las.X = np.round(pc.xyz[:, 0].astype(np.float64) / 1e-4).astype(np.int32)
    las.Y = np.round(pc.xyz[:, 1].astype(np.float64) / 1e-4).astype(np.int32)
    las.Z = np.round(pc.xyz[:, 2].astype(np.float64) / 1e-4).astype(np.int32)
    if pc.intensity is not None:
        las.intensity = np.clip(np.round(pc.intensity), 0, 65535).astype(np.uint16)
    if pc.colors is not None:
        rgb = np.clip(np.round(pc.colors * 65535), 0, 65535).astype(np.uint16)
        las.red, las.green, las.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    las.write(str(path))
