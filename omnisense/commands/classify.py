"""`omnisense classify POINTS...`: shape classification of point clouds or meshes with GPSFormer.

Reads .ply .pcd .xyz .npy (points) and .off .obj (meshes, sampled uniformly on the surface), cleans each input
(see perception3d.classification.inference for duplicates, too few points, NaN, empty meshes), normalises it to
the unit sphere and writes one `omnisense.classification/1` record per input (top-k classes; docs/outputs.md).
Inputs: files, folders or globs (the batch runner, omnisense.commands._batch).

The shipped weights were trained on the procedural shape set (`omnisense data make shapes`): their
classes are parametric shapes (box, cylinder, cone, ..., table, mug, chair), not real object categories.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnisense.commands._batch import Batch, add_batch_arguments, answer_line, collect_inputs

HELP = "classify point clouds or meshes with GPSFormer (shipped weights: procedural shape classes)"

DEFAULT_WEIGHTS = "gpsformer_elite_shapes"
MESH_EXTENSIONS = (".off", ".obj")
EXTENSIONS = (".ply", ".pcd", ".xyz", ".npy", ".off", ".obj")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("points", nargs="+", help="point clouds or meshes (.ply .pcd .xyz .npy .off .obj), "
                                                  "folders of them, or glob patterns")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name, .safetensors file or Lightning .ckpt (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--votes", type=int, default=1, help="voting: mean over this many random subsets (default 1)")
    parser.add_argument("--mesh-samples", type=int, default=4096, help="points drawn on a mesh's surface")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")
    add_batch_arguments(parser)


def classify_loaded(model, meta, points: Path, *, weights: str | Path = DEFAULT_WEIGHTS, topk: int = 5,
                    votes: int = 1, mesh_samples: int = 4096, seed: int = 0, device: str = "cpu",
                    reject: bool = True) -> dict[str, Any]:
    """One file through a loaded model: read it, `perception3d.classification.inference.classify` (with the
    weights' rejection rule unless `reject` is False), the record."""
    from omnisense.outputs import classification_record
    from perception3d import PointCloudFileError, PointCloudValueError
    from perception3d.classification.inference import classify
    from perception3d.classification.rejection import Rejection
    from perception3d.io import read_points

    points = Path(points)
    ext = points.suffix.lower()
    if ext not in EXTENSIONS:
        raise PointCloudFileError(points, f"unsupported extension {ext or '(none)'!r}; expected one of {', '.join(EXTENSIONS)}")
    cloud = read_points(points, mesh_samples=mesh_samples if ext in MESH_EXTENSIONS else None, seed=seed)
    try:
        result = classify(model, cloud.xyz, spec=meta.transforms(), classes=meta.classes, topk=topk,
                          num_votes=votes, seed=seed, device=device, rejection=Rejection.from_dict(meta.rejection),
                          reject=reject, vocabulary=meta.vocabulary)
    except PointCloudValueError as err:
        raise PointCloudFileError(points, str(err)) from None
    return classification_record(result, input=points, model=weights, mesh_sampled=ext in MESH_EXTENSIONS,
                                 classes_note=meta.notes.get("classes_note", ""))


def classify_file(points: Path, *, weights: str | Path = DEFAULT_WEIGHTS, topk: int = 5, votes: int = 1,
                  mesh_samples: int = 4096, seed: int = 0, device: str = "cpu", reject: bool = True) -> dict[str, Any]:
    """One file, loading the model for it (the batch command loads once; see `classify_loaded`)."""
    from omnisense.models import load_model
    from perception3d import PointCloudFileError

    ext = Path(points).suffix.lower()
    if ext not in EXTENSIONS:
        raise PointCloudFileError(Path(points), f"unsupported extension {ext or '(none)'!r}; expected one of "
                                  f"{', '.join(EXTENSIONS)}")
    model, meta = load_model(weights, device=device, task="classification")
    return classify_loaded(model, meta, points, weights=weights, topk=topk, votes=votes, mesh_samples=mesh_samples,
                           seed=seed, device=device, reject=reject)


def _describe(record: dict[str, Any]) -> str:
    notes = []
    if record["duplicates_removed"]:
        notes.append(f"{record['duplicates_removed']} duplicated points removed")
    if record["upsampled"]:
        notes.append(f"fewer distinct points than the model's {record['num_points']}: points repeated")
    return f"{record['input']}: {answer_line(record)}" + (f" ({'; '.join(notes)})" if notes else "")


def run(args: argparse.Namespace) -> int:
    from omnisense._errors import OmnisenseError
    from omnisense.models import load_model

    if args.topk < 1:
        raise OmnisenseError("--topk must be at least 1")
    return Batch(
        inputs=collect_inputs(args.points, EXTENSIONS), label="clouds",
        load=lambda rt: (*load_model(args.weights, device=rt.device, task="classification"), rt.device),
        process=lambda s, p: classify_loaded(s[0], s[1], p, weights=args.weights, topk=args.topk, votes=args.votes,
                                             mesh_samples=args.mesh_samples, seed=args.seed, device=s[2],
                                             reject=not args.no_reject),
        describe=_describe,
    ).run(args)
