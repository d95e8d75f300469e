"""The video DataModule: decoded clips from a Kinetics-style folder, for `ClassificationTask`; and
`VideoClassificationTask`, the task that starts a ViViT from an image ViT checkpoint.

Batches are `(clips, labels)`. Training clips are `uint8 [B, 3, T, S, S]`; validation and test clips are
`uint8 [B, V, 3, T, S, S]` with V = clips x crops views (the model, a `VideoRecognizer`, averages their
probabilities). Clips stay `uint8` until they reach the device, where `on_after_batch_transfer`
normalises them (mmaction2's `ActionDataPreprocessor`): a quarter of the host-to-device bytes of float32.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from omnisense._errors import FileProblem, WeightsError
from omnisense.train._splits import SplitLoaders
from omnisense.train.classification import ClassificationTask, adamw_warmup_cosine, decay_groups
from video.recognition.datasets import VideoClipDataset, read_list
from video.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform, normalize

log = logging.getLogger(__name__)


class VideoClipDataModule(SplitLoaders, L.LightningDataModule):
    """Clips of `root/{train,val,test}.csv` (written by `omnisense data make actions`).

    Args:
        root: folder with the lists, `classes.txt` and the videos; None with `tiny`.
        tiny: generate a tiny synthetic action set in a temporary folder instead of reading `root`.
        batch_size: clips per batch.
        clip_len, frame_interval: frames per clip and the stride between them.
        sampling: "uniform", "dense" or "segment" (see `video.sampling`).
        crop_size: training and test crop, pixels.
        jitter_scales: training short-side range before the random-resized crop.
        crop_scale, crop_ratio: random-resized crop area fraction and aspect range.
        flip_prob: horizontal flip probability (0 for direction-sensitive classes, as UniFormer's SSv2 recipe).
        test_short_side: short side before the test crops.
        test_clips, test_crops: views per test video (val uses one clip and one crop).
        mean, std: normalisation, applied on the device.
        num_workers: DataLoader workers.
        backend: decoder ("auto", "decord", "pyav").
        seed: seed of the generated tiny set.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, batch_size: int = 8, clip_len: int = 8,
                 frame_interval: int = 2, sampling: str = "uniform", crop_size: int = 64,
                 jitter_scales: tuple[int, int] = (64, 80), crop_scale: tuple[float, float] = (0.4, 1.0),
                 crop_ratio: tuple[float, float] = (0.75, 1.3333), flip_prob: float = 0.0, test_short_side: int = 72,
                 test_clips: int = 1, test_crops: int = 1, mean: tuple[float, float, float] = KINETICS_MEAN,
                 std: tuple[float, float, float] = KINETICS_STD, num_workers: int = 0, backend: str = "auto",
                 seed: int = 0):
        super().__init__()
        self.root, self.tiny, self.batch_size, self.seed = root, tiny, batch_size, seed
        self.clip_len, self.frame_interval, self.sampling = clip_len, frame_interval, sampling
        self.transform = ClipTransform(crop_size=crop_size, jitter_scales=tuple(jitter_scales),
                                       crop_scale=tuple(crop_scale), crop_ratio=tuple(crop_ratio), flip_prob=flip_prob,
                                       test_short_side=test_short_side)
        self.test_clips, self.test_crops = test_clips, test_crops
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_workers, self.backend = num_workers, backend
        self.class_names: list[str] = []
        self._data: dict[str, VideoClipDataset] = {}

    def folder(self) -> Path:
        if self.tiny or self.root is None:
            from video.recognition.synthetic import make_actions

            folder = Path(tempfile.mkdtemp(prefix="omnisense-actions-"))
            make_actions(folder, seed=self.seed, size="tiny")
            self.root, self.tiny = str(folder), False
        return Path(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self._data:
            return
        folder = self.folder()
        for split in ("train", "val", "test"):
            path = folder / f"{split}.csv"
            if not path.is_file():
                raise FileProblem(path, f"missing; write the set with `omnisense data make actions --out {folder}`")
            samples, names = read_list(path, folder)
            self.class_names = self.class_names or names
            train = split == "train"
            self._data[split] = VideoClipDataset(
                samples, clip_len=self.clip_len, frame_interval=self.frame_interval, train=train,
                sampling=self.sampling, transform=self.transform, backend=self.backend,
                num_clips=self.test_clips if split == "test" else 1,
                num_crops=self.test_crops if split == "test" else 1)

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(self._data[split], batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)


    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        clips, labels = batch
        return normalize(clips, self.mean, self.std), labels

    def teardown(self, stage: str | None = None) -> None:
        skipped = sum(d.skipped for d in self._data.values())
        if skipped:
            log.warning("%d unreadable videos were skipped", skipped)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None


_VIT_PREFIXES = ("module.", "model.", "vit.", "backbone.", "encoder.")


def read_image_vit(path: str | Path) -> dict[str, Tensor]:
    """A timm-layout ViT state dict (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.i.*`, `norm.*`) from
    a `.safetensors` file or a `.pth/.pt/.bin` read with `torch.load(weights_only=True)`; one wrapper prefix
    (`module.`, `model.`, `vit.`, `backbone.`, `encoder.`) in front of every ViT key is stripped."""
    from omnisense.weights import read_foreign_checkpoint

    path = Path(path)
    try:
        state = read_foreign_checkpoint(path)
    except WeightsError:
        raise
    except Exception as exc:  # a corrupt safetensors header, say
        raise WeightsError(path, f"not a readable weights file ({str(exc).splitlines()[0]})") from None
    if "cls_token" not in state:
        prefix = next((p for p in _VIT_PREFIXES if p + "cls_token" in state), None)
        if prefix is None:
            raise WeightsError(path, "no ViT `cls_token` in it (expected a timm-layout ViT: cls_token, pos_embed, "
                                     f"patch_embed.proj.*, blocks.i.*, norm.*; first keys: {list(state)[:5]})")
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _vivit_in(model: nn.Module) -> nn.Module:
    """The ViViT factorised encoder inside `model` (itself, or e.g. a `VideoRecognizer`'s backbone)."""
    found = next((m for m in model.modules() if hasattr(m, "load_image_vit") and hasattr(m, "spatial_parameters")),
                 None)
    if found is None:
        raise TypeError(f"{type(model).__name__} holds no ViViT factorised encoder (init_image_vit, "
                        "spatial_lr_scale and freeze_spatial need one)")
    return found


class VideoClassificationTask(ClassificationTask):
    """`ClassificationTask` for a ViViT whose spatial encoder starts from an image ViT.

    Args (beyond `ClassificationTask`'s):
        init_image_vit: a timm-layout image ViT weights file (`.safetensors`, or `.pth` read with
            weights_only=True), loaded into the spatial encoder through `ViViTFactorised.load_image_vit`
            (central-frame tubelet inflation, scenic's default) when the task is built. None: no loading
            (the config's model as it is; a from-scratch ViViT FE stays at chance, docs/video.md). A test
            from a Lightning checkpoint overwrites these weights with the trained ones.
        spatial_lr_scale: learning rate of the spatial encoder (tubelet embedding, CLS, positions, blocks, norm)
            relative to `lr`. 1.0 is one group, as `ClassificationTask`; tools/vivit_recipe.py's full
            fine-tuning uses 0.1 (at one rate the random temporal side's gradients erase the image features).
        freeze_spatial: freeze the spatial encoder (no gradients, eval mode, run under no_grad): the
            "Optimizing ViViT Training" recipe's frozen side, the same as the backbone's own `freeze_spatial`.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 1e-3, weight_decay: float = 0.05,
                 warmup_steps: int = 0, label_smoothing: float = 0.0, class_names: list[str] | None = None,
                 init_image_vit: str | None = None, spatial_lr_scale: float = 1.0, freeze_spatial: bool = False):
        if spatial_lr_scale < 0:
            raise ValueError(f"spatial_lr_scale must be >= 0, not {spatial_lr_scale}")
        super().__init__(model, num_classes, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
                         label_smoothing=label_smoothing, class_names=class_names)
        self.spatial_lr_scale = spatial_lr_scale
        # found, not stored: a second attribute holding the ViViT would register its weights twice
        vivit = _vivit_in(model) if init_image_vit is not None or freeze_spatial or spatial_lr_scale != 1.0 else None
        if init_image_vit is not None:
            state = read_image_vit(init_image_vit)
            try:
                unused = vivit.load_image_vit(state, center=True)
            except ValueError as exc:
                raise WeightsError(Path(init_image_vit), f"does not fit the ViViT spatial encoder: {exc}") from None
            log.info("spatial encoder from %s (%d ViT tensors unused: %s)", init_image_vit, len(unused), unused[:5])
        if freeze_spatial:
            vivit.freeze_spatial = True
            for p in vivit.spatial_parameters():
                p.requires_grad_(False)
            vivit.train(vivit.training)  # the frozen side goes to eval mode

    def configure_optimizers(self):
        spatial = {id(p) for p in _vivit_in(self.model).spatial_parameters()} if self.spatial_lr_scale != 1.0 else set()
        named = list(self.model.named_parameters())
        groups = decay_groups([(n, p) for n, p in named if id(p) not in spatial], self.weight_decay)
        if spatial:
            groups += decay_groups([(n, p) for n, p in named if id(p) in spatial], self.weight_decay,
                                   lr=self.lr * self.spatial_lr_scale)
        return adamw_warmup_cosine(self, groups, self.lr, self.warmup_steps)
