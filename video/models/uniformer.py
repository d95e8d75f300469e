"""UniFormer for video: unified convolution and self-attention over space-time.

Paper: Li et al., "UniFormer: Unified Transformer for Efficient Spatiotemporal Representation Learning",
ICLR 2022, arXiv 2201.04676. Official code: github.com/Sense-X/UniFormer (PySlowFast-based, Apache-2.0);
mmaction2 ports it for testing. No weights ship with this file; official checkpoints (their own licence,
Apache-2.0 per the repository) load through `convert_official`.

Layout (module names follow the official code, so official checkpoints map key for key):
    patch_embed1 (3x4x4 conv, stride 2x4x4: the only temporal downsampling) -> blocks1 (local)
    patch_embed2 (1x2x2) -> blocks2 (local) -> patch_embed3 -> blocks3 (global) -> patch_embed4 -> blocks4 (global)
    -> norm (BatchNorm3d) -> mean over T'H'W' -> head (Linear)
Every block: X += DPE(X) (depthwise 3x3x3 conv); X += MHRA(Norm(X)); X += FFN(Norm(X)).
Local MHRA: BatchNorm -> 1x1x1 conv (V) -> 5x5x5 depthwise conv (the learnable affinity over a 5x5x5
tube, per channel as in the official code) -> 1x1x1 conv (U). Global MHRA: LayerNorm -> multi-head
self-attention over all T'H'W' tokens of the stage (here through `F.scaled_dot_product_attention`).

Encoder contract (for the fusion core): `forward_tokens(video: Tensor[B, 3, T, H, W]) -> Tensor[B, T', N, D]`
with T' = T / 2, N = (H / 32) * (W / 32) stage-4 tokens per time step, D = `token_dim` (the last
embed dim), after the final norm; `forward(video) -> logits [B, num_classes]` is the head on their mean.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

log = logging.getLogger(__name__)


class CMlp(nn.Module):
    """FFN of the local blocks: 1x1x1 convs C -> hidden -> C with GELU."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv3d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv3d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Mlp(nn.Module):
    """FFN of the global blocks: Linear C -> hidden -> C with GELU."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LocalBlock(nn.Module):
    """DPE + local MHRA (5x5x5 depthwise affinity) + conv FFN, on `[B, C, T, H, W]` (official `CBlock`)."""

    def __init__(self, dim: int, *, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)  # DPE
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)  # V
        self.attn = nn.Conv3d(dim, dim, 5, padding=2, groups=dim)  # affinity A over a 5x5x5 tube
        self.conv2 = nn.Conv3d(dim, dim, 1)  # U
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm3d(dim)
        self.mlp = CMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over a token sequence `[B, N, C]`, SDPA underneath."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)  # scale d^-1/2
        return self.proj_drop(self.proj(rearrange(x, "b h n d -> b n (h d)")))


class GlobalBlock(nn.Module):
    """DPE + global MHRA (self-attention over all T*H*W tokens) + MLP (official `SABlock`)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)  # DPE
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        b, c, t, h, w = x.shape
        x = rearrange(x, "b c t h w -> b (t h w) c")
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return rearrange(x, "b (t h w) c -> b c t h w", t=t, h=h, w=w)


class PatchEmbed(nn.Module):
    """Strided Conv3d then LayerNorm over channels: `[B, Cin, T, H, W] -> [B, Cout, T/st, H/s, W/s]`."""

    def __init__(self, in_chans: int, dim: int, *, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                 padding: tuple[int, int, int] = (0, 0, 0)):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel, stride, padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3).contiguous()


