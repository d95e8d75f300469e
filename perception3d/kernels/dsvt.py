"""Dynamic sparse set attention: DSVT (Wang et al., CVPR 2023, arXiv 2301.06051).

Official code: https://github.com/Haiyang-W/DSVT (Apache-2.0). Facts below were read from
`pcdet/models/backbones_3d/dsvt.py`, `dsvt_input_layer.py`, `model_utils/dsvt_utils.py` and the
`tools/cfgs/dsvt_models/*.yaml` configs there; no code was copied.

Voxels are partitioned into windows (two window configurations per stage: the base window, and a
window `hybrid_factor` times larger shifted by `shifts[1]`). Inside a window of N voxels sorted along
y-major or x-major order, DSVT makes S = ceil(N / tau) sets of exactly tau slots; slot k of set j takes
the voxel of sorted rank floor((j * tau + k) * N / (S * tau)) (Eq. 3), so every voxel appears at least
once and repeats are consecutive; a slot equal to the previous slot of its set is masked as a key.
Each voxel takes the output of its first slot. A `DSVTBlock` is two encoder layers: the y-major sets
then the x-major sets ("rotated sets"); blocks alternate between the two window configurations.

Residual norms are nested three deep as in the reference: `SetAttention` is post-norm
(`x = LN1(x + attn)`, `x = LN2(x + FFN(x))`), each encoder layer adds `x = LN(SetAttention(x) + x)`,
and the backbone adds `x = LN_b(block(x) + x)` around each block. Between stages of DSVT-V an
attention-style pooling merges the voxels of each pooling window (z only in the paper's config).

Differences from the official code, each deliberate:
- In-window ranks come from a stable sort (no `ingroup_inds` CUDA op); the slot formula uses exact
  integer floor division where the official code divides in float64 (same results at these sizes).
- First-occurrence scatter-back is a gather at the slot `ceil(rank * S * tau / N)`, computed in closed
  form instead of the unique/flip/scatter trick, so it exports to ONNX with the same semantics.
- The official block indexes its position embeddings by layer instead of by shift (DSVT issue #50);
  `faithful_pos_embed_index=True` (default) keeps that, as the released numbers were trained with it.
- The pooling attends to empty pool slots (zeros), as the official code does; `mask_empty_slots=True`
  masks them instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from perception3d._errors import PointCloudValueError
from perception3d.kernels._attention import GroupAttention, GroupPartition, activation_fn

AXES = ("y", "x")  # set orderings: 0 = y-major (y, x, z), 1 = x-major (x, y, z)


# --------------------------------------------------------------------------------------------------
# Index work: windows, sets, pooling (no gradients)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def window_partition(coords: Tensor, *, sparse_shape: Sequence[int], window_shape: Sequence[int],
                     shift: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Assign every voxel to a window after shifting the grid.

    Args:
        coords: LongTensor[M, 4] as (batch, z, y, x).
        sparse_shape: (nx, ny, nz) cells of the grid.
        window_shape: (wx, wy, wz) cells of a window.
        shift: (sx, sy, sz) cells added to the coordinates first; the z shift is dropped when the
            window spans the whole z extent.

    Returns:
        (window id: LongTensor[M], unique across samples; offset in the window: LongTensor[M, 3] as (z, y, x)).
    """
    nx, ny, nz = (int(v) for v in sparse_shape)
    wx, wy, wz = (int(v) for v in window_shape)
    sx, sy, sz = (int(v) for v in shift)
    if nz == wz:
        sz = 0
    # One window more per axis leaves room for the shift (as the official code does).
    mx, my, mz = _ceil_div(nx, wx) + 1, _ceil_div(ny, wy) + 1, _ceil_div(nz, wz) + 1
    x, y, z = coords[:, 3].long() + sx, coords[:, 2].long() + sy, coords[:, 1].long() + sz
    win = coords[:, 0].long() * (mx * my * mz) + (x // wx) * (my * mz) + (y // wy) * mz + z // wz
    return win, torch.stack([z % wz, y % wy, x % wx], dim=1)


def set_partition(window_id: Tensor, coors_in_win: Tensor, *, window_shape: Sequence[int], set_size: int,
                  axis: int) -> GroupPartition:
    """DSVT's dynamic set partition of one window configuration along one axis order.

    Args:
        window_id: LongTensor[M] from `window_partition`.
        coors_in_win: LongTensor[M, 3] (z, y, x) offsets in the window.
        window_shape: (wx, wy, wz).
        set_size: tau, slots per set.
        axis: 0 sorts voxels in a window by (y, x, z), 1 by (x, y, z).

    Returns:
        GroupPartition with index [S_total, tau] (sets ordered by window id, then set number), the key
        padding mask of repeated slots, and each voxel's first slot.
    """
    wx, wy, wz = (int(v) for v in window_shape)
    tau = int(set_size)
    device = window_id.device
    m = window_id.numel()
    if m == 0:
        empty = window_id.new_zeros(0, tau)
        return GroupPartition(empty, torch.zeros(0, tau, dtype=torch.bool, device=device), window_id.new_zeros(0))
    _, cwin = torch.unique(window_id, return_inverse=True)  # windows numbered in sorted id order
    counts = torch.bincount(cwin)  # [W] voxels per window
    z, y, x = coors_in_win[:, 0].long(), coors_in_win[:, 1].long(), coors_in_win[:, 2].long()
    inner = y * (wx * wz) + x * wz + z if axis == 0 else x * (wy * wz) + y * wz + z
    # Stable sort + cumulative counts give the in-window rank (replaces the `ingroup_inds` CUDA op).
    order = torch.sort(cwin * (wx * wy * wz) + inner, stable=True).indices  # voxels by (window, rank)
    win_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(m, device=device) - win_start[cwin[order]]

    sets_per_win = (counts + tau - 1) // tau  # S = ceil(N / tau)
    set_start = torch.cumsum(sets_per_win, 0) - sets_per_win
    num_sets = int(sets_per_win.sum())
    set_win = torch.repeat_interleave(torch.arange(counts.numel(), device=device), sets_per_win,
                                      output_size=num_sets)  # [S_total]
    slot = (torch.arange(num_sets, device=device) - set_start[set_win])[:, None] * tau \
        + torch.arange(tau, device=device)  # [S_total, tau]: t = j * tau + k
    n = counts[set_win][:, None]
    capacity = sets_per_win[set_win][:, None] * tau  # S * tau
    slot_rank = slot * n // capacity  # Eq. 3, exact in integers
    index = order[win_start[set_win][:, None] + slot_rank]
    repeat = torch.zeros_like(index, dtype=torch.bool)
    repeat[:, 1:] = slot_rank[:, 1:] == slot_rank[:, :-1]
    # First slot of rank r: the smallest t with floor(t * N / (S * tau)) >= r.
    n_tok, cap_tok = counts[cwin], sets_per_win[cwin] * tau
    first = (rank * cap_tok + n_tok - 1) // n_tok
    token_slot = set_start[cwin] * tau + first
    return GroupPartition(index, repeat, token_slot)


@dataclass(frozen=True)
class PoolingIndex:
    """Where each voxel of a stage goes in the next, coarser stage.

    Attributes:
        pool_index: LongTensor[M], the pooled voxel each voxel falls in (0..M'-1).
        index_in_pool: LongTensor[M], its slot in the pooling window (0..volume-1).
        coords: LongTensor[M', 4] (batch, z, y, x) of the pooled voxels on the coarser grid.
        volume: slots per pooling window (the product of the stride).
    """

    pool_index: Tensor
    index_in_pool: Tensor
    coords: Tensor
    volume: int


def pooling_index(coords: Tensor, *, sparse_shape: Sequence[int], stride: Sequence[int]) -> PoolingIndex:
    """The pooling windows of `stride` cells: the voxels of each window merge into one coarser voxel."""
    nx, ny, nz = (int(v) for v in sparse_shape)
    sx, sy, sz = (int(v) for v in stride)
    mx, my, mz = _ceil_div(nx, sx), _ceil_div(ny, sy), _ceil_div(nz, sz)
    b, z, y, x = (coords[:, i].long() for i in range(4))
    window = b * (mx * my * mz) + (x // sx) * (my * mz) + (y // sy) * mz + z // sz
    _, pool = torch.unique(window, return_inverse=True)
    in_pool = (x % sx) * (sy * sz) + (y % sy) * sz + z % sz
    num = int(pool.max()) + 1 if pool.numel() else 0
    pooled = coords.new_zeros(num, 4).long()
    pooled[pool] = torch.stack([b, z // sz, y // sy, x // sx], dim=1)  # all members agree
    return PoolingIndex(pool, in_pool, pooled, sx * sy * sz)


# --------------------------------------------------------------------------------------------------
# Layers


class PositionEmbeddingLearned(nn.Module):
    """DSVT's learned embedding of the in-window offset: Linear -> BN1d -> ReLU -> Linear."""

    def __init__(self, input_channel: int, num_pos_feats: int) -> None:
        super().__init__()
        self.position_embedding_head = nn.Sequential(
            nn.Linear(input_channel, num_pos_feats), nn.BatchNorm1d(num_pos_feats), nn.ReLU(inplace=True),
            nn.Linear(num_pos_feats, num_pos_feats))

    def forward(self, location: Tensor) -> Tensor:
        """location: Tensor[M, 2|3] cells from the window centre -> Tensor[M, C]."""
        return self.position_embedding_head(location)


class SetAttention(nn.Module):
    """Set attention + FFN, post-norm: `x = LN1(x + attn(x, pos))`, `x = LN2(x + FFN(x))`."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, activation: str = "gelu",
                 backend: str = "auto") -> None:
        super().__init__()
        self.self_attn = GroupAttention(d_model, nhead, backend=backend)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.activation = activation_fn(activation)

    def forward(self, src: Tensor, pos: Tensor | None, partition: GroupPartition) -> Tensor:
        """src, pos: Tensor[M, C] -> Tensor[M, C]."""
        src = self.norm1(src + self.self_attn(src, pos, partition))
        return self.norm2(src + self.linear2(self.activation(self.linear1(src))))


class DSVTEncoderLayer(nn.Module):
    """`x = LN(SetAttention(x) + x)`: the second of DSVT's nested residual norms."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, activation: str = "gelu",
                 backend: str = "auto") -> None:
        super().__init__()
        self.win_attn = SetAttention(d_model, nhead, dim_feedforward, activation=activation, backend=backend)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor | None, partition: GroupPartition) -> Tensor:
        return self.norm(self.win_attn(src, pos, partition) + src)


class DSVTBlock(nn.Module):
    """Two encoder layers over rotated sets of one window configuration: y-major, then x-major."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, activation: str = "gelu",
                 backend: str = "auto") -> None:
        super().__init__()
        self.encoder_list = nn.ModuleList(
            DSVTEncoderLayer(d_model, nhead, dim_feedforward, activation=activation, backend=backend)
            for _ in AXES)

    def forward(self, src: Tensor, partitions: Sequence[GroupPartition], pos: Sequence[Tensor]) -> Tensor:
        """partitions: (y-major, x-major) sets of one shift; pos: one embedding per layer."""
        for layer, partition, p in zip(self.encoder_list, partitions, pos):
            src = layer(src, p, partition)
        return src


class PoolAttention(nn.Module):
    """DSVT-V's attention-style pooling (`Stage_ReductionAtt_Block`).

    The voxels of a pooling window fill a zero placeholder of `volume` slots; the query is their
    channel-wise max, the keys and values the slots (keys plus a learned slot embedding), 8 heads,
    then `LN(out + query)`.
    """

    def __init__(self, channels: int, volume: int, *, num_heads: int = 8, mask_empty_slots: bool = False) -> None:
        super().__init__()
        self.volume = volume
        self.mask_empty_slots = mask_empty_slots
        self.norm = nn.LayerNorm(channels)
        self.self_attn = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.pos_embedding = nn.Parameter(torch.randn(volume, channels) * 0.01)

    def forward(self, x: Tensor, pooling: PoolingIndex) -> Tensor:
        """x: Tensor[M, C] -> Tensor[M', C] in the order of `pooling.coords`."""
        num = pooling.coords.shape[0]
        slots = x.new_zeros(num, self.volume, x.shape[1]).index_put(
            (pooling.pool_index, pooling.index_in_pool), x)  # [M', V, C]
        query = slots.amax(dim=1, keepdim=True)  # [M', 1, C]; empty slots count as zeros (official)
        mask = None
        if self.mask_empty_slots:
            filled = torch.zeros(num, self.volume, dtype=torch.bool, device=x.device)
            filled = filled.index_put((pooling.pool_index, pooling.index_in_pool),
                                      torch.ones_like(pooling.pool_index, dtype=torch.bool))
            mask = ~filled
        out = self.self_attn(query, slots + self.pos_embedding, slots, key_padding_mask=mask, need_weights=False)[0]
        return self.norm(out + query).squeeze(1)


class MaxPoolReduction(nn.Module):
    """The `maxpool` reduction: channel-wise max over each pooling window (empty slots are zeros)."""

    def forward(self, x: Tensor, pooling: PoolingIndex) -> Tensor:
        slots = x.new_zeros(pooling.coords.shape[0], pooling.volume, x.shape[1]).index_put(
            (pooling.pool_index, pooling.index_in_pool), x)
        return slots.amax(dim=1)


class LinearReduction(nn.Module):
    """The `linear` reduction: concatenate the window's slots, Linear (no bias), LayerNorm."""

    def __init__(self, channels: int, volume: int, out_channels: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels * volume, out_channels, bias=False)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor, pooling: PoolingIndex) -> Tensor:
        slots = x.new_zeros(pooling.coords.shape[0], pooling.volume, x.shape[1]).index_put(
            (pooling.pool_index, pooling.index_in_pool), x)
        return self.norm(self.linear1(slots.flatten(1)))


# --------------------------------------------------------------------------------------------------
# The backbone


@dataclass(frozen=True)
class DSVTStageInputs:
    """One stage's index work: sets per (shift, axis), in-window offsets per shift, pooling to the next stage."""

    coords: Tensor  # [M_s, 4] (batch, z, y, x)
    partitions: tuple[tuple[GroupPartition, GroupPartition], tuple[GroupPartition, GroupPartition]]
    locations: tuple[Tensor, Tensor]  # per shift: Tensor[M_s, 2|3] float offsets from the window centre
    pooling: PoolingIndex | None


class DSVT(nn.Module):
    """The DSVT backbone (`BACKBONE_3D` of the official configs): stages of DSVT blocks with pooling between.

    Per-stage arguments are lists with one entry per stage.

    Args:
        sparse_shape: (nx, ny, nz) cells of the input grid (Waymo pillars: 468, 468, 1).
        window_shape: per stage (wx, wy, wz), the base window.
        hybrid_factor: (hx, hy, hz); the second window configuration is the base window times this.
        shifts: per stage, the two shifts [(sx, sy, sz) of the base window, (sx, sy, sz) of the larger one].
        downsample_stride: per stage transition (stages - 1 entries), the pooling stride (sx, sy, sz).
        set_size: per stage, tau.
        num_blocks: per stage, DSVT blocks (each two layers).
        d_model: per stage, token width.
        nhead: per stage, attention heads.
        dim_feedforward: per stage, FFN hidden width.
        activation: "gelu" or "relu".
        reduction: pooling between stages: "attention" (DSVT-V), "maxpool" or "linear".
        faithful_pos_embed_index: keep the official position-embedding indexing (issue #50).
        mask_empty_slots: mask empty pool slots in the attention pooling (the official code does not).
        use_checkpoint: recompute each block in backward to save memory (the official `ues_checkpoint`).
        backend: "auto", "sdpa" or "reference" (perception3d.kernels._attention).

    Call: `forward(feats: Tensor[M, d_model[0]], coords: LongTensor[M, 4] (batch, z, y, x), batch_size)
    -> (Tensor[M', d_model[-1]], LongTensor[M', 4])`, the last stage's voxels (M' = M without pooling).
    `prepare(coords, batch_size)` and `encode(feats, inputs)` split it into index work and network.
    """

    def __init__(self, *, sparse_shape: Sequence[int], window_shape: Sequence[Sequence[int]],
                 hybrid_factor: Sequence[int] = (2, 2, 1),
                 shifts: Sequence[Sequence[Sequence[int]]] = (((0, 0, 0), (6, 6, 0)),),
                 downsample_stride: Sequence[Sequence[int]] = (), set_size: Sequence[int] = (36,),
                 num_blocks: Sequence[int] = (4,), d_model: Sequence[int] = (192,), nhead: Sequence[int] = (8,),
                 dim_feedforward: Sequence[int] = (384,), activation: str = "gelu", reduction: str = "attention",
                 faithful_pos_embed_index: bool = True, mask_empty_slots: bool = False,
                 use_checkpoint: bool = False, backend: str = "auto") -> None:
        super().__init__()
        stages = len(d_model)
        lengths = dict(window_shape=len(window_shape), shifts=len(shifts), set_size=len(set_size),
                       num_blocks=len(num_blocks), nhead=len(nhead), dim_feedforward=len(dim_feedforward))
        if any(n != stages for n in lengths.values()) or len(downsample_stride) != stages - 1:
            raise PointCloudValueError(
                f"per-stage arguments must have {stages} entries (downsample_stride {stages - 1}), got {lengths}, "
                f"downsample_stride={len(downsample_stride)}")
        if reduction not in ("attention", "maxpool", "linear"):
            raise PointCloudValueError(f"unknown reduction {reduction!r}")
        self.sparse_shapes = [tuple(int(v) for v in sparse_shape)]
        for stride in downsample_stride:
            self.sparse_shapes.append(tuple(_ceil_div(n, int(s)) for n, s in zip(self.sparse_shapes[-1], stride)))
        self.window_shapes = [
            (tuple(int(v) for v in w), tuple(int(v) * int(h) for v, h in zip(w, hybrid_factor))) for w in window_shape]
        self.shifts = [tuple(tuple(int(v) for v in s) for s in pair) for pair in shifts]
        self.downsample_stride = [tuple(int(v) for v in s) for s in downsample_stride]
        self.set_size = [int(v) for v in set_size]
        self.num_blocks = [int(v) for v in num_blocks]
        self.d_model = [int(v) for v in d_model]
        self.faithful_pos_embed_index = faithful_pos_embed_index
        self.use_checkpoint = use_checkpoint
        self.in_channels, self.out_channels = self.d_model[0], self.d_model[-1]

        self.input_layer = nn.Module()
        self.input_layer.posembed_layers = nn.ModuleList()
        for s in range(stages):
            ndim = 3 if self.window_shapes[s][0][2] > 1 else 2
            self.input_layer.posembed_layers.append(nn.ModuleList(
                nn.ModuleList(PositionEmbeddingLearned(ndim, self.d_model[s]) for _ in AXES)
                for _ in range(self.num_blocks[s])))
        for s in range(stages):
            setattr(self, f"stage_{s}", nn.ModuleList(
                DSVTBlock(self.d_model[s], int(nhead[s]), int(dim_feedforward[s]), activation=activation,
                          backend=backend) for _ in range(self.num_blocks[s])))
            setattr(self, f"residual_norm_stage_{s}",
                    nn.ModuleList(nn.LayerNorm(self.d_model[s]) for _ in range(self.num_blocks[s])))
            if s < stages - 1:
                volume = 1
                for v in self.downsample_stride[s]:
                    volume *= v
                if reduction == "attention":
                    if self.d_model[s + 1] != self.d_model[s]:
                        raise PointCloudValueError("attention pooling keeps the width: d_model must not change")
                    module: nn.Module = PoolAttention(self.d_model[s], volume, mask_empty_slots=mask_empty_slots)
                elif reduction == "maxpool":
                    module = MaxPoolReduction()
                else:
                    module = LinearReduction(self.d_model[s], volume, self.d_model[s + 1])
                setattr(self, f"stage_{s}_reduction", module)
        for p in self.parameters():  # the official init (it also overwrites the pooling's N(0, 0.01))
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    @property
    def num_stages(self) -> int:
        return len(self.d_model)

    def prepare(self, coords: Tensor, batch_size: int) -> list[DSVTStageInputs]:
        """All index work for a batch (no gradients): windows, sets, offsets and pooling, per stage."""
        if coords.ndim != 2 or coords.shape[1] != 4:
            raise PointCloudValueError(f"coords must be [M, 4] (batch, z, y, x), got {tuple(coords.shape)}")
        coords = coords.long()
        if coords.numel():
            nx, ny, nz = self.sparse_shapes[0]
            low, high = coords.min(0).values, coords.max(0).values
            if bool((low < 0).any()) or int(high[0]) >= batch_size or int(high[1]) >= nz or int(high[2]) >= ny \
                    or int(high[3]) >= nx:
                raise PointCloudValueError(
                    f"coords outside the grid (batch < {batch_size}, z < {nz}, y < {ny}, x < {nx})")
        stages = []
        with torch.no_grad():
            for s in range(self.num_stages):
                partitions, locations = [], []
                for shift_id in range(2):
                    window = self.window_shapes[s][shift_id]
                    win, in_win = window_partition(coords, sparse_shape=self.sparse_shapes[s], window_shape=window,
                                                   shift=self.shifts[s][shift_id])
                    partitions.append(tuple(
                        set_partition(win, in_win, window_shape=window, set_size=self.set_size[s], axis=axis)
                        for axis in range(len(AXES))))
                    wx, wy, wz = window
                    centred = [in_win[:, 2] - wx / 2, in_win[:, 1] - wy / 2]
                    if self.window_shapes[s][0][2] > 1:
                        centred.append(in_win[:, 0] - wz / 2)
                    locations.append(torch.stack(centred, dim=1).float())
                pooling = None
                if s < self.num_stages - 1:
                    pooling = pooling_index(coords, sparse_shape=self.sparse_shapes[s],
                                            stride=self.downsample_stride[s])
                stages.append(DSVTStageInputs(coords, tuple(partitions), tuple(locations), pooling))
                if pooling is not None:
                    coords = pooling.coords
        return stages

    def encode(self, feats: Tensor, inputs: Sequence[DSVTStageInputs]) -> Tensor:
        """The network on prepared inputs: Tensor[M, d_model[0]] -> Tensor[M', d_model[-1]]."""
        x = feats
        block_id = 0  # counts across stages, as the official shift alternation does
        for s, stage in enumerate(inputs):
            embeds = self.input_layer.posembed_layers[s]
            blocks = getattr(self, f"stage_{s}")
            norms = getattr(self, f"residual_norm_stage_{s}")
            for b, (block, norm) in enumerate(zip(blocks, norms)):
                shift_id = block_id % 2
                # Official: layer i takes the embedding of shift i whatever the block's shift (issue #50).
                pos_shift = (0, 1) if self.faithful_pos_embed_index else (shift_id, shift_id)
                pos = [embeds[b][i](stage.locations[pos_shift[i]].to(x.dtype)) for i in range(len(AXES))]
                if self.use_checkpoint and torch.is_grad_enabled():
                    out = checkpoint(block, x, stage.partitions[shift_id], pos, use_reentrant=False)
                else:
                    out = block(x, stage.partitions[shift_id], pos)
                x = norm(out + x)
                block_id += 1
            if stage.pooling is not None:
                x = getattr(self, f"stage_{s}_reduction")(x, stage.pooling)
        return x

    def forward(self, feats: Tensor, coords: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
        if feats.ndim != 2 or feats.shape[1] != self.in_channels or feats.shape[0] != coords.shape[0]:
            raise PointCloudValueError(
                f"feats must be [M, {self.in_channels}] with M = len(coords), got {tuple(feats.shape)}")
        if feats.shape[0] == 0:
            return feats.new_zeros(0, self.out_channels), coords.new_zeros(0, 4).long()
        inputs = self.prepare(coords, batch_size)
        last = inputs[-1]
        return self.encode(feats, inputs), last.coords


# --------------------------------------------------------------------------------------------------
# Named configurations (the official `BACKBONE_3D` sections)

DSVT_CONFIGS: dict[str, dict[str, Any]] = {
    # dsvt_plain_1f_onestage.yaml: DSVT-P on Waymo, pillars 0.32 m on [-74.88, 74.88] m.
    "pillar_waymo": dict(sparse_shape=(468, 468, 1), window_shape=((12, 12, 1),), hybrid_factor=(2, 2, 1),
                         shifts=(((0, 0, 0), (6, 6, 0)),), downsample_stride=(), set_size=(36,), num_blocks=(4,),
                         d_model=(192,), nhead=(8,), dim_feedforward=(384,), activation="gelu"),
    # dsvt_3D_1f_onestage.yaml: DSVT-V on Waymo, voxels 0.32 x 0.32 x 0.1875 m, z pooled 32 -> 8 -> 2 -> 1.
    "voxel_waymo": dict(sparse_shape=(468, 468, 32), window_shape=((12, 12, 32), (12, 12, 8), (12, 12, 2), (12, 12, 1)),
                        hybrid_factor=(2, 2, 1), shifts=(((0, 0, 0), (6, 6, 0)),) * 4,
                        downsample_stride=((1, 1, 4), (1, 1, 4), (1, 1, 2)), set_size=(48,) * 4, num_blocks=(1,) * 4,
                        d_model=(192,) * 4, nhead=(8,) * 4, dim_feedforward=(384,) * 4, activation="gelu",
                        reduction="attention"),
    # dsvt_plain_1f_onestage_nusences.yaml: DSVT-P on nuScenes, pillars 0.3 m on [-54, 54] m.
    "pillar_nuscenes": dict(sparse_shape=(360, 360, 1), window_shape=((30, 30, 1),), hybrid_factor=(1, 1, 1),
                            shifts=(((0, 0, 0), (15, 15, 0)),), downsample_stride=(), set_size=(90,), num_blocks=(4,),
                            d_model=(128,), nhead=(8,), dim_feedforward=(256,), activation="gelu"),
    # Tiny ones that train on a CPU (64 x 64 grid).
    "pillar_tiny": dict(sparse_shape=(64, 64, 1), window_shape=((8, 8, 1),), hybrid_factor=(2, 2, 1),
                        shifts=(((0, 0, 0), (4, 4, 0)),), downsample_stride=(), set_size=(16,), num_blocks=(2,),
                        d_model=(32,), nhead=(4,), dim_feedforward=(64,), activation="gelu"),
    "voxel_tiny": dict(sparse_shape=(64, 64, 8), window_shape=((8, 8, 8), (8, 8, 2)), hybrid_factor=(2, 2, 1),
                       shifts=(((0, 0, 0), (4, 4, 0)),) * 2, downsample_stride=((1, 1, 4),), set_size=(16, 16),
                       num_blocks=(1, 1), d_model=(32, 32), nhead=(4, 4), dim_feedforward=(64, 64),
                       activation="gelu", reduction="attention"),
}


def dsvt(name: str, **overrides: Any) -> DSVT:
    """A DSVT backbone from a named config ("pillar_waymo", "voxel_waymo", "pillar_nuscenes",
    "pillar_tiny", "voxel_tiny"), with keyword overrides."""
    if name not in DSVT_CONFIGS:
        raise PointCloudValueError(f"unknown DSVT config {name!r}; choose one of {sorted(DSVT_CONFIGS)}")
    return DSVT(**{**DSVT_CONFIGS[name], **overrides})
