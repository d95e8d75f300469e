"""Flattened window attention: FlatFormer (Liu et al., CVPR 2023, arXiv 2301.08739).

Official code: https://github.com/mit-han-lab/flatformer (MIT licence; no weights released). Facts
below were read from `mmdet3d/models/middle_encoders/flatformer.py` there; no code was copied.

The pillars of a frame are sorted along a window-based snake curve, cut into groups of exactly
`group_size` tokens, and attention runs inside each group. Four orderings alternate in every block:
windows along x, x with windows shifted by half a window, along y, y shifted. Each layer is post-norm:
`x = LN1(x + MHA(q = k = x + pe, v = x))`, `x = LN2(x + FFN(x))` with a 2x FFN, and the position
embedding is sinusoidal on the absolute BEV grid coordinates, computed once per forward.

One deliberate deviation: the official padding copies, into a sample's last group, the tokens one
group earlier. A sample with fewer tokens than a group then copies tokens of the *previous sample*
(and sample 0 reads out of range). Here a sample with at least one group's worth of tokens is padded
exactly as the paper's code does (its last group is its last `group_size` tokens), while a smaller
sample is padded with masked slots, so no token ever attends to another sample.

Typical use as a detection backbone (coordinates from a pillar voxelisation, (batch, z, y, x)):

    backbone = FlatFormer(**FLATFORMER_CONFIGS["waymo"])   # or flatformer("waymo")
    feats = backbone(pillar_feats, coords, batch_size)     # Tensor[M, 128]
    bev = scatter_to_bev(feats, coords, batch_size, (468, 468))  # Tensor[B, 128, 468, 468]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from perception3d._errors import PointCloudValueError
from perception3d.kernels._attention import GroupAttention, GroupPartition, activation_fn

ORDERINGS = ("x", "x_shift", "y", "y_shift")


# --------------------------------------------------------------------------------------------------
# Sort keys and groups (index work, no gradients)


def flat_window_keys(coords: Tensor, *, sparse_shape: Sequence[int], window_shape: Sequence[int],
                     ordering: str) -> Tensor:
    """The window-based snake sort key of each token, without the batch term.

    Windows are visited in a boustrophedon order (rows of windows along x for "x", columns along y
    for "y"), and the cells inside each window in a snake order whose direction flips on alternate
    window rows. The "_shift" orderings first move the grid by half a window.

    Args:
        coords: LongTensor[M, 4] as (batch, z, y, x) grid indices.
        sparse_shape: (nx, ny) cells of the BEV grid (a third entry, z, is ignored).
        window_shape: (wx, wy) cells of a window (a third entry is ignored).
        ordering: one of "x", "x_shift", "y", "y_shift".

    Returns:
        LongTensor[M], non-negative; equal keys only for tokens in the same (x, y) cell.
    """
    if ordering not in ORDERINGS:
        raise PointCloudValueError(f"unknown ordering {ordering!r}; choose one of {ORDERINGS}")
    nx, ny = int(sparse_shape[0]), int(sparse_shape[1])
    wx, wy = int(window_shape[0]), int(window_shape[1])
    x, y = coords[:, 3].long(), coords[:, 2].long()
    if ordering.endswith("_shift"):
        x, y = x + wx // 2, y + wy // 2
    x1, y1, x2, y2 = x // wx, y // wy, x % wx, y % wy  # window index, offset inside the window
    # The doubled constants leave room for the negative snake terms (official code, same values).
    n2, m2 = 2 * wx, 2 * wy
    n1, m1 = 2 * (-(-nx // wx) + 1), 2 * (-(-ny // wy) + 1)

    def sign(k: Tensor) -> Tensor:  # (-1) ** k
        return 1 - 2 * (k % 2)

    if ordering.startswith("x"):
        return (n1 * y1 + sign(y1) * x1) * n2 * m2 + sign(y1) * (m2 * x2 + sign(x2) * y2)
    return (m1 * x1 + sign(x1) * y1) * m2 * n2 + sign(x1) * (n2 * y2 + sign(y2) * x2)


def sort_tokens(coords: Tensor, keys: Tensor) -> Tensor:
    """The permutation that sorts tokens by (batch, key): LongTensor[M]; samples stay contiguous."""
    if keys.numel() == 0:
        return keys.new_zeros(0)
    keys = keys - keys.min()
    # Replaces the official `b * W * H * 10` batch term, which can overflow the key range for
    # larger grids or smaller windows.
    combined = coords[:, 0].long() * (keys.max() + 1) + keys
    return torch.sort(combined, stable=True).indices


def equal_size_groups(order: Tensor, batch_index: Tensor, batch_size: int, group_size: int) -> GroupPartition:
    """Cut each sample's sorted tokens into groups of exactly `group_size` slots.

    A sample with n >= group_size tokens is padded to a multiple of the group size with copies of the
    tokens one group earlier (the official scheme: its last group holds its last `group_size` tokens);
    a sample with 0 < n < group_size tokens is padded with masked slots. No group spans two samples.

    Args:
        order: LongTensor[M], the tokens in sorted order (samples contiguous, in batch order).
        batch_index: LongTensor[M], each token's sample (in the original token order).
        batch_size: B; samples with no token get no group.
        group_size: slots per group.

    Returns:
        A GroupPartition with index [G, group_size]; `key_padding_mask` is None when no sample is
        smaller than one group.
    """
    device = order.device
    g = int(group_size)
    counts = torch.bincount(batch_index.long(), minlength=batch_size)[:batch_size]  # [B]
    padded = (counts + g - 1) // g * g  # [B]
    start = torch.cumsum(counts, 0) - counts
    pstart = torch.cumsum(padded, 0) - padded
    total = int(padded.sum())
    slot_sample = torch.repeat_interleave(torch.arange(batch_size, device=device), padded, output_size=total)
    local = torch.arange(total, device=device) - pstart[slot_sample]  # slot position inside its sample
    n = counts[slot_sample]
    real = local < n
    small = n < g
    source = torch.where(real, local, torch.where(small, local % n.clamp(min=1), local - g))
    index = order[start[slot_sample] + source].view(-1, g)  # [G, g]
    mask = (~real & small).view(-1, g)
    key_padding_mask = mask if bool(mask.any()) else None
    # The sorted token at position p of sample b takes the output of slot pstart[b] + p - start[b].
    sorted_sample = batch_index.long()[order]
    positions = torch.arange(order.numel(), device=device)
    token_slot = torch.empty_like(order)
    token_slot[order] = pstart[sorted_sample] + positions - start[sorted_sample]
    return GroupPartition(index, key_padding_mask, token_slot)


def flat_window_partitions(coords: Tensor, batch_size: int, *, sparse_shape: Sequence[int],
                           window_shape: Sequence[int], group_size: int) -> dict[str, GroupPartition]:
    """The four partitions a FlatFormer block uses, keyed by ordering ("x", "x_shift", "y", "y_shift")."""
    coords = coords.long()
    with torch.no_grad():
        out = {}
        for ordering in ORDERINGS:
            keys = flat_window_keys(coords, sparse_shape=sparse_shape, window_shape=window_shape, ordering=ordering)
            out[ordering] = equal_size_groups(sort_tokens(coords, keys), coords[:, 0], batch_size, group_size)
    return out


def sinusoidal_position_embedding(coords: Tensor, channels: int, *, temperature: float = 10000.0,
                                  normalize: bool = False, sparse_shape: Sequence[int] = (468, 468)) -> Tensor:
    """FlatFormer's position embedding of the absolute BEV cell (x, y): Tensor[M, channels], float32.

    Half the used channels encode x and half y, as interleaved sin/cos pairs of `pos / T^(2i/n)`;
    channels beyond `4 * (channels // 4)` are zero.
    """
    x, y = coords[:, 3].float(), coords[:, 2].float()
    if normalize:  # the official option maps the grid to [0, 2 pi)
        x = x / sparse_shape[0] * 2 * 3.1415
        y = y / sparse_shape[1] * 2 * 3.1415
    length = (channels // 4) * 2
    i = torch.arange(length, dtype=torch.float32, device=coords.device)
    inv_freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / length)  # [length]
    pex, pey = x[:, None] / inv_freq, y[:, None] / inv_freq  # [M, length]
    pex = torch.stack([pex[:, ::2].sin(), pex[:, 1::2].cos()], dim=-1).flatten(1)
    pey = torch.stack([pey[:, ::2].sin(), pey[:, 1::2].cos()], dim=-1).flatten(1)
    pe = torch.cat([pex, pey], dim=1)  # [M, 2 * length]
    return torch.nn.functional.pad(pe, (0, channels - pe.shape[1]))


def scatter_to_bev(feats: Tensor, coords: Tensor, batch_size: int, grid: Sequence[int]) -> Tensor:
    """Scatter pillar features onto a dense BEV canvas in one indexed write (no per-sample loop).

    Args:
        feats: Tensor[M, C].
        coords: LongTensor[M, 4] as (batch, z, y, x); z must be 0 (pillars).
        batch_size: B.
        grid: (ny, nx) canvas size in cells.

    Returns:
        Tensor[B, C, ny, nx], zero where no pillar is.
    """
    ny, nx = int(grid[0]), int(grid[1])
    c = feats.shape[1]
    canvas = feats.new_zeros(batch_size * ny * nx, c)
    flat = (coords[:, 0].long() * ny + coords[:, 2].long()) * nx + coords[:, 3].long()
    canvas = canvas.index_put((flat,), feats)
    return canvas.view(batch_size, ny, nx, c).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------------
# Layers


class FlatGroupAttention(nn.Module):
    """Holds the attention as `.attn`, so parameter names match the official checkpoints
    (`block_list.{i}.block.{k}.attn.attn.in_proj_weight`, ...)."""

    def __init__(self, channels: int, num_heads: int, *, backend: str = "auto") -> None:
        super().__init__()
        self.attn = GroupAttention(channels, num_heads, backend=backend)

    def forward(self, x: Tensor, pe: Tensor, partition: GroupPartition) -> Tensor:
        return self.attn(x, pe, partition)


class FlatWindowLayer(nn.Module):
    """One post-norm FlatFormer layer: `x = LN1(x + attn(x, pe))`, `x = LN2(x + fc2(act(fc1(x))))`."""

    def __init__(self, channels: int, num_heads: int, *, ffn_ratio: int = 2, activation: str = "gelu",
                 backend: str = "auto") -> None:
        super().__init__()
        self.attn = FlatGroupAttention(channels, num_heads, backend=backend)
        self.fc1 = nn.Linear(channels, ffn_ratio * channels)
        self.fc2 = nn.Linear(ffn_ratio * channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)
        self.act = activation_fn(activation)

    def forward(self, x: Tensor, pe: Tensor, partition: GroupPartition) -> Tensor:
        """x: Tensor[M, C]; pe: Tensor[M, C]; returns Tensor[M, C]."""
        x = self.norm1(x + self.attn(x, pe, partition))
        return self.norm2(x + self.fc2(self.act(self.fc1(x))))


class FlatFormerBlock(nn.Module):
    """Four FlatWindowLayers over the orderings x -> x_shift -> y -> y_shift."""

    def __init__(self, channels: int, num_heads: int, *, ffn_ratio: int = 2, activation: str = "gelu",
                 backend: str = "auto") -> None:
        super().__init__()
        self.block = nn.ModuleList(
            FlatWindowLayer(channels, num_heads, ffn_ratio=ffn_ratio, activation=activation, backend=backend)
            for _ in ORDERINGS)

    def forward(self, x: Tensor, pe: Tensor, partitions: dict[str, GroupPartition]) -> Tensor:
        for layer, ordering in zip(self.block, ORDERINGS):
            x = layer(x, pe, partitions[ordering])
        return x


def _bev_shape(shape: Sequence[int], name: str) -> tuple[int, int]:
    """(x, y) of a 2-tuple or of the official configs' 3-tuple (x, y, z), whose z must be 1 (pillars)."""
    values = tuple(int(v) for v in shape)
    if len(values) not in (2, 3) or (len(values) == 3 and values[2] != 1) or min(values) < 1:
        raise PointCloudValueError(f"{name} must be (x, y) or (x, y, 1) positive cells, got {tuple(shape)}")
    return values[0], values[1]


