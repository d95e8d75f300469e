"""ViViT, factorised encoder (Model 2), and the frozen-spatial recipe of "Optimizing ViViT Training".

Papers:
- Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021, arXiv 2103.15691. Official code:
  google-research/scenic, `projects/vivit` (JAX/Flax, Apache-2.0). No official PyTorch FE weights exist.
- Gowda, Arnab, Huang, "Optimizing ViViT Training: Time and Memory Reduction for Action Recognition",
  arXiv 2306.04822.

Factorised encoder (facts from scenic `model.py` and the K400 B-FE config):
    tubelet embedding: Conv3d, kernel = stride = (t, p, p) (16x16x2 for B/16x2)   -> [B, T', H', W', D]
    spatial encoder, the same weights and CLS token for every temporal index t':
        [CLS] + H'W' tokens + learned 1-D position embedding -> L_s pre-LN blocks -> LayerNorm -> CLS
    temporal encoder on the T' spatial CLS outputs:
        [CLS] + T' tokens + its own learned position embedding -> L_t blocks -> LayerNorm -> CLS
    head: Linear with a zero-initialised kernel (scenic `output_projection`).
The blocks are timm's ViT `Block` (pre-LN, qkv bias, GELU MLP), so a timm ViT's weights fill the spatial
encoder key for key (`load_image_vit`). Scenic uses Xavier init in its blocks; we keep timm's init. Scenic's MLP
uses flax's `nn.gelu`, by default the tanh approximation; ours the exact GELU (timm's), unless `gelu="tanh"`,
which scenic's checkpoints need (`convert_scenic` records it; 1.3e-4 on the logits of a tiny model, more at full
size). Scenic's Flax checkpoints load through `convert_scenic` (`omnisense convert vivit-scenic CHECKPOINT`).

"Optimizing ViViT Training" (recipe flags of `ViViTFactorised`). The abstract states: freeze the spatial
transformer, initialise the temporal transformer appropriately, and add a compact adapter "that
selectively focuses on regions of the input image" between them; ~50% less training time and memory.
What follows is OUR READING where the abstract leaves the design open (the stored sources hold no
more than the abstract):
- `freeze_spatial`: tubelet embedding, spatial CLS/positions, spatial blocks and norm get no gradient and
  run in eval mode under `torch.no_grad()`; their activations are never kept for backward.
- `adapter_dim > 0` (our reading of the "compact adapter"): per time step, a single learned query
  attends over the frozen spatial tokens (CLS and patches) through a bottleneck of `adapter_dim`
  channels; its output, projected back to D by a zero-initialised Linear, is added to the spatial CLS.
  At initialisation the adapter is the identity on the CLS, so training starts from the frozen features.
- `init_temporal_from_spatial` (our reading of "appropriately initialise"): the temporal blocks start as
  copies of the last L_t spatial blocks (image-pretrained) instead of at random (scenic #351: the
  baseline's temporal encoder is random).
- Cached spatial features: with the spatial side frozen, `extract_spatial(video)` is a pure function of
  the clip, so its tokens can be computed once and stored (`SpatialFeatureCache`); `forward_cached`
  then trains adapter + temporal + head only.

Encoder contract (for the fusion core): `forward_tokens(video: Tensor[B, 3, T, H, W]) -> Tensor[B, T', 1, D]`:
the temporal encoder's output for each of the T' = T / t time steps (one token per step, the temporal CLS
excluded), after the final LayerNorm; `forward(video) -> logits [B, num_classes]` uses the temporal CLS.
"""

from __future__ import annotations

import copy
import logging
from functools import partial
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from video._io import atomic_write
from video.models.uniformer import _linspace, inflate_kernel

log = logging.getLogger(__name__)

_norm = partial(nn.LayerNorm, eps=1e-6)


class TubeletEmbed(nn.Module):
    """Non-overlapping t x p x p tubelets to D channels: `[B, C, T, H, W] -> [B, T/t, (H/p)(W/p), D]`."""

    def __init__(self, *, in_chans: int, dim: int, patch_size: int, tubelet: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, (tubelet, patch_size, patch_size), (tubelet, patch_size, patch_size))

    def forward(self, video: Tensor) -> Tensor:
        return rearrange(self.proj(video), "b d t h w -> b t (h w) d")


