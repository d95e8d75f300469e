"""Reading audio: files with soundfile, the audio track of a video with PyAV, chunks aligned to video frames.

Waveforms are float32 in [-1, 1] (clipped recordings keep their +-1 plateaus), channels first:
`Tensor[C, S]` from `read_audio`, `Tensor[S]` after mono mixdown. Every file problem (missing, corrupt,
empty, a video with no audio stream) raises `video.MediaFileError(path, reason)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from video._errors import MediaFileError
from video.audio._errors import AudioValueError
from video.audio.frontend import SAMPLE_RATE, resample, to_mono
from video.io import check_media_content

# Float samples are full scale at 1.0; float WAV/FLAC may exceed it, but not by 36 dB (x 64): beyond that the
# values are corrupt and would swamp every filterbank they reach.
MAX_ABS_SAMPLE = 64.0

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")
# Containers read through FFmpeg (PyAV): videos, and audio-only containers libsndfile does not know.
FFMPEG_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".m4a", ".aac")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaFileError(path, "no such file")
    if not path.is_file():
        raise MediaFileError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaFileError(path, "the file is empty (0 bytes)")
    check_media_content(path)


def _declared_frames(path: Path) -> int | None:
    """Sample frames a WAV or FLAC header declares, checked against the bytes present; None for other formats.

    libsndfile quietly shortens a truncated WAV to the samples it finds, so a file cut mid-body would be
    classified as if whole. Here the `data` chunk's declared size is held against the file's size (streaming
    writers that leave it 0 or 0xFFFFFFFF are let through), and FLAC's STREAMINFO sample count is returned for
    the caller to compare with what decodes.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"fLaC":
            f.seek(4)
            block = f.read(4 + 34)
            if len(block) < 38 or block[0] & 0x7F != 0:  # STREAMINFO must come first
                raise MediaFileError(path, "FLAC without a STREAMINFO block")
            info = int.from_bytes(block[4 + 10: 4 + 18], "big")
            total = info & ((1 << 36) - 1)
            rate = info >> 44
            if rate == 0:
                raise MediaFileError(path, "FLAC STREAMINFO: sample rate 0 Hz")
            return total or None  # 0: unknown
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        block_align = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise MediaFileError(path, "truncated WAV: no data chunk")
            cid, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"fmt ":
                fmt = f.read(min(length, 16))
                if len(fmt) < 16:
                    raise MediaFileError(path, "truncated WAV: short fmt chunk")
                rate = int.from_bytes(fmt[4:8], "little")
                block_align = int.from_bytes(fmt[12:14], "little")
                if rate == 0 or block_align == 0:
                    raise MediaFileError(path, f"WAV fmt chunk: sample rate {rate} Hz, block align {block_align}")
                f.seek(length - len(fmt) + (length & 1), 1)
            elif cid == b"data":
                present = size - f.tell()
                if length in (0, 0xFFFFFFFF) or block_align is None:
                    return None
                if present < length:
                    raise MediaFileError(path, f"truncated WAV: the data chunk declares {length} bytes, "
                                               f"{present} are present")
                return length // block_align
            else:
                f.seek(length + (length & 1), 1)