@dataclass(frozen=True)
class FlatFormerInputs:
    """What one frame's coordinates give every layer: the position embedding and four partitions."""

    pe: Tensor  # [M, C]
    partitions: dict[str, GroupPartition]


class FlatFormer(nn.Module):
    """The FlatFormer middle encoder: `num_blocks` blocks of four flattened-window layers on pillars.

    Args:
        in_channels: token width C (the pillar features' width; unchanged by the encoder).
        num_heads: attention heads.
        num_blocks: blocks of 4 layers (the paper: 2, so 8 attention layers).
        activation: FFN activation, "gelu" or "relu".
        window_shape: (wx, wy) cells of a window (the released Waymo config: 13 x 13); the official
            3-tuple (wx, wy, 1) is accepted too.
        sparse_shape: (nx, ny) cells of the BEV grid (Waymo: 468 x 468), or (nx, ny, 1).
        group_size: tokens per group (Waymo config: 144).
        ffn_ratio: FFN hidden width / C (2 in the paper).
        pos_temperature: temperature of the sinusoidal embedding.
        normalize_pos: scale grid coordinates to [0, 2 pi) before the embedding (off in the paper).
        backend: "auto", "sdpa" or "reference" (perception3d.kernels._attention).

    Call: `forward(feats: Tensor[M, C], coords: LongTensor[M, 4] (batch, z, y, x), batch_size: int)
    -> Tensor[M, C]`, features in the input's token order. `prepare(coords, batch_size)` and
    `encode(feats, inputs)` split it into the index work and the network (`encode` is what compiles
    with fullgraph=True and exports to ONNX).
    """

    def __init__(self, *, in_channels: int = 128, num_heads: int = 8, num_blocks: int = 2, activation: str = "gelu",
                 window_shape: Sequence[int] = (13, 13), sparse_shape: Sequence[int] = (468, 468),
                 group_size: int = 144, ffn_ratio: int = 2, pos_temperature: float = 10000.0,
                 normalize_pos: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.window_shape = _bev_shape(window_shape, "window_shape")
        self.sparse_shape = _bev_shape(sparse_shape, "sparse_shape")
        self.group_size = int(group_size)
        self.pos_temperature = float(pos_temperature)
        self.normalize_pos = normalize_pos
        self.block_list = nn.ModuleList(
            FlatFormerBlock(in_channels, num_heads, ffn_ratio=ffn_ratio, activation=activation, backend=backend)
            for _ in range(num_blocks))
        for p in self.parameters():  # the official init
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def prepare(self, coords: Tensor, batch_size: int) -> FlatFormerInputs:
        """Index work for one batch of frames (no gradients): sort keys, groups and the embedding."""
        if coords.ndim != 2 or coords.shape[1] != 4:
            raise PointCloudValueError(f"coords must be [M, 4] (batch, z, y, x), got {tuple(coords.shape)}")
        coords = coords.long()
        if coords.numel():
            low, high = coords.min(0).values, coords.max(0).values
            nx, ny = self.sparse_shape
            if bool((low < 0).any()) or int(high[0]) >= batch_size or int(high[2]) >= ny or int(high[3]) >= nx:
                raise PointCloudValueError(f"coords outside the grid (batch < {batch_size}, y < {ny}, x < {nx})")
        partitions = flat_window_partitions(coords, batch_size, sparse_shape=self.sparse_shape,
                                            window_shape=self.window_shape, group_size=self.group_size)
        pe = sinusoidal_position_embedding(coords, self.in_channels, temperature=self.pos_temperature,
                                           normalize=self.normalize_pos, sparse_shape=self.sparse_shape)
        return FlatFormerInputs(pe, partitions)

    def encode(self, feats: Tensor, inputs: FlatFormerInputs) -> Tensor:
        """The network on prepared inputs: Tensor[M, C] -> Tensor[M, C]."""
        pe = inputs.pe.to(feats.dtype)
        x = feats
        for block in self.block_list:
            x = block(x, pe, inputs.partitions)
        return x

    def forward(self, feats: Tensor, coords: Tensor, batch_size: int) -> Tensor:
        if feats.ndim != 2 or feats.shape[1] != self.in_channels or feats.shape[0] != coords.shape[0]:
            raise PointCloudValueError(
                f"feats must be [M, {self.in_channels}] with M = len(coords), got {tuple(feats.shape)}")
        if feats.shape[0] == 0:
            return feats.clone()
        return self.encode(feats, self.prepare(coords, batch_size))


# --------------------------------------------------------------------------------------------------
# Named configurations

FLATFORMER_CONFIGS: dict[str, dict[str, Any]] = {
    # configs/flatformer/flatformer_waymo_D1_2x_3class.py: pillars 0.32 m on [-74.88, 74.88] m.
    "waymo": dict(in_channels=128, num_heads=8, num_blocks=2, activation="gelu", window_shape=(13, 13),
                  sparse_shape=(468, 468), group_size=144, pos_temperature=10000.0, normalize_pos=False),
    # The official code's defaults (window 9 x 9, group 69).
    "waymo_code_defaults": dict(in_channels=128, num_heads=8, num_blocks=2, activation="gelu",
                                window_shape=(9, 9), sparse_shape=(468, 468), group_size=69),
    # Small enough to train on a CPU: 64 x 64 grid, 32 channels, one block.
    "tiny": dict(in_channels=32, num_heads=4, num_blocks=1, activation="gelu", window_shape=(4, 4),
                 sparse_shape=(64, 64), group_size=16),
}


def flatformer(name: str, **overrides: Any) -> FlatFormer:
    """A FlatFormer encoder from a named config ("waymo", "waymo_code_defaults", "tiny"), with overrides."""
    if name not in FLATFORMER_CONFIGS:
        raise PointCloudValueError(f"unknown FlatFormer config {name!r}; choose one of {sorted(FLATFORMER_CONFIGS)}")
    return FlatFormer(**{**FLATFORMER_CONFIGS[name], **overrides})
