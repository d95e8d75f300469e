import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from video import MediaFileError
from video.audio import AudioValueError
from video.audio.io import audio_chunks_for_frames, load_audio, read_audio


def _tone(sr: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("ext,subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_reads_each_audio_format(tmp_path, ext, subtype):
    path = tmp_path / f"a{ext}"
    sf.write(path, _tone(16_000, 0.5), 16_000, subtype=subtype)
    wave, sr = read_audio(path)
    assert sr == 16_000 and wave.shape[0] == 1 and wave.dtype == torch.float32
    # Lossy codecs add priming samples; the length is still about half a second.
    assert abs(wave.shape[1] - 8000) < 2500
    assert 0.3 < wave.abs().max() < 0.7


def test_multichannel_and_odd_rate_are_mixed_and_resampled(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(22_050, 1.0, channels=2), 22_050)
    wave, sr = read_audio(path)
    assert wave.shape == (2, 22_050) and sr == 22_050
    mono, sr = load_audio(path)
    assert sr == 16_000 and mono.ndim == 1 and abs(mono.shape[0] - 16_000) <= 1
    assert mono.abs().max() == pytest.approx(0.375, abs=0.01)  # the mean of amplitudes 0.25 and 0.5
    kept, sr = load_audio(path, None, mono=False)
    assert kept.shape == (2, 22_050) and sr == 22_050


def test_clipped_and_silent_files_read(tmp_path):
    sf.write(tmp_path / "clip.wav", np.clip(4 * _tone(16_000, 0.2), -1, 1), 16_000)
    sf.write(tmp_path / "silence.wav", np.zeros((1600, 1), np.float32), 16_000)
    clipped, _ = load_audio(tmp_path / "clip.wav")
    silence, _ = load_audio(tmp_path / "silence.wav")
    assert clipped.abs().max() == pytest.approx(1.0, abs=1e-3)
    assert silence.abs().max() == 0


def test_file_shorter_than_one_frame(tmp_path):
    sf.write(tmp_path / "short.wav", _tone(16_000, 0.002), 16_000)  # 32 samples
    wave, _ = load_audio(tmp_path / "short.wav")
    assert wave.shape == (32,)


def test_missing_empty_and_corrupt_files_raise_media_file_error(tmp_path):
    with pytest.raises(MediaFileError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaFileError, match="empty"):
        read_audio(tmp_path / "empty.wav")
    (tmp_path / "bad.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(MediaFileError) as info:
        read_audio(tmp_path / "bad.flac")
    assert info.value.path == tmp_path / "bad.flac"
    sf.write(tmp_path / "nosamples.wav", np.zeros((0, 1), np.float32), 16_000)
    with pytest.raises(MediaFileError, match="no audio samples"):
        read_audio(tmp_path / "nosamples.wav")


def _video(path: Path, *, audio: bool, sr: int = 22_050, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        if audio:
            stream = container.add_stream("aac", rate=sr)
            stream.layout = "stereo"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(_tone(sr, seconds, channels=2).T), format="fltp",
                                               layout="stereo")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def test_reads_the_audio_track_of_a_video(tmp_path):
    wave, sr = read_audio(_video(tmp_path / "clip.mp4", audio=True))
    assert sr == 22_050 and wave.shape[0] == 2
    assert abs(wave.shape[1] - 22_050) < 3000  # AAC priming and padding
    mono, sr = load_audio(tmp_path / "clip.mp4")
    assert sr == 16_000 and mono.abs().max() > 0.3


def test_a_video_without_audio_raises(tmp_path):
    with pytest.raises(MediaFileError, match="no audio stream"):
        read_audio(_video(tmp_path / "silent.mp4", audio=False))


def test_a_corrupt_video_raises(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    with pytest.raises(MediaFileError):
        read_audio(tmp_path / "bad.mp4")


def test_chunks_are_centred_on_frame_times_and_zero_outside():
    wave = torch.arange(1, 101, dtype=torch.float32)  # 100 samples at 100 Hz: sample i holds i + 1
    chunks = audio_chunks_for_frames(wave, 100, torch.tensor([0.0, 0.5, 0.99, 2.0]), window_s=0.04)
    assert chunks.shape == (4, 4)
    assert chunks[0].tolist() == [0, 0, 1, 2]  # samples -2..1
    assert chunks[1].tolist() == [49, 50, 51, 52]  # samples 48..51
    assert chunks[2].tolist() == [98, 99, 100, 0]  # samples 97..100
    assert chunks[3].tolist() == [0, 0, 0, 0]  # after the recording ends: silence


def test_chunks_for_video_frames_multichannel():
    sr, fps = 16_000, 25.0
    wave = torch.randn(2, sr * 2)
    times = torch.arange(50) / fps
    chunks = audio_chunks_for_frames(wave, sr, times, window_s=1 / fps)
    assert chunks.shape == (50, 2, 640)
    assert torch.equal(chunks[10], wave[:, 6400 - 320 : 6400 + 320])  # frame 10 is at 0.4 s = sample 6400


def test_chunks_reject_bad_arguments():
    with pytest.raises(AudioValueError):
        audio_chunks_for_frames(torch.zeros(10), 10, torch.tensor([0.0]), window_s=0.0)
    with pytest.raises(AudioValueError):
        audio_chunks_for_frames(torch.zeros(10), 10, torch.tensor([math.nan]), window_s=0.1)
