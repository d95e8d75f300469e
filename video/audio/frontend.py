"""Audio front-end: mono mixdown, resampling, Kaldi fbank (the AST recipe), log-mel and SpecAugment.

Everything here is plain torchaudio/torch and runs on whatever device the waveform lives on (CPU or GPU).

The AST recipe (Gong et al., "AST: Audio Spectrogram Transformer", Interspeech 2021, arXiv 2104.01778;
official code YuanGongND/ast, `src/dataloader.py`):
    16 kHz mono waveform -> subtract its mean -> `torchaudio.compliance.kaldi.fbank(htk_compat=True,
    use_energy=False, window_type="hanning", num_mel_bins=128, dither=0, frame_shift=10)` with the
    default 25 ms window -> zero-pad or cut to `target_length` frames -> `(fbank - mean) / (2 * std)`.
The AudioSet statistics are mean -4.2677393 and std 4.5689974; other datasets use their own
(`fbank_stats` computes them on unnormalised fbanks, as the official `get_norm_stats.py` does).
SpecAugment in the official loader masks the *unnormalised* fbank with zeros, after padding; we mask the
normalised fbank with the value a raw zero maps to, which is the same thing.
"""

from __future__ import annotations

import functools
import math

import torch
import torchaudio
from torch import Tensor, nn

from video.audio._errors import AudioValueError

SAMPLE_RATE = 16_000  # every model here consumes 16 kHz audio
AST_AUDIOSET_MEAN = -4.2677393
AST_AUDIOSET_STD = 4.5689974
FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_MS = 25.0


def to_mono(waveform: Tensor) -> Tensor:
    """Mix a waveform down to one channel by averaging channels.

    Args:
        waveform: `Tensor[S]` (already mono) or `Tensor[C, S]`, channels first.

    Returns:
        `Tensor[S]`.
    """
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim != 2:
        raise AudioValueError(f"expected a waveform [S] or [C, S], got shape {tuple(waveform.shape)}")
    return waveform.mean(dim=0)


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the rate pair; building it costs more than applying it to
    # a short clip, so it is cached (on the CPU; `.to(device)` moves a copy of the small kernel).
    return torchaudio.transforms.Resample(orig_sr, new_sr)


