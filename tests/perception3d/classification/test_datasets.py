"""Readers of the real benchmark layouts, each on tiny files written here in that layout, and the shapes set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception3d import PointCloudFileError
from perception3d.classification import (
    SCANOBJECTNN_CLASSES,
    read_modelnet40_h5,
    read_modelnet40_normal,
    read_scanobjectnn_h5,
    read_shapenetpart,
    read_shapes,
    write_shapes,
)

h5py = pytest.importorskip("h5py")


def _h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


def test_modelnet40_h5(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "shape_names.txt").write_text("airplane\nbathtub\nbed\n")
    (tmp_path / "train_files.txt").write_text(
        "data/modelnet40_ply_hdf5_2048/ply_data_train0.h5\ndata/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n")
    a, b = rng.random((3, 2048, 3), dtype=np.float32), rng.random((2, 2048, 3), dtype=np.float32)
    _h5(tmp_path / "ply_data_train0.h5", data=a, label=np.array([[0], [2], [1]], dtype=np.uint8))
    _h5(tmp_path / "ply_data_train1.h5", data=b, label=np.array([[1], [1]], dtype=np.uint8))
    s = read_modelnet40_h5(tmp_path, "train")
    assert s.points.shape == (5, 2048, 3) and s.labels.tolist() == [0, 2, 1, 1, 1]
    np.testing.assert_array_equal(s.points[3:], b)
    assert s.classes == ("airplane", "bathtub", "bed")


def test_modelnet40_h5_errors(tmp_path):
    (tmp_path / "shape_names.txt").write_text("a\nb\n")
    (tmp_path / "test_files.txt").write_text("x/ply_data_test0.h5\n")
    with pytest.raises(PointCloudFileError, match="no such file"):
        read_modelnet40_h5(tmp_path, "test")
    _h5(tmp_path / "ply_data_test0.h5", data=np.zeros((1, 4, 3), np.float32))
    with pytest.raises(PointCloudFileError, match="no dataset 'label'"):
        read_modelnet40_h5(tmp_path, "test")
    (tmp_path / "ply_data_test0.h5").unlink()
    _h5(tmp_path / "ply_data_test0.h5", data=np.zeros((1, 4, 3), np.float32), label=np.array([[7]]))
    with pytest.raises(PointCloudFileError, match="labels outside"):
        read_modelnet40_h5(tmp_path, "test")
    (tmp_path / "ply_data_test0.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(PointCloudFileError, match="HDF5"):
        read_modelnet40_h5(tmp_path, "test")


def _normal_txt(path, n, rng):
    rows = np.concatenate([rng.random((n, 3)), rng.normal(size=(n, 3))], axis=1)
    path.write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n")
    return rows.astype(np.float32)


def test_modelnet40_normal_resampled(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\n")
    (tmp_path / "modelnet40_train.txt").write_text("night_stand_0001\nairplane_0002\n")
    for name in ("airplane", "night_stand"):
        (tmp_path / name).mkdir()
    first = _normal_txt(tmp_path / "night_stand" / "night_stand_0001.txt", 40, rng)
    _normal_txt(tmp_path / "airplane" / "airplane_0002.txt", 40, rng)
    s = read_modelnet40_normal(tmp_path, "train", num_points=32)
    assert s.points.shape == (2, 32, 3) and s.labels.tolist() == [1, 0]
    np.testing.assert_allclose(s.points[0], first[:32, :3], atol=1e-6)
    assert read_modelnet40_normal(tmp_path, "train", num_points=32, normals=True).points.shape == (2, 32, 6)
    with pytest.raises(PointCloudFileError, match="fewer than"):
        read_modelnet40_normal(tmp_path, "train", num_points=100)
    (tmp_path / "airplane" / "airplane_0002.txt").write_text("1,2,3\n")
    with pytest.raises(PointCloudFileError, match="6 values"):
        read_modelnet40_normal(tmp_path, "train", num_points=1)


def test_scanobjectnn_h5_with_background_mask(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((2, 64, 3), dtype=np.float32)
    data[:, 32:] += 10.0  # background far away
    mask = np.zeros((2, 64), np.int32)
    mask[:, 32:] = -1
    path = tmp_path / "training_objectdataset_augmentedrot_scale75.h5"
    _h5(path, data=data, label=np.array([3, 14], np.int64), mask=mask)
    s = read_scanobjectnn_h5(path)
    assert s.points.shape == (2, 64, 3) and s.labels.tolist() == [3, 14] and len(s.classes) == 15
    assert s.classes[14] == SCANOBJECTNN_CLASSES[14] == "toilet"
    clean = read_scanobjectnn_h5(path, drop_background=True)
    assert clean.points.max() < 1.0  # every background point replaced by an object point
    _h5(tmp_path / "nomask.h5", data=data, label=np.array([0, 1]))
    with pytest.raises(PointCloudFileError, match="no 'mask'"):
        read_scanobjectnn_h5(tmp_path / "nomask.h5", drop_background=True)


def test_shapenetpart(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "synsetoffset2category.txt").write_text("Airplane\t02691156\nMug\t03797390\n")
    (tmp_path / "train_test_split").mkdir()
    entries = ["shape_data/03797390/abc", "shape_data/02691156/def"]
    (tmp_path / "train_test_split" / "shuffled_train_file_list.json").write_text(json.dumps(entries))
    for synset, sid, parts in (("03797390", "abc", (36, 37)), ("02691156", "def", (0, 1, 2, 3))):
        (tmp_path / synset).mkdir()
        rows = np.concatenate([rng.random((30, 6)), rng.choice(parts, (30, 1))], axis=1)
        (tmp_path / synset / f"{sid}.txt").write_text("\n".join(" ".join(f"{v:.5f}" for v in r) for r in rows))
    s = read_shapenetpart(tmp_path, "train", num_points=50)
    assert s.points.shape == (2, 50, 3) and s.parts.shape == (2, 50)
    assert s.labels.tolist() == [1, 0] and s.classes == ("Airplane", "Mug")
    assert set(np.unique(s.parts[0])) <= {36, 37} and set(np.unique(s.parts[1])) <= {0, 1, 2, 3}
    bad = np.concatenate([rng.random((5, 6)), np.full((5, 1), 40)], axis=1)
    (tmp_path / "03797390" / "abc.txt").write_text("\n".join(" ".join(f"{v:.5f}" for v in r) for r in bad))
    with pytest.raises(PointCloudFileError, match="not parts of Mug"):
        read_shapenetpart(tmp_path, "train")


def test_shapes_roundtrip_and_missing(tmp_path):
    summary = write_shapes(tmp_path / "s", seed=1, size="tiny")
    assert summary["train_samples"] == 48 and summary["points"] == 256
    train, test = read_shapes(tmp_path / "s", "train"), read_shapes(tmp_path / "s", "test")
    assert train.points.shape == (48, 256, 3) and test.points.shape == (24, 256, 3)
    assert not np.isin(test.points[:, 0, 0], train.points[:, 0, 0]).any()  # independent streams
    with pytest.raises(PointCloudFileError, match="omnisense data make shapes"):
        read_shapes(tmp_path / "nowhere", "train")
    (tmp_path / "s" / "test.npz").write_bytes(b"garbage")
    with pytest.raises(PointCloudFileError, match="not a shapes split"):
        read_shapes(tmp_path / "s", "test")
