"""AST: Audio Spectrogram Transformer.

Gong, Chung, Glass, "AST: Audio Spectrogram Transformer", Interspeech 2021, arXiv 2104.01778.
Official code: github.com/YuanGongND/ast (BSD-3-Clause); its AudioSet checkpoint `audioset_0.4593.pth`
(0.459 mAP) is published by the authors; we ship none of their weights, `convert_official_ast` maps them.

Design (from the official `src/models/ast_models.py`):
- Input: a normalised Kaldi fbank `Tensor[B, T, F]` (T frames of 10 ms, F = 128 mel bins), viewed as a
  one-channel image `[B, 1, F, T]`.
- Patches: a 16x16 `Conv2d(1, D)` with stride 10 on both axes (overlap 6), so 128 x 1024 gives
  12 x 101 = 1,212 patches, flattened frequency-major (row f, column t).
- DeiT layout: a CLS token and a distillation token, a learned position embedding over 2 + patches,
  ViT blocks (pre-norm, qkv bias, GELU MLP of ratio 4, LayerNorm eps 1e-6), a final LayerNorm.
- Head: the mean of the CLS and distillation outputs -> LayerNorm -> Linear. The official head's LayerNorm
  (`mlp_head.0`) has PyTorch's default eps 1e-5, unlike the blocks' 1e-6; `head_norm_eps` sets it, 1e-6 by
  default (this project's own trained weights), 1e-5 in weights converted from official checkpoints (recorded
  in their metadata, `model.kwargs.head_norm_eps`). It matters when the norm's scale is small.
- Sizes (DeiT): tiny 192/12/3, small 384/12/6, base 768/12/12; the paper's model is base (384 ImageNet
  pretraining) on 128 x 1024 inputs, 527 AudioSet classes.

Encoder contract (shared with the other omnisense encoders, consumed by the fusion core):
- `forward_tokens(fbank: Tensor[B, T, F]) -> Tensor[B, N, D]`: the final-norm token sequence,
  `N = 2 + f_dim * t_dim`: token 0 is CLS, token 1 the distillation token, then the patch tokens in
  frequency-major order (`grid(T)` gives `(f_dim, t_dim)`; patch column j covers frames
  `[10 j, 10 j + 16)`, i.e. 100 ms steps of a 160 ms window).
- `forward(fbank) -> Tensor[B, num_classes]` logits (no sigmoid or softmax).
Inputs whose length differs from `input_tdim` are accepted: the time axis of the position embedding is
bilinearly resized to the new patch grid (as the official code does when it adapts a model).
"""

from __future__ import annotations

from functools import partial

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from video.models.uniformer import init_vit_weights

PATCH = 16


