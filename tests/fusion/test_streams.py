"""Aligning asynchronous streams: rates, clock offsets and drift, dropped and duplicated frames."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.streams import ClockModel, align_to_grid, audio_chunks, make_grid


@pytest.mark.parametrize("rate,offset", [(10.0, 0.37), (15.0, -0.21), (29.97, 1.234), (7.5, 0.45)])
def test_different_rates_and_known_offset_align_within_one_frame(rate, offset):
    """A camera whose clock starts `offset` late: after the clock model, every grid time gets a frame whose
    true time is within one frame period of it."""
    true_event_times = np.arange(0, 12, 1 / rate)                    # when each frame really happened
    sensor_times = true_event_times - offset                         # what the sensor stamped
    clock = ClockModel(offset=offset)
    grid = make_grid(0.5, 11.5, 2.5)
    idx, valid = align_to_grid(clock.to_true(sensor_times), grid, tolerance=0.2)
    assert valid.all()
    assert np.abs(true_event_times[idx] - grid).max() <= 1 / rate / 2 + 1e-9
    # Without the clock model the same frames are off by the offset (the test can fail):
    idx_raw, _ = align_to_grid(sensor_times, grid, tolerance=0.2)
    assert np.abs(true_event_times[idx_raw] - grid).max() > min(abs(offset), 1 / rate)


def test_drift_is_corrected():
    scale = 1 + 2e-3  # a sensor clock running 0.2 % slow
    true = np.arange(0, 60, 0.1)
    sensor = (true - 0.3) / scale
    clock = ClockModel.fit(sensor[[0, -1]], true[[0, -1]])
    grid = make_grid(1, 59, 1.0)
    idx, valid = align_to_grid(clock.to_true(sensor), grid, tolerance=0.05)
    assert valid.all() and np.abs(true[idx] - grid).max() < 0.05 + 1e-9
    idx0, _ = align_to_grid(sensor + 0.3, grid, tolerance=0.05)  # offset only: drift accumulates to 0.12 s
    assert np.abs(true[idx0] - grid).max() > 0.09


def test_dropped_frames_become_invalid_and_duplicates_collapse():
    t = np.arange(0, 5, 0.1)
    dropped = np.concatenate([t[:10], t[30:]])          # 1.0 .. 2.9 s missing
    dup = np.concatenate([dropped, dropped[5:8]])       # three repeated frames, appended out of order
    grid = np.array([0.5, 1.5, 2.5, 3.5])
    idx, valid = align_to_grid(dup, grid, tolerance=0.05)
    assert valid.tolist() == [True, False, False, True]
    assert np.allclose(dup[idx[valid]], [0.5, 3.5])
    assert (idx[valid] < len(dropped)).all()            # the first copy of a duplicate is chosen


def test_empty_stream():
    idx, valid = align_to_grid(np.array([]), np.array([0.0, 1.0]), 0.1)
    assert not valid.any()


def test_audio_chunks_follow_the_clock():
    rate = 1000
    samples = np.arange(5000, dtype=np.float32)           # value = sensor sample index
    clock = ClockModel(offset=1.0)                        # sensor t=0 is true t=1
    chunks, valid = audio_chunks(samples, rate, 0.0, clock, np.array([0.5, 2.0, 5.9, 7.0]), chunk=0.2)
    assert valid.tolist() == [False, True, True, False]
    assert chunks[1, 100] == pytest.approx(1000)          # true 2.0 s = sensor 1.0 s = sample 1000


def test_real_footage_views_realign(sample_data, tmp_path):
    """Three crops of OpenCV's vtest.avi, re-timed (5 fps view, a view starting 1 s late on its own clock), are
    aligned by the clocks: the overlapping strip of the centre and right views then shows the same moment."""
    from fusion.recordings.real import make_vtest_views
    from fusion.streams import read_recording

    src = sample_data("opencv-samples") / "examples" / "data" / "vtest.avi"
    rec = read_recording(make_vtest_views(tmp_path, source=src, seconds=12.0), frame_size=None)
    grid = make_grid(1.2, 11.0, 2.5)
    aligned = rec.align(grid)
    assert all(v.all() for v in aligned.valid.values())
    centre, right = rec.stream("centre"), rec.stream("right")
    strip_c = centre.data[aligned.index["centre"]][:, :, 96:192].astype(float)  # original columns 384..576
    strip_r = right.data[aligned.index["right"]][:, :, 0:96].astype(float)
    err = np.abs(strip_c - strip_r).mean()
    # ignoring the clock puts the right view 1 s off: people have moved, the strips differ more
    wrong = right.data[np.clip(aligned.index["right"] + 10, 0, len(right.data) - 1)][:, :, 0:96].astype(float)
    assert err < np.abs(strip_c - wrong).mean()
    assert err < 8.0
