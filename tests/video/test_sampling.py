from __future__ import annotations

import numpy as np
import pytest

from video._errors import VideoValueError
from video.sampling import dense_clip, segment_clip, test_clips, train_clips


@pytest.mark.parametrize("num_frames", [1, 5, 31, 32, 33, 300])
@pytest.mark.parametrize("num_clips", [1, 3])
def test_train_clips_shape_and_range(num_frames, num_clips):
    rng = np.random.default_rng(0)
    inds = train_clips(num_frames, clip_len=8, frame_interval=4, num_clips=num_clips, rng=rng)
    assert inds.shape == (num_clips, 8)
    assert inds.min() >= 0 and inds.max() < num_frames


def test_train_clip_offsets_stay_in_their_segment():
    # 300 frames, 3 clips of span 32: segments of (300 - 32 + 1) // 3 = 89 frames
    for seed in range(50):
        inds = train_clips(300, clip_len=8, frame_interval=4, num_clips=3, rng=np.random.default_rng(seed))
        for k in range(3):
            assert 89 * k <= inds[k, 0] < 89 * (k + 1)
        np.testing.assert_array_equal(np.diff(inds, axis=1), 4)


def test_train_clips_are_random_test_clips_are_not():
    a = train_clips(300, clip_len=8, frame_interval=2, rng=np.random.default_rng(0))
    b = train_clips(300, clip_len=8, frame_interval=2, rng=np.random.default_rng(1))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(test_clips(300, clip_len=8, frame_interval=2), test_clips(300, clip_len=8, frame_interval=2))


def test_test_clips_match_mmaction2():
    # one clip: the centre; several: evenly spaced from 0 to the last full start
    np.testing.assert_array_equal(test_clips(100, clip_len=4, frame_interval=2)[0], [46, 48, 50, 52])
    inds = test_clips(100, clip_len=4, frame_interval=2, num_clips=3)
    np.testing.assert_array_equal(inds[:, 0], [0, 46, 92])


@pytest.mark.parametrize("mode,expected", [("loop", [8, 9, 0, 1]), ("repeat_last", [8, 9, 9, 9])])
def test_out_of_bound(mode, expected):
    inds = test_clips(10, clip_len=4, frame_interval=1, num_clips=1, out_of_bound=mode)
    assert inds.shape == (1, 4)
    inds = train_clips(10, clip_len=12, frame_interval=1, rng=np.random.default_rng(0), out_of_bound=mode)
    assert inds.max() < 10
    offsets = np.array([8])
    from video.sampling import _indices
    np.testing.assert_array_equal(_indices(offsets, 10, 4, 1, mode)[0], expected)


def test_dense_clip():
    inds = dense_clip(100, clip_len=8, frame_interval=4, view=0, num_views=3)
    np.testing.assert_array_equal(inds, np.round(np.linspace(0, 31, 8)))
    last = dense_clip(100, clip_len=8, frame_interval=4, view=2, num_views=3)
    assert last[0] == 2 * (68 // 2) and last.max() < 100
    short = dense_clip(5, clip_len=8, frame_interval=4, rng=np.random.default_rng(0))
    assert short.max() == 4 and short.min() == 0


def test_segment_clip_one_frame_per_segment():
    inds = segment_clip(80, num_segments=8, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(inds // 10, np.arange(8))
    np.testing.assert_array_equal(segment_clip(80, num_segments=8), np.arange(8) * 10 + 5)
    views = [segment_clip(80, num_segments=8, view=v, num_views=2) for v in range(2)]
    assert not np.array_equal(*views)


def test_bad_settings():
    with pytest.raises(VideoValueError):
        train_clips(0, clip_len=8, rng=np.random.default_rng(0))
    with pytest.raises(VideoValueError):
        test_clips(10, clip_len=0)
