"""Audio for omnisense: reading (files and video tracks), the AST front-end, datasets and metrics."""

from video.audio._errors import AudioValueError
from video.audio.frontend import (
    AST_AUDIOSET_MEAN,
    AST_AUDIOSET_STD,
    SAMPLE_RATE,
    AudioFrontend,
    SpecAugment,
    fbank_stats,
    file_statistics,
    kaldi_fbank,
    log_mel,
    normalize_fbank,
    pad_or_crop,
    resample,
    sliding_clips,
    to_mono,
    with_file_statistics,
)
from video.audio.io import audio_chunks_for_frames, load_audio, read_audio

__all__ = [
    "AST_AUDIOSET_MEAN",
    "AST_AUDIOSET_STD",
    "SAMPLE_RATE",
    "AudioFrontend",
    "AudioValueError",
    "SpecAugment",
    "audio_chunks_for_frames",
    "fbank_stats",
    "file_statistics",
    "kaldi_fbank",
    "load_audio",
    "log_mel",
    "normalize_fbank",
    "pad_or_crop",
    "read_audio",
    "resample",
    "sliding_clips",
    "to_mono",
    "with_file_statistics",
]
