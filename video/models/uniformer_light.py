"""The light UniFormer video models (XXS, XS): conv stem, class token and Evo-ViT token pruning.

Source of the facts: Sense-X/UniFormer `video_classification/slowfast/models/uniformer_light_fp32.py`
(the `MODEL_NAME` of every `exp_light` config), `exp_light/*/config.yaml` + `run.sh`, the PRUNE_RATIO /
TRADE_OFF defaults of `slowfast/config/defaults.py`, and `tools/train_net_cls.py` (the loss). Written from
those facts, not copied. What differs from the plain UniFormer of `uniformer.py`:

- Stem (`patch_embed1`): two 3x3x3 convs, `3 -> C1/2` (stride 1x2x2) -> BatchNorm -> GELU -> `C1/2 -> C1`
  (stride 2x2x2) -> BatchNorm; time is halved here, space divided by 4, as in the plain stem; no LayerNorm.
- A class token enters at stage 3 (`cls_token`, width C3), is carried through stages 3-4 (widened to C4 by
  `cls_upsample` between them) and attends with the patch tokens in every global block.
- Evo-ViT token pruning in the global blocks (`prune_ratio`, `trade_off` per block). A global score per
  token (the class token's attention to it, mean over heads) is kept across blocks as a moving average
  (`(1 - trade_off) * old + trade_off * new`; the first block of stage 3, ratio 1, sets it). A block with
  ratio r < 1 sorts the tokens by score, runs attention + MLP on the class token, the top r*N tokens and
  one representative token (the score-weighted mean of the others), then adds the representative token's
  two residual updates to every dropped token ("fast update"), and puts the tokens back in their order.
  Only the kept tokens' scores are updated. After the last stage-3 block the score map is average-pooled
  1x2x2 (rescaled to keep its sum) to follow `patch_embed4`.
- Heads: `head` on the mean of the final BatchNorm'd map (the evaluation output) and, in training,
  `head_cls` on the LayerNorm'd (`norm_cls`) class token; the official loss is
  `0.5 * CE(head) + 0.5 * CE(head_cls)` (`official_loss`).
- MLP ratio 3 in every stage; XXS `[2, 5, 8, 2]`, dims 56-112-224-448, head dim 28; XS `[3, 5, 9, 3]`,
  64-128-256-512, head dim 32; prune ratios: stage 3 `[1, 0.5, ...]`, stage 4 all 0.5.

Module and parameter names follow the official code, so an official light checkpoint's `model_state` maps
key for key (`convert_official` strips the wrappers). Deviation: `forward` returns the main head's logits in
training too (our `ClassificationTask` takes one logits tensor); the class-token head is trained only
through `official_loss` / `forward_train`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath
from torch import Tensor, nn

from video.models.uniformer import Attention, LocalBlock, Mlp, PatchEmbed, _linspace, init_vit_weights


class ConvStem(nn.Module):
    """The light models' stem (official `SpeicalPatchEmbed` of uniformer_light): `[B, 3, T, H, W] -> [B, C, T/2, H/4, W/4]`."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv3d(in_chans, dim // 2, 3, stride=(1, 2, 2), padding=1),
            nn.BatchNorm3d(dim // 2),
            nn.GELU(),
            nn.Conv3d(dim // 2, dim, 3, stride=(2, 2, 2), padding=1),
            nn.BatchNorm3d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class EvoAttention(Attention):
    """Self-attention that also returns the class token's attention to the other tokens (mean over heads)."""

    def forward_with_cls_attn(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        cls_attn = (q[:, :, :1] @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)  # [B, h, 1, N]
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)"))), cls_attn[:, :, 0, 1:].mean(1)


class EvoBlock(nn.Module):
    """DPE + global MHRA with a class token and Evo-ViT pruning + MLP (official `EvoSABlock`).

    `forward(cls [B, 1, C], x [B, C, T, H, W], score [B, THW] | None) -> (cls, x, score)`.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 3.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, prune_ratio: float = 1.0, trade_off: float = 0.0,
                 downsample: bool = False):
        super().__init__()
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)  # DPE
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EvoAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.prune_ratio = prune_ratio
        self.trade_off = trade_off
        self.downsample = downsample

    def _update(self, score: Tensor | None, new: Tensor) -> Tensor:
        return new if score is None else (1 - self.trade_off) * score + self.trade_off * new

    def forward(self, cls: Tensor, x: Tensor, score: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        x = x + self.pos_embed(x)
        b, c, t, h, w = x.shape
        tokens = rearrange(x, "b c t h w -> b (t h w) c")
        n = tokens.shape[1]
        if self.prune_ratio >= 1 or score is None:
            seq = torch.cat([cls, tokens], dim=1)
            out, cls_attn = self.attn.forward_with_cls_attn(self.norm1(seq))
            score = self._update(score, cls_attn)
            seq = seq + self.drop_path(out)
            seq = seq + self.drop_path(self.mlp(self.norm2(seq)))
            cls, tokens = seq[:, :1], seq[:, 1:]
        else:
            keep = int(n * self.prune_ratio)
            order = score.argsort(dim=1, descending=True)  # [B, N]
            tokens = tokens.gather(1, order[..., None].expand(-1, -1, c))
            score = score.gather(1, order)
            info, dropped, dropped_score = tokens[:, :keep], tokens[:, keep:], score[:, keep:]
            weight = dropped_score / dropped_score.sum(1, keepdim=True)
            rep = (weight[..., None] * dropped).sum(1, keepdim=True)  # representative of the dropped tokens
            seq = torch.cat([cls, info, rep], dim=1)
            out, cls_attn = self.attn.forward_with_cls_attn(self.norm1(seq))
            score = torch.cat([self._update(score[:, :keep], cls_attn[:, :keep]), score[:, keep:]], dim=1)
            fast = out[:, -1:]
            seq = seq + self.drop_path(out)
            mlp = self.mlp(self.norm2(seq))
            fast = fast + mlp[:, -1:]
            seq = seq + self.drop_path(mlp)
            dropped = dropped + fast  # the dropped tokens get the representative token's updates
            cls = seq[:, :1]
            tokens = torch.cat([seq[:, 1:-1], dropped], dim=1)
            inverse = order.argsort(dim=1)  # back to the spatial order
            tokens = tokens.gather(1, inverse[..., None].expand(-1, -1, c))
            score = score.gather(1, inverse)
        x = rearrange(tokens, "b (t h w) c -> b c t h w", t=t, h=h, w=w)
        if self.downsample:  # follow patch_embed4's 1x2x2 reduction, keeping the scores' sum
            total = score.sum(1, keepdim=True)
            score = F.avg_pool3d(score.view(b, 1, t, h, w), (1, 2, 2)).flatten(1)
            score = score * total / score.sum(1, keepdim=True)
        return cls, x, score


class UniFormerLight(nn.Module):
    """Light UniFormer video classifier (XXS / XS); see the module docstring.

    Args:
        depth, embed_dim, head_dim, mlp_ratio, num_classes, in_chans, qkv_bias, drop_rate, drop_path_rate:
            as in `UniFormer`.
        prune_ratio, trade_off: per global block of stages 3 and 4 (two lists), the kept fraction of tokens
            and the global score's update weight.
    """

    def __init__(self, *, depth: Sequence[int] = (2, 5, 8, 2), embed_dim: Sequence[int] = (56, 112, 224, 448),
                 head_dim: int = 28, mlp_ratio: float = 3.0, num_classes: int = 400, in_chans: int = 3,
                 qkv_bias: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 prune_ratio: Sequence[Sequence[float]] = ((1,) + (0.5,) * 7, (0.5,) * 3),
                 trade_off: Sequence[Sequence[float]] = ((1,) + (0.5,) * 7, (0.5,) * 3)):
        super().__init__()
        if len(prune_ratio[0]) < depth[2] or len(prune_ratio[1]) < depth[3]:
            raise ValueError(f"prune_ratio needs {depth[2]} + {depth[3]} entries for stages 3 and 4")
        self.num_classes = num_classes
        self.token_dim = embed_dim[-1]
        self.patch_embed1 = ConvStem(in_chans, embed_dim[0])
        self.patch_embed2 = PatchEmbed(embed_dim[0], embed_dim[1], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.patch_embed3 = PatchEmbed(embed_dim[1], embed_dim[2], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.patch_embed4 = PatchEmbed(embed_dim[2], embed_dim[3], kernel=(1, 2, 2), stride=(1, 2, 2))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim[2]))
        self.cls_upsample = nn.Linear(embed_dim[2], embed_dim[3])
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = _linspace(drop_path_rate, sum(depth))
        starts = [sum(depth[:i]) for i in range(4)]
        self.blocks1 = nn.ModuleList(LocalBlock(embed_dim[0], mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=dpr[starts[0] + i])
                                     for i in range(depth[0]))
        self.blocks2 = nn.ModuleList(LocalBlock(embed_dim[1], mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=dpr[starts[1] + i])
                                     for i in range(depth[1]))
        self.blocks3 = nn.ModuleList(
            EvoBlock(embed_dim[2], embed_dim[2] // head_dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                     drop_path=dpr[starts[2] + i], prune_ratio=prune_ratio[0][i], trade_off=trade_off[0][i],
                     downsample=i == depth[2] - 1) for i in range(depth[2]))
        self.blocks4 = nn.ModuleList(
            EvoBlock(embed_dim[3], embed_dim[3] // head_dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                     drop_path=dpr[starts[3] + i], prune_ratio=prune_ratio[1][i], trade_off=trade_off[1][i])
            for i in range(depth[3]))
        self.norm = nn.BatchNorm3d(embed_dim[-1])
        self.norm_cls = nn.LayerNorm(embed_dim[-1])  # the official default eps
        self.head = nn.Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.head_cls = nn.Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_vit_weights)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def forward_both(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """`video [B, 3, T, H, W]` -> (stage-4 map `[B, D, T/2, H/32, W/32]` after `norm`, class token `[B, D]`)."""
        x = self.pos_drop(self.patch_embed1(video))
        for block in self.blocks1:
            x = block(x)
        x = self.patch_embed2(x)
        for block in self.blocks2:
            x = block(x)
        x = self.patch_embed3(x)
        cls, score = self.cls_token.expand(x.shape[0], -1, -1), None
        for block in self.blocks3:
            cls, x, score = block(cls, x, score)
        cls = self.cls_upsample(cls)
        x = self.patch_embed4(x)
        for block in self.blocks4:
            cls, x, score = block(cls, x, score)
        return self.norm(x), cls[:, 0]

    def forward_features(self, video: Tensor) -> Tensor:
        return self.forward_both(video)[0]

    def forward_tokens(self, video: Tensor) -> Tensor:
        """Encoder contract: `video [B, 3, T, H, W]` -> tokens `[B, T', N, D]` (T' = T/2, N = H/32 * W/32)."""
        return rearrange(self.forward_features(video), "b d t h w -> b t (h w) d")

    def forward(self, video: Tensor) -> Tensor:
        """`video [B, 3, T, H, W]` -> logits `[B, num_classes]` (the official evaluation output)."""
        return self.head(self.forward_features(video).flatten(2).mean(-1))

    def forward_train(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """The official training outputs: (main-head logits, class-token-head logits)."""
        x, cls = self.forward_both(video)
        return self.head(x.flatten(2).mean(-1)), self.head_cls(self.norm_cls(cls))

    def official_loss(self, video: Tensor, labels: Tensor) -> Tensor:
        """`0.5 * CE(head) + 0.5 * CE(head_cls)` (official `train_net_cls.py`; soft targets work too)."""
        main, aux = self.forward_train(video)
        return 0.5 * F.cross_entropy(main, labels) + 0.5 * F.cross_entropy(aux, labels)


# Named variants: exp_light configs (K400). Prune ratios / trade-offs: XS sets them in its config; XXS uses
# the defaults.py lists (8 entries for stage 3, 3 for stage 4; XXS's 2 stage-4 blocks take the first 2).

def uniformer_xxs_k400(**kwargs) -> UniFormerLight:
    cfg = dict(depth=(2, 5, 8, 2), embed_dim=(56, 112, 224, 448), head_dim=28, mlp_ratio=3.0, drop_path_rate=0.0,
               prune_ratio=((1,) + (0.5,) * 7, (0.5,) * 3), trade_off=((1,) + (0.5,) * 7, (0.5,) * 3))
    return UniFormerLight(**{**cfg, **kwargs})


def uniformer_xs_k400(**kwargs) -> UniFormerLight:
    cfg = dict(depth=(3, 5, 9, 3), embed_dim=(64, 128, 256, 512), head_dim=32, mlp_ratio=3.0, drop_path_rate=0.1,
               prune_ratio=((1,) + (0.5,) * 8, (0.5,) * 3), trade_off=((1,) + (0.5,) * 8, (0.5,) * 3))
    return UniFormerLight(**{**cfg, **kwargs})
