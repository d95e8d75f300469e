"""Shape classification data for the engine: the procedural shape set as a LightningDataModule.

Batches are `(points [B, num_points, 3], labels [B])`, the form `ClassificationTask` passes to GPSFormer.
The validation split is a fixed 10% of the training file (every 10th sample); the test split is the
held-out `test.npz`, generated from an independent random stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnisense._errors import FileProblem
from omnisense.weights import checkpoint_state
from omnisense.train._splits import CloudSplitsData, generated_or_root


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation about the up (z) axis by `angle` radians: [3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def augment_cloud(points: np.ndarray, num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation (PointMLP's plus a rotation about up): a random subset of `num_points`, random yaw,
    per-axis scale in [0.8, 1.25] and Gaussian jitter (sigma 0.01, clipped at 0.05).

    Returns the augmented points [num_points, 3] float32 and the indices of the chosen points.
    """
    choice = rng.choice(len(points), num_points, replace=False)
    pts = points[choice] @ yaw_matrix(rng.uniform(0, 2 * np.pi)).T
    pts = pts * rng.uniform(0.8, 1.25, size=3).astype(np.float32)
    pts = pts + np.clip(rng.normal(scale=0.01, size=pts.shape), -0.05, 0.05).astype(np.float32)
    return pts.astype(np.float32), choice


class PointCloudSet(Dataset):
    """Fixed-size clouds with labels; training augmentation as in PointMLP plus a rotation about up.

    Args:
        points: [S, N, 3] float32, unit-sphere normalised.
        labels: [S] int64.
        num_points: points per returned cloud (<= N): a random subset when augmenting, else the first ones
            (the stored order is already random).
        augment: random yaw, per-axis scale in [0.8, 1.25] and Gaussian jitter (sigma 0.01, clipped at 0.05).
        seed: of the augmentation stream (mixed with the sample index and the epoch draw).
    """

    def __init__(self, points: np.ndarray, labels: np.ndarray, *, num_points: int, augment: bool, seed: int = 0):
        if num_points > points.shape[1]:
            raise ValueError(f"num_points {num_points} exceeds the {points.shape[1]} points stored per sample")
        self.points, self.labels = points, labels
        self.num_points, self.augment = num_points, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        pts = self.points[i]
        if not self.augment:
            return torch.from_numpy(np.ascontiguousarray(pts[: self.num_points])), torch.tensor(self.labels[i])
        pts, _ = augment_cloud(pts, self.num_points, self.rng)
        return torch.from_numpy(pts), torch.tensor(self.labels[i])


class ShapesDataModule(CloudSplitsData):
    """The procedural shape set written by `omnisense data make shapes --out ROOT` (train.npz, test.npz,
    classes.txt); `tiny` generates 12 classes x 4 train / 2 test at 256 points. Arguments: see CloudSplitsData;
    augmentation: see PointCloudSet."""

    classes: tuple[str, ...] = ()

    def setup(self, stage: str | None = None) -> None:
        from perception3d.classification import read_shapes, write_shapes

        if self.sets:
            return
        folder = generated_or_root(self.root, self.tiny, generator="shapes", write=write_shapes, seed=self.seed)
        train, test = read_shapes(folder, "train"), read_shapes(folder, "test")
        n = min(self.num_points, train.points.shape[1]) if self.tiny else self.num_points
        self.classes = train.classes
        is_val = self.validation_rows(len(train))
        self.sets["train"] = PointCloudSet(train.points[~is_val], train.labels[~is_val], num_points=n,
                                           augment=self.augment, seed=self.seed)
        self.sets["val"] = PointCloudSet(train.points[is_val], train.labels[is_val], num_points=n, augment=False)
        self.sets["test"] = PointCloudSet(test.points, test.labels, num_points=n, augment=False)


# ---- evaluation, robustness and export ----------------------------------------------------------------

def build_from_config(config: dict):
    """The GPSFormer of a resolved training config (config.yaml of a run): (model, init_args, class_names, num_points)."""
    from perception3d.models.gpsformer import GPSFormer

    task = config["model"]["init_args"]
    spec = task["model"]
    if not spec["class_path"].endswith("GPSFormer"):
        raise FileProblem(Path("config.yaml"), f"model {spec['class_path']} is not GPSFormer")
    init_args = dict(spec.get("init_args") or {})
    for key in ("widths", "radii", "max_counts", "head_hidden"):
        if key in init_args:
            init_args[key] = list(init_args[key])
    return GPSFormer(**init_args), init_args, list(task.get("class_names") or []), int(config["data"]["init_args"]["num_points"])


