"""Velodyne pcaps as sweeps, decoded by `velodyne-decoder` (extra `velodyne`): VLP-16, VLP-32C, HDL-32E, HDL-64E,
VLS-128, Alpha Prime, with the model detected from the packets and the library's bundled calibrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from perception3d._errors import PointCloudFileError
from perception3d.sensors.sweep import Sweep

INSTALL = "pip install 'omnisense[velodyne]' (velodyne-decoder)"


def read_velodyne(path: str | Path) -> Iterator[Sweep]:
    """The sweeps of a Velodyne pcap (cut at the library's default angle), with per-point time and ring."""
    path = Path(path)
    try:
        import velodyne_decoder as vd
    except ImportError:
        raise PointCloudFileError(path, f"reading Velodyne captures needs velodyne-decoder: {INSTALL}") from None
    if not path.is_file():
        raise PointCloudFileError(path, "no such file")
    return _sweeps(path, vd)


def _sweeps(path: Path, vd) -> Iterator[Sweep]:
    index = 0
    try:
        for stamp, cloud in vd.read_pcap(str(path), as_pcl_structs=True):
            # cloud: structured (N,) with x y z intensity ring time; time is seconds relative to the stamp
            device = getattr(stamp, "device", stamp)
            host = getattr(stamp, "host", None)
            time = cloud["time"].astype(np.float64)
            yield Sweep(xyz=np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1).astype(np.float32),
                        intensity=cloud["intensity"].astype(np.float32), time=time - (time.min() if len(time) else 0),
                        ring=cloud["ring"].astype(np.int16), stamp=float(device) + (float(time.min()) if len(time) else 0),
                        index=index, sensor="Velodyne", host_stamp=float(host) if host is not None else None,
                        extra={"beams": int(cloud["ring"].max()) + 1 if len(cloud) else 0})
            index += 1
    except Exception as exc:
        raise PointCloudFileError(path, f"velodyne-decoder cannot read it: {exc}") from None
    if index == 0:
        raise PointCloudFileError(path, "holds no Velodyne sweep (no 1206-byte Velodyne data packets; an Ouster pcap "
                                        "needs its metadata JSON beside it)")
