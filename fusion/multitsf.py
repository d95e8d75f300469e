"""MultiTSF: transformer-based sensor fusion for multi-view, multi-modal action recognition, on the fusion core.

Paper: Nguyen, Kawanishi, John, Komamizu, Ide, "MultiTSF: Transformer-based Sensor Fusion for Human-Centric
Multi-view and Multi-modal Action Recognition", arXiv 2504.02279, and "MultiSensor-Home", arXiv 2504.02287
(IEEE FG 2025). Official code: github.com/thanhhff/MultiTSF (model `CNN2D_Transformer`; the shipped weights here
are trained by our own recipe; a checkpoint of the official code loads through `convert_official`, see the end of
this docstring). Facts: ../shared/reference/video_audio_fusion.md, 3.2.

The released model, and what we keep or change (each change says why):

1. Per-view frame encoder, shared across views: timm `vit_small_patch32_224` (384-d pooled feature; the paper
   starts from augreg IN-21k->1k weights, we build it with `pretrained=False`: weights are never downloaded).
   The small variant uses a tiny hybrid timm ViT (conv stem + ViT, `vit_hybrid64`) on 64 x 64 frames. The encoder may be frozen and its features cached
   (`video` given as [B, V, T, C] features instead of frames [B, V, T, 3, H, W]).
2. Human-presence head: a 1x1 conv (= Linear) 384 -> 1 on the video features, trained with a soft-target cross
   entropy over time against per-frame person scores (a detector's; YOLOv10 in the paper). We normalise the
   scores to a distribution over the valid frames (the code feeds raw confidences, which only rescales the loss)
   and skip views with no person; our scores are aligned with the sampled frames (the code's train-time scores
   come from a different random sampling, a bug).
3. Audio encoder per view, shared: the released code's flatten-MLP (`SimpleASTModel`, not an AST) over the Kaldi
   fbank chunk of each frame (128 mel x 1024 frames, of which ~40 are real and the rest padding; 67 M params in
   its first layer): Linear(F*M -> 512) ReLU 256 ReLU 128 ReLU -> 384. The paper variant keeps those sizes;
   the small ones take the real ~40 fbank frames only (no padding), 32 mel.
4. Early fusion: concat [video 384 | audio 384] -> 768 per view and frame. A missing modality is replaced by a
   learned "missing" vector (the code has no missing-modality handling).
5. Temporal transformer shared across views (and the lidar row): 2 pre-LN layers, 12 heads, MLP 3072, dropout
   0.1, a learned CLS token prepended, fixed sinusoidal time embedding, final LayerNorm (eps 1e-6). Change: the
   sinusoid encodes the time in seconds from the window start (`fusion.core.TimeEmbedding`, [sin | cos] halves)
   instead of the frame index (official: index 0 for the CLS token, 1..T for the frames, sin and cos interleaved
   per frequency, periods 2 pi 10000^(2i/d) steps), so views at other rates or offsets agree; invalid frames are
   masked out of attention. The layers' LayerNorms use eps 1e-6 (as the final one); the official ones PyTorch's
   default 1e-5. Options `time_embedding="index"` and `temporal_eps=1e-5` restore the official computation.
6. Frame head: 1x1 conv 768 -> K on the frame tokens, max over views -> [B, T, K] (the CLS token is unused, as
   in the code).
7. Inter-view ("device interaction") transformer: 1 post-LN layer, d 768, 4 heads, FF 256, dropout 0.1, ReLU,
   attending across the views at each time step -> mean over views -> mean over time -> LN + Linear -> [B, K].
   Fix: the code omits `batch_first=True`, so its layer reads [B*T, V, D] as (sequence, batch): each view index
   attends across all (sample, time) pairs of the batch, and a sample's output depends on the others in its
   batch; ours attends across views (and the lidar row), masked over missing ones (`fusion.core.TransformerLayer`).
   Option `view_attention="batch_time"` restores the official computation.

Converted official weights (`convert_official`: the `CNN2D_Transformer` state dict of github.com/thanhhff/MultiTSF)
turn the three official computations on (`time_embedding="index"`, `temporal_eps=1e-5`,
`view_attention="batch_time"`, recorded in the weights metadata); training from scratch keeps our defaults.
8. Losses (`multitsf_loss`): TwoWay loss (Kobayashi, CVPR 2023; Tp=4, Tn=1) on sequence logits and on frame
   logits (valid frames only), plus the human soft-target CE, summed with equal weights.
9. Optimiser (in the task): Adam lr 1e-4, wd 5e-4, cosine to 1e-5 (300 epochs, batch 12 in the paper).

10. Sequence head: the paper's (mean over views and time, LN + Linear). An alternative, `sequence_from=
   "pool+frames"` (plus the max over time of the frame logits), was tried as a fix for MultiTSF losing to single
   views on mAP_S; it was worse (validation split, epoch 13 of a 30-epoch run: frame mAP / mAP_C / mAP_S 69.3 /
   85.3 / 94.7 against 79.1 / 90.9 / 96.4 with the paper's head), so the variants keep the paper's head.

Beyond the paper: lidar. A point-cloud stream enters as one more sensor row, as tokens of a perception3d
backbone: each sweep is pillarised (the FlatFormer detector's DynamicVFE), its pillars go through a small
FlatFormer encoder (`perception3d.kernels.FlatFormer`), and the pillar features are pooled into a few bird's-eye
region tokens (`LidarFlatFormerEncoder`) at the sweep's own timestamp; `fusion.core.CrossAttentionResampler`
brings those tokens (10 Hz, own clock) onto the frame grid. Any of camera, audio and lidar may be absent (None,
or masked per view / per time).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusion.core import CrossAttentionResampler, FrameHead, SequenceHead, TimeEmbedding, TransformerLayer

__all__ = ["AudioMLP", "MultiTSF", "MultiTSFOutput", "LidarFlatFormerEncoder", "human_loss", "multitsf_loss",
           "multitsf_paper", "multitsf_small", "multitsf_tiny", "two_way_loss"]


# --------------------------------------------------------------------------------------------- encoders

def build_frame_encoder(name: str, *, img_size: int = 224) -> tuple[nn.Module, int]:
    """A timm image encoder returning pooled features; (module, feature width). Never downloads weights."""
    import timm

    if name == "vit_small_patch32_224":
        m = timm.create_model("vit_small_patch32_224", pretrained=False, num_classes=0)
    elif name == "vit_tiny64":  # small CPU variant: 64 x 64 frames, 16 x 16 patches (16 tokens, as ViT-S/32 at 128)
        m = timm.models.vision_transformer.VisionTransformer(img_size=64, patch_size=16, embed_dim=96, depth=4,
                                                             num_heads=3, mlp_ratio=3.0, num_classes=0)
    elif name == "vit_hybrid64":  # small CPU variant: a hybrid ViT (ViT paper, sec. 3.1; timm's HybridEmbed as in
        # R26+ViT-S/32): a 3-conv stem (64 -> 8 x 8 x 96) and 2 x 2 patches of it, 16 tokens. From scratch on ~8k
        # frames a plain ViT lacks the locality prior (vit_tiny64 stayed at chance for 4 epochs at lr 1e-3 on the
        # harder recordings, and fitted one camera's frames more slowly than this one in a 150-step probe at
        # 3e-4: frame mAP 40 vs 62); the conv stem supplies the prior.
        from timm.models.vision_transformer_hybrid import HybridEmbed

        def conv(a: int, b: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

        stem = nn.Sequential(*conv(3, 32, 2), *conv(32, 64, 2), *conv(64, 96, 2))
        stem.num_features = 96  # what HybridEmbed reads
        embed = partial(HybridEmbed, stem, feature_size=8, feature_ratio=8)
        m = timm.models.vision_transformer.VisionTransformer(img_size=64, patch_size=2, embed_dim=96, depth=4,
                                                             num_heads=3, mlp_ratio=3.0, num_classes=0,
                                                             embed_layer=embed)
    elif name == "vit_micro32":  # tests
        m = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                             num_heads=2, mlp_ratio=2.0, num_classes=0)
    else:
        raise ValueError(f"unknown frame encoder {name!r}")
    return m, m.num_features


class AudioMLP(nn.Module):
    """The released code's audio encoder: flatten the fbank chunk [F, M] -> MLP (hidden widths) -> out_dim."""

    def __init__(self, *, frames: int, mels: int, hidden: tuple[int, ...] = (512, 256, 128), out_dim: int = 384):
        super().__init__()
        dims = [frames * mels, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], out_dim))
        self.frames, self.mels = frames, mels

    def forward(self, fbank: Tensor) -> Tensor:
        """fbank [..., F, M] (normalised log-mel) -> [..., out_dim]."""
        return self.net(fbank.flatten(-2))


