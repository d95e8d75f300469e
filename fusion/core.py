"""The shared transformer fusion core: tokens from any encoder, one per sensor and time step, fused by attention.

Data model (the choice every fusion model in omnisense shares):

- A *sensor row* is one stream of tokens on the common time grid: one camera view, the audio track of one view,
  the lidar. Each modality `m` gives `features: Tensor[B, V_m, T, C_m]` (V_m sensors of that modality),
  `valid: BoolTensor[B, V_m, T]` (False where a frame is missing, dropped, or padding) and all modalities share
  `times: Tensor[B, T]`, the grid times in seconds.
- Each row is projected to `dim`, and gets a learned modality embedding, an optional learned view embedding
  (a table of `max_views` rows: any number of views up to it at inference, none when `max_views == 0`), and a
  sinusoidal embedding of its time *in seconds* (not of its index), so grids of different rates and offsets
  mean the same thing to the model.
- Factorised layers on `F.scaled_dot_product_attention`: temporal self-attention within each sensor row
  (masked over invalid times), then cross-sensor attention at each time step (masked over invalid or missing
  sensors). This is MultiTSF's inter-view transformer done as the paper describes it: the released code omits
  `batch_first=True`, so its layer attends across batch x time instead of across views
  (see `../shared/reference/video_audio_fusion.md` section 3.2).
- A stream whose tokens sit at their own timestamps (a lidar at 10 Hz next to cameras at 2.5 Hz, an event
  camera) is brought onto the grid by `CrossAttentionResampler`: one query per grid time attends to the
  stream's tokens within a time window, with the time embedding on both sides.
- Fully-masked rows (a sensor absent for the whole window, a time step no sensor saw) never produce NaN:
  `masked_attention` lets such a query attend to nothing and returns zeros for it.

Heads: `FrameHead` (per-row logits pooled over valid rows, max as the MultiTSF paper or mean) -> [B, T, K], and
`SequenceHead` (mean over valid rows and times, LayerNorm + Linear) -> [B, K].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CrossAttentionResampler", "FactorisedBlock", "FrameHead", "FusionCore", "ModalityInput",
    "SequenceHead", "TimeEmbedding", "TransformerLayer", "masked_attention", "masked_mean",
]


@dataclass
class ModalityInput:
    """The tokens of one modality on the common grid.

    Args:
        features: Tensor[B, V, T, C], one row per sensor of this modality.
        valid: BoolTensor[B, V, T]; None means all valid.
    """

    features: Tensor
    valid: Tensor | None = None

    def __post_init__(self) -> None:
        if self.features.ndim != 4:
            raise ValueError(f"features must be [B, V, T, C], got shape {tuple(self.features.shape)}")
        if self.valid is None:
            self.valid = torch.ones(self.features.shape[:3], dtype=torch.bool, device=self.features.device)
        if self.valid.shape != self.features.shape[:3]:
            raise ValueError(f"valid {tuple(self.valid.shape)} must be features' [B, V, T] "
                             f"{tuple(self.features.shape[:3])}")
        self.valid = self.valid.bool()


def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_valid: Tensor | None, *, dropout_p: float = 0.0,
                     extra_mask: Tensor | None = None) -> Tensor:
    """SDPA with a key-padding mask that tolerates queries with no valid key.

    Args:
        q: [N, H, Lq, Dh]; k, v: [N, H, Lk, Dh].
        key_valid: BoolTensor[N, Lk] (True = attend), or None.
        extra_mask: optional BoolTensor broadcastable to [N, 1 or H, Lq, Lk], ANDed with key_valid.

    Returns:
        [N, H, Lq, Dh]; a query whose keys are all masked gets zeros (SDPA alone would return NaN).
    """
    if key_valid is None and extra_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    mask = torch.ones(q.shape[0], 1, q.shape[2], k.shape[2], dtype=torch.bool, device=q.device)
    if key_valid is not None:
        mask = mask & key_valid[:, None, None, :]
    if extra_mask is not None:
        mask = mask & extra_mask
    any_key = mask.any(dim=-1, keepdim=True)  # [N, 1|H, Lq, 1]
    # Unmask empty rows so that the softmax is defined, then zero what they produced.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~any_key, dropout_p=dropout_p)
    return out * any_key.to(out.dtype)


class MultiheadAttention(nn.Module):
    """Multi-head attention on `masked_attention`; query and key/value sequences may differ."""

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0, kv_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, key_valid: Tensor | None = None,
                extra_mask: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        n, lq, d = x.shape
        q = self.q(x).view(n, lq, self.heads, -1).transpose(1, 2)                    # [N, H, Lq, Dh]
        k, v = self.kv(context).view(n, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # [N, H, Lk, Dh]
        out = masked_attention(q, k, v, key_valid, extra_mask=extra_mask,
                               dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(n, lq, d))


class TransformerLayer(nn.Module):
    """One encoder layer: attention + MLP, pre-LN (ViT) or post-LN (`nn.TransformerEncoderLayer`'s default).

    Args:
        dim: token width; heads: attention heads; mlp_dim: hidden width of the MLP.
        dropout: on attention weights and after each sub-layer.
        norm_first: pre-LN when True, post-LN when False.
        activation: "gelu" or "relu".
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, *, dropout: float = 0.0, norm_first: bool = True,
                 activation: str = "gelu", eps: float = 1e-6):
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiheadAttention(dim, heads, dropout=dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        act = {"gelu": nn.GELU(), "relu": nn.ReLU()}[activation]
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), act, nn.Dropout(dropout), nn.Linear(mlp_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        """x: [N, L, D]; key_valid: BoolTensor[N, L] or None -> [N, L, D]."""
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), key_valid=key_valid))
            return x + self.drop(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, key_valid=key_valid)))
        return self.norm2(x + self.drop(self.mlp(x)))


