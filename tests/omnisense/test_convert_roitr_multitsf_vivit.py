"""`omnisense convert` on official layouts: Flax checkpoints read without JAX, converter options and official
metadata recorded, the written file loads with them (RoITr, MultiTSF, ViViT; the parity itself is tested per
family against the official code's outputs)."""

import json
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch

from omnisense.convert import _is_flax_msgpack, convert, read_flax_checkpoint
from omnisense.models import load_model
from omnisense.weights import sha256_file

FIXTURES = Path(__file__).parents[1] / "fixtures" / "parity"


def _flax_array(a: np.ndarray) -> msgpack.ExtType:
    """An array as flax.serialization packs it: ext type 1 holding msgpack (shape, dtype name, bytes)."""
    return msgpack.ExtType(1, msgpack.packb((list(a.shape), a.dtype.name, a.tobytes())))


def test_flax_reader(tmp_path):
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = np.arange(5, dtype=np.float32)
    tree = {"params": {"Dense_0": {"kernel": _flax_array(kernel)},
                       "chunked": {"__msgpack_chunked_array__": True, "shape": {"0": 5},
                                   "chunks": {"0": _flax_array(big[:3]), "1": _flax_array(big[3:])}}},
            "global_step": 7, "opt_state": {"0": {"count": msgpack.ExtType(3, msgpack.packb(((), "int32", b"\0" * 4)))}}}
    path = tmp_path / "checkpoint_7"
    path.write_bytes(msgpack.packb(tree))
    assert _is_flax_msgpack(path)
    flat = read_flax_checkpoint(path)
    assert set(flat) == {"params/Dense_0/kernel", "params/chunked"}
    np.testing.assert_array_equal(flat["params/Dense_0/kernel"], kernel)
    np.testing.assert_array_equal(flat["params/chunked"], big)


def test_pytorch_files_are_not_taken_for_flax(tmp_path):
    for name, obj in (("a.pth", {"w": torch.zeros(2)}), ("checkpoint", {"w": torch.zeros(2)})):
        torch.save(obj, tmp_path / name)
        assert not _is_flax_msgpack(tmp_path / name)
    legacy = tmp_path / "legacy"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert not _is_flax_msgpack(legacy)


@pytest.mark.slow
def test_convert_roitr_records_the_official_neighbourhoods(tmp_path):
    shapes = json.loads((FIXTURES / "roitr" / "layouts.json").read_text())["3dmatch"]
    ckpt = tmp_path / "model_3dmatch.pth"
    torch.save({"state_dict": {f"module.{k}": torch.zeros(s) for k, s in shapes.items()}}, ckpt)
    report = convert("roitr", ckpt, tmp_path / "roitr_conv")
    meta = json.loads((tmp_path / "roitr_conv.json").read_text())
    assert report.ok and meta["model"] == {"variant": "roitr_3dmatch", "kwargs": {"exclude_self": True}}
    assert meta["input"] == {"num_points": 30000} and meta["classes"] == []
    assert meta["source"] == {"checkpoint": ckpt.name, "sha256": sha256_file(ckpt), "converter": "roitr"}
    model, _ = load_model(tmp_path / "roitr_conv.safetensors", task="registration")
    assert model.backbone.exclude_self


def test_convert_vivit_scenic_records_gelu_classes_and_input(tmp_path, monkeypatch):
    """The fixture's scenic checkpoint, converted into a variant of its size (registered for this test)."""
    from omnisense import models
    from video.models.vivit import ViViTFactorised

    def vivit_parity(**kwargs):
        return ViViTFactorised(**{**dict(num_classes=400, img_size=16, num_frames=4, patch_size=4, tubelet=2, dim=32,
                                         spatial_depth=2, temporal_depth=2, num_heads=2, mlp_ratio=2.0), **kwargs})

    build = models.build_model
    monkeypatch.setattr(models, "build_model",
                        lambda name, **kw: vivit_parity(**kw) if name == "vivit_parity" else build(name, **kw))
    ckpt = FIXTURES / "vivit" / "checkpoint_0"
    report = convert("vivit-scenic", ckpt, tmp_path / "vivit_conv", variant="vivit_parity")
    meta = json.loads((tmp_path / "vivit_conv.json").read_text())
    assert report.ok and meta["model"]["kwargs"] == {"gelu": "tanh"}
    assert meta["classes"][:2] == ["abseiling", "air drumming"] and len(meta["classes"]) == 400
    assert meta["input"]["clip_len"] == 4 and meta["input"]["crop_size"] == 16
    assert meta["source"]["sha256"] == sha256_file(ckpt)
    # the converted file runs in `omnisense recognize` with no further flag and names Kinetics classes
    from omnisense.cli import main
    from video.io import write_video
    from video.recognition import render_clip

    video = write_video(tmp_path / "clip.mp4", render_clip("rise", "arrow", np.random.default_rng(0), num_frames=24),
                        12.0)
    out = tmp_path / "r.json"
    assert main(["recognize", str(video), "--weights", str(tmp_path / "vivit_conv.safetensors"), "--no-reject",
                 "--output", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["top"] and {t["class"] for t in record["top"]} <= set(meta["classes"])