class LidarFlatFormerEncoder(nn.Module):
    """Lidar sweeps -> region tokens through a perception3d FlatFormer: points [B, N, P, 4] -> [B, N, R, out].

    Each sweep is pillarised on the room's bird's-eye grid (`perception3d.detection.encoders.DynamicVFE`, the
    FlatFormer detector's dynamic pillar encoder: points decorated with their offsets from the pillar's mean and
    centre, PFN layers, scatter-max), the pillars of all sweeps of the batch go through a small FlatFormer encoder
    (`perception3d.kernels.FlatFormer`: flattened-window attention, four orderings per block; every sweep is one
    "frame" of its batch), and the pillar features are max-pooled into R = regions[0] x regions[1] bird's-eye
    regions, each plus a learned region embedding, projected to `out`. A region with no pillar is invalid.

    Args:
        out_dim: token width. width: pillar feature width (the FlatFormer's channels).
        pillar: pillar side, metres. extent: (x_min, y_min, x_max, y_max) metres of the grid (the room).
        regions: (nx, ny) bird's-eye regions that become tokens.
        heads, blocks, window, group: the FlatFormer's (a CPU-sized version of its `tiny` config).
    """

    def __init__(self, *, out_dim: int, width: int = 32, pillar: float = 0.5,
                 extent: tuple[float, float, float, float] = (0.0, 0.0, 8.0, 6.0), regions: tuple[int, int] = (4, 3),
                 heads: int = 4, blocks: int = 1, window: tuple[int, int] = (4, 4), group: int = 16):
        super().__init__()
        from perception3d.detection.encoders import DynamicVFE, VoxelGrid
        from perception3d.kernels import FlatFormer

        x0, y0, x1, y1 = extent
        self.extent, self.regions = extent, tuple(regions)
        self.grid = VoxelGrid((x0, y0, -0.2, x1, y1, 2.8), (pillar, pillar, 3.0))
        nx, ny, _ = self.grid.shape
        self.vfe = DynamicVFE(in_channels=4, filters=[width, width], grid=self.grid, halve=False)
        self.flatformer = FlatFormer(in_channels=width, num_heads=heads, num_blocks=blocks, window_shape=window,
                                     sparse_shape=(nx, ny), group_size=group)
        self.region_embed = nn.Parameter(torch.zeros(regions[0] * regions[1], width))
        nn.init.trunc_normal_(self.region_embed, std=0.02)
        self.out = nn.Sequential(nn.Linear(width, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.out_dim = out_dim

    @property
    def num_regions(self) -> int:
        return self.regions[0] * self.regions[1]

    def forward(self, points: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """points [B, N, P, 4] (x, y, z m, intensity), mask [B, N, P] -> (tokens [B, N, R, out], valid [B, N, R])."""
        b, n, p, _ = points.shape
        r = self.num_regions
        sweep = torch.arange(b * n, device=points.device).repeat_interleave(p)      # [B*N*P] sweep of each point
        keep = mask.reshape(-1)
        pts, sweep = points.reshape(-1, 4)[keep], sweep[keep]
        x0, y0, x1, y1 = self.extent
        inside = (pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)
        pts, sweep = pts[inside], sweep[inside]
        pooled = points.new_zeros(b * n * r, self.region_embed.shape[1])
        seen = torch.zeros(b * n * r, dtype=torch.bool, device=points.device)
        if len(pts):
            feats, coords = self.vfe(pts, sweep)                                     # [M, W], (sweep, 0, y, x)
            feats = self.flatformer(feats, coords, b * n)                            # [M, W]
            nx, ny, _ = self.grid.shape
            rx = coords[:, 3] * self.regions[0] // nx
            ry = coords[:, 2] * self.regions[1] // ny
            region = ry * self.regions[0] + rx                                       # [M]
            slot = coords[:, 0] * r + region
            pooled = pooled.scatter_reduce(0, slot[:, None].expand_as(feats), feats, "amax", include_self=False)
            seen[slot] = True
        tokens = pooled.view(b, n, r, -1) + self.region_embed                        # [B, N, R, W]
        return self.out(tokens), seen.view(b, n, r)


# --------------------------------------------------------------------------------------------- the model

@dataclass
class MultiTSFOutput:
    """sequence [B, K] and frame [B, T, K] logits; human [B, V, T] person logits (None without video);
    row_frame [B, S, T, K] per-row frame logits before pooling; row_valid [B, S, T]."""

    sequence: Tensor
    frame: Tensor
    human: Tensor | None
    row_frame: Tensor
    row_valid: Tensor


class MultiTSF(nn.Module):
    """MultiTSF on the fusion core (see the module docstring for the architecture and every deviation).

    Args:
        num_classes: K.
        frame_encoder: timm encoder name, or None when the model only ever receives cached features.
        video_dim: width of the frame features (the encoder's, or the cached features').
        audio_frames, audio_mels: fbank chunk shape per frame; audio_hidden, audio_dim: the audio MLP.
        dim: the fused width; must equal video_dim + audio_dim (early fusion is a concat), as in the paper.
        temporal_layers, temporal_heads, temporal_mlp: the temporal transformer (pre-LN).
        view_heads, view_ff, view_layers: the inter-view transformer (post-LN, ReLU).
        dropout: of both transformers.
        lidar_dim: the point encoder's width (0: no lidar branch). lidar_window: seconds a grid time may look
            around for sweeps.
        frame_pool: "max" (paper) or "mean" over views for the frame head.
        frame_from: "temporal" (paper: the frame head reads each view's temporal-transformer tokens, so frame
            predictions are a learned max over views that never see each other) or "fused" (ours: it reads the
            tokens after the inter-view transformer, so a view's frame prediction can use what the others saw).
        sequence_from: "pool" (paper: LN + Linear on the mean over views and time) or "pool+frames" (plus the max
            over valid time steps of the frame logits: a sequence label is the union of the frame labels). The
            latter measured worse (module docstring, item 10); it stays as an option for that comparison.
        time_embedding: "seconds" (ours: `TimeEmbedding` of the time since the window start, [sin | cos] halves,
            the CLS token without one) or "index" (official: the transformer sinusoid of the position in
            [CLS, frame 1, .., frame T], sin and cos interleaved; the rate of the frames is not seen).
        temporal_eps: eps of the temporal layers' LayerNorms (ours 1e-6; official 1e-5, PyTorch's default).
        view_attention: "views" (ours: at each time step, across the views and the lidar row) or "batch_time"
            (official, a missing `batch_first`: for each view index, across every (sample, time) pair of the
            batch; a sample's output then depends on the batch it is in).
    """

    def __init__(self, *, num_classes: int = 16, frame_encoder: str | None = "vit_small_patch32_224",
                 video_dim: int = 384, audio_frames: int = 1024, audio_mels: int = 128,
                 audio_hidden: tuple[int, ...] = (512, 256, 128), audio_dim: int = 384, dim: int = 768,
                 temporal_layers: int = 2, temporal_heads: int = 12, temporal_mlp: int = 3072, view_heads: int = 4,
                 view_ff: int = 256, view_layers: int = 1, dropout: float = 0.1, lidar_dim: int = 0,
                 lidar_window: float = 0.25, frame_pool: str = "max", frame_from: str = "temporal",
                 sequence_from: str = "pool", time_embedding: str = "seconds", temporal_eps: float = 1e-6,
                 view_attention: str = "views"):
        super().__init__()
        if time_embedding not in ("seconds", "index"):
            raise ValueError(f"time_embedding must be 'seconds' or 'index', got {time_embedding!r}")
        if view_attention not in ("views", "batch_time"):
            raise ValueError(f"view_attention must be 'views' or 'batch_time', got {view_attention!r}")
        self.time_embedding, self.view_attention = time_embedding, view_attention
        if frame_from not in ("temporal", "fused"):
            raise ValueError(f"frame_from must be 'temporal' or 'fused', got {frame_from!r}")
        if sequence_from not in ("pool", "pool+frames"):
            raise ValueError(f"sequence_from must be 'pool' or 'pool+frames', got {sequence_from!r}")
        self.frame_from, self.sequence_from = frame_from, sequence_from
        if video_dim + audio_dim != dim:
            raise ValueError(f"early fusion is a concat: video_dim + audio_dim ({video_dim} + {audio_dim}) "
                             f"must equal dim ({dim})")
        self.num_classes, self.dim = num_classes, dim
        self.encoder = None
        if frame_encoder is not None:
            self.encoder, width = build_frame_encoder(frame_encoder)
            if width != video_dim:
                raise ValueError(f"{frame_encoder} gives {width}-d features, video_dim is {video_dim}")
        self.audio = AudioMLP(frames=audio_frames, mels=audio_mels, hidden=tuple(audio_hidden), out_dim=audio_dim)
        self.human_head = nn.Linear(video_dim, 1)
        self.missing_video = nn.Parameter(torch.zeros(video_dim))
        self.missing_audio = nn.Parameter(torch.zeros(audio_dim))
        self.row_embed = nn.Parameter(torch.zeros(2, dim))  # 0: a view (camera + its microphone), 1: the lidar
        self.lidar = None
        if lidar_dim:
            self.lidar = LidarFlatFormerEncoder(out_dim=lidar_dim)
            self.lidar_resample = CrossAttentionResampler(lidar_dim, dim, temporal_heads, window=lidar_window)
        self.time = TimeEmbedding(dim)
        self.cls = nn.Parameter(torch.zeros(dim))
        self.temporal = nn.ModuleList(TransformerLayer(dim, temporal_heads, temporal_mlp, dropout=dropout,
                                                       norm_first=True, eps=temporal_eps)
                                      for _ in range(temporal_layers))
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        self.frame_head = FrameHead(dim, num_classes, pool=frame_pool)
        self.views = nn.ModuleList(TransformerLayer(dim, view_heads, view_ff, dropout=dropout, norm_first=False,
                                                    activation="relu", eps=1e-5) for _ in range(view_layers))
        self.sequence_head = SequenceHead(dim, num_classes)
        for p in (self.missing_video, self.missing_audio, self.row_embed, self.cls):
            nn.init.trunc_normal_(p, std=0.02)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """frames [B, V, T, 3, H, W] (normalised) -> features [B, V, T, C]."""
        if self.encoder is None:
            raise ValueError("this MultiTSF has no frame encoder: pass cached features [B, V, T, C]")
        b, v, t = frames.shape[:3]
        return self.encoder(frames.flatten(0, 2)).view(b, v, t, -1)

    def forward(self, times: Tensor, video: Tensor | None = None, video_valid: Tensor | None = None,
                audio: Tensor | None = None, audio_valid: Tensor | None = None, lidar: Tensor | None = None,
                lidar_mask: Tensor | None = None, lidar_times: Tensor | None = None,
                lidar_valid: Tensor | None = None) -> MultiTSFOutput:
        """Fuse one window.

        Args:
            times: [B, T] grid times, seconds.
            video: frames [B, V, T, 3, H, W] or features [B, V, T, C]; video_valid [B, V, T].
            audio: fbank chunks [B, V, T, F, M]; audio_valid [B, V, T].
            lidar: sweeps [B, N, P, 4]; lidar_mask [B, N, P] (real points); lidar_times [B, N] seconds on the
                same clock as `times`; lidar_valid [B, N].
        """
        b, t = times.shape
        rel = times - times[:, :1]
        v = video.shape[1] if video is not None else (audio.shape[1] if audio is not None else 0)
        rows, valids, human = [], [], None
        if v:
            if video is not None:
                feats = self.encode_frames(video) if video.ndim == 6 else video          # [B, V, T, Cv]
                vv = torch.ones(feats.shape[:3], dtype=torch.bool, device=times.device) if video_valid is None \
                    else video_valid.bool()
                human = self.human_head(feats).squeeze(-1)                               # [B, V, T]
                feats = torch.where(vv[..., None], feats, self.missing_video)
            else:
                vv = torch.zeros(b, v, t, dtype=torch.bool, device=times.device)
                feats = self.missing_video.expand(b, v, t, -1)
            if audio is not None:
                av = torch.ones(audio.shape[:3], dtype=torch.bool, device=times.device) if audio_valid is None \
                    else audio_valid.bool()
                afeat = torch.where(av[..., None], self.audio(audio), self.missing_audio)   # [B, V, T, Ca]
            else:
                av = torch.zeros(b, v, t, dtype=torch.bool, device=times.device)
                afeat = self.missing_audio.expand(b, v, t, -1)
            rows.append(torch.cat([feats, afeat], -1) + self.row_embed[0])              # [B, V, T, D]
            valids.append(vv | av)
        if lidar is not None and self.lidar is not None:
            tokens, tv = self.lidar(lidar, lidar_mask.bool())                            # [B, N, R, Cl], [B, N, R]
            if lidar_valid is not None:
                tv = tv & lidar_valid.bool()[..., None]
            lt = (lidar_times - times[:, :1])[..., None].expand_as(tv)                   # [B, N, R] s
            row, lv = self.lidar_resample(tokens.flatten(1, 2), lt.flatten(1), tv.flatten(1), rel)  # [B, T, D]
            rows.append((row + self.row_embed[1])[:, None])
            valids.append(lv[:, None])
        if not rows:
            raise ValueError("MultiTSF needs at least one of video, audio, lidar")
        x = torch.cat(rows, 1)                                                           # [B, S, T, D]
        cls = self.cls
        if self.time_embedding == "seconds":
            x = x + self.time(rel)[:, None]
        else:
            index = index_embedding(t + 1, self.dim).to(x)                               # [1+T, D]
            x, cls = x + index[1:], cls + index[0]
        valid = torch.cat(valids, 1)                                                     # [B, S, T]
        s = x.shape[1]
        # Temporal transformer per row, CLS first (always valid: a row never has zero keys).
        seq = torch.cat([cls.expand(b * s, 1, -1), x.reshape(b * s, t, -1)], 1)          # [B*S, 1+T, D]
        keys = torch.cat([valid.new_ones(b * s, 1), valid.reshape(b * s, t)], 1)
        for layer in self.temporal:
            seq = layer(seq, keys)
        x = self.temporal_norm(seq)[:, 1:].reshape(b, s, t, -1)
        temporal = x
        if self.view_attention == "views":  # inter-view transformer: across rows at each time step
            xs = x.transpose(1, 2).reshape(b * t, s, -1)                                 # [B*T, S, D]
            vs = valid.transpose(1, 2).reshape(b * t, s)
            for layer in self.views:
                xs = layer(xs, vs)
            x = xs.view(b, t, s, -1).transpose(1, 2)
        else:  # official: for each row index, across all (sample, time) pairs of the batch
            xs = x.transpose(0, 1).reshape(s, b * t, -1)                                 # [S, B*T, D]
            vs = valid.transpose(0, 1).reshape(s, b * t)
            for layer in self.views:
                xs = layer(xs, vs)
            x = xs.view(s, b, t, -1).transpose(0, 1)
        tokens = temporal if self.frame_from == "temporal" else x
        row_frame = self.frame_head.fc(tokens)                                           # [B, S, T, K]
        frame = self.frame_head(tokens, valid)                                           # [B, T, K]
        sequence = self.sequence_head(x, valid)                                          # [B, K]
        if self.sequence_from == "pool+frames":
            any_row = valid.any(1)[..., None]                                            # [B, T, 1]
            peak = frame.masked_fill(~any_row, float("-inf")).amax(1)                    # [B, K]
            sequence = sequence + torch.where(any_row.any(1), peak, torch.zeros_like(peak))
        return MultiTSFOutput(sequence, frame, human, row_frame, valid)


def index_embedding(n: int, dim: int) -> Tensor:
    """The transformer sinusoid of positions 0..n-1 [n, dim]: angle p / 10000^(2 (j // 2) / dim), sin at even j and
    cos at odd j (the official MultiTSF's `get_sine_cosine_pos_emb`), computed in float64 as it does."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # [n, dim]
    return torch.where(j.long() % 2 == 0, angle.sin(), angle.cos()).float()


# --------------------------------------------------------------------------------------------- losses

def two_way_loss(logits: Tensor, targets: Tensor, *, tp: float = 4.0, tn: float = 1.0) -> Tensor:
    """TwoWay loss (Kobayashi, "Two-way Multi-Label Loss", CVPR 2023): logits, targets [N, K] -> scalar.

    For each class over samples and each sample over classes: softplus(Tn * LSE(x_neg / Tn) + Tp * LSE(-x_pos / Tp)),
    averaged over the classes (samples) that have a positive, and the two ways summed.
    """
    pos = targets > 0.5
    big = 1e4  # a finite "minus infinity": LSE of an all-masked set stays finite (and its gradient too)
    neg_term = (logits / tn).masked_fill(pos, -big)
    pos_term = (-logits / tp).masked_fill(~pos, -big)
    total = logits.new_zeros(())
    for dim in (0, 1):
        has = pos.any(dim)
        if has.any():
            n = torch.logsumexp(neg_term, dim) * tn
            p = torch.logsumexp(pos_term, dim) * tp
            total = total + F.softplus((n + p)[has]).mean()
    return total


def human_loss(human_logits: Tensor, person: Tensor, valid: Tensor) -> Tensor:
    """Soft-target CE over time: logits, person scores, valid [B, V, T] -> scalar (views with no person skipped)."""
    scores = person.clamp_min(0) * valid
    mass = scores.sum(-1)
    keep = mass > 0
    if not keep.any():
        return human_logits.sum() * 0.0
    target = scores[keep] / mass[keep][:, None]
    logp = human_logits[keep].masked_fill(~valid[keep], -1e4).log_softmax(-1)
    return -(target * logp).sum(-1).mean()


def multitsf_loss(out: MultiTSFOutput, sequence_labels: Tensor, frame_labels: Tensor, frame_valid: Tensor,
                  person: Tensor | None = None, video_valid: Tensor | None = None) -> dict[str, Tensor]:
    """The paper's objective: TwoWay(sequence) + TwoWay(valid frames) + human CE; a dict with "loss"."""
    parts = {"sequence": two_way_loss(out.sequence, sequence_labels),
             "frame": two_way_loss(out.frame[frame_valid], frame_labels[frame_valid])}
    if out.human is not None and person is not None:
        parts["human"] = human_loss(out.human, person, video_valid if video_valid is not None
                                    else torch.ones_like(person, dtype=torch.bool))
    parts["loss"] = sum(parts.values())
    return parts


# --------------------------------------------------------------------------------------------- variants

def multitsf_paper(**overrides) -> MultiTSF:
    """The paper's sizes: ViT-S/32 frames, 128x1024 fbank MLP 512-256-128-384, D 768, 16 classes (5 views at
    inference: any number works). Lidar off, as in the paper."""
    return MultiTSF(**{**dict(num_classes=16), **overrides})


def multitsf_small(**overrides) -> MultiTSF:
    """CPU variant for the synthetic recordings: 64x64 frames (tiny ViT, 96-d), 40x32 fbank chunks (0.4 s),
    D 192 (96 | 96), temporal 2 layers x 3 heads (head dim 64 as the paper) MLP 768, inter-view 4 heads FF 256,
    lidar on (FlatFormer region tokens, 96-d), 7 classes, the paper's sequence head, the frame head after the inter-view transformer
    (`frame_from="fused"`: with the paper's position the frame scores lost to a max over per-view predictions in
    our first run, 81.4 vs 84.3 frame mAP). The audio MLP's widths are halved (256-128-128) for the CPU budget:
    its first layer dominates the cost of a training step."""
    return MultiTSF(**{**dict(num_classes=7, frame_encoder="vit_hybrid64", video_dim=96, audio_frames=40,
                              audio_mels=32, audio_hidden=(256, 128, 128), audio_dim=96, dim=192,
                              temporal_heads=3, temporal_mlp=768, view_heads=4, view_ff=256, lidar_dim=96,
                              frame_from="fused"),
                       **overrides})


def multitsf_tiny(**overrides) -> MultiTSF:
    """For tests: 32x32 frames, 8x8 fbank chunks, D 64."""
    return MultiTSF(**{**dict(num_classes=6, frame_encoder="vit_micro32", video_dim=32, audio_frames=8,
                              audio_mels=8, audio_hidden=(32,), audio_dim=32, dim=64, temporal_layers=1,
                              temporal_heads=2, temporal_mlp=64, view_heads=2, view_ff=32, lidar_dim=32,
                              frame_from="fused"),
                       **overrides})


# --------------------------------------------------------------------------------------------- official checkpoints

# The official computations a converted checkpoint needs (see MultiTSF's time_embedding, temporal_eps and
# view_attention), and the official MultiSensor-Home input: 70 frames at 2.5 Hz, 224 x 224 ImageNet-normalised,
# per frame 0.4 s of 16 kHz audio as AST's 128-mel fbank padded to 1024 frames with AudioSet's statistics.
OFFICIAL_KWARGS = {"time_embedding": "index", "temporal_eps": 1e-5, "view_attention": "batch_time"}
OFFICIAL_INPUT = {"grid_rate_hz": 2.5, "window_steps": 70, "frame_size": 224, "frame_mean": [0.485, 0.456, 0.406],
                  "frame_std": [0.229, 0.224, 0.225], "audio_rate": 16000, "audio_chunk_s": 0.4,
                  "audio_frames": 1024, "audio_mels": 128, "fbank_mean": -4.2677393, "fbank_std": 4.5689974}


def multisensor_home_classes() -> list[str]:
    """The 16 MultiSensor-Home action classes in the official label order (`class_dict` of the official
    config/config_mm.py)."""
    from pathlib import Path

    return (Path(__file__).with_name("multisensor_home_classes.txt")).read_text().split()


def convert_official(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
    """Map the official `CNN2D_Transformer` state dict (github.com/thanhhff/MultiTSF) to `multitsf_paper`'s keys.

    `video_encoder.model.*` is the timm frame encoder (`encoder.*`); the audio MLP's fc1..3/output are
    `audio.net.0/2/4/6`; the fused qkv (temporal) and in_proj (inter-view) projections are split into our q and kv;
    the 1x1 Conv1d heads become Linear; `mlp_head` is the sequence head. Dropped, unused by the official forward:
    `temporal_transformer.cls_token` and `temporal_transformer.patch_embed.*`. Not in the official model and set
    to zero, which makes them no-ops: `row_embed` (no row embedding) and `missing_video` / `missing_audio` (no
    missing-modality handling; read only for masked inputs). `module.` prefixes (DataParallel) are stripped; keys
    that match nothing are passed through, so that the conversion report names them.

    Returns:
        (state, info): info holds the constructor options of the official computation ("kwargs"), the official
        class list ("classes") and input spec ("input").
    """
    out: dict[str, Tensor] = {}
    layer = "temporal_transformer.transformer_layers.layers."
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in ("temporal_transformer.cls_token",) or key.startswith("temporal_transformer.patch_embed."):
            continue
        if key.startswith("video_encoder.model."):
            out["encoder." + key[len("video_encoder.model."):]] = value
        elif key.startswith("audio_encoder."):
            name, _, param = key[len("audio_encoder."):].partition(".")
            index = {"fc1": 0, "fc2": 2, "fc3": 4, "output": 6}.get(name)
            out[f"audio.net.{index}.{param}" if index is not None else key] = value
        elif key == "temporal_transformer.cls_token_temporal":
            out["cls"] = value.reshape(-1)
        elif key.startswith("temporal_transformer.norm."):
            out["temporal_norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith(layer):
            i, rest = key[len(layer):].split(".", 1)
            param = rest.rsplit(".", 1)[1]
            if rest.startswith("attentions.0.attn.qkv."):
                d = value.shape[0] // 3
                out[f"temporal.{i}.attn.q.{param}"], out[f"temporal.{i}.attn.kv.{param}"] = value[:d], value[d:]
            else:
                target = {"attentions.0.norm": "norm1", "attentions.0.attn.proj": "attn.proj",
                          "ffns.0.norm": "norm2", "ffns.0.layers.0.0": "mlp.0", "ffns.0.layers.1": "mlp.3"}
                module = target.get(rest.rsplit(".", 1)[0])
                out[f"temporal.{i}.{module}.{param}" if module else key] = value
        elif key.startswith("device_transformer.layers."):
            i, rest = key[len("device_transformer.layers."):].split(".", 1)
            if rest.startswith("self_attn.in_proj_"):
                param = rest[len("self_attn.in_proj_"):]
                d = value.shape[0] // 3
                out[f"views.{i}.attn.q.{param}"], out[f"views.{i}.attn.kv.{param}"] = value[:d], value[d:]
            else:
                target = {"self_attn.out_proj": "attn.proj", "linear1": "mlp.0", "linear2": "mlp.3",
                          "norm1": "norm1", "norm2": "norm2"}
                module, param = rest.rsplit(".", 1)
                out[f"views.{i}.{target[module]}.{param}" if module in target else key] = value
        elif key.startswith("mlp_head.0."):
            out["sequence_head.norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("mlp_head.1."):
            out["sequence_head.fc." + key.rsplit(".", 1)[1]] = value
        elif key.startswith(("mlp_head_frames.", "mlp_human_frames.")):  # Conv1d(kernel 1) -> Linear
            param = key.rsplit(".", 1)[1]
            head = "frame_head.fc." if key.startswith("mlp_head_frames.") else "human_head."
            out[head + param] = value.reshape(value.shape[0], -1) if param == "weight" else value
        else:
            out[key] = value
    if "sequence_head.norm.weight" not in out or "human_head.weight" not in out:
        raise KeyError("no mlp_head.0.weight or mlp_human_frames.weight: not a CNN2D_Transformer state dict")
    dim, video_dim = out["sequence_head.norm.weight"].shape[0], out["human_head.weight"].shape[1]
    out["row_embed"] = out["sequence_head.norm.weight"].new_zeros(2, dim)
    out["missing_video"] = out["sequence_head.norm.weight"].new_zeros(video_dim)
    out["missing_audio"] = out["sequence_head.norm.weight"].new_zeros(dim - video_dim)
    return out, {"kwargs": dict(OFFICIAL_KWARGS), "classes": multisensor_home_classes(), "input": dict(OFFICIAL_INPUT)}
