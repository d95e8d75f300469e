"""Evaluate a trained audio checkpoint on its held-out splits and export it to omnisense/shipped/.

    python tools/export_audio_weights.py CONFIG CKPT NAME [--root DATA] [--licence TEXT] [--overwrite]

e.g. `python tools/export_audio_weights.py configs/audio/audio_cnn_small_sonic_pi.yaml \
      runs/audio-cnn-small-sonic-pi/version_0/checkpoints/last.ckpt audio_cnn_small_sonic_pi`

The work is `export_weights` below: a `WeightsMeta` (task audio_classification, the config's model
spec, the classes, the `AudioSpec` with the training split's statistics, val/test metrics, the config as recipe).
The licence is `--licence`, else the one recorded for the shipped NAME in `LICENCES`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from omnisense.train.audio import AudioClassificationData
from video.audio.datasets import AudioClipDataset

LICENCES = {  # the shipped files' data and its licence
    "audio_cnn_small_audio_events": "trained by omnisense on its own generated data; Apache-2.0 like the code",
    "audio_cnn_small_sonic_pi": ("trained by omnisense on the sonic-pi-samples recordings "
                                 "(Debian sonic-pi-samples, CC0)"),
    "audio_cnn_small_real_sounds": ("trained by omnisense on real recordings of registry packages (`omnisense data "
                                    "make real-sounds`): sonic-pi-samples (CC0 and others), chuck-data "
                                    "(GPL-2.0-or-later), asterisk-core-sounds-en (CC-BY-SA-3.0), pocketsphinx-testdata "
                                    "(BSD-2-Clause, LibriVox public domain), opensoundscape (MIT), opencv-doc "
                                    "(Apache-2.0); share-alike terms of the data may reach the weights"),
}
LICENCES["audio_cnn_small_stats_real_sounds"] = LICENCES["audio_cnn_small_real_sounds"]  # the same recordings


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

    from video.audio.frontend import file_statistics, normalize_fbank, sliding_clips, with_file_statistics

    model.eval()
    correct = 0  # the clips as `AudioSpec.features_of` cuts them, from the dataset's cached fbanks
    with torch.no_grad():
        for fbank, item in zip(dataset.fbanks, dataset.items):
            clips = normalize_fbank(sliding_clips(fbank, dataset.clip_frames), dataset.mean, dataset.std)
            if dataset.file_statistics:
                clips = with_file_statistics(clips, file_statistics(fbank), dataset.mean, dataset.std)
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("name", help="file stem under --out-dir")
    parser.add_argument("--root", help="dataset folder (overrides data.init_args.root)")
    parser.add_argument("--licence", help="the weights' licence (default: LICENCES[name], else 'trained by omnisense')")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "omnisense" / "shipped")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    licence = args.licence or LICENCES.get(args.name, "trained by omnisense")
    result = export_weights(args.config, args.ckpt, args.out_dir / f"{args.name}.safetensors", root=args.root,
                            licence=licence, overwrite=args.overwrite)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
