import math

import pytest
import torch

from video.audio import AudioValueError
from video.audio.frontend import (
    AST_AUDIOSET_MEAN,
    AST_AUDIOSET_STD,
    AudioFrontend,
    SpecAugment,
    fbank_stats,
    kaldi_fbank,
    log_mel,
    normalize_fbank,
    num_frames,
    pad_or_crop,
    resample,
    to_mono,
)

SR = 16_000
FLOOR = math.log(torch.finfo(torch.float32).eps)


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return amp * torch.sin(2 * math.pi * freq * t)


def test_fbank_shape_follows_the_ast_recipe():
    fb = kaldi_fbank(tone(1000.0))
    # 25 ms window, 10 ms shift, snip_edges: 1 + (16000 - 400) // 160 = 98 frames of 128 bins.
    assert fb.shape == (98, 128) == (num_frames(SR), 128)
    assert torch.isfinite(fb).all()


def test_fbank_peak_bin_tracks_the_tone_frequency():
    low = kaldi_fbank(tone(300.0)).mean(0).argmax()
    high = kaldi_fbank(tone(3000.0)).mean(0).argmax()
    assert high > low + 30


def test_silence_gives_the_finite_kaldi_floor():
    fb = kaldi_fbank(torch.zeros(SR))
    assert torch.isfinite(fb).all()
    assert torch.allclose(fb, torch.full_like(fb, FLOOR), atol=1e-4)


def test_shorter_than_one_frame_gives_one_frame():
    fb = kaldi_fbank(tone(440.0, seconds=0.005))  # 80 samples < one 400-sample window
    assert fb.shape == (1, 128)
    assert torch.isfinite(fb).all()


def test_clipped_audio_is_fine():
    fb = kaldi_fbank((4 * tone(200.0)).clamp(-1, 1))  # hard-clipped square-ish wave
    assert torch.isfinite(fb).all()
    assert fb.max() > FLOOR + 10


def test_dc_offset_is_removed():
    x = tone(500.0)
    assert torch.allclose(kaldi_fbank(x), kaldi_fbank(x + 0.2), atol=1e-2)


def test_multichannel_is_mixed_down_by_averaging():
    stereo = torch.stack([tone(500.0), tone(2000.0)])
    assert torch.allclose(to_mono(stereo), stereo.mean(0))
    assert torch.allclose(kaldi_fbank(stereo), kaldi_fbank(stereo.mean(0)))


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 7999])
def test_odd_sample_rates_resample_to_16k(rate):
    x = tone(1000.0, sr=rate)
    y = resample(x, rate, SR)
    assert abs(y.shape[-1] - SR) <= 1
    # The tone lands in the same mel bin as a native 16 kHz tone.
    assert kaldi_fbank(y).mean(0).argmax() == kaldi_fbank(tone(1000.0)).mean(0).argmax()


def test_nan_waveform_is_rejected():
    x = tone(440.0)
    x[100] = float("nan")
    with pytest.raises(AudioValueError):
        kaldi_fbank(x)


def test_normalisation_and_padding():
    fb = torch.full((5, 128), AST_AUDIOSET_MEAN)
    assert torch.allclose(normalize_fbank(fb), torch.zeros_like(fb))
    assert normalize_fbank(torch.tensor(AST_AUDIOSET_MEAN + 2 * AST_AUDIOSET_STD)).item() == pytest.approx(1.0)
    assert pad_or_crop(fb, 8).shape == (8, 128) and (pad_or_crop(fb, 8)[5:] == 0).all()
    assert pad_or_crop(fb, 3).shape == (3, 128)
    mean, std = fbank_stats([torch.tensor([1.0, 3.0]), torch.tensor([5.0])])
    assert mean == pytest.approx(3.0) and std == pytest.approx(2.0)


def test_spec_augment_masks_only_in_training():
    torch.manual_seed(0)
    aug = SpecAugment(freq_mask=20, time_mask=30, mask_value=-7.0)
    x = torch.randn(4, 100, 128)
    assert torch.equal(aug.eval()(x), x)
    y = aug.train()(x)
    assert y.shape == x.shape
    masked = y == -7.0
    assert masked.any()
    # Each example gets its own masks (iid), and a frequency mask spans whole bins across time.
    assert not torch.equal(masked[0], masked[1])
    assert aug(x[0]).shape == (100, 128)


def test_frontend_batches_and_pads():
    fe = AudioFrontend(target_frames=120).eval()
    batch = torch.stack([tone(300.0), tone(900.0)])
    out = fe(batch)
    assert out.shape == (2, 120, 128)
    assert torch.allclose(out[0], fe.features(tone(300.0)))
    # Frames beyond the clip are raw zeros after normalisation: the AST padding.
    assert torch.allclose(out[:, 98:], torch.full_like(out[:, 98:], fe.mask_value))


def test_frontend_resamples_its_input_rate():
    fe = AudioFrontend(sample_rate=44_100, target_frames=None).eval()
    assert fe(tone(700.0, sr=44_100)).shape == (1, 98, 128)


def test_logmel_kind():
    lm = log_mel(tone(1000.0))
    assert lm.shape[1] == 128 and abs(lm.shape[0] - 101) <= 1
    assert torch.isfinite(log_mel(torch.zeros(50))).all()
    fe = AudioFrontend(kind="logmel", target_frames=100).eval()
    assert fe(tone(1000.0)).shape == (1, 100, 128)


@pytest.mark.cuda
def test_frontend_on_gpu_matches_cpu():
    fe = AudioFrontend(sample_rate=22_050, target_frames=100).eval()
    x = torch.stack([tone(440.0, sr=22_050), tone(2000.0, sr=22_050)])
    cpu = fe(x)
    gpu = fe(x.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-3)


@pytest.mark.parametrize("frames,starts", [(40, [0]), (100, [0]), (198, [0, 50, 98]), (200, [0, 50, 100])])
def test_sliding_clips_cover_the_whole_input(frames, starts):
    from video.audio.frontend import sliding_clips

    fbank = torch.arange(frames, dtype=torch.float32)[:, None].expand(frames, 4)
    clips = sliding_clips(fbank, 100)
    assert clips.shape == (len(starts), 100, 4)
    assert clips[:, 0, 0].tolist() == starts
    if frames < 100:
        assert (clips[0, frames:] == 0).all()
