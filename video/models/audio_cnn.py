"""A small, efficient CNN audio encoder for the CPU.

Not from one paper: a compact design in the spirit of the PANNs CNNs (Kong et al., arXiv 1912.10211:
conv blocks with batch norm and pooling over a log-mel image, mean + max pooling over time) with
MobileNet-style depthwise-separable convolutions (Howard et al., arXiv 1704.04861) to keep it cheap.
It trains from scratch on a CPU in minutes, where AST needs ImageNet or AudioSet pretraining.

Encoder contract (as `video.models.ast.ASTModel`):
- `forward_tokens(fbank: Tensor[B, T, F]) -> Tensor[B, N, D]`: one token per time step after the
  stem and blocks downsample time by `time_stride` (N = ceil(T / time_stride)), frequency pooled away;
  token j covers frames around `[time_stride * j, time_stride * (j + 1))`, i.e. 10 * time_stride ms steps.
- `forward(fbank) -> Tensor[B, num_classes]` logits from mean + max pooling of the tokens over time.

`StatsAudioCNN` adds a global branch: beside each clip it reads its whole file's per-bin fbank mean and std (two
rows after the clip's frames, `video.audio.frontend.with_file_statistics`; the weights' `AudioSpec` with
`file_statistics` adds them at inference, the training data with `file_statistics: true`), standardised by batch
norm, and one linear head reads the CNN's pooled features and the statistics together, so the two branches' logits
add. The statistics are a logistic-regression baseline's features on the coarse real-sound set (`omnisense.train
.real_sounds`), where 1 s crops alone miss what a whole file's spectrum shows.
"""

from __future__ import annotations

import torch
from einops import reduce
from torch import Tensor, nn


class SeparableBlock(nn.Module):
    """Depthwise 3x3 -> pointwise 1x1, each with batch norm, a residual when shapes allow, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int]):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.residual = in_ch == out_ch and stride == (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """`x: Tensor[B, C_in, T, F]` -> `Tensor[B, C_out, T / s_t, F / s_f]`."""
        y = self.act(self.bn1(self.depthwise(x)))
        y = self.bn2(self.pointwise(y))
        return self.act(y + x if self.residual else y)


class AudioCNN(nn.Module):
    """Depthwise-separable CNN over a `[T, F]` fbank image, tokens along time.

    Args:
        num_classes: output logits.
        input_fdim: mel bins of the input.
        widths: channels of the stem and of each stage; each stage after the first halves time and
            frequency (the stem halves both too).
        blocks_per_stage: separable blocks per stage (the first of each stage downsamples).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        input_fdim: int = 128,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks_per_stage: int = 2,
        drop_rate: float = 0.2,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.input_fdim = input_fdim
        self.embed_dim = widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages = []
        in_ch = widths[0]
        for i, out_ch in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = (2, 2) if (j == 0 and i > 0) else (1, 1)
                stages.append(SeparableBlock(in_ch, out_ch, stride))
                in_ch = out_ch
        self.blocks = nn.Sequential(*stages)
        self.time_stride = 2 ** len(widths)  # stem /2, then every stage but the first /2
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.embed_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_tokens(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T, F]` -> tokens `Tensor[B, ceil(T / time_stride), D]`."""
        if fbank.ndim != 3 or fbank.shape[-1] != self.input_fdim:
            raise ValueError(f"expected fbank [B, T, {self.input_fdim}], got {tuple(fbank.shape)}")
        x = self.blocks(self.stem(fbank[:, None]))  # [B, D, T', F']
        return reduce(x, "b d t f -> b t d", "mean")

    def forward(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T, F]` -> logits `Tensor[B, num_classes]`."""
        tokens = self.forward_tokens(fbank)
        pooled = tokens.mean(dim=1) + tokens.amax(dim=1)  # mean + max over time, as the PANNs CNNs pool
        return self.head(self.head_drop(pooled))


class StatsAudioCNN(AudioCNN):
    """`AudioCNN` on a clip plus a linear branch on its whole file's fbank statistics, trained jointly.

    Input `fbank: Tensor[B, T + 2, F]`: T clip frames, then the file's per-bin mean and std (normalised like the
    clip). The head is one linear layer over `[pooled CNN features (D), batch-normed statistics (2F)]`, i.e. the CNN's
    logits plus a linear model's logits on the statistics; dropout on both.

    Args: as `AudioCNN`.
    """

    def __init__(self, *, num_classes: int = 10, input_fdim: int = 128, widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks_per_stage: int = 2, drop_rate: float = 0.2):
        super().__init__(num_classes=num_classes, input_fdim=input_fdim, widths=widths,
                         blocks_per_stage=blocks_per_stage, drop_rate=drop_rate)
        self.stats_norm = nn.BatchNorm1d(2 * input_fdim)
        self.head = nn.Linear(self.embed_dim + 2 * input_fdim, num_classes)  # stays the last nn.Linear (features)

    def forward_tokens(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T + 2, F]` -> the clip's tokens `Tensor[B, ceil(T / time_stride), D]`."""
        return super().forward_tokens(fbank[:, :-2])

    def forward(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T + 2, F]` -> logits `Tensor[B, num_classes]`."""
        tokens = self.forward_tokens(fbank)
        pooled = tokens.mean(dim=1) + tokens.amax(dim=1)  # [B, D]
        statistics = self.stats_norm(fbank[:, -2:].flatten(1))  # [B, 2F]: per-bin means, then stds
        return self.head(self.head_drop(torch.cat([pooled, statistics], dim=1)))


_TINY = dict(widths=(16, 32, 64), blocks_per_stage=1)  # the sizes of the named variants, with or without statistics
_SMALL = dict(widths=(32, 64, 128, 256), blocks_per_stage=2)


def audio_cnn_tiny(**overrides) -> AudioCNN:
    """~4.6 k parameters: for tests and the quickest CPU runs."""
    return AudioCNN(**{**_TINY, **overrides})


def audio_cnn_small(**overrides) -> AudioCNN:
    """~0.14 M parameters: the shipped CPU model."""
    return AudioCNN(**{**_SMALL, **overrides})


def audio_cnn_tiny_stats(**overrides) -> StatsAudioCNN:
    """`audio_cnn_tiny` with the file-statistics branch: for tests."""
    return StatsAudioCNN(**{**_TINY, **overrides})


def audio_cnn_small_stats(**overrides) -> StatsAudioCNN:
    """`audio_cnn_small` with the file-statistics branch (~0.14 M + 2F (K + 2) parameters)."""
    return StatsAudioCNN(**{**_SMALL, **overrides})