def load_run(run_dir: str | Path, ckpt: str = "last.ckpt"):
    """(model in eval mode, init_args, class names, num_points) from a run folder's config.yaml and checkpoint."""
    import yaml

    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model, init_args, classes, num_points = build_from_config(config)
    model.load_state_dict(checkpoint_state(run_dir / "checkpoints" / ckpt)[0])
    return model.eval(), init_args, classes, num_points


@torch.no_grad()
def predict_set(model, points: np.ndarray, *, batch_size: int = 32, num_votes: int = 1, seed: int = 0) -> np.ndarray:
    """Class probabilities [S, K] for clouds [S, N, 3]; votes as perception3d.classification.vote_predict."""
    from perception3d.classification import vote_predict

    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(points), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size], dtype=np.float32))
        out.append(vote_predict(model, x, num_votes=num_votes, generator=generator))
    return torch.cat(out).numpy()


def scores(prob: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    from perception3d.classification import mean_class_accuracy, overall_accuracy

    pred = prob.argmax(-1)
    return {"oa": overall_accuracy(pred, labels), "macc": mean_class_accuracy(pred, labels, num_classes)}


def _perturbed(points: np.ndarray, kind: str, value: float, num_points: int, seed: int) -> np.ndarray:
    """The test clouds [S, N, 3] under one perturbation, resampled to num_points: [S, num_points, 3]."""
    from perception3d.classification import normalize_unit_sphere
    from perception3d.classification.shapes import partial_view

    rng = np.random.default_rng(seed)
    out = []
    for cloud in points:
        n = int(value) if kind == "points" else num_points
        if kind == "yaw":
            cloud = cloud @ yaw_matrix(np.deg2rad(value)).T
        elif kind == "tilt":  # rotation about the x axis: leaves the upright pose the training saw
            a = np.deg2rad(value)
            rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]], dtype=np.float32)
            cloud = cloud @ rot.T
        elif kind == "noise":
            cloud = normalize_unit_sphere(cloud + rng.normal(scale=value, size=cloud.shape))
        elif kind == "partial" and value > 0:
            view = rng.normal(size=3)
            view[2] = abs(view[2]) * 0.5
            visible = partial_view(cloud, view)
            if len(visible) >= 32:
                cloud = normalize_unit_sphere(visible)
        if len(cloud) >= n:
            cloud = cloud[rng.choice(len(cloud), n, replace=False)]
        else:
            cloud = np.concatenate([cloud, cloud[rng.choice(len(cloud), n - len(cloud))]])
        out.append(cloud.astype(np.float32))
    return np.stack(out)


ROBUSTNESS: dict[str, tuple[float, ...]] = {
    "none": (0,),  # the same clouds, unperturbed (a random subset of num_points of the stored points)
    "points": (128, 512, 1024),
    "yaw": (90, 180),
    "tilt": (90,),
    "noise": (0.02, 0.04),
    "partial": (1.0,),
}


def evaluate_run(run_dir: str | Path, root: str | Path, *, votes: int = 5, robustness: bool = True,
                 robustness_samples: int | None = None, seed: int = 0) -> dict:
    """OA and mAcc of a trained run on the held-out test split, with and without voting, and robustness.

    Robustness runs on the first `robustness_samples` test clouds (all by default), each perturbation
    applied to every one of them: point count (the model sees n points), rotation about up (yaw, degrees),
    a tilt about a horizontal axis (never seen in training), Gaussian noise (sigma, unit-sphere units)
    and a single-view partial scan (`partial_view` from a random direction above the horizon).
    """
    from perception3d.classification import read_shapes

    model, init_args, classes, num_points = load_run(run_dir)
    torch.manual_seed(seed)
    test = read_shapes(root, "test")
    k = len(test.classes)
    base = np.ascontiguousarray(test.points[:, :num_points])
    result: dict = {"test_samples": len(test), "num_points": num_points,
                    "parameters": int(sum(p.numel() for p in model.parameters()))}
    result["single"] = scores(predict_set(model, base), test.labels, k)
    if votes > 1:
        result[f"vote{votes}"] = scores(predict_set(model, base, num_votes=votes, seed=seed), test.labels, k)
    if robustness:
        rows = []
        s = robustness_samples or len(test)
        result["robustness_samples"] = s
        for kind, values in ROBUSTNESS.items():
            for value in values:
                pts = _perturbed(test.points[:s], kind, value, num_points, seed)
                rows.append({"perturbation": kind, "value": value, **scores(predict_set(model, pts), test.labels[:s], k)})
        result["robustness"] = rows
    return result


# ---- the demo part --------------------------------------------------------------------------------------

# Real CGAL meshes: primitives whose type is one of the procedural classes, then objects that are none of them.
