"""Odometry by pairwise registration: each sweep registered to the one before, the transforms chained into poses.

    sweeps = read_sequence("run/velodyne")                     # [K] clouds [N, 3], in order
    odo = register_sequence(sweeps, model=model)               # odo.poses: [K, 4, 4], sweep k -> sweep 0's frame
    write_kitti_poses("poses.txt", odo.poses)                  # one row-major 3 x 4 pose a line (KITTI odometry)

Unlike an odometry method that predicts the next pose from the last motion (KISS-ICP, LOAM), every step is a global
registration: it needs no initial guess and no small motion, and each step carries its own confidence
(`Registration.confidence`), so a step that failed is named rather than silently folded into every later pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from perception3d._errors import PointCloudFileError

__all__ = ["Odometry", "read_sequence", "register_sequence", "write_kitti_poses"]

CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npy", ".bin", ".las", ".laz")


@dataclass
class Odometry:
    """poses: [K, 4, 4] float64, sweep k -> sweep 0's frame (poses[0] is the identity), KITTI's convention;
    steps: the K - 1 registrations, step k mapping sweep k + 1 into sweep k's frame."""

    poses: np.ndarray
    steps: list

    def to_dict(self) -> dict:
        return {"poses": [p[:3].reshape(-1).tolist() for p in self.poses],
                "steps": [{"source": k + 1, "target": k, **s.to_dict()} for k, s in enumerate(self.steps)],
                "registered_steps": int(sum(s.registered for s in self.steps)), "num_steps": len(self.steps)}


def sequence_paths(path: str | Path) -> list[Path]:
    """The cloud files of a sequence folder in name order: the folder's own clouds, or those of its `velodyne/`
    sub-folder (a KITTI odometry sequence)."""
    path = Path(path)
    if not path.is_dir():
        raise PointCloudFileError(path, "a sequence is a folder of clouds or a KITTI sequence folder")
    folder = path / "velodyne" if (path / "velodyne").is_dir() else path
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in CLOUD_SUFFIXES and p.is_file())
    if len(files) < 2:
        raise PointCloudFileError(path, f"a sequence needs at least 2 clouds ({', '.join(CLOUD_SUFFIXES)}), "
                                        f"found {len(files)}")
    return files


def read_sequence(path: str | Path) -> list[np.ndarray]:
    """The clouds [N, 3] (float64, absolute coordinates) of a sequence folder (`sequence_paths`) or of every sweep of
    a lidar capture (.pcap, .osf, Ouster packet .bag: `perception3d.sensors.read_sweeps`)."""
    from perception3d.io import read_points
    from perception3d.registration.pipeline import check_points

    path = Path(path)
    if path.is_file():
        from perception3d.sensors import read_sweeps

        sweeps = [check_points(s.xyz.astype(np.float64), f"{path} sweep {k}") for k, s in enumerate(read_sweeps(path))]
        if len(sweeps) < 2:
            raise PointCloudFileError(path, f"a sequence needs at least 2 sweeps, the capture has {len(sweeps)}")
        return sweeps
    clouds = []
    for p in sequence_paths(path):
        data = read_points(p)
        clouds.append(check_points(data.xyz.astype(np.float64) + data.origin, str(p)))
    return clouds


def register_sequence(sweeps: Iterable[np.ndarray], *, progress=None, **kwargs) -> Odometry:
    """Register each sweep [N, 3] to the one before (`perception3d.registration.register(**kwargs)`: model, method,
    refine, voxel_size, spec...) and chain the transforms: poses[k + 1] = poses[k] @ T(k + 1 -> k).

    Args:
        progress: called with (k, registration) after each step (a progress bar).
    """
    from perception3d.registration.inference import register

    poses, steps, previous = [np.eye(4)], [], None
    for k, sweep in enumerate(sweeps):
        if previous is not None:
            result = register(sweep, previous, **kwargs)
            steps.append(result)
            poses.append(poses[-1] @ result.transform)
            if progress is not None:
                progress(k - 1, result)
        previous = sweep
    if not steps:
        raise ValueError("a sequence needs at least 2 sweeps")
    return Odometry(np.stack(poses), steps)


def write_kitti_poses(path: str | Path, poses: np.ndarray) -> Path:
    """poses [K, 4, 4] as KITTI odometry text (12 numbers a line, row-major 3 x 4), atomically."""
    from perception3d._io import write_bytes_atomic

    lines = "".join(" ".join(f"{v:.9e}" for v in p[:3].reshape(-1)) + "\n" for p in np.asarray(poses, np.float64))
    return write_bytes_atomic(path, lines.encode())
