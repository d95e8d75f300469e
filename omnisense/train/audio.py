"""Audio classification data for `omnisense.train.classification.ClassificationTask`.

Batches are `(fbank: Tensor[B, T, F], labels: Tensor[B])`: normalised Kaldi fbanks (the AST recipe), which
every audio encoder of `video.models` takes. Datasets:
- "folder": `root/{train,val,test}/<class>/*.wav` (what `omnisense data make audio-events` writes), or
  `root/<class>/*` split by file;
- "sonic-pi": the real sonic-pi sample recordings (`omnisense.sample_data("sonic-pi-samples")` when `root` is
  None), class = file-name prefix, a stratified split by file;
- "esc50": ESC-50 layout (`root/meta/esc50.csv`, `root/audio/`), split by folds;
- "real-sounds": `root/<class>/*.wav` as `omnisense data make real-sounds` writes it (`omnisense.train.real_sounds`),
  split by file like an unsplit "folder"; its tiny stand-in has the same five class folders.
The normalisation statistics are computed on the training split unless given, and are saved with the
weights (`input_spec`), so inference normalises exactly as training did.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from omnisense._errors import FileProblem
from omnisense.train._splits import SplitLoaders
from video.audio.datasets import (
    AudioClipDataset,
    AudioItem,
    csv_items,
    folder_items,
    make_audio_events,
    make_prefix_like,
    prefix_items,
    split_by_file,
)

SPLITS = ("train", "val", "test")


class AudioClassificationData(SplitLoaders, L.LightningDataModule):
    """Fixed-length fbank clips of labelled audio files.

    Args:
        root: the dataset folder; None for "sonic-pi" uses the cached sample data.
        tiny: generate a tiny dataset of the same layout in a temporary folder (config smoke tests).
        dataset: "folder", "sonic-pi", "esc50" or "real-sounds" (see the module docstring).
        clip_seconds: clip length (1.0 s = 100 frames of 10 ms).
        num_mel_bins: mel bands (AST: 128).
        batch_size: clips per batch.
        num_workers: DataLoader workers (0: load in the main process; the fbanks are cached in memory).
        samples_per_file: random crops per training file per epoch (small real sets need several).
        test_fraction, val_fraction: split by file for "sonic-pi" and an unsplit "folder".
        esc50_val_fold, esc50_test_fold: ESC-50 folds held out (the rest train).
        gain_db, noise_prob, freq_mask, time_mask: training augmentation (see `AudioClipDataset`).
        mean, std: normalisation statistics; None: computed on the training split.
        seed: split and generator seed.
        balanced: draw training clips with each class equally likely (with replacement), for sets whose classes
            differ several-fold in size.
        file_statistics: follow each clip with its whole file's per-bin fbank mean and std (for
            `video.models.audio_cnn.StatsAudioCNN`); saved in the input spec, so inference does the same.
    """

    def __init__(
        self,
        root: str | None = None,
        tiny: bool = False,
        dataset: Literal["folder", "sonic-pi", "esc50", "real-sounds"] = "folder",
        clip_seconds: float = 1.0,
        num_mel_bins: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        samples_per_file: int = 1,
        test_fraction: float = 0.25,
        val_fraction: float = 0.15,
        esc50_val_fold: int = 4,
        esc50_test_fold: int = 5,
        gain_db: float = 6.0,
        noise_prob: float = 0.3,
        freq_mask: int = 24,
        time_mask: int = 20,
        mean: float | None = None,
        std: float | None = None,
        seed: int = 0,
        balanced: bool = False,
        file_statistics: bool = False,
    ):
        super().__init__()
        self.root, self.tiny, self.dataset = root, tiny, dataset
        self.clip_frames = int(round(clip_seconds * 100))
        self.num_mel_bins = num_mel_bins
        self.batch_size, self.num_workers = batch_size, num_workers
        self.samples_per_file = samples_per_file
        self.test_fraction, self.val_fraction = test_fraction, val_fraction
        self.esc50_val_fold, self.esc50_test_fold = esc50_val_fold, esc50_test_fold
        self.augment = dict(gain_db=gain_db, noise_prob=noise_prob, freq_mask=freq_mask, time_mask=time_mask)
        self.mean, self.std = mean, std
        self.seed = seed
        self.balanced = balanced
        self.file_statistics = file_statistics
        self.class_names: list[str] = []
        self._data: dict[str, AudioClipDataset] = {}

    # --- which files -------------------------------------------------------------------------------------

    def _tiny_root(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"omnisense-audio-{self.dataset}-"))
        if self.dataset == "folder":
            make_audio_events(folder, seed=self.seed, size="tiny")
        elif self.dataset == "real-sounds":  # generated stand-ins in the real set's five class folders
            from omnisense.train.real_sounds import CLASSES

            make_audio_events(folder / "events", seed=self.seed, size="tiny")
            sources = sorted(p for p in (folder / "events" / "train").iterdir() if p.is_dir())
            for name, src in zip(CLASSES, sources):
                src.rename(folder / name)
            shutil.rmtree(folder / "events")
        elif self.dataset == "sonic-pi":
            make_prefix_like(folder, seed=self.seed)
        else:  # a miniature ESC-50: generated clips listed in meta/esc50.csv, one fold per file index
            summary = make_audio_events(folder / "events", seed=self.seed, size="tiny")
            (folder / "meta").mkdir()
            rows = ["filename,fold,target,category"]
            (folder / "audio").mkdir()
            for target, name in enumerate(summary["classes"]):
                for i, src in enumerate(sorted((folder / "events" / "train" / name).glob("*.wav"))[:3]):
                    dst = folder / "audio" / f"{name}-{i}.wav"
                    dst.write_bytes(src.read_bytes())
                    rows.append(f"{dst.name},{(self.esc50_val_fold, self.esc50_test_fold, 1)[i]},{target},{name}")
            (folder / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
        return folder

    def split_items(self) -> tuple[dict[str, list[AudioItem]], list[str]]:
        """The files of each split and the class names."""
        root = self._tiny_root() if self.tiny else (Path(self.root) if self.root is not None else None)
        if self.dataset == "sonic-pi":
            if root is None:
                from omnisense import sample_data

                root = sample_data("sonic-pi-samples")
            items, names = prefix_items(root)
            return split_by_file(items, test_fraction=self.test_fraction, val_fraction=self.val_fraction,
                                 seed=self.seed), names
        if root is None:
            raise FileProblem(Path("."), f"dataset {self.dataset!r} needs `root`; for generated audio events: "
                              "`omnisense data make audio-events --out DIR`")
        if self.dataset == "esc50":
            csv_path = root / "meta" / "esc50.csv"
            held_out = (self.esc50_val_fold, self.esc50_test_fold)
            _, names = csv_items(csv_path, root / "audio")
            folds = {int(r) for r in _csv_folds(csv_path)}
            split = {
                "train": csv_items(csv_path, root / "audio", folds=tuple(sorted(folds - set(held_out))))[0],
                "val": csv_items(csv_path, root / "audio", folds=(self.esc50_val_fold,))[0],
                "test": csv_items(csv_path, root / "audio", folds=(self.esc50_test_fold,))[0],
            }
            return split, names
        if all((root / s).is_dir() for s in SPLITS):
            split, names = {}, None
            for s in SPLITS:
                split[s], split_names = folder_items(root / s)
                if names is not None and split_names != names:
                    raise FileProblem(root / s, f"class folders {split_names} differ from train's {names}")
                names = split_names
            return split, names
        items, names = folder_items(root)
        return split_by_file(items, test_fraction=self.test_fraction, val_fraction=self.val_fraction,
                             seed=self.seed), names

    # --- Lightning -----------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self._data:
            return
        split, self.class_names = self.split_items()
        common = dict(clip_frames=self.clip_frames, num_mel_bins=self.num_mel_bins,
                      file_statistics=self.file_statistics)
        train = AudioClipDataset(split["train"], self.class_names, train=True, mean=self.mean, std=self.std,
                                 samples_per_file=self.samples_per_file, **common, **self.augment)
        self.mean, self.std = train.mean, train.std
        self._data["train"] = train
        for s in ("val", "test"):
            if split[s]:
                self._data[s] = AudioClipDataset(split[s], self.class_names, mean=self.mean, std=self.std, **common)

    def state_dict(self) -> dict[str, Any]:
        # Saved in every Lightning checkpoint, so the statistics a model was trained with travel with it.
        return {"class_names": self.class_names, "input_spec": self.input_spec()}

    def input_spec(self) -> dict[str, Any]:
        """What inference needs to reproduce the training features (`AudioSpec`, saved with the weights)."""
        from video.audio.inference import AudioSpec

        return AudioSpec(sample_rate=16000, num_mel_bins=self.num_mel_bins, target_frames=self.clip_frames,
                         mean=float(self.mean), std=float(self.std), file_statistics=self.file_statistics).to_dict()

    def _loader(self, split: str) -> DataLoader:
        shuffle = split == "train"
        if split not in self._data:
            split = "test" if split == "val" else "val"  # a tiny split may be empty; fall back to the other
        data = self._data[split]
        sampler = None
        if shuffle and self.balanced:
            labels = torch.tensor(data.labels())  # per file; the dataset's index runs over the files repeatedly
            weight = (1.0 / torch.bincount(labels).float())[labels].repeat(len(data) // len(labels))
            sampler = torch.utils.data.WeightedRandomSampler(weight.double(), len(data), replacement=True,
                                                             generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          drop_last=shuffle and len(data) > self.batch_size, num_workers=self.num_workers)


def _csv_folds(csv_path: Path) -> list[str]:
    import csv

    with open(csv_path, newline="") as f:
        return [row["fold"] for row in csv.DictReader(f)]


# --- shipped weights and inference --------------------------------------------------------------------------
