"""Attention over equal-size groups of tokens: the shared core of the FlatFormer and DSVT kernels.

Both kernels reduce a ragged set of voxel tokens to one dense tensor of groups `[G, L]` (each slot
names a token), attend inside each group, and take each token's output from one slot. A
`GroupPartition` holds that arrangement; `GroupAttention` runs multi-head attention over it through
one of two backends:

- `"sdpa"`: project every token once, gather the groups, run `F.scaled_dot_product_attention` on
  `[G, heads, L, head_dim]` with a boolean key mask, gather each token's slot back, project out.
- `"reference"`: a slow loop that attends group by group with an explicit softmax over the group's
  unmasked keys; it is what the SDPA path is tested against.

The backend is chosen explicitly (`backend=` on the modules); `"auto"` reads the environment variable
`OMNISENSE_KERNEL_BACKEND` (`reference` or `sdpa`) and otherwise uses `"sdpa"`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception3d._errors import PointCloudValueError

BACKENDS = ("reference", "sdpa")
BACKEND_ENV = "OMNISENSE_KERNEL_BACKEND"


def resolve_backend(backend: str = "auto") -> str:
    """The backend to run: an explicit `"reference"` or `"sdpa"` wins; `"auto"` reads
    `OMNISENSE_KERNEL_BACKEND` and falls back to `"sdpa"`."""
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "").strip().lower() or "sdpa"
        if backend == "auto":
            backend = "sdpa"
    if backend not in BACKENDS:
        raise PointCloudValueError(
            f"unknown kernel backend {backend!r} (argument or ${BACKEND_ENV}); choose one of {BACKENDS}")
    return backend


@dataclass(frozen=True)
class GroupPartition:
    """Tokens arranged in `G` groups of `L` slots for one attention layer.

    Attributes:
        index: LongTensor[G, L], the token (row of the layer's input) in each slot. Padding slots
            repeat a token of the same sample.
        key_padding_mask: BoolTensor[G, L] or None; True where a slot must not be attended to as a
            key (padding, or a repeat of the previous slot). None: every slot is a key.
        token_slot: LongTensor[M], for each token the flat slot `g * L + l` whose output it takes.
    """

    index: Tensor
    key_padding_mask: Tensor | None
    token_slot: Tensor

    @property
    def num_groups(self) -> int:
        return self.index.shape[0]

    @property
    def group_size(self) -> int:
        return self.index.shape[1]

    def to(self, device: torch.device | str) -> "GroupPartition":
        mask = None if self.key_padding_mask is None else self.key_padding_mask.to(device)
        return GroupPartition(self.index.to(device), mask, self.token_slot.to(device))


class GroupAttention(nn.Module):
    """Multi-head self-attention inside the groups of a `GroupPartition`, q = k = x + pos, v = x.

    The parameters carry `nn.MultiheadAttention`'s names (`in_proj_weight`, `in_proj_bias`,
    `out_proj`), so official checkpoints map onto them by key. No attention dropout: both papers
    train with 0.

    Args:
        channels: token width C.
        num_heads: attention heads; C must be divisible by it.
        backend: "auto", "sdpa" or "reference" (see the module docstring).
    """

    def __init__(self, channels: int, num_heads: int, *, backend: str = "auto") -> None:
        super().__init__()
        if channels % num_heads:
            raise PointCloudValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.backend = backend
        resolve_backend(backend)  # fail early on a bad name
        self.in_proj_weight = nn.Parameter(torch.empty(3 * channels, channels))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * channels))
        self.out_proj = nn.Linear(channels, channels)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, pos: Tensor | None, partition: GroupPartition) -> Tensor:
        """Attend inside groups.

        Args:
            x: Tensor[M, C] token features.
            pos: Tensor[M, C] position embedding added to queries and keys, or None.
            partition: the groups, over the same M tokens.

        Returns:
            Tensor[M, C]: each token's attention output (after the output projection).
        """
        if resolve_backend(self.backend) == "reference":
            return group_attention_reference(x, pos, partition, self)
        return group_attention_sdpa(x, pos, partition, self)


def group_attention_sdpa(x: Tensor, pos: Tensor | None, partition: GroupPartition, attn: GroupAttention) -> Tensor:
    """The fast path: per-token projections, one gather, one batched SDPA call, one gather back."""
    c, h = attn.channels, attn.num_heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    # Projections are per token, so project the M tokens before gathering the G * L >= M slots.
    qk = F.linear(x if pos is None else x + pos, w[: 2 * c], b[: 2 * c])  # [M, 2C]
    v = F.linear(x, w[2 * c:], b[2 * c:])  # [M, C]
    return attn.out_proj(grouped_sdpa(qk, v, partition, h))  # [M, C]


def grouped_sdpa(qk: Tensor, v: Tensor, partition: GroupPartition, num_heads: int) -> Tensor:
    """The attention core on projected tokens: gather the groups, one SDPA call, each token's slot back.

    Args:
        qk: Tensor[M, 2C], each token's query and key (heads contiguous inside each half).
        v: Tensor[M, C], each token's value.
        partition: the groups over the M tokens.
        num_heads: H; C must be divisible by it.

    Returns:
        Tensor[M, C]: each token's attention output, before the output projection.
    """
    g, length = partition.index.shape
    c, h = v.shape[1], num_heads
    # Row gathers through index_select on the flat slot list: on the CPU several times faster than
    # advanced indexing with the [G, L] index, and the same rows.
    slots = partition.index.reshape(-1)  # [G * L]
    qk = qk.index_select(0, slots).view(g, length, 2, h, c // h).permute(2, 0, 3, 1, 4)  # [2, G, H, L, D]
    v = v.index_select(0, slots).view(g, length, h, c // h).transpose(1, 2)  # [G, H, L, D]
    mask = None
    if partition.key_padding_mask is not None:
        mask = ~partition.key_padding_mask[:, None, None, :]  # [G, 1, 1, L], True = attend
    out = F.scaled_dot_product_attention(qk[0], qk[1], v, attn_mask=mask)  # [G, H, L, D]
    return out.transpose(1, 2).reshape(g * length, c).index_select(0, partition.token_slot)  # [M, C]


def group_attention_reference(x: Tensor, pos: Tensor | None, partition: GroupPartition,
                              attn: GroupAttention) -> Tensor:
    """The reference: a Python loop over groups, explicit softmax over each group's unmasked keys.

    A token's queries come from the group that holds its output slot; its keys are the unmasked slots
    of that group. Slow; for tests and debugging.
    """
    c, h = attn.channels, attn.num_heads
    d = c // h
    w, b = attn.in_proj_weight, attn.in_proj_bias
    qk_in = x if pos is None else x + pos
    group_of_token = partition.token_slot // max(partition.group_size, 1)  # [M]
    order = torch.argsort(group_of_token, stable=True)
    counts = torch.bincount(group_of_token, minlength=partition.num_groups).tolist()
    rows: list[Tensor] = []
    values: list[Tensor] = []
    for g, queries in enumerate(torch.split(order, counts)):
        if queries.numel() == 0:
            continue
        keys = partition.index[g]
        if partition.key_padding_mask is not None:
            keys = keys[~partition.key_padding_mask[g]]
        q = F.linear(qk_in[queries], w[:c], b[:c]).view(-1, h, d).transpose(0, 1)  # [H, Lq, D]
        k = F.linear(qk_in[keys], w[c:2 * c], b[c:2 * c]).view(-1, h, d).transpose(0, 1)  # [H, Lk, D]
        v = F.linear(x[keys], w[2 * c:], b[2 * c:]).view(-1, h, d).transpose(0, 1)  # [H, Lk, D]
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)  # [H, Lq, Lk]
        rows.append(queries)
        values.append((weights @ v).transpose(0, 1).reshape(-1, c))  # [Lq, C]
    out = x.new_zeros(x.shape[0], c)
    if rows:
        out = out.index_put((torch.cat(rows),), torch.cat(values))
    return attn.out_proj(out)


def activation_fn(name: str):
    """The activation both papers name in their configs."""
    table = {"gelu": F.gelu, "relu": F.relu}
    if name not in table:
        raise PointCloudValueError(f"unknown activation {name!r}; choose one of {sorted(table)}")
    return table[name]
