"""Audio classification data for `omnisense.train.classification.ClassificationTask`.

Batches are `(fbank: Tensor[B, T, F], labels: Tensor[B])`: normalised Kaldi fbanks (the AST recipe), which
every audio encoder of `video.models` takes. Datasets:
- "folder": `root/{train,val,test}/<class>/*.wav` (what `omnisense data make audio-events` writes), or
  `root/<class>/*` split by file;
- "sonic-pi": the real sonic-pi sample recordings (`omnisense.sample_data("sonic-pi-samples")` when `root` is
  None), class = file-name prefix, a stratified split by file;
- "esc50": ESC-50 layout (`root/meta/esc50.csv`, `root/audio/`), split by folds.
The normalisation statistics are computed on the training split unless given, and are saved with the
weights (`input_spec`), so inference normalises exactly as training did.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import lightning as L
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
        dataset: "folder", "sonic-pi" or "esc50" (see the module docstring).
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
    """

    def __init__(
        self,
        root: str | None = None,
        tiny: bool = False,
        dataset: Literal["folder", "sonic-pi", "esc50"] = "folder",
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
        self.class_names: list[str] = []
        self._data: dict[str, AudioClipDataset] = {}

    # --- which files -------------------------------------------------------------------------------------

    def _tiny_root(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"omnisense-audio-{self.dataset}-"))
        if self.dataset == "folder":
            make_audio_events(folder, seed=self.seed, size="tiny")
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
        common = dict(clip_frames=self.clip_frames, num_mel_bins=self.num_mel_bins)
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
                         mean=float(self.mean), std=float(self.std)).to_dict()

    def _loader(self, split: str) -> DataLoader:
        shuffle = split == "train"
        if split not in self._data:
            split = "test" if split == "val" else "val"  # a tiny split may be empty; fall back to the other
        return DataLoader(self._data[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle
                          and len(self._data[split]) > self.batch_size, num_workers=self.num_workers)



def _csv_folds(csv_path: Path) -> list[str]:
    import csv

    with open(csv_path, newline="") as f:
        return [row["fold"] for row in csv.DictReader(f)]


# --- shipped weights and inference --------------------------------------------------------------------------

def evaluate(model, dataset: AudioClipDataset, batch_size: int = 64) -> dict[str, Any]:
    """Top-1, top-5 and mean class accuracy of `model` on an evaluation dataset (one clip per file)."""
    import torch

    from video.audio.metrics import accuracy, mean_class_accuracy

    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            logits.append(model(x))
            labels.append(y)
    logits_t, labels_t = torch.cat(logits), torch.cat(labels)
    return {"acc1": accuracy(logits_t, labels_t), "acc5": accuracy(logits_t, labels_t, topk=5),
            "macc": mean_class_accuracy(logits_t, labels_t), "files": len(dataset)}


def evaluate_all_clips(model, dataset: AudioClipDataset) -> float:
    """Top-1 accuracy per file when each file's softmax is averaged over all its clips (half-clip hops)."""
    import torch

    from video.audio.frontend import normalize_fbank, sliding_clips

    model.eval()
    correct = 0  # the clips as `AudioSpec.features_of` cuts them, from the dataset's cached fbanks
    with torch.no_grad():
        for fbank, item in zip(dataset.fbanks, dataset.items):
            clips = normalize_fbank(sliding_clips(fbank, dataset.clip_frames), dataset.mean, dataset.std)
            correct += int(model(clips).softmax(-1).mean(0).argmax()) == item.label
    return correct / len(dataset.items)


def mixtures_map(model, root: str | Path, class_names: list[str], spec: dict[str, Any]) -> float:
    """Multi-label mAP on `root/mixtures` (written by the audio-events generator: two or three events per clip).

    A single-label classifier's softmax, averaged over each file's clips, serves as the per-class score.
    """
    import csv

    import torch

    from video.audio.inference import AudioSpec
    from video.audio.io import load_audio
    from video.audio.metrics import mean_average_precision

    folder = Path(root) / "mixtures"
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    index = {name: i for i, name in enumerate(class_names)}
    scores, targets = [], []
    model.eval()
    audio_spec = AudioSpec.from_dict(spec)
    with torch.no_grad():
        for row in rows:
            wave, _ = load_audio(folder / row["filename"], audio_spec.sample_rate)
            scores.append(model(audio_spec.features_of(wave)).softmax(-1).mean(0))
            target = torch.zeros(len(class_names))
            target[[index[name] for name in row["labels"].split(";")]] = 1
            targets.append(target)
    return mean_average_precision(torch.stack(scores), torch.stack(targets))[0]


def export_weights(config: str | Path, ckpt: str | Path, out: str | Path, *, root: str | None = None,
                   licence: str = "trained by omnisense", overwrite: bool = False) -> dict[str, Any]:
    """Evaluate a trained checkpoint on its held-out splits and write it as a weights pair with its metadata.

    The metadata holds the model spec, the categories, the input spec (sample rate, mel bins, clip length,
    normalisation statistics of the training split), the measured val/test metrics and `licence`.
    """
    import yaml

    from omnisense.models import instantiate
    from omnisense.weights import WeightsMeta, checkpoint_state, export_checkpoint

    config = Path(config)
    cfg = yaml.safe_load(config.read_text())
    spec = cfg["model"]["init_args"]["model"]
    data_args = {k: v for k, v in cfg["data"]["init_args"].items()}
    if root is not None:
        data_args["root"] = root
    data = AudioClassificationData(**data_args)
    data.setup()
    model = instantiate(spec)
    model.load_state_dict(checkpoint_state(ckpt)[0])
    metrics = {f"{split}/{k}": v for split in ("val", "test") if split in data._data
               for k, v in evaluate(model, data._data[split]).items()}
    if "test" in data._data:  # as `omnisense classify-audio` sees a file: probabilities averaged over its clips
        metrics["test/acc1_all_clips"] = evaluate_all_clips(model, data._data["test"])
    if data.dataset == "folder" and data.root and (Path(data.root) / "mixtures" / "labels.csv").exists():
        metrics["mixtures/mAP"] = mixtures_map(model, data.root, data.class_names, data.input_spec())
    meta = WeightsMeta(task="audio_classification", model=spec, classes=list(data.class_names),
                       input=data.input_spec(), metrics=metrics, source={"dataset": data.dataset},
                       licence=licence, recipe=str(config))
    path = export_checkpoint(ckpt, out, meta, overwrite=overwrite)
    return {"path": str(path), "metrics": metrics}