def read_audio_file(path: str | Path) -> tuple[Tensor, int]:
    """Read an audio file (wav, flac, ogg, mp3, ...) with soundfile.

    Returns:
        `(waveform: Tensor[C, S] float32, sample_rate in Hz)`.
    """
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    declared = _declared_frames(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise MediaFileError(path, f"cannot decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise MediaFileError(path, "no audio samples")
    if sr <= 0:
        raise MediaFileError(path, f"sample rate {sr} Hz")
    if declared is not None and data.shape[0] < declared:
        raise MediaFileError(path, f"truncated: {data.shape[0]} of the {declared} samples the header declares")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def read_video_audio(path: str | Path) -> tuple[Tensor, int]:
    """Read the first audio stream of a video (or any FFmpeg container) with PyAV.

    Returns:
        `(waveform: Tensor[C, S] float32, sample_rate in Hz)`.

    Raises:
        MediaFileError: missing or undecodable file, no audio stream, or a stream with no samples.
    """
    import av

    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaFileError(path, f"cannot open as a media file ({exc})") from None
    with container:
        if not container.streams.audio:
            raise MediaFileError(path, "no audio stream")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        sr = stream.rate or stream.codec_context.sample_rate
        # Packed and planar sample formats both end as float planar [C, S] through the resampler.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None, rate=sr)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except (av.FFmpegError, ValueError) as exc:
            if not chunks:
                raise MediaFileError(path, f"cannot decode the audio stream ({exc})") from None
            # A truncated tail: keep what decoded (the decodable prefix is still a valid recording).
    if not chunks:
        raise MediaFileError(path, "the audio stream holds no samples")
    data = np.concatenate(chunks, axis=1).astype(np.float32)  # [C, S]
    return torch.from_numpy(data), int(sr)


def read_audio(path: str | Path) -> tuple[Tensor, int]:
    """Read an audio file, or the audio track of a video file, by its extension.

    Audio extensions go to soundfile; video containers (and any file soundfile cannot read) go to PyAV.

    Returns:
        `(waveform: Tensor[C, S] float32, sample_rate in Hz)`.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in FFMPEG_EXTENSIONS:
        return read_video_audio(path)
    try:
        return read_audio_file(path)
    except MediaFileError as soundfile_error:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            raise
        try:  # an unusual extension: maybe a container FFmpeg knows
            return read_video_audio(path)
        except MediaFileError:
            raise soundfile_error from None


def load_audio(path: str | Path, sample_rate: int | None = SAMPLE_RATE, *, mono: bool = True) -> tuple[Tensor, int]:
    """Read any supported file and bring it to the rate and channel layout the models take.

    Args:
        path: audio file or video file (its first audio track).
        sample_rate: resample to this rate in Hz; None keeps the file's rate.
        mono: average channels down to one.

    Returns:
        `(waveform, sample_rate)`: `Tensor[S]` when mono, else `Tensor[C, S]`; float32.
    """
    wave, sr = read_audio(path)
    if wave.numel() == 0:
        raise MediaFileError(path, "no audio samples")
    if not torch.isfinite(wave).all():
        raise MediaFileError(path, "the decoded samples hold NaN or Inf")
    peak = float(wave.abs().max())
    if peak > MAX_ABS_SAMPLE:
        raise MediaFileError(path, f"a sample of magnitude {peak:.3g}, beyond {MAX_ABS_SAMPLE:g} x full scale "
                                   "(corrupt float samples)")
    if mono:
        wave = to_mono(wave)
    if sample_rate is not None and sample_rate != sr:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave.contiguous(), sr


def audio_chunks_for_frames(waveform: Tensor, sr: int, frame_times: Tensor, window_s: float) -> Tensor:
    """Cut one audio window per video frame, centred on the frame's timestamp.

    The window of frame i covers `[t_i - window_s / 2, t_i + window_s / 2)` seconds of the waveform's own
    clock (time 0 is its first sample); samples outside the recording are zeros, so frames before the
    audio starts or after it ends get silence rather than an error. Use it to feed the fusion core one
    audio token group per frame.

    Args:
        waveform: `Tensor[S]` or `Tensor[C, S]`.
        sr: sample rate in Hz.
        frame_times: `Tensor[N]` frame timestamps in seconds (any order; need not be uniform).
        window_s: window length in seconds (> 0); rounded to whole samples, at least one sample.

    Returns:
        `Tensor[N, W]` for a mono waveform, `Tensor[N, C, W]` for multi-channel, with
        `W = max(1, round(window_s * sr))`.
    """
    if window_s <= 0:
        raise AudioValueError(f"window_s must be positive, got {window_s}")
    if sr <= 0:
        raise AudioValueError(f"sample rate must be positive, got {sr}")
    times = torch.as_tensor(frame_times, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(times).all():
        raise AudioValueError("frame_times hold NaN or Inf")
    wave = waveform[None] if waveform.ndim == 1 else waveform  # [C, S]
    if wave.ndim != 2:
        raise AudioValueError(f"expected a waveform [S] or [C, S], got shape {tuple(waveform.shape)}")
    width = max(1, int(round(window_s * sr)))
    num_samples = wave.shape[1]
    starts = torch.round(times * sr).long() - width // 2  # [N] first sample of each window
    index = starts[:, None] + torch.arange(width)[None, :]  # [N, W]
    valid = (index >= 0) & (index < num_samples)
    gathered = wave[:, index.clamp(0, max(num_samples - 1, 0)).to(wave.device)]  # [C, N, W]
    chunks = gathered * valid.to(wave.device, wave.dtype)
    chunks = chunks.permute(1, 0, 2)  # [N, C, W]
    return chunks[:, 0] if waveform.ndim == 1 else chunks
