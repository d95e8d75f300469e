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
"""

from __future__ import annotations

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


def audio_cnn_tiny(**overrides) -> AudioCNN:
    """~4.6 k parameters: for tests and the quickest CPU runs."""
    kwargs = dict(widths=(16, 32, 64), blocks_per_stage=1)
    return AudioCNN(**{**kwargs, **overrides})


def audio_cnn_small(**overrides) -> AudioCNN:
    """~0.14 M parameters: the shipped CPU model."""
    kwargs = dict(widths=(32, 64, 128, 256), blocks_per_stage=2)
    return AudioCNN(**{**kwargs, **overrides})