class RegionAdapter(nn.Module):
    """Compact adapter (our reading of the paper): one query per time step pools the frozen tokens.

    `tokens [B*, 1+N, D]` -> `[B*, D]` = CLS + up(attention-pool(down(LN(tokens)))), with `up` zero-initialised.
    """

    def __init__(self, dim: int, adapter_dim: int, num_heads: int = 1):
        super().__init__()
        self.norm = _norm(dim)
        self.down = nn.Linear(dim, adapter_dim)
        self.query = nn.Parameter(torch.zeros(1, 1, adapter_dim))
        self.attn = nn.MultiheadAttention(adapter_dim, num_heads, batch_first=True)
        self.up = nn.Linear(adapter_dim, dim)
        trunc_normal_(self.query, std=0.02)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        z = self.down(self.norm(tokens))  # [B*, 1+N, r]
        pooled, _ = self.attn(self.query.expand(z.shape[0], -1, -1), z, z, need_weights=False)  # [B*, 1, r]
        return tokens[:, 0] + self.up(pooled[:, 0])


class ViViTFactorised(nn.Module):
    """ViViT factorised encoder.

    Args:
        num_classes: classifier outputs (0: no head, `forward` returns the temporal CLS feature).
        img_size: input height = width, pixels.
        num_frames: input frames T (a multiple of `tubelet`).
        patch_size: spatial patch p.
        tubelet: temporal extent t of a tubelet.
        dim: hidden size D.
        spatial_depth, temporal_depth: L_s and L_t.
        num_heads: attention heads of both encoders.
        mlp_ratio: MLP hidden size / D.
        drop_path_rate: stochastic depth, rising linearly over each encoder's layers.
        in_chans: input channels.
        freeze_spatial: the recipe's frozen spatial encoder (see the module docstring).
        adapter_dim: channels of the compact adapter; 0 disables it.
        init_temporal_from_spatial: copy the last `temporal_depth` spatial blocks into the temporal
            encoder at construction and whenever `load_image_vit` fills the spatial side.
        gelu: the MLPs' GELU: "exact" (timm, ours) or "tanh" (flax's `nn.gelu` default, scenic's checkpoints).
    """

    def __init__(self, *, num_classes: int = 400, img_size: int = 224, num_frames: int = 32, patch_size: int = 16,
                 tubelet: int = 2, dim: int = 768, spatial_depth: int = 12, temporal_depth: int = 4, num_heads: int = 12,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, in_chans: int = 3, freeze_spatial: bool = False,
                 adapter_dim: int = 0, init_temporal_from_spatial: bool = False, gelu: str = "exact"):
        super().__init__()
        if gelu not in ("exact", "tanh"):
            raise ValueError(f"gelu must be 'exact' or 'tanh', got {gelu!r}")
        act = partial(nn.GELU, approximate="tanh") if gelu == "tanh" else nn.GELU
        if num_frames % tubelet or img_size % patch_size:
            raise ValueError(f"num_frames {num_frames} must divide by tubelet {tubelet}, img_size {img_size} by patch {patch_size}")
        if init_temporal_from_spatial and temporal_depth > spatial_depth:
            raise ValueError("init_temporal_from_spatial needs temporal_depth <= spatial_depth")
        self.num_classes = num_classes
        self.token_dim = dim
        self.num_times = num_frames // tubelet
        self.num_patches = (img_size // patch_size) ** 2
        self.freeze_spatial = freeze_spatial
        self.init_temporal_from_spatial = init_temporal_from_spatial
        self.patch_embed = TubeletEmbed(in_chans=in_chans, dim=dim, patch_size=patch_size, tubelet=tubelet)
        self.spatial_cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1 + self.num_patches, dim))
        dps = _linspace(drop_path_rate, spatial_depth)
        self.spatial_blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=d, norm_layer=_norm,
                                                  act_layer=act) for d in dps)
        self.spatial_norm = _norm(dim)
        self.adapter = RegionAdapter(dim, adapter_dim) if adapter_dim > 0 else None
        self.temporal_cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, 1 + self.num_times, dim))
        dpt = _linspace(drop_path_rate, temporal_depth)
        self.temporal_blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=d, norm_layer=_norm,
                                                   act_layer=act) for d in dpt)
        self.temporal_norm = _norm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        for p in (self.spatial_cls, self.spatial_pos, self.temporal_cls, self.temporal_pos):
            trunc_normal_(p, std=0.02)
        if isinstance(self.head, nn.Linear):  # scenic: zero-initialised output projection
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        if init_temporal_from_spatial:
            self.copy_spatial_to_temporal()
        if freeze_spatial:
            for p in self.spatial_parameters():
                p.requires_grad_(False)

    # -- the recipe ---------------------------------------------------------------------------------------
    def spatial_modules(self) -> list[nn.Module]:
        return [self.patch_embed, self.spatial_blocks, self.spatial_norm]

    def spatial_parameters(self) -> list[nn.Parameter]:
        params = [self.spatial_cls, self.spatial_pos]
        for m in self.spatial_modules():
            params.extend(m.parameters())
        return params

    def copy_spatial_to_temporal(self) -> None:
        """Initialise the temporal blocks from the last L_t spatial blocks (our reading of the recipe)."""
        last = self.spatial_blocks[len(self.spatial_blocks) - len(self.temporal_blocks):]
        for dst, src in zip(self.temporal_blocks, last):
            dst.load_state_dict(copy.deepcopy(src.state_dict()))
        self.temporal_norm.load_state_dict(self.spatial_norm.state_dict())

    def train(self, mode: bool = True) -> "ViViTFactorised":
        super().train(mode)
        if self.freeze_spatial:  # frozen encoder: no dropout / drop-path on its side
            for m in self.spatial_modules():
                m.eval()
        return self

    # -- forward ------------------------------------------------------------------------------------------
    def extract_spatial(self, video: Tensor) -> Tensor:
        """Spatial encoder: `video [B, 3, T, H, W]` -> tokens `[B, T', 1+N, D]` after its LayerNorm.

        Index 0 along the third axis is the spatial CLS of each time step. Runs under no_grad when frozen.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_spatial):
            x = self.patch_embed(video)  # [B, T', N, D]
            b, t = x.shape[:2]
            x = rearrange(x, "b t n d -> (b t) n d")
            x = torch.cat([self.spatial_cls.expand(x.shape[0], -1, -1), x], dim=1) + self.spatial_pos
            for block in self.spatial_blocks:
                x = block(x)
            x = self.spatial_norm(x)
        return rearrange(x, "(b t) n d -> b t n d", b=b, t=t)

    def _temporal(self, spatial: Tensor) -> Tensor:
        """Spatial tokens `[B, T', 1+N, D]` -> temporal encoder output `[B, 1+T', D]` (index 0: CLS)."""
        b, t = spatial.shape[:2]
        if self.adapter is not None:
            frames = self.adapter(rearrange(spatial, "b t n d -> (b t) n d")).view(b, t, -1)  # [B, T', D]
        else:
            frames = spatial[:, :, 0]  # spatial CLS per time step
        x = torch.cat([self.temporal_cls.expand(b, -1, -1), frames], dim=1) + self.temporal_pos
        for block in self.temporal_blocks:
            x = block(x)
        return self.temporal_norm(x)

    def forward_cached(self, spatial: Tensor) -> Tensor:
        """Logits from precomputed spatial tokens `[B, T', 1+N, D]` (see `SpatialFeatureCache`)."""
        return self.head(self._temporal(spatial)[:, 0])

    def forward_tokens(self, video: Tensor) -> Tensor:
        """Encoder contract: `video [B, 3, T, H, W]` -> `[B, T', 1, D]` temporal-encoder tokens, one per step."""
        return self._temporal(self.extract_spatial(video))[:, 1:, None]

    def forward(self, video: Tensor) -> Tensor:
        """`video [B, 3, T, H, W]` -> logits `[B, num_classes]`."""
        return self.forward_cached(self.extract_spatial(video))

    # -- weights ------------------------------------------------------------------------------------------
    def load_image_vit(self, vit_state: dict[str, Tensor], *, center: bool = True) -> list[str]:
        """Fill the spatial encoder from a timm ViT state dict (`cls_token`, `pos_embed`, `patch_embed.proj`,
        `blocks.i.*`, `norm.*`), the tubelet kernel inflated (center=True: scenic's central-frame
        initializer; False: average). Returns the ViT keys that were not used (its head, say).
        Raises ValueError when a tensor does not fit or a spatial-encoder tensor is missing from the ViT.
        """
        own = self.state_dict()
        mapped: dict[str, Tensor] = {}
        unused: list[str] = []
        t = self.patch_embed.proj.weight.shape[2]
        for key, value in vit_state.items():
            if key == "patch_embed.proj.weight":
                mapped["patch_embed.proj.weight"] = inflate_kernel(value, t, center=center)
            elif key == "patch_embed.proj.bias":
                mapped["patch_embed.proj.bias"] = value
            elif key == "cls_token":
                mapped["spatial_cls"] = value
            elif key == "pos_embed":
                mapped["spatial_pos"] = _resize_pos(value, self.spatial_pos.shape[1])
            elif key.startswith("blocks."):
                mapped["spatial_" + key] = value
            elif key.startswith("norm."):
                mapped["spatial_" + key] = value
            else:
                unused.append(key)
        bad = [f"{k} {tuple(v.shape)} (ViViT: {tuple(own[k].shape) if k in own else 'none'})"
               for k, v in mapped.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise ValueError(f"ViT tensors that do not fit this ViViT: {bad[:8]}")
        spatial = ("patch_embed.", "spatial_cls", "spatial_pos", "spatial_blocks.", "spatial_norm.")
        missing = [k for k in own if k.startswith(spatial) and k not in mapped]
        if missing:  # a partial fill would leave a random layer inside a "pre-trained" encoder
            raise ValueError(f"the ViT lacks spatial-encoder tensors: {missing[:8]}"
                             f"{f' and {len(missing) - 8} more' if len(missing) > 8 else ''}")
        self.load_state_dict(mapped, strict=False)
        if self.init_temporal_from_spatial:
            self.copy_spatial_to_temporal()
        return unused


def _resize_pos(pos: Tensor, length: int) -> Tensor:
    """A ViT position embedding `[1, 1+n*n, D]` bilinearly resized to `[1, length, D]` (CLS kept)."""
    if pos.shape[1] == length:
        return pos
    cls, grid = pos[:, :1], pos[:, 1:]
    n_old, n_new = int(round(grid.shape[1] ** 0.5)), int(round((length - 1) ** 0.5))
    grid = rearrange(grid, "1 (h w) d -> 1 d h w", h=n_old)
    grid = F.interpolate(grid, size=(n_new, n_new), mode="bilinear", align_corners=False)
    return torch.cat([cls, rearrange(grid, "1 d h w -> 1 (h w) d")], dim=1)


class SpatialFeatureCache:
    """Frozen-spatial features keyed by sample, in memory and optionally on disk (safetensors, float16).

    Valid only while the spatial encoder is frozen and the clip for a key is fixed (a fixed sampling
    and crop per key, e.g. "video.mp4#clip0#crop1"): a cached feature is the encoder's output for that
    exact input.
    """

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else None
        self._mem: dict[str, Tensor] = {}

    def _file(self, key: str) -> Path | None:
        import hashlib

        if self.folder is None:
            return None
        return self.folder / (hashlib.sha1(key.encode()).hexdigest() + ".safetensors")

    def get(self, key: str) -> Tensor | None:
        if key in self._mem:
            return self._mem[key]
        path = self._file(key)
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            self._mem[key] = load_file(path)["tokens"]
            return self._mem[key]
        return None

    def put(self, key: str, tokens: Tensor) -> None:
        value = tokens.detach().to("cpu", torch.float16).contiguous()
        self._mem[key] = value
        path = self._file(key)
        if path is not None:
            from safetensors.torch import save_file

            atomic_write(path, lambda tmp: save_file({"tokens": value}, str(tmp)))

    def __len__(self) -> int:
        return len(self._mem)

    @torch.no_grad()
    def features(self, model: ViViTFactorised, keys: Sequence[str], video: Tensor) -> Tensor:
        """Spatial tokens of a batch `[B, T', 1+N, D]` (float32 on `video`'s device), computing the missing ones."""
        if not model.freeze_spatial:
            raise ValueError("caching spatial features needs a frozen spatial encoder (freeze_spatial=True)")
        cached = [self.get(k) for k in keys]
        missing = [i for i, c in enumerate(cached) if c is None]
        if missing:
            fresh = model.extract_spatial(video[missing])
            for i, tokens in zip(missing, fresh):
                self.put(keys[i], tokens)
                cached[i] = self._mem[keys[i]]
        return torch.stack(cached).to(video.device, torch.float32)


# ---------------------------------------------------------------------------------------------------------
# Named variants. B and L factorised encoders: scenic K400 configs (32 frames, 16x16x2 tubelets, 224^2,
# L_t = 4). The "frozen" variants switch on the recipe of "Optimizing ViViT Training".

def vivit_base_fe_k400(**kwargs) -> ViViTFactorised:
    cfg = dict(img_size=224, num_frames=32, patch_size=16, tubelet=2, dim=768, spatial_depth=12, temporal_depth=4,
               num_heads=12, mlp_ratio=4.0)
    return ViViTFactorised(**{**cfg, **kwargs})


def vivit_large_fe_k400(**kwargs) -> ViViTFactorised:
    cfg = dict(img_size=224, num_frames=32, patch_size=16, tubelet=2, dim=1024, spatial_depth=24, temporal_depth=4,
               num_heads=16, mlp_ratio=4.0)
    return ViViTFactorised(**{**cfg, **kwargs})


def vivit_base_fe_frozen_k400(**kwargs) -> ViViTFactorised:
    """B-FE with the recipe: frozen spatial ViT-B, a 128-channel adapter, temporal blocks from the ViT."""
    return vivit_base_fe_k400(**{**dict(freeze_spatial=True, adapter_dim=128, init_temporal_from_spatial=True), **kwargs})


def vivit_tiny(**kwargs) -> ViViTFactorised:
    """Not in the paper: a CPU-sized FE (8x64^2 input, 8x8x2 tubelets, D=96, L_s=4, L_t=2, 3 heads)."""
    cfg = dict(img_size=64, num_frames=8, patch_size=8, tubelet=2, dim=96, spatial_depth=4, temporal_depth=2,
               num_heads=3, mlp_ratio=4.0)
    return ViViTFactorised(**{**cfg, **kwargs})


def vivit_tiny_frozen(**kwargs) -> ViViTFactorised:
    """`vivit_tiny` with the recipe (frozen spatial, 32-channel adapter, temporal init from spatial)."""
    return vivit_tiny(**{**dict(freeze_spatial=True, adapter_dim=32, init_temporal_from_spatial=True), **kwargs})


# ---------------------------------------------------------------------------------------------------------
# Official checkpoints: scenic's Flax `SpaceTimeViViT` (attention_config.type = 'factorized_encoder',
# classifier 'token'), as `flax.training.checkpoints` writes it; `omnisense.convert.read_flax_checkpoint` reads
# the file without JAX into "a/b/c" -> array.

_SCENIC_BLOCK = {"LayerNorm_0": "norm1", "LayerNorm_1": "norm2", "MlpBlock_0/Dense_0": "mlp.fc1",
                 "MlpBlock_0/Dense_1": "mlp.fc2", "MultiHeadDotProductAttention_0/out": "attn.proj"}


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics-400 classes in label order (the dataset's `label_map.txt` of deepmind/kinetics-i3d:
    the class names sorted, the order of the label indices scenic's Kinetics data carry)."""
    return (Path(__file__).with_name("kinetics400_classes.txt")).read_text().splitlines()


def convert_scenic(flat: dict) -> tuple[dict[str, Tensor], dict]:
    """Map scenic ViViT factorised-encoder parameters ("params/SpatialTransformer/encoderblock_0/...", any prefix
    before the model's own names, e.g. "optimizer/target/" in older checkpoints) to `ViViTFactorised`'s keys.

    Flax Dense kernels are [in, out] (transposed here), attention query/key/value kernels [D, heads, head_dim]
    (fused into timm's qkv), the output kernel [heads, head_dim, D], the tubelet Conv kernel [t, p, p, C, D]
    (to Conv3d's [D, C, t, p, p]); LayerNorm `scale` is `weight`. Optimiser state and other trees are ignored.

    Returns:
        (state, info): `info["kwargs"]` = {"gelu": "tanh"} (flax's `nn.gelu`); `info["input"]` scenic's Kinetics
        input (B/16x2 and L/16x2 FE: 32 frames at stride 2, short side 256, centre 224, pixels scaled to
        [-1, 1]); the Kinetics-400 classes when the head has 400 outputs.
    """
    import numpy as np

    heads = [k[: -len("output_projection/kernel")] for k in flat if k.endswith("output_projection/kernel")]
    model_trees = [h for h in heads if h in ("", "params/", "optimizer/target/", "target/")]  # not optimiser moments
    if len(model_trees) != 1 and len(heads) != 1:
        raise KeyError(f"expected the model's 'output_projection/kernel', found {heads or 'none'}")
    prefix = model_trees[0] if len(model_trees) == 1 else heads[0]
    params = {k[len(prefix):]: np.array(v, dtype=np.float32) for k, v in flat.items() if k.startswith(prefix)}

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x))

    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, np.ndarray]] = {}
    for key, value in params.items():
        parts = key.split("/")
        if key == "embedding/kernel":
            out["patch_embed.proj.weight"] = t(value.transpose(4, 3, 0, 1, 2))
        elif key == "embedding/bias":
            out["patch_embed.proj.bias"] = t(value)
        elif key in ("cls_SpatialTransformer", "cls_TemporalTransformer"):
            out["spatial_cls" if "Spatial" in key else "temporal_cls"] = t(value)
        elif key.startswith("output_projection/"):
            out["head." + ("weight" if parts[-1] == "kernel" else "bias")] = t(value.T if value.ndim == 2 else value)
        elif parts[0] in ("SpatialTransformer", "TemporalTransformer"):
            side = "spatial" if parts[0] == "SpatialTransformer" else "temporal"
            leaf = parts[-1]
            if parts[1] == "posembed_input":
                out[f"{side}_pos"] = t(value)
            elif parts[1] == "encoder_norm":
                out[f"{side}_norm." + ("weight" if leaf == "scale" else "bias")] = t(value)
            elif parts[1].startswith("encoderblock_"):
                block = f"{side}_blocks.{parts[1][len('encoderblock_'):]}"
                module = "/".join(parts[2:-1])
                if module.startswith("MultiHeadDotProductAttention_0/") and parts[-2] in ("query", "key", "value"):
                    qkv.setdefault(f"{block}.attn.qkv", {})[f"{parts[-2]}/{leaf}"] = value
                elif module in _SCENIC_BLOCK:
                    name = f"{block}.{_SCENIC_BLOCK[module]}."
                    if leaf == "kernel":
                        d_out = value.shape[-1]
                        out[name + "weight"] = t(value.reshape(-1, d_out).T)
                    else:
                        out[name + ("weight" if leaf == "scale" else "bias")] = t(value)
                else:
                    out[key] = t(value)
            else:
                out[key] = t(value)
        else:
            out[key] = t(value)
    for name, parts in qkv.items():
        d = parts["query/kernel"].shape[0]
        out[name + ".weight"] = t(np.concatenate([parts[f"{p}/kernel"].reshape(d, -1).T for p in ("query", "key", "value")]))
        out[name + ".bias"] = t(np.concatenate([parts[f"{p}/bias"].reshape(-1) for p in ("query", "key", "value")]))
    # Scenic's Kinetics input: frames at stride 2, the short side resized to 256 / 224 of the crop, a centre crop,
    # pixels scaled to [-1, 1] (zero_centering); the clip length and crop follow from the embeddings' sizes.
    tubelet, patch = out["patch_embed.proj.weight"].shape[2:4]
    grid = round((out["spatial_pos"].shape[1] - 1) ** 0.5)
    crop = int(grid * patch)
    info: dict = {"kwargs": {"gelu": "tanh"},
                  "input": {"clip_len": int((out["temporal_pos"].shape[1] - 1) * tubelet), "frame_interval": 2,
                            "short_side": round(crop * 256 / 224), "crop_size": crop, "mean": [0.5, 0.5, 0.5],
                            "std": [0.5, 0.5, 0.5]}}
    if out["head.weight"].shape[0] == 400:
        info["classes"] = kinetics400_classes()
    return out, info
