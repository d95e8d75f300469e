"""`VideoClassificationTask`: a ViViT started from an image ViT file, with its spatial encoder's own lr group."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from omnisense._errors import WeightsError
from omnisense.train.video import VideoClassificationTask
from video.models.vivit import vivit_tiny
from video.recognition.recognizer import VideoRecognizer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/recognition/vivit_tiny_pretrained_synthetic.yaml"


def tiny_vivit(**kw) -> VideoRecognizer:
    return VideoRecognizer(vivit_tiny(num_classes=10, img_size=32, patch_size=4, **kw))


def image_vit(dim: int = 96, depth: int = 4, heads: int = 3) -> VisionTransformer:
    torch.manual_seed(3)
    return VisionTransformer(img_size=32, patch_size=4, embed_dim=dim, depth=depth, num_heads=heads, num_classes=5)


class _Trainer:  # what configure_optimizers reads from a trainer
    estimated_stepping_batches = 100


def optimizer_of(task: VideoClassificationTask) -> torch.optim.Optimizer:
    task._trainer = _Trainer()
    return task.configure_optimizers()["optimizer"]


def assert_spatial_equals_vit(model: VideoRecognizer, vit: VisionTransformer):
    v = model.backbone
    torch.testing.assert_close(v.spatial_cls, vit.cls_token)
    torch.testing.assert_close(v.spatial_blocks[3].mlp.fc2.weight, vit.blocks[3].mlp.fc2.weight)
    torch.testing.assert_close(v.spatial_norm.weight, vit.norm.weight)
    torch.testing.assert_close(v.patch_embed.proj.weight[:, :, 1], vit.patch_embed.proj.weight)  # central frame


def test_init_image_vit_from_safetensors(tmp_path):
    vit = image_vit()
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    model = tiny_vivit()
    VideoClassificationTask(model, 10, init_image_vit=str(tmp_path / "vit.safetensors"))
    assert_spatial_equals_vit(model, vit)


def test_init_image_vit_from_a_wrapped_pth(tmp_path):
    vit = image_vit()
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in vit.state_dict().items()}}, tmp_path / "vit.pth")
    model = tiny_vivit()
    VideoClassificationTask(model, 10, init_image_vit=str(tmp_path / "vit.pth"))
    assert_spatial_equals_vit(model, vit)


def test_without_init_image_vit_nothing_is_loaded():
    torch.manual_seed(0)
    model = tiny_vivit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    VideoClassificationTask(model, 10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a weights file at all")
    return path


def _mismatched(path: Path) -> Path:  # D 64 instead of 96
    save_file({k: v.contiguous() for k, v in image_vit(dim=64, heads=2).state_dict().items()}, str(path))
    return path


def _not_a_vit(path: Path) -> Path:
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, str(path))
    return path


def _pickled_object(path: Path) -> Path:
    torch.save({"state_dict": {"cls_token": torch.zeros(1)}, "args": object.__new__(_Trainer)}, path)
    return path


@pytest.mark.parametrize("make, reason", [
    (lambda p: p / "missing.safetensors", "no such checkpoint"),
    (lambda p: _garbage(p / "garbage.safetensors"), "not a readable weights file"),
    (lambda p: _garbage(p / "garbage.pth"), "refused|not a readable"),  # torch.load calls garbage an unpickling refusal
    (lambda p: _pickled_object(p / "pickled.pth"), "refused"),
    (lambda p: _not_a_vit(p / "resnet.safetensors"), "no ViT `cls_token`"),
    (lambda p: _mismatched(p / "wide.safetensors"), r"does not fit the ViViT spatial encoder.*\(64, 64\) \(ViViT: \(96, 96\)\)"),
], ids=["missing", "garbage-safetensors", "garbage-pth", "pickled-object", "not-a-vit", "wrong-width"])
def test_a_bad_image_vit_file_is_an_error_naming_it(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(WeightsError, match=reason) as err:
        VideoClassificationTask(tiny_vivit(), 10, init_image_vit=str(path))
    assert err.value.path == path and str(path) in str(err.value)


def test_spatial_lr_scale_gives_the_spatial_encoder_its_own_groups():
    model = tiny_vivit()
    opt = optimizer_of(VideoClassificationTask(model, 10, lr=1e-3, spatial_lr_scale=0.1))
    spatial = {id(p) for p in model.backbone.spatial_parameters()}
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # every parameter, once
    for g in opt.param_groups:
        kinds = {id(p) in spatial for p in g["params"]}
        assert len(kinds) == 1
        assert g["lr"] == pytest.approx(1e-4 if kinds.pop() else 1e-3)
        assert g["weight_decay"] == 0.0 or all(p.ndim > 1 for p in g["params"])
    assert sorted({round(g["lr"], 9) for g in opt.param_groups}) == [1e-4, 1e-3]


def test_default_is_one_learning_rate():
    opt = optimizer_of(VideoClassificationTask(tiny_vivit(), 10, lr=1e-3))
    assert {g["lr"] for g in opt.param_groups} == {1e-3}


def test_freeze_spatial_trains_the_temporal_side_only():
    model = tiny_vivit()
    task = VideoClassificationTask(model, 10, freeze_spatial=True, spatial_lr_scale=0.1)
    trained = {id(p) for g in optimizer_of(task).param_groups for p in g["params"]}
    v = model.backbone
    assert not trained & {id(p) for p in v.spatial_parameters()}
    assert id(v.temporal_blocks[0].attn.qkv.weight) in trained and id(v.head.weight) in trained
    task.train()
    assert not v.spatial_blocks[0].training and v.temporal_blocks[0].training


def test_options_need_a_vivit():
    with pytest.raises(TypeError, match="no ViViT"):
        VideoClassificationTask(torch.nn.Linear(4, 10), 10, spatial_lr_scale=0.1)


def test_the_pretrained_config_takes_the_image_vit_on_the_command_line(tmp_path):
    from omnisense.engine import OmnisenseCLI
    import lightning as L

    vit = image_vit()
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    cli = OmnisenseCLI(model_class=L.LightningModule, datamodule_class=L.LightningDataModule,
                       subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=["--config", str(CONFIG), "--data.init_args.tiny", "true", "--trainer.logger", "false",
                             "--trainer.default_root_dir", str(tmp_path),
                             "--model.init_args.init_image_vit", str(tmp_path / "vit.safetensors")],
                       parser_kwargs={"parser_mode": "yaml"})
    assert isinstance(cli.model, VideoClassificationTask) and cli.model.spatial_lr_scale == 0.1
    assert_spatial_equals_vit(cli.model.model, vit)
