"""The sweep record and the dispatch over native lidar captures (`.pcap`, `.osf`; Ouster packet `.bag`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from perception3d._errors import PointCloudFileError

# what read_sweeps reads itself; ROS bags and MCAP files of decoded messages are fusion.logs'
CAPTURE_SUFFIXES = (".pcap", ".osf")


@dataclass
class Sweep:
    """One revolution of a spinning lidar.

    Args:
        xyz: `(N, 3)` float32 points in the sensor frame, metres (returns with no range are dropped).
        intensity: `(N,)` float32, the sensor's own scale (Ouster reflectivity 0-255, Velodyne 0-255).
        time: `(N,)` float64 seconds of each point after `stamp` (0 for the first firing).
        ring: `(N,)` int16 beam index, 0 = the first beam of the sensor's table.
        stamp: seconds of the sweep's first point on the sensor's clock (Ouster: its timestamp mode; Velodyne:
            the packet's device time).
        index: position of the sweep in its capture, from 0.
        sensor: the sensor in words ("Ouster OS-1-128 122201000998 v2.3.0 1024x10").
        host_stamp: seconds (Unix time) at which the capturing host received the sweep's first packet, if known.
        extra: further per-sweep facts (frame id, beams, columns).
    """

    xyz: np.ndarray
    intensity: np.ndarray
    time: np.ndarray
    ring: np.ndarray
    stamp: float
    index: int
    sensor: str
    host_stamp: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyz)
        if self.xyz.shape != (n, 3):
            raise ValueError(f"Sweep.xyz must be (N, 3), got {self.xyz.shape}")
        for name in ("intensity", "time", "ring"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Sweep.{name} must be ({n},), got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.xyz)

    def points(self) -> np.ndarray:
        """float32 `(N, 4)` x, y, z, intensity: what the detectors read (`perception3d.detection.data.read_scan`)."""
        return np.concatenate([self.xyz, self.intensity[:, None]], axis=1).astype(np.float32)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last point."""
        return float(self.time.max()) if len(self.time) else 0.0


def _vendor(path: Path, vendor: str) -> str:
    if not path.is_file():
        raise PointCloudFileError(path, "no such file")
    suffix = path.suffix.lower()
    if vendor != "auto":
        if vendor not in ("ouster", "velodyne"):
            raise PointCloudFileError(path, f"unknown lidar vendor {vendor!r} (ouster, velodyne)")
        return vendor
    if suffix in (".osf", ".bag", ".mcap"):
        return "ouster"
    if suffix == ".pcap":
        from perception3d.sensors.ouster import find_metadata

        # an Ouster pcap carries no calibration: its JSON metadata lies beside it; a Velodyne pcap needs none
        return "ouster" if find_metadata(path) is not None else "velodyne"
    raise PointCloudFileError(path, f"not a lidar capture ({suffix!r}; reads .pcap, .osf)")


def read_sweeps(path: str | Path, *, vendor: str = "auto", meta: str | Path | None = None,
                only: int | None = None) -> Iterator[Sweep]:
    """The sweeps of a capture, in order.

    Args:
        path: an Ouster `.pcap` (metadata JSON beside it, or `meta`), `.osf`, or Ouster packet `.bag`; a Velodyne
            `.pcap`.
        vendor: "auto" (an Ouster pcap is one with metadata beside it), "ouster" or "velodyne".
        meta: the Ouster metadata JSON, when it is not beside the pcap.
        only: yield only the sweep of this index (an Ouster capture skips converting the others).
    """
    path = Path(path)
    which = "ouster" if meta is not None else _vendor(path, vendor)
    if which == "ouster":
        from perception3d.sensors.ouster import read_ouster

        return read_ouster(path, meta=meta, only=only)
    from perception3d.sensors.velodyne import read_velodyne

    return (s for s in read_velodyne(path) if only is None or s.index == only)


def read_sweep(path: str | Path, index: int = 0, **kwargs) -> Sweep:
    """Sweep `index` (from 0) of a capture; see `read_sweeps`."""
    if index < 0:
        raise PointCloudFileError(path, f"sweep index {index} is negative")
    for sweep in read_sweeps(path, only=index, **kwargs):
        return sweep
    raise PointCloudFileError(path, f"has {capture_info(path, **kwargs)['sweeps']} sweeps; there is no sweep {index}")


def capture_info(path: str | Path, **kwargs) -> dict[str, Any]:
    """What a capture holds: sensor, beams, columns, number of sweeps, points per sweep and time span."""
    sweeps = list(read_sweeps(path, **kwargs))
    if not sweeps:
        raise PointCloudFileError(path, "holds no complete sweep")
    first, last = sweeps[0], sweeps[-1]
    return {"file": str(path), "sensor": first.sensor, **{k: v for k, v in first.extra.items() if k != "frame_id"},
            "sweeps": len(sweeps), "points": [len(s) for s in sweeps],
            "start": first.stamp, "end": last.stamp + last.duration,
            "duration_s": last.stamp + last.duration - first.stamp}


def read_kitti_poses(path: str | Path) -> np.ndarray:
    """A KITTI odometry pose file (one row-major 3 x 4 pose per line) -> float64 `(K, 4, 4)`, sensor to world."""
    path = Path(path)
    if not path.is_file():
        raise PointCloudFileError(path, "no such file")
    try:
        rows = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise PointCloudFileError(path, f"not a KITTI pose file ({exc})") from None
    if rows.shape[1] != 12 or not np.isfinite(rows).all():
        raise PointCloudFileError(path, f"a KITTI pose file has 12 finite numbers a line, not {rows.shape[1]}")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :] = rows.reshape(-1, 3, 4)
    return poses


def relative_pose(poses: np.ndarray, source: int, target: int) -> np.ndarray:
    """float64 `(4, 4)` that maps sweep `source`'s points into sweep `target`'s frame: inv(P_target) @ P_source."""
    return np.linalg.inv(poses[target]) @ poses[source]