def resample(waveform: Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> Tensor:
    """Resample `Tensor[..., S]` from `orig_sr` to `new_sr` Hz (band-limited sinc, torchaudio).

    Any rate works: pairs with a small reduced ratio (44_100, 22_050, 8_000) use torchaudio's polyphase
    sinc filter; awkward ones (7_999) use FFT resampling, which is exact for band-limited periodic signals.
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return waveform
    g = math.gcd(orig_sr, new_sr)
    if max(orig_sr, new_sr) // g > _MAX_POLYPHASE:
        return _fft_resample(waveform.to(torch.float32), orig_sr, new_sr)
    transform = _resampler(orig_sr, new_sr)
    if transform.kernel.device != waveform.device:
        transform = torchaudio.transforms.Resample(orig_sr, new_sr).to(waveform.device)
    return transform(waveform.to(torch.float32))


# torchaudio's polyphase sinc resampler builds a kernel with one row per output phase: for a rate pair whose
# reduced ratio is large (7999 -> 16000 has 16000 phases) that takes minutes, so those go through the FFT.
_MAX_POLYPHASE = 1000


def _fft_resample(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Band-limited resampling by truncating or zero-padding the spectrum (any rate pair, O(S log S))."""
    n = waveform.shape[-1]
    m = max(1, int(round(n * new_sr / orig_sr)))
    spec = torch.fft.rfft(waveform, dim=-1)
    keep = min(spec.shape[-1], m // 2 + 1)
    out = spec.new_zeros(spec.shape[:-1] + (m // 2 + 1,))
    out[..., :keep] = spec[..., :keep]
    return torch.fft.irfft(out, n=m, dim=-1) * (m / n)


def _check_finite(waveform: Tensor) -> None:
    if not torch.isfinite(waveform).all():
        raise AudioValueError("the waveform holds NaN or Inf samples")


def kaldi_fbank(
    waveform: Tensor,
    sample_rate: int = SAMPLE_RATE,
    *,
    num_mel_bins: int = 128,
    frame_shift_ms: float = FRAME_SHIFT_MS,
    frame_length_ms: float = FRAME_LENGTH_MS,
    dither: float = 0.0,
) -> Tensor:
    """Kaldi-compatible log mel filterbank with AST's settings.

    Args:
        waveform: `Tensor[S]` or `Tensor[C, S]` (mixed down to mono), amplitude in [-1, 1].
        sample_rate: Hz of `waveform`.
        num_mel_bins: mel bands (AST: 128).
        frame_shift_ms, frame_length_ms: hop and window in milliseconds (AST: 10 and 25).
        dither: Kaldi dither amplitude; 0 at evaluation (AST uses 0 throughout).

    Returns:
        `Tensor[T, num_mel_bins]` log energies, one row per 10 ms frame. A waveform shorter than one
        window is zero-padded to one window, so the result has at least one frame. Silence gives Kaldi's
        floor, log(float32 eps) = -15.94, never -inf.
    """
    wave = to_mono(waveform).to(torch.float32)
    _check_finite(wave)
    window = int(round(sample_rate * frame_length_ms / 1000.0))
    if wave.shape[-1] < window:
        wave = nn.functional.pad(wave, (0, window - wave.shape[-1]))
    wave = wave - wave.mean()
    return torchaudio.compliance.kaldi.fbank(
        wave[None],
        htk_compat=True,
        sample_frequency=float(sample_rate),
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=dither,
        frame_shift=frame_shift_ms,
        frame_length=frame_length_ms,
    )


def log_mel(
    waveform: Tensor,
    sample_rate: int = SAMPLE_RATE,
    *,
    num_mel_bins: int = 128,
    frame_shift_ms: float = FRAME_SHIFT_MS,
    frame_length_ms: float = FRAME_LENGTH_MS,
) -> Tensor:
    """Natural-log mel power spectrogram (torchaudio `MelSpectrogram`), an alternative to Kaldi fbank.

    Args:
        waveform: `Tensor[..., S]` or `Tensor[C, S]`; a 2-D input is treated as channels and mixed down.

    Returns:
        `Tensor[T, num_mel_bins]` for mono input (`log(power + 1e-6)`), centre-padded frames.
    """
    wave = to_mono(waveform).to(torch.float32)
    _check_finite(wave)
    hop = int(round(sample_rate * frame_shift_ms / 1000.0))
    win = int(round(sample_rate * frame_length_ms / 1000.0))
    # A window's next power of two, but fine enough that no low mel band is empty (128 bands need 1024).
    n_fft = max(1 << (win - 1).bit_length(), 1 << (8 * num_mel_bins - 1).bit_length())
    if wave.shape[-1] < n_fft // 2 + 1:  # reflect padding needs more samples than half a window
        wave = nn.functional.pad(wave, (0, n_fft // 2 + 1 - wave.shape[-1]))
    mel = _mel_transform(sample_rate, n_fft, win, hop, num_mel_bins, str(wave.device))
    return torch.log(mel(wave) + 1e-6).transpose(0, 1)  # [F, T] -> [T, F]


@functools.lru_cache(maxsize=8)
def _mel_transform(sr: int, n_fft: int, win: int, hop: int, n_mels: int, device: str) -> nn.Module:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels, power=2.0
    ).to(device)


def pad_or_crop(fbank: Tensor, target_length: int) -> Tensor:
    """Zero-pad at the end, or cut the end, of `Tensor[T, F]` to `target_length` frames (as AST does)."""
    frames = fbank.shape[0]
    if frames < target_length:
        return nn.functional.pad(fbank, (0, 0, 0, target_length - frames))
    return fbank[:target_length]


def sliding_clips(fbank: Tensor, clip_frames: int, hop: int | None = None) -> Tensor:
    """Cut `Tensor[T, F]` into clips of `clip_frames` at `hop` (default: half a clip), plus a tail clip so the
    end is covered; a short input gives one zero-padded clip. Returns `Tensor[N, clip_frames, F]`."""
    hop = max(1, hop if hop is not None else clip_frames // 2)
    frames = fbank.shape[0]
    starts = list(range(0, max(frames - clip_frames, 0) + 1, hop))
    if frames > clip_frames and (frames - clip_frames) % hop:
        starts.append(frames - clip_frames)
    return torch.stack([pad_or_crop(fbank[s:], clip_frames) for s in starts])


def normalize_fbank(fbank: Tensor, mean: float = AST_AUDIOSET_MEAN, std: float = AST_AUDIOSET_STD) -> Tensor:
    """AST normalisation: `(fbank - mean) / (2 * std)`, so inputs land roughly in [-1, 1]."""
    return (fbank - mean) / (2.0 * std)


def file_statistics(fbank: Tensor) -> Tensor:
    """A whole file's raw fbank `Tensor[T, F]` -> its per-bin mean and standard deviation over time `Tensor[2, F]`
    (the std is 0 for a one-frame file): the global context of `with_file_statistics`."""
    std = fbank.std(0) if fbank.shape[0] > 1 else torch.zeros_like(fbank[0])
    return torch.stack([fbank.mean(0), std])


def with_file_statistics(clips: Tensor, statistics: Tensor, mean: float, std: float) -> Tensor:
    """Normalised clips `Tensor[N, T, F]` and their file's raw `file_statistics` `Tensor[2, F]` ->
    `Tensor[N, T + 2, F]`: each clip followed by two rows, the file's per-bin mean normalised as the clips are
    (`(m - mean) / (2 std)`) and its per-bin std on the same scale (`s / (2 std)`). The input layout of models that
    read a whole file's statistics beside a clip (`video.models.audio_cnn.StatsAudioCNN`)."""
    rows = torch.stack([normalize_fbank(statistics[0], mean, std), statistics[1] / (2.0 * std)])  # [2, F]
    return torch.cat([clips, rows.to(clips).expand(clips.shape[0], 2, -1)], dim=1)


def fbank_stats(fbanks: list[Tensor] | Tensor) -> tuple[float, float]:
    """Mean and std of unnormalised fbanks over all frames and bins (the dataset statistics AST uses)."""
    if isinstance(fbanks, Tensor):
        fbanks = [fbanks]
    values = torch.cat([f.reshape(-1).double() for f in fbanks])
    if values.numel() < 2:
        raise AudioValueError("need at least two fbank values to compute statistics")
    return float(values.mean()), float(values.std())


class SpecAugment(nn.Module):
    """SpecAugment frequency and time masking (Park et al. 2019) with torchaudio's masking transforms.

    Active only in training mode; in eval mode it returns its input unchanged. AST's AudioSet recipe uses
    one frequency mask of width <= 48 bins and one time mask of width <= 192 frames.

    Args:
        freq_mask: largest frequency-mask width in bins (0 disables).
        time_mask: largest time-mask width in frames (0 disables).
        num_freq_masks, num_time_masks: masks of each kind applied one after the other.
        mask_value: the value written into masked cells (for AST-normalised input, the value a raw
            zero maps to; see `AudioFrontend.mask_value`).
    """

    def __init__(
        self,
        *,
        freq_mask: int = 48,
        time_mask: int = 192,
        num_freq_masks: int = 1,
        num_time_masks: int = 1,
        mask_value: float = 0.0,
    ):
        super().__init__()
        # iid_masks: each example of a batch gets its own mask.
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True) if freq_mask > 0 else None
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True) if time_mask > 0 else None
        self.num_freq_masks = num_freq_masks
        self.num_time_masks = num_time_masks
        self.mask_value = mask_value

    def forward(self, fbank: Tensor) -> Tensor:
        """`fbank: Tensor[B, T, F]` or `Tensor[T, F]` -> the same shape, masked when training."""
        if not self.training:
            return fbank
        single = fbank.ndim == 2
        x = fbank[None] if single else fbank
        x = x.transpose(1, 2)[:, None]  # [B, 1, F, T]: torchaudio masks (..., freq, time)
        if self.freq is not None:
            for _ in range(self.num_freq_masks):
                x = self.freq(x, mask_value=self.mask_value)
        if self.time is not None:
            for _ in range(self.num_time_masks):
                x = self.time(x, mask_value=self.mask_value)
        x = x[:, 0].transpose(1, 2)  # [B, T, F]
        return x[0] if single else x


class AudioFrontend(nn.Module):
    """Waveforms to the normalised features the audio encoders take, on the waveform's device.

    Args:
        sample_rate: Hz of the waveforms given to `forward` (resampled to 16 kHz when different).
        kind: "fbank" (Kaldi, the AST recipe) or "logmel" (torchaudio MelSpectrogram).
        num_mel_bins: mel bands (AST: 128).
        target_frames: pad or cut every clip to this many 10 ms frames (AST AudioSet: 1024); None keeps
            the natural length (a batch must then share one length).
        mean, std: normalisation statistics (AST AudioSet by default; use your dataset's).
        freq_mask, time_mask: SpecAugment widths, applied only in training mode (0 disables).
    """

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        kind: str = "fbank",
        num_mel_bins: int = 128,
        target_frames: int | None = 1024,
        mean: float = AST_AUDIOSET_MEAN,
        std: float = AST_AUDIOSET_STD,
        freq_mask: int = 0,
        time_mask: int = 0,
    ):
        super().__init__()
        if kind not in ("fbank", "logmel"):
            raise AudioValueError(f"kind must be 'fbank' or 'logmel', got {kind!r}")
        self.sample_rate = sample_rate
        self.kind = kind
        self.num_mel_bins = num_mel_bins
        self.target_frames = target_frames
        self.mean = mean
        self.std = std
        self.spec_augment = SpecAugment(freq_mask=freq_mask, time_mask=time_mask, mask_value=self.mask_value)

    @property
    def mask_value(self) -> float:
        """What a raw fbank value of 0 becomes after normalisation (AST masks raw fbanks with zeros)."""
        return (0.0 - self.mean) / (2.0 * self.std)

    def features(self, waveform: Tensor) -> Tensor:
        """One clip: `Tensor[S]` or `Tensor[C, S]` at `sample_rate` -> normalised `Tensor[T, F]`."""
        wave = resample(to_mono(waveform).to(torch.float32), self.sample_rate, SAMPLE_RATE)
        if self.kind == "fbank":
            feats = kaldi_fbank(wave, SAMPLE_RATE, num_mel_bins=self.num_mel_bins)
        else:
            feats = log_mel(wave, SAMPLE_RATE, num_mel_bins=self.num_mel_bins)
        if self.target_frames is not None:
            feats = pad_or_crop(feats, self.target_frames)
        return normalize_fbank(feats, self.mean, self.std)

    def forward(self, waveforms: Tensor | list[Tensor]) -> Tensor:
        """`Tensor[B, S]`, `Tensor[B, C, S]` or a list of clips -> `Tensor[B, T, F]` (SpecAugment in training)."""
        clips = list(waveforms) if isinstance(waveforms, (list, tuple)) or waveforms.ndim > 1 else [waveforms]
        feats = torch.stack([self.features(clip) for clip in clips])
        return self.spec_augment(feats)


def num_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames Kaldi fbank yields for `num_samples` (snip_edges: 1 + (S - window) // shift, at least 1)."""
    window = int(round(sample_rate * FRAME_LENGTH_MS / 1000.0))
    shift = int(round(sample_rate * FRAME_SHIFT_MS / 1000.0))
    return 1 + max(num_samples - window, 0) // shift
