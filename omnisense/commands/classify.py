"""`omnisense classify POINTS`: shape classification of one point cloud or mesh with GPSFormer.

Reads .ply .pcd .xyz .npy (points) and .off .obj (meshes, sampled uniformly on the surface), cleans the
input (see perception3d.classification.inference for duplicates, too few points, NaN, empty meshes),
normalises it to the unit sphere and prints the top-k classes; the result goes to a JSON file.

The shipped weights were trained on the procedural shape set (`omnisense data make shapes`): their
classes are parametric shapes (box, cylinder, cone, ..., table, mug, chair), not real object categories.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "classify a point cloud or mesh with GPSFormer (shipped weights: procedural shape classes)"

DEFAULT_WEIGHTS = "gpsformer_elite_shapes"
MESH_EXTENSIONS = (".off", ".obj")
EXTENSIONS = (".ply", ".pcd", ".xyz", ".npy", ".off", ".obj")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("points", type=Path, help="point cloud or mesh: .ply .pcd .xyz .npy .off .obj")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"shipped name or .safetensors file (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--votes", type=int, default=1, help="voting: mean over this many random subsets (default 1)")
    parser.add_argument("--mesh-samples", type=int, default=4096, help="points drawn on a mesh's surface")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-reject", action="store_true",
                        help="give the raw top-k even when the weights' rejection rule finds the evidence weak")


def classify_file(points: Path, *, weights: str | Path = DEFAULT_WEIGHTS, topk: int = 5, votes: int = 1,
                  mesh_samples: int = 4096, seed: int = 0, device: str = "cpu", reject: bool = True) -> dict[str, Any]:
    """The command's work: read the file, load the model, `perception3d.classification.inference.classify`."""
    from omnisense.models import load_model
    from perception3d import PointCloudFileError, PointCloudValueError
    from perception3d.classification.inference import classify
    from perception3d.classification.rejection import Rejection
    from perception3d.io import read_points

    points = Path(points)
    ext = points.suffix.lower()
    if ext not in EXTENSIONS:
        raise PointCloudFileError(points, f"unsupported extension {ext or '(none)'!r}; expected one of {', '.join(EXTENSIONS)}")
    model, meta = load_model(weights, device=device, task="classification")
    cloud = read_points(points, mesh_samples=mesh_samples if ext in MESH_EXTENSIONS else None, seed=seed)
    try:
        result = classify(model, cloud.xyz, spec=meta.transforms(), classes=meta.classes, topk=topk,
                          num_votes=votes, seed=seed, device=device, rejection=Rejection.from_dict(meta.rejection),
                          reject=reject, vocabulary=meta.vocabulary)
    except PointCloudValueError as err:
        raise PointCloudFileError(points, str(err)) from None
    return {"file": str(points), **result, "mesh_sampled": ext in MESH_EXTENSIONS, "weights": str(weights),
            "classes_note": meta.notes.get("classes_note", "")}


def run(args: argparse.Namespace) -> int:
    from omnisense._io import write_json_atomic

    result = classify_file(args.points, weights=args.weights, topk=args.topk, votes=args.votes,
                           mesh_samples=args.mesh_samples, seed=args.seed, device=args.device,
                           reject=not args.no_reject)
    if not result["known"]:
        print(f"{result['label']} (vocabulary: {result['vocabulary']}; {result['rejection']['score']} "
              f"{result['rejection']['value']} against thresholds {result['rejection']['threshold']})")
    for rank, row in enumerate(result["top"], 1):
        print(f"{rank}. {row['class']:<12s} {row['probability']:.3f}")
    notes = []
    if result["duplicates_removed"]:
        notes.append(f"{result['duplicates_removed']} duplicated points removed")
    if result["upsampled"]:
        notes.append(f"fewer distinct points than the model's {result['num_points']}: points repeated")
    if notes:
        print("note: " + "; ".join(notes))
    write_json_atomic(args.output, result)
    print(f"wrote {args.output}")
    return 0