class TimeEmbedding(nn.Module):
    """Fixed sinusoidal embedding of a time in seconds: [..] -> [.., dim].

    Periods run geometrically from `min_period` to `max_period` seconds, so that 0.1 s apart and 60 s apart
    are both resolved (a transformer's index embedding uses periods of 1 to 10,000 steps; this is the same
    construction with seconds as the unit).
    """

    def __init__(self, dim: int, *, min_period: float = 0.05, max_period: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), dim // 2)
        self.register_buffer("freqs", 2 * math.pi / periods, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angles = t.float()[..., None] * self.freqs  # [..., dim/2]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def masked_mean(x: Tensor, valid: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """Mean of `x` [..., D] over `dim` counting only `valid` [...] entries; 0 where none is valid."""
    w = valid.to(x.dtype)[..., None]
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)


class FactorisedBlock(nn.Module):
    """Temporal attention within each sensor row, then attention across sensors at each time step.

    x: [B, S, T, D] with valid [B, S, T] -> [B, S, T, D]. Either half can be switched off (depth 0 of a kind).
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, *, dropout: float = 0.0, temporal: bool = True,
                 sensor: bool = True, norm_first: bool = True, activation: str = "gelu"):
        super().__init__()
        kwargs = dict(dropout=dropout, norm_first=norm_first, activation=activation)
        self.temporal = TransformerLayer(dim, heads, mlp_dim, **kwargs) if temporal else None
        self.sensor = TransformerLayer(dim, heads, mlp_dim, **kwargs) if sensor else None

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        b, s, t, d = x.shape
        if self.temporal is not None:
            x = self.temporal(x.reshape(b * s, t, d), valid.reshape(b * s, t)).view(b, s, t, d)
        if self.sensor is not None:
            xs = x.transpose(1, 2).reshape(b * t, s, d)                       # [B*T, S, D]
            vs = valid.transpose(1, 2).reshape(b * t, s)
            x = self.sensor(xs, vs).view(b, t, s, d).transpose(1, 2)
        return x


class CrossAttentionResampler(nn.Module):
    """Brings an asynchronous token stream onto the common time grid by cross-attention.

    Each grid time gets one query (a learned vector plus the time embedding of that grid time) that attends to
    the stream's tokens (each plus the time embedding of its own timestamp) within `window` seconds.
    A grid time with no stream token inside the window is invalid in the output.

    Args:
        in_dim: stream token width; dim: output width; heads: attention heads.
        window: half-width in seconds of the neighbourhood a grid time may see.
    """

    def __init__(self, in_dim: int, dim: int, heads: int, *, window: float = 0.5):
        super().__init__()
        self.window = window
        self.inp = nn.Linear(in_dim, dim)
        self.time = TimeEmbedding(dim)
        self.query = nn.Parameter(torch.zeros(dim))
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, tokens: Tensor, token_times: Tensor, token_valid: Tensor | None, grid_times: Tensor
                ) -> tuple[Tensor, Tensor]:
        """tokens [B, N, C], token_times [B, N] s, token_valid [B, N], grid_times [B, T] s -> ([B, T, D], [B, T])."""
        kv = self.norm_kv(self.inp(tokens) + self.time(token_times))
        q = self.norm_q(self.query + self.time(grid_times))
        near = (grid_times[:, :, None] - token_times[:, None, :]).abs() <= self.window  # [B, T, N]
        if token_valid is not None:
            near = near & token_valid[:, None, :].bool()
        out = q + self.attn(q, kv, extra_mask=near[:, None])
        out = out + self.mlp(out)
        return out, near.any(-1)


class FusionCore(nn.Module):
    """Embeds each modality's sensor rows and fuses them with factorised temporal / cross-sensor layers.

    Args:
        modalities: name -> input width C_m, e.g. {"video": 384, "audio": 128, "lidar": 256}.
        dim: token width D.
        depth: number of factorised blocks (each: temporal then cross-sensor attention).
        heads, mlp_dim, dropout: of every layer.
        max_views: rows of the learned view-embedding table (0: no view embedding, fully view-agnostic).
        norm_first, activation: layer style (pre-LN GELU by default).

    forward(inputs: dict[name, ModalityInput], times [B, T]) -> (tokens [B, S, T, D], valid [B, S, T]) where the
    S rows are the modalities' rows concatenated in `modalities` order; a modality missing from `inputs`
    simply contributes no rows. `row_modality` of the last call says which row came from where.
    """

    def __init__(self, *, modalities: dict[str, int], dim: int = 192, depth: int = 2, heads: int = 4,
                 mlp_dim: int = 768, dropout: float = 0.1, max_views: int = 8, norm_first: bool = True,
                 activation: str = "gelu"):
        super().__init__()
        self.names = list(modalities)
        self.max_views = max_views
        self.proj = nn.ModuleDict({m: nn.Linear(c, dim) for m, c in modalities.items()})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(dim)) for m in modalities})
        self.view_embed = nn.Embedding(max_views, dim) if max_views > 0 else None
        self.time = TimeEmbedding(dim)
        self.blocks = nn.ModuleList(FactorisedBlock(dim, heads, mlp_dim, dropout=dropout, norm_first=norm_first,
                                                    activation=activation) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        for p in self.modality_embed.values():
            nn.init.trunc_normal_(p, std=0.02)
        if self.view_embed is not None:
            nn.init.trunc_normal_(self.view_embed.weight, std=0.02)
        self.row_modality: list[str] = []

    def embed(self, inputs: dict[str, ModalityInput], times: Tensor) -> tuple[Tensor, Tensor]:
        rows, valids, self.row_modality = [], [], []
        time = self.time(times)[:, None]  # [B, 1, T, D]
        for m in self.names:
            if m not in inputs:
                continue
            inp = inputs[m]
            x = self.proj[m](inp.features) + self.modality_embed[m] + time   # [B, V, T, D]
            if self.view_embed is not None:
                v = inp.features.shape[1]
                if v > self.max_views:
                    raise ValueError(f"{m}: {v} views exceed max_views={self.max_views}")
                x = x + self.view_embed.weight[:v, None, :]
            rows.append(x)
            valids.append(inp.valid)
            self.row_modality += [m] * x.shape[1]
        if not rows:
            raise ValueError("no modality given")
        return torch.cat(rows, dim=1), torch.cat(valids, dim=1)

    def forward(self, inputs: dict[str, ModalityInput], times: Tensor) -> tuple[Tensor, Tensor]:
        x, valid = self.embed(inputs, times)
        for block in self.blocks:
            x = block(x, valid)
        return self.norm(x), valid


class FrameHead(nn.Module):
    """Per-row frame logits (a 1x1 conv over time = a Linear), pooled over valid rows: [B, S, T, D] -> [B, T, K].

    pool="max" is MultiTSF's choice (max over views); "mean" averages. Rows invalid at a time step are left out;
    a time step with no valid row gets the logits of the mean token of all rows.
    """

    def __init__(self, dim: int, num_classes: int, *, pool: str = "max"):
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        self.pool = pool
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        logits = self.fc(x)                                 # [B, S, T, K]
        any_valid = valid.any(1)[..., None]                 # [B, T, 1]
        if self.pool == "max":
            pooled = logits.masked_fill(~valid[..., None], float("-inf")).amax(1)
        else:
            pooled = masked_mean(logits, valid, dim=1)
        return torch.where(any_valid, pooled, logits.mean(1))


class SequenceHead(nn.Module):
    """Mean over valid rows, then over valid times, LayerNorm + Linear: [B, S, T, D] -> [B, K]."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        per_time = masked_mean(x, valid, dim=1)             # [B, T, D]
        pooled = masked_mean(per_time, valid.any(1), dim=1)  # [B, D]
        return self.fc(self.norm(pooled))
