"""perception3d.io: round trips through every format, and every kind of bad file raising PointCloudFileError."""

from __future__ import annotations

import numpy as np
import pytest

from perception3d import PointCloudFileError, PointCloudValueError
from perception3d import io as p3io
from perception3d.io import PointCloudData, read_mesh, read_points, sample_mesh, write_points


def _cloud(n=50, seed=0, normals=True, colors=True, intensity=True) -> PointCloudData:
    rng = np.random.default_rng(seed)
    nrm = rng.normal(size=(n, 3))
    return PointCloudData(
        rng.uniform(-5, 5, size=(n, 3)),
        normals=nrm / np.linalg.norm(nrm, axis=1, keepdims=True) if normals else None,
        colors=rng.integers(0, 256, size=(n, 3)) / 255.0 if colors else None,
        intensity=rng.integers(0, 100, size=n).astype(np.float32) if intensity else None,
    )


# format -> (write kwargs, which optional arrays survive, xyz tolerance)
ROUND_TRIPS = {
    "ply-binary": (".ply", {"binary": True}, ("normals", "colors", "intensity"), 0),
    "ply-ascii": (".ply", {"binary": False}, ("normals", "colors", "intensity"), 1e-6),
    "pcd-binary": (".pcd", {"binary": True}, ("normals", "intensity"), 0),
    "pcd-ascii": (".pcd", {"binary": False}, ("normals", "intensity"), 1e-6),
    "xyz": (".xyz", {}, ("normals",), 1e-6),
    "txt": (".txt", {}, ("normals",), 1e-6),
    "npy": (".npy", {}, ("normals",), 0),
    "kitti-bin": (".bin", {}, ("intensity",), 0),
    "las": (".las", {}, ("colors", "intensity"), 1e-4),
    "laz": (".laz", {}, ("colors", "intensity"), 1e-4),
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_round_trip(tmp_path, case):
    ext, kwargs, kept, tol = ROUND_TRIPS[case]
    src = _cloud()
    path = write_points(tmp_path / f"cloud{ext}", src, **kwargs)
    back = read_points(path)
    assert back.xyz.dtype == np.float32 and back.xyz.shape == (50, 3)
    np.testing.assert_allclose(back.xyz + back.origin, src.xyz, atol=tol + 1e-6, rtol=0)
    for name in ("normals", "colors", "intensity"):
        if name in kept:
            np.testing.assert_allclose(getattr(back, name), getattr(src, name), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [f"cloud{ext}"], "a temporary file was left behind"


def test_kitti_bin_is_xyz_and_reflectance(tmp_path):
    table = np.arange(24, dtype="<f4").reshape(6, 4)
    table.tofile(tmp_path / "000000.bin")
    pc = read_points(tmp_path / "000000.bin")
    np.testing.assert_array_equal(pc.xyz, table[:, :3])
    np.testing.assert_array_equal(pc.intensity, table[:, 3])


def test_text_with_comments_commas_and_a_count_line(tmp_path):
    (tmp_path / "a.xyz").write_text("3\n# a comment\n1,2,3\n4 5 6\n7, 8, 9  # trailing\n")
    np.testing.assert_array_equal(read_points(tmp_path / "a.xyz").xyz, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def _ply_header(fmt: str, n: int, extra: str = "") -> bytes:
    return (f"ply\nformat {fmt} 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n"
            f"property float z\n{extra}end_header\n").encode()


def _write(path, data: bytes | str):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


BAD_FILES = {
    "missing": ("nothing.ply", None, "no such file"),
    "zero-bytes": ("empty.ply", b"", "empty file"),
    "unknown-extension": ("cloud.stl", b"solid x\n", "unknown extension"),
    "ply-truncated-binary": ("t.ply", _ply_header("binary_little_endian", 10) + b"\0" * 100, "truncated PLY"),
    "ply-no-end-header": ("t.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n", "end_header"),
    "ply-bad-magic": ("t.ply", b"plx\nformat ascii 1.0\nend_header\n", "not a PLY"),
    "ply-corrupt-header": ("t.ply", b"ply\nformat ascii 1.0\nelement vertex two\nend_header\n", "malformed PLY header"),
    "ply-bad-format": ("t.ply", _ply_header("binary_middle_endian", 1) + b"\0" * 12, "unsupported PLY format"),
    "ply-ascii-missing-rows": ("t.ply", _ply_header("ascii", 3) + b"1 2 3\n4 5 6\n", "truncated PLY"),
    "ply-ascii-garbage": ("t.ply", _ply_header("ascii", 2) + b"1 2 3\n4 five 6\n", "malformed PLY"),
    "ply-zero-vertices": ("t.ply", _ply_header("binary_little_endian", 0), "no points"),
    "ply-nan": ("t.ply", _ply_header("ascii", 2) + b"1 2 3\nnan 5 6\n", "NaN or infinite"),
    "ply-no-xyz": ("t.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", "lacks x"),
    "pcd-truncated": ("t.pcd", b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 5\nHEIGHT 1\n"
                               b"POINTS 5\nDATA binary\n" + b"\0" * 30, "truncated PCD"),
    "pcd-bad-header": ("t.pcd", b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n",
                       "malformed PCD header"),
    "bin-not-multiple-of-16": ("000001.bin", b"\0" * 40, "not a multiple of 16"),
    "npy-two-columns": ("t.npy", None, "2 columns"),
    "npy-pickled-object": ("t.npy", None, "not a readable .npy"),
    "npy-inf": ("t.npy", None, "NaN or infinite"),
    "xyz-ragged": ("t.xyz", "1 2 3\n4 5\n", "line 2 has 2 values"),
    "xyz-words": ("t.xyz", "1 2 3\nx y z\n", "line 2 is not numbers"),
    "xyz-only-comments": ("t.xyz", "# nothing\n\n", "no points"),
    "las-garbage": ("t.las", b"LASF" + b"\x07" * 300, "unreadable LAS"),
    "off-truncated": ("t.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n", "truncated or malformed OFF"),
    "off-no-magic": ("t.off", "4 1 0\n0 0 0\n", "not an OFF"),
    "obj-bad-vertex": ("t.obj", "v 1 2\nf 1 1 1\n", "malformed OBJ line 1"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_point_cloud_file_error(tmp_path, case):
    name, data, reason = BAD_FILES[case]
    path = tmp_path / name
    if case == "npy-two-columns":
        np.save(path, np.zeros((4, 2)))
    elif case == "npy-pickled-object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "npy-inf":
        np.save(path, np.array([[0, 0, 0], [np.inf, 1, 1]], dtype=np.float32))
    elif data is not None:
        _write(path, data)
    with pytest.raises(PointCloudFileError, match=reason) as info:
        read_points(path)
    assert info.value.path == path


def test_in_memory_arrays_raise_value_errors(tmp_path):
    with pytest.raises(PointCloudValueError, match="empty"):
        PointCloudData(np.zeros((0, 3)))
    with pytest.raises(PointCloudValueError, match="NaN"):
        write_points(tmp_path / "x.ply", np.array([[0, 0, np.nan]]))
    with pytest.raises(PointCloudValueError, match="normals"):
        PointCloudData(np.zeros((4, 3)), normals=np.zeros((3, 3)))
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_points(tmp_path / "keep.ply", _cloud(10))
    before = path.read_bytes()

    def broken(p, pc, binary):
        p.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(p3io, "_write_ply", broken)
    with pytest.raises(OSError, match="disk full"):
        write_points(path, _cloud(20))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.ply"]


# ---------------------------------------------------------------- meshes

CUBE_V = [[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
CUBE_QUADS = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def _cube_file(tmp_path, kind: str):
    if kind == "off":
        text = "OFF\n8 6 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in CUBE_V)
        text += "".join("4 " + " ".join(map(str, q)) + "\n" for q in CUBE_QUADS)
        return _write(tmp_path / "cube.off", text)
    if kind == "off-modelnet":
        text = "OFF8 6 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in CUBE_V)
        text += "".join("4 " + " ".join(map(str, q)) + "\n" for q in CUBE_QUADS)
        return _write(tmp_path / "cube.off", text)
    if kind == "obj":
        text = "# cube\n" + "".join(f"v {x} {y} {z}\n" for x, y, z in CUBE_V)
        text += "".join("f " + " ".join(f"{i + 1}/{i + 1}/1" for i in q) + "\n" for q in CUBE_QUADS[:-1])
        text += "f " + " ".join(str(i - 8) for i in CUBE_QUADS[-1]) + "\n"  # negative (relative) indices
        return _write(tmp_path / "cube.obj", text)
    tris = [[q[0], q[i], q[i + 1]] for q in CUBE_QUADS for i in (1, 2)]
    header = ("ply\nformat {fmt} 1.0\nelement vertex 8\nproperty float x\nproperty float y\nproperty float z\n"
              "element face 12\nproperty list uchar int vertex_indices\nend_header\n")
    if kind == "ply-ascii":
        body = "".join(f"{x} {y} {z}\n" for x, y, z in CUBE_V) + "".join("3 %d %d %d\n" % tuple(t) for t in tris)
        return _write(tmp_path / "cube.ply", header.format(fmt="ascii") + body)
    face = np.zeros(12, dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, tris
    data = header.format(fmt="binary_little_endian").encode() + np.array(CUBE_V, "<f4").tobytes() + face.tobytes()
    return _write(tmp_path / "cube.ply", data)


@pytest.mark.parametrize("kind", ["off", "off-modelnet", "obj", "ply-ascii", "ply-binary"])
def test_mesh_read_and_sample(tmp_path, kind):
    path = _cube_file(tmp_path, kind)
    mesh = read_mesh(path)
    assert mesh.vertices.shape == (8, 3) and mesh.faces.shape == (12, 3)
    verts = read_points(path) if kind != "ply-binary" else None
    if verts is not None:
        assert len(verts) == 8
    pc = read_points(path, mesh_samples=600, seed=1)
    assert len(pc) == 600
    # every sample lies on the cube's surface, with an axis-aligned outward or inward unit normal
    np.testing.assert_allclose(np.abs(pc.xyz).max(axis=1), 0.5, atol=1e-6)
    np.testing.assert_allclose(np.abs(pc.normals).max(axis=1), 1.0, atol=1e-6)
    # uniform by area: each of the 6 faces gets about 100
    face_of = np.argmax(np.abs(pc.xyz), axis=1) * 2 + (pc.xyz[np.arange(600), np.argmax(np.abs(pc.xyz), axis=1)] > 0)
    assert np.bincount(face_of, minlength=6).min() > 60
    np.testing.assert_array_equal(pc.xyz, read_points(path, mesh_samples=600, seed=1).xyz)


def test_sample_mesh_weights_by_area():
    mesh = p3io.MeshData(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 1, 0]]),
                         np.array([[0, 1, 2], [3, 4, 5]]))
    pc = sample_mesh(mesh, 4000, seed=0)
    share = float((pc.xyz[:, 0] >= 10).mean())
    assert abs(share - 0.75) < 0.03


def test_mesh_errors(tmp_path):
    with pytest.raises(PointCloudFileError, match="outside"):
        read_mesh(_write(tmp_path / "bad.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"))
    with pytest.raises(PointCloudFileError, match="without a face element"):
        read_mesh(_write(tmp_path / "pts.ply", _ply_header("ascii", 1) + b"1 2 3\n"))


# ---------------------------------------------------------------- real files (registry-packaged sample data)

@pytest.mark.parametrize("name", ["points_3/kitten.xyz", "points_3/hippo1.ply", "points_3/colors.ply",
                                  "points_3/b9_training.ply"])
def test_cgal_files_match_open3d(sample_data, name):
    o3d = pytest.importorskip("open3d")
    path = sample_data("cgal") / name
    ours = read_points(path)
    theirs = o3d.io.read_point_cloud(str(path), format="xyzn" if path.suffix == ".xyz" else "auto")
    np.testing.assert_allclose(ours.xyz, np.asarray(theirs.points), atol=1e-5)
    if theirs.has_normals():
        np.testing.assert_allclose(ours.normals, np.asarray(theirs.normals), atol=1e-5)
    if theirs.has_colors():
        np.testing.assert_allclose(ours.colors, np.asarray(theirs.colors), atol=1e-6)


@pytest.mark.parametrize("name", ["simple.las", "simple.laz"])
def test_laspy_samples_match_laspy(sample_data, name):
    laspy = pytest.importorskip("laspy")
    path = sample_data("laspy-samples") / name
    ours = read_points(path)
    las = laspy.read(path)
    absolute = np.stack([las.x, las.y, las.z], axis=1)
    np.testing.assert_allclose(ours.xyz + ours.origin, absolute, atol=1e-3)
    np.testing.assert_array_equal(ours.intensity, np.asarray(las.intensity, dtype=np.float32))


def test_cgal_mesh_samples_on_its_surface(sample_data):
    mesh = read_mesh(sample_data("cgal") / "meshes" / "3torus.off")
    assert mesh.vertices.shape == (19, 3) and len(mesh.faces) > 0
    pc = mesh.sample(500, seed=0)
    # every sample is inside the bounding box of the mesh's vertices
    assert (pc.xyz >= mesh.vertices.min(0) - 1e-6).all() and (pc.xyz <= mesh.vertices.max(0) + 1e-6).all()


@pytest.mark.parametrize("mode", ["ascii", "binary"])
def test_pcd_with_padding_fields_and_packed_rgb(tmp_path, mode):
    rgb = np.array([0xFF0000, 0x00FF00, 0x0000FF], dtype=np.uint32)
    xyz = np.arange(9, dtype=np.float32).reshape(3, 3)
    header = ("VERSION 0.7\nFIELDS x y z _ rgb _\nSIZE 4 4 4 1 4 1\nTYPE F F F U F U\nCOUNT 1 1 1 1 1 1\n"
              f"WIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA {mode}\n")
    if mode == "ascii":
        body = "".join(f"{x} {y} {z} 0 {float(v):.10e} 0\n" for (x, y, z), v in zip(xyz, rgb.view(np.float32)))
        data = (header + body).encode()
    else:
        rec = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("p", "u1"), ("rgb", "<u4"), ("q", "u1")])
        rec["x"], rec["y"], rec["z"], rec["rgb"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], rgb
        data = header.encode() + rec.tobytes()
    pc = read_points(_write(tmp_path / "c.pcd", data))
    np.testing.assert_array_equal(pc.xyz, xyz)
    np.testing.assert_array_equal(pc.colors, np.eye(3))


def test_ply_points_ignore_faces_with_extra_properties(tmp_path):
    text = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nproperty uchar red\nend_header\n"
            "0 0 0\n1 0 0\n0 1 0\n3 0 1 2 255\n")
    assert len(read_points(_write(tmp_path / "f.ply", text))) == 3


def test_unreadable_file_is_a_file_error(tmp_path, monkeypatch):
    path = write_points(tmp_path / "000000.bin", _cloud(5))

    def denied(p):  # what reading a file without permission raises (root, who runs the tests, reads anything)
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(p3io, "_read_kitti_bin", denied)
    with pytest.raises(PointCloudFileError, match="cannot read \\(Permission denied\\)"):
        read_points(path)
