"""Register two clouds: RoITr (with LGR, verified by the descriptors) or FPFH + RANSAC, optional ICP; plot the result.

    model, meta = omnisense.load_model("roitr_small_cgal")
    result = register(source, target, model=model)       # result.transform: [4, 4], SOURCE -> TARGET

`register` takes a model, never a weights path; `omnisense register` reads the files, loads the model and calls it.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception3d._errors import PointCloudValueError
from perception3d._io import write_bytes_atomic
from perception3d.registration.confidence import Confidence

__all__ = ["Registration", "RegistrationSpec", "plot_registration", "register"]

METHODS = ("roitr", "fpfh")
REFINES = ("none", "icp")
POSES = ("verified", "lgr")


def _import_what_register_calls() -> None:
    """Import, with this module, the modules and the library every `register` call needs: open3d (normals, kNN,
    FPFH, ICP; the extension module's load is 0.15-0.4 s of CPU) and the registration modules `register` reaches.

    Left lazy, they were the bulk of a process's first `register` call (first call 2.2x the second on RoITr, 1.4x
    on FPFH, CPU time, 1 thread). Imported here, the first call costs what later ones do and the process as a
    whole is exactly as fast as before: `omnisense bench commands` reports this import as a row of its own, so the
    cost is moved, not hidden. `omnisense --help` never imports this module. Without open3d nothing is imported
    (the references run).
    """
    import importlib

    from perception3d.ops._backend import has_module

    for name in ("pipeline", "classical", "pose", "verify", "_kdtree"):
        importlib.import_module(f"perception3d.registration.{name}")
    if has_module("open3d"):
        from perception3d._open3d import import_open3d

        import_open3d()


_import_what_register_calls()


@dataclass(frozen=True)
class RegistrationSpec:
    """RoITr's input preparation: at most `num_points` points per cloud after the voxel grid (`pipeline.prepare`).

    Outdoor scale: a target whose extent (largest side of its bounding box, the clouds' unit, metres for lidar) is at
    least `sweep_extent` is a sweep or a map, and gets `sweep_points`. At 2048 points a 100-400 m sweep is a 1.3-2 m
    grid, and a 90-degree sector of it keeps a few hundred points; at 8192 the grid is about 0.8 m (1.3 m for the
    OS-1/OS-2 sweeps), and on the lidar bench's low-overlap pairs RoITr + ICP went from 10/16 to 16/16 (without ICP
    1/16 -> 10/16), at about twice the time. Object and room scans (the corridor is 32 m) keep `num_points`.
    """

    num_points: int = 2048
    sweep_points: int = 8192
    sweep_extent: float = 40.0

    def points_for(self, target: np.ndarray) -> int:
        """The number of points for a pair with this TARGET [M, 3]."""
        extent = float(np.ptp(np.asarray(target)[:, :3], axis=0).max())
        return self.sweep_points if extent >= self.sweep_extent else self.num_points

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegistrationSpec":
        return cls(**d)


@dataclass
class Registration:
    """The transform that maps SOURCE into TARGET's frame, and how well it fits.

    transform: [4, 4] float64, row-major, in the clouds' unit. fitness: the share of source points within
    1.5 voxels of a target point after the transform; inlier_rmse: their RMS distance (the clouds' unit).
    confidence: overlap, descriptor fitness and inlier ratio, and `registered`, the calibrated decision
    (`perception3d.registration.confidence`).
    """

    transform: np.ndarray
    fitness: float
    inlier_rmse: float
    num_correspondences: int
    method: str
    runtime_s: float
    voxel_size: float
    pose: str | None = None
    confidence: Confidence | None = None

    @property
    def registered(self) -> bool:
        """Whether the calibrated confidence trusts the transform (False when it was not measured)."""
        return self.confidence is not None and self.confidence.registered

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["transform"] = np.asarray(self.transform, dtype=np.float64).tolist()
        if self.pose is None:
            del record["pose"]
        del record["confidence"]
        if self.confidence is not None:
            conf = self.confidence.to_dict()
            record["registered"] = conf.pop("registered")
            record["confidence"] = conf
        return record


def register(source: np.ndarray, target: np.ndarray, *, model=None, method: str = "roitr", refine: str = "none",
             pose: str = "verified", voxel_size: float | None = None, spec: RegistrationSpec = RegistrationSpec(),
             seed: int = 0, device: str = "cpu") -> Registration:
    """Register SOURCE [N, 3] to TARGET [M, 3] (float64, the same unit).

    Args:
        model: a RoITr model (`omnisense.load_model("roitr_small_cgal")[0]`); needed for method "roitr".
        method: "roitr" or "fpfh" (FPFH + RANSAC, open3d).
        refine: "none" or "icp" (point-to-plane ICP from the estimate).
        pose: RoITr's pose: "verified" (LGR's hypotheses checked against the point descriptors) or "lgr" (LGR's
            choice by inlier count, as in the paper).
        voxel_size: in the clouds' unit; default: the size that leaves about `spec.points_for(target)` target
            points (both methods).
        spec: the weights' input spec (`meta.transforms()`).
    """
    from perception3d.registration.classical import evaluate_alignment, fpfh_ransac, icp_refine
    from perception3d.registration.confidence import measure
    from perception3d.registration.pipeline import register_roitr

    for name, value, allowed in (("method", method, METHODS), ("refine", refine, REFINES), ("pose", pose, POSES)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if voxel_size is not None and not voxel_size > 0:
        raise PointCloudValueError(f"voxel size must be positive, got {voxel_size}")
    start = time.perf_counter()
    num_points = spec.points_for(target)
    if method == "fpfh":
        result = fpfh_ransac(source, target, voxel_size=voxel_size, num_points=num_points, seed=seed)
    else:
        if model is None:
            raise ValueError("method 'roitr' needs a model: omnisense.load_model('roitr_small_cgal')")
        result = register_roitr(model, source, target, voxel_size=voxel_size, num_points=num_points,
                                verify=pose == "verified", seed=seed, device=device)
    transform = result.transform
    if refine == "icp":
        transform = icp_refine(source, target, transform, result.voxel_size)
    fitness, rmse = evaluate_alignment(source, target, transform, 1.5 * result.voxel_size)
    confidence = measure(source, target, transform, result.voxel_size, src_corr=result.src_corr,
                         tgt_corr=result.tgt_corr, seed=seed)
    return Registration(transform=np.asarray(transform, dtype=np.float64), fitness=float(fitness),
                        inlier_rmse=float(rmse), num_correspondences=int(len(result.src_corr)),
                        method=method if refine == "none" else f"{method}+icp",
                        runtime_s=time.perf_counter() - start, voxel_size=float(result.voxel_size),
                        pose=pose if method == "roitr" else None, confidence=confidence)


def plot_registration(source: np.ndarray, target: np.ndarray, transform: np.ndarray, path: str | Path,
                      title: str = "") -> Path:
    """Two 3D panels written to a PNG: the clouds as given (source red, target blue) and after moving the source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from perception3d.registration.metrics import transform_points

    rng = np.random.default_rng(0)

    def thin(p):
        return p[rng.choice(len(p), min(len(p), 6000), replace=False)]

    src, tgt = thin(np.asarray(source)), thin(np.asarray(target))
    fig = plt.figure(figsize=(11, 5.2))
    for i, (name, s) in enumerate((("before", src), ("after", transform_points(src, np.asarray(transform))))):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        ax.scatter(*tgt.T, s=0.6, c="tab:blue", label="target")
        ax.scatter(*s.T, s=0.6, c="tab:red", label="source")
        ax.set_title(name)
        ax.set_axis_off()
        both = np.concatenate([tgt, s])
        centre, half = both.mean(0), np.ptp(both, axis=0).max() / 2
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        if i == 0:
            ax.legend(loc="upper left", markerscale=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())