class ASTModel(nn.Module):
    """Audio Spectrogram Transformer (16x16 overlapping patches, DeiT blocks, CLS + distillation tokens).

    Args:
        num_classes: output logits (AudioSet: 527).
        input_tdim: frames of the training input (AudioSet: 1024 = 10.24 s); fixes the position grid.
        input_fdim: mel bins (128).
        fstride, tstride: patch strides along frequency and time (paper: 10 and 10).
        embed_dim, depth, num_heads, mlp_ratio: the ViT size.
        drop_rate: dropout after the position embedding and before the head.
        drop_path_rate: stochastic depth, linearly increasing over blocks (0 in the official model).
        head_norm_eps: eps of the head's LayerNorm (official: 1e-5; this project's own weights: 1e-6).
    """

    def __init__(
        self,
        *,
        num_classes: int = 527,
        input_tdim: int = 1024,
        input_fdim: int = 128,
        fstride: int = 10,
        tstride: int = 10,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        head_norm_eps: float = 1e-6,
    ):
        super().__init__()
        if input_fdim < PATCH or input_tdim < PATCH:
            raise ValueError(f"input must be at least {PATCH}x{PATCH} (frames x bins), got {input_tdim}x{input_fdim}")
        self.num_classes = num_classes
        self.input_tdim = input_tdim
        self.input_fdim = input_fdim
        self.fstride = fstride
        self.tstride = tstride
        self.embed_dim = embed_dim
        self.f_dim, self.t_dim = self.grid(input_tdim)

        self.patch_embed = nn.Conv2d(1, embed_dim, kernel_size=PATCH, stride=(fstride, tstride))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 + self.f_dim * self.t_dim, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        norm = partial(nn.LayerNorm, eps=1e-6)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth, linear
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=dpr[i], norm_layer=norm)
            for i in range(depth)
        )
        self.norm = norm(embed_dim)
        self.head_norm = nn.LayerNorm(embed_dim, eps=head_norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for token in (self.cls_token, self.dist_token, self.pos_embed):
            trunc_normal_(token, std=0.02)
        for m in self.modules():  # pre-order, as before: the same draws for the same seed
            init_vit_weights(m)

    def grid(self, tdim: int) -> tuple[int, int]:
        """Patch grid `(f_dim, t_dim)` for an input of `tdim` frames (Conv2d output size, no padding)."""
        f_dim = (self.input_fdim - PATCH) // self.fstride + 1
        t_dim = (max(tdim, PATCH) - PATCH) // self.tstride + 1
        return f_dim, t_dim

    def _pos_embed(self, t_dim: int) -> Tensor:
        """Position embedding `[1, 2 + f_dim * t_dim, D]` for `t_dim` patch columns."""
        if t_dim == self.t_dim:
            return self.pos_embed
        special, patches = self.pos_embed[:, :2], self.pos_embed[:, 2:]
        grid = rearrange(patches, "1 (f t) d -> 1 d f t", f=self.f_dim)
        grid = nn.functional.interpolate(grid, size=(self.f_dim, t_dim), mode="bilinear", align_corners=False)
        return torch.cat([special, rearrange(grid, "1 d f t -> 1 (f t) d")], dim=1)

    def forward_tokens(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T, F]` (normalised, F = input_fdim) -> tokens `Tensor[B, 2 + f_dim * t_dim, D]`."""
        if fbank.ndim != 3 or fbank.shape[-1] != self.input_fdim:
            raise ValueError(f"expected fbank [B, T, {self.input_fdim}], got {tuple(fbank.shape)}")
        if fbank.shape[1] < PATCH:  # shorter than one patch: zero-pad the time axis (padding is silence-ish)
            fbank = nn.functional.pad(fbank, (0, 0, 0, PATCH - fbank.shape[1]))
        x = rearrange(fbank, "b t f -> b 1 f t")
        x = self.patch_embed(x)  # [B, D, f_dim, t_dim]
        t_dim = x.shape[-1]
        x = rearrange(x, "b d f t -> b (f t) d")
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        x = self.pos_drop(x + self._pos_embed(t_dim))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T, F]` -> logits `Tensor[B, num_classes]`."""
        tokens = self.forward_tokens(fbank)
        pooled = (tokens[:, 0] + tokens[:, 1]) / 2  # CLS and distillation outputs averaged, as in AST
        return self.head(self.head_drop(self.head_norm(pooled)))


# --- named variants --------------------------------------------------------------------------------------
# Sizes follow DeiT (tiny/small/base) as the official code does; strides 10/10 and 128 mel bins throughout.


def ast_base(**overrides) -> ASTModel:
    """The paper's model: DeiT-base (768/12/12), 128 x 1024 input, strides 10, 527 AudioSet classes."""
    kwargs = dict(num_classes=527, input_tdim=1024, embed_dim=768, depth=12, num_heads=12)
    return ASTModel(**{**kwargs, **overrides})


def ast_small(**overrides) -> ASTModel:
    """DeiT-small size (384/12/6); the official code offers it as `small224`."""
    kwargs = dict(num_classes=527, input_tdim=1024, embed_dim=384, depth=12, num_heads=6)
    return ASTModel(**{**kwargs, **overrides})


def ast_tiny(**overrides) -> ASTModel:
    """DeiT-tiny size (192/12/3); the official code offers it as `tiny224`."""
    kwargs = dict(num_classes=527, input_tdim=1024, embed_dim=192, depth=12, num_heads=3)
    return ASTModel(**{**kwargs, **overrides})


def ast_micro(**overrides) -> ASTModel:
    """Not in the paper: 128/4/4 on 1 s clips, small enough to train from scratch on a CPU in minutes."""
    kwargs = dict(num_classes=10, input_tdim=100, embed_dim=128, depth=4, num_heads=4)
    return ASTModel(**{**kwargs, **overrides})


# --- converter for the official checkpoint ---------------------------------------------------------------


def convert_official_ast(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map an official AST state dict (`ASTModel` wrapped in DataParallel, e.g. `audioset_0.4593.pth`) to ours.

    Official keys live under `module.v.*` (the timm DeiT) and `module.mlp_head.{0,1}.*`; the DeiT's own
    `head`/`head_dist` classifiers are unused by AST's forward and are dropped. The `module.` prefix is
    optional. Anything unrecognised is kept under its name so that loading reports it as unexpected.
    """
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        if name.startswith(("v.head.", "v.head_dist.")):
            continue
        if name.startswith("v.patch_embed.proj."):
            out["patch_embed." + name[len("v.patch_embed.proj.") :]] = value
        elif name.startswith("v.") and name[2:].split(".")[0] in ("cls_token", "dist_token", "pos_embed", "blocks", "norm"):
            out[name[2:]] = value
        elif name.startswith("mlp_head.0."):
            out["head_norm." + name[len("mlp_head.0.") :]] = value
        elif name.startswith("mlp_head.1."):
            out["head." + name[len("mlp_head.1.") :]] = value
        else:
            out[name] = value
    return out



def describe_official(state: dict[str, Tensor], *, checkpoint: str = "") -> dict:
    """What a converted official AST checkpoint is: variant and its keyword arguments, classes, input spec.

    The size comes from the embedding width (768 base, 384 small, 192 tiny), the patch grid from the position
    embedding (2 + 12 x 101 for 128 x 1024 inputs at strides 10/10), the classes from the head's rows (527:
    AudioSet, official order). The head's LayerNorm takes the official eps 1e-5. Input: 16 kHz mono, Kaldi fbank
    (128 mel bins, 25 ms Hanning windows every 10 ms, htk_compat, no dither), 1024 frames, normalised with the
    AudioSet statistics of the official recipe, `(fbank + 4.27) / (2 * 4.57)`.
    """
    from video.audio.frontend import AST_AUDIOSET_MEAN, AST_AUDIOSET_STD
    from video.models.labels import read_labels

    width = int(state["cls_token"].shape[-1])
    variant = {768: "ast_base", 384: "ast_small", 192: "ast_tiny"}.get(width)  # None: `--variant` decides
    rows = int(state["head.weight"].shape[0])
    patches = int(state["pos_embed"].shape[1]) - 2
    kwargs: dict = {"head_norm_eps": 1e-5}
    if rows != 527:
        kwargs["num_classes"] = rows
    f_dim = (128 - PATCH) // 10 + 1
    tdim = 1024
    if patches != f_dim * 101 and patches % f_dim == 0:  # another clip length at strides 10/10 (ESC-50: 512)
        tdim = (patches // f_dim - 1) * 10 + PATCH  # the shortest length giving that patch grid
        kwargs["input_tdim"] = tdim
    return {"variant": variant, "kwargs": kwargs,
            "classes": read_labels("audioset") if rows == 527 else [],
            "input": {"sample_rate": 16000, "num_mel_bins": 128, "target_frames": tdim,
                      "mean": AST_AUDIOSET_MEAN, "std": AST_AUDIOSET_STD, "features": "kaldi_fbank"},
            "notes": {"label_set": "audioset" if rows == 527 else f"unknown ({rows} classes)",
                      "fbank": "kaldi fbank, 128 mel bins, 25 ms hanning window, 10 ms shift, htk_compat, dither 0",
                      "head_norm_eps": "1e-5, the official mlp_head LayerNorm (PyTorch default)"}}