def _linspace(end: float, n: int) -> list[float]:
    """Stochastic-depth rates 0 .. end over n blocks (plain Python, so models also build on the meta device)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def init_vit_weights(m: nn.Module) -> None:
    """The official ViT-family init, for `module.apply`: trunc-normal(0.02) Linear weights, zero biases, unit
    LayerNorm; convolutions keep PyTorch's default."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class UniFormer(nn.Module):
    """UniFormer video classifier.

    Args:
        depth: blocks per stage; stages 1-2 are local, 3-4 global (the official `STAGE_TYPE [0, 0, 1, 1]`).
        embed_dim: channels per stage.
        head_dim: channels per attention head in the global stages (heads = dim / head_dim).
        mlp_ratio: FFN expansion.
        num_classes: classifier outputs; 0 gives no head (`forward` returns pooled features).
        in_chans: input channels.
        qkv_bias: bias in the qkv projection (the released configs: True).
        drop_rate: dropout in FFNs and after attention (released: 0).
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks.
        checkpoint_blocks: per stage, how many leading blocks use activation checkpointing during
            training (the official `CHECKPOINT_NUM`); `set_grad_checkpointing()` turns on all of them.
    """

    def __init__(self, *, depth: Sequence[int] = (3, 4, 8, 3), embed_dim: Sequence[int] = (64, 128, 320, 512),
                 head_dim: int = 64, mlp_ratio: float = 4.0, num_classes: int = 400, in_chans: int = 3,
                 qkv_bias: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 checkpoint_blocks: Sequence[int] = (0, 0, 0, 0)):
        super().__init__()
        if len(depth) != 4 or len(embed_dim) != 4 or len(checkpoint_blocks) != 4:
            raise ValueError("depth, embed_dim and checkpoint_blocks need one entry per stage (4)")
        if any(d % head_dim for d in embed_dim[2:]):
            raise ValueError(f"global-stage dims {embed_dim[2:]} must be multiples of head_dim {head_dim}")
        self.num_classes = num_classes
        self.token_dim = embed_dim[-1]
        self.checkpoint_blocks = list(checkpoint_blocks)
        self.patch_embed1 = PatchEmbed(in_chans, embed_dim[0], kernel=(3, 4, 4), stride=(2, 4, 4), padding=(1, 0, 0))
        self.patch_embed2 = PatchEmbed(embed_dim[0], embed_dim[1], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.patch_embed3 = PatchEmbed(embed_dim[1], embed_dim[2], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.patch_embed4 = PatchEmbed(embed_dim[2], embed_dim[3], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = _linspace(drop_path_rate, sum(depth))
        starts = [sum(depth[:i]) for i in range(4)]
        self.blocks1 = nn.ModuleList(LocalBlock(embed_dim[0], mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=dpr[starts[0] + i])
                                     for i in range(depth[0]))
        self.blocks2 = nn.ModuleList(LocalBlock(embed_dim[1], mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=dpr[starts[1] + i])
                                     for i in range(depth[1]))
        self.blocks3 = nn.ModuleList(GlobalBlock(embed_dim[2], embed_dim[2] // head_dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                                 drop=drop_rate, drop_path=dpr[starts[2] + i]) for i in range(depth[2]))
        self.blocks4 = nn.ModuleList(GlobalBlock(embed_dim[3], embed_dim[3] // head_dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                                 drop=drop_rate, drop_path=dpr[starts[3] + i]) for i in range(depth[3]))
        self.norm = nn.BatchNorm3d(embed_dim[-1])
        self.head = nn.Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_vit_weights)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every block of every stage (trades about a third more compute for activation memory)."""
        stages = (self.blocks1, self.blocks2, self.blocks3, self.blocks4)
        self.checkpoint_blocks = [len(s) if enable else 0 for s in stages]

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}

    def _stage(self, blocks: nn.ModuleList, n_ckpt: int, x: Tensor) -> Tensor:
        for i, block in enumerate(blocks):
            if i < n_ckpt and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward_features(self, video: Tensor) -> Tensor:
        """`video [B, 3, T, H, W]` (normalised) -> stage-4 map `[B, D, T/2, H/32, W/32]` after the final norm."""
        x = self.pos_drop(self.patch_embed1(video))
        x = self._stage(self.blocks1, self.checkpoint_blocks[0], x)
        x = self._stage(self.blocks2, self.checkpoint_blocks[1], self.patch_embed2(x))
        x = self._stage(self.blocks3, self.checkpoint_blocks[2], self.patch_embed3(x))
        x = self._stage(self.blocks4, self.checkpoint_blocks[3], self.patch_embed4(x))
        return self.norm(x)

    def forward_tokens(self, video: Tensor) -> Tensor:
        """Encoder contract: `video [B, 3, T, H, W]` -> tokens `[B, T', N, D]` (T' = T/2, N = H/32 * W/32)."""
        return rearrange(self.forward_features(video), "b d t h w -> b t (h w) d")

    def forward_head(self, tokens: Tensor) -> Tensor:
        """Tokens `[B, T', N, D]` -> logits `[B, num_classes]` (mean over all tokens, then Linear)."""
        return self.head(tokens.mean(dim=(1, 2)))

    def forward(self, video: Tensor) -> Tensor:
        """`video [B, 3, T, H, W]` -> logits `[B, num_classes]`."""
        return self.head(self.forward_features(video).flatten(2).mean(-1))


# ---------------------------------------------------------------------------------------------------------
# Named variants. S and B: Sense-X/UniFormer exp/*/config.yaml + run.sh (K400, 16x4 or 8x8, 224^2).
# XXS and XS (the light models: conv stem, class token, token pruning) live in `uniformer_light.py`.

def uniformer_small_k400(**kwargs) -> UniFormer:
    cfg = dict(depth=(3, 4, 8, 3), embed_dim=(64, 128, 320, 512), head_dim=64, mlp_ratio=4.0, drop_path_rate=0.1)
    return UniFormer(**{**cfg, **kwargs})


def uniformer_base_k400(**kwargs) -> UniFormer:
    cfg = dict(depth=(5, 8, 20, 7), embed_dim=(64, 128, 320, 512), head_dim=64, mlp_ratio=4.0, drop_path_rate=0.3)
    return UniFormer(**{**cfg, **kwargs})


def uniformer_tiny(**kwargs) -> UniFormer:
    """Not in the paper: a CPU-sized UniFormer (same blocks, 1/1/2/1 blocks, dims 32-256) for tests and small clips."""
    cfg = dict(depth=(1, 1, 2, 1), embed_dim=(32, 64, 128, 256), head_dim=32, mlp_ratio=4.0, drop_path_rate=0.0)
    return UniFormer(**{**cfg, **kwargs})


def uniformer_mini(**kwargs) -> UniFormer:
    """Not in the paper: between tiny and XXS (2/2/4/2 blocks, dims 48-384), trainable on CPU at 64^2."""
    cfg = dict(depth=(2, 2, 4, 2), embed_dim=(48, 96, 192, 384), head_dim=32, mlp_ratio=4.0, drop_path_rate=0.05)
    return UniFormer(**{**cfg, **kwargs})


# ---------------------------------------------------------------------------------------------------------
# 2D -> 3D inflation and official checkpoints.

def inflate_kernel(weight_2d: Tensor, time: int, *, center: bool = False) -> Tensor:
    """A 2D conv kernel `[O, I, kh, kw]` -> 3D `[O, I, time, kh, kw]`.

    center=False: repeat along time and divide by `time` (I3D; the official UniFormer inflation), so a
    static video gives the 2D response. center=True: the kernel in the central slice, zeros elsewhere
    (mmaction2's default for UniFormer, scenic's `central_frame_initializer` for ViViT).
    """
    if center:
        out = weight_2d.new_zeros(*weight_2d.shape[:2], time, *weight_2d.shape[2:])
        out[:, :, time // 2] = weight_2d
        return out
    return weight_2d.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


def inflate_2d_state_dict(state_2d: dict[str, Tensor], model: nn.Module, *, center: bool = False) -> dict[str, Tensor]:
    """Turn an image UniFormer's state dict (official `model` key) into one for this video model.

    Kernels whose shape differs and that have more than two dims are inflated along time; other
    mismatched tensors (e.g. a head with another class count) are dropped and logged, as the official
    `get_pretrained_model` does. Keys the model does not have are dropped and logged.
    """
    target = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in state_2d.items():
        if key not in target:
            log.info("inflate: unexpected key %s dropped", key)
            continue
        want = target[key].shape
        if value.shape == want:
            out[key] = value
        elif value.ndim == 4 and len(want) == 5 and value.shape == want[:2] + want[3:]:
            out[key] = inflate_kernel(value, want[2], center=center)
        else:
            log.info("inflate: %s %s does not fit %s, dropped", key, tuple(value.shape), tuple(want))
    return out


def convert_official(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map an official UniFormer video checkpoint to this model's keys.

    Accepts PySlowFast checkpoints (`model_state`, no prefix, `module.` stripped), mmaction2 checkpoints
    (`state_dict` with `backbone.` and `cls_head.fc_cls.` prefixes), or an already flat state dict of
    either. The keys of the official code are ours, so only prefixes change.
    """
    for wrapper in ("model_state", "state_dict", "model"):
        if wrapper in official and isinstance(official[wrapper], dict):
            official = official[wrapper]
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        if not isinstance(value, Tensor):
            continue
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("backbone."):
            key = key[len("backbone."):]
        elif key.startswith("cls_head.fc_cls."):
            key = "head." + key[len("cls_head.fc_cls."):]
        elif key.startswith("cls_head.") or key.startswith("data_preprocessor."):
            continue
        out[key] = value
    return out


def match_classes_by_name(state: dict[str, Tensor], official_classes: Sequence[str], our_classes: Sequence[str],
                          *, head: str = "head") -> dict[str, Tensor]:
    """Reorder (and select) the rows of the classifier so that row i is `our_classes[i]`.

    Kinetics label orders differ between codebases (Sense-X/UniFormer#38, #66: near-zero accuracy until
    the labels are remapped by name); names are compared case-insensitively with `_`/space unified.

    Raises:
        KeyError: naming the classes of `our_classes` that the official list lacks.
    """
    def norm(name: str) -> str:
        return " ".join(name.replace("_", " ").replace('"', "").lower().split())

    index = {norm(n): i for i, n in enumerate(official_classes)}
    missing = [n for n in our_classes if norm(n) not in index]
    if missing:
        raise KeyError(f"classes absent from the official label list: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    rows = torch.tensor([index[norm(n)] for n in our_classes])
    out = dict(state)
    for suffix in ("weight", "bias"):
        key = f"{head}.{suffix}"
        if key in out:
            if out[key].shape[0] != len(official_classes):
                raise KeyError(f"{key} has {out[key].shape[0]} rows but the official list has {len(official_classes)} classes")
            out[key] = out[key][rows]
    return out



# Official test-time input of the released video checkpoints (exp/*/config.yaml, PySlowFast defaults): frames
# short-side resized to TEST_CROP_SIZE (256) and centre-cropped to it, mean 0.45 / std 0.225 per channel.
_OFFICIAL_LABELS = {400: "kinetics400", 600: "kinetics600", 174: "something_something_v2"}
_OFFICIAL_CLIPS = {"kinetics400": (8, 8), "kinetics600": (16, 4), "something_something_v2": (16, 4)}


def describe_official(state: dict[str, Tensor], *, checkpoint: str = "") -> dict:
    """What a converted official UniFormer checkpoint is: variant, classes (official order), input spec.

    The size (S or B) is read from the number of stage-3 blocks (8 or 20; other sizes are left to the caller's
    `--variant`), the label set from the classifier's
    rows (400 Kinetics-400, 600 Kinetics-600, 174 Something-Something-V2). Frames and stride are not in the
    weights: they are read from the checkpoint's name as the model zoo spells it (`..._16x4...`: 16 frames,
    stride 4), else the label set's usual setting (K400 8x8, K600 16x4, SSv2 16 frames; SSv2's official test
    sampling is segment-based, recorded in `notes`).
    """
    import re

    from video.models.labels import read_labels

    blocks3 = {int(k.split(".")[1]) for k in state if k.startswith("blocks3.")}
    variant = {8: "uniformer_small_k400", 20: "uniformer_base_k400"}.get(len(blocks3))  # None: `--variant` decides
    rows = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    label_set = _OFFICIAL_LABELS.get(rows)
    frames, stride = _OFFICIAL_CLIPS.get(label_set, (16, 4))
    named = re.search(r"(\d+)x(\d+)", Path(checkpoint).name)
    if named:
        frames, stride = int(named.group(1)), int(named.group(2))
    else:
        named = re.search(r"[sb](8|16|32)(?!\d)", Path(checkpoint).name.lower())
        frames = int(named.group(1)) if named else frames
    notes = {"label_set": label_set or f"unknown ({rows} classes)"}
    if label_set == "something_something_v2":
        notes["sampling"] = "official test: segment-based (one frame per equal segment), approximated by the stride"
    return {"variant": variant, "kwargs": {"num_classes": rows} if rows and rows != 400 else {},
            "classes": read_labels(label_set) if label_set else [],
            "input": {"clip_len": frames, "frame_interval": stride, "short_side": 256, "crop_size": 256,
                      "mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]},
            "notes": notes}
