"""Ouster captures (pcap + metadata JSON, OSF, packet bags) as sweeps, decoded by `ouster-sdk` (extra `ouster`).

Points come from the SDK's own lookup table (`XYZLut`: beam angles, beam-origin offset and the lidar-to-sensor
transform of the metadata), so they are in the sensor frame, metres. Per-point time is the measurement time of the
point's column (Ouster fires a whole column at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from perception3d._errors import PointCloudFileError
from perception3d.sensors.sweep import Sweep

INSTALL = "pip install 'omnisense[ouster]' (ouster-sdk)"


def _sdk(path: Path):
    try:
        from ouster.sdk import core, open_source
    except ImportError:
        raise PointCloudFileError(path, f"reading Ouster captures needs ouster-sdk: {INSTALL}") from None
    return core, open_source


def find_metadata(path: Path) -> list[str] | None:
    """The metadata JSON files ouster-sdk would use for a pcap (its own prefix matching), or None."""
    try:
        from ouster.sdk.util import resolve_metadata_multi
    except ImportError:
        # without the SDK the pcap can still be named an Ouster one when a JSON of its prefix lies beside it
        stem = path.stem
        found = [p for p in path.parent.glob("*.json") if stem.startswith(p.stem.split(".")[0])]
        return [str(p) for p in found] or None
    return resolve_metadata_multi(str(path)) or None


def _intensity_field(core, frame) -> np.ndarray:
    fields = set(frame.fields)
    for name in ("REFLECTIVITY", "SIGNAL"):
        if name in fields:
            return frame.field(getattr(core.ChanField, name))
    return np.zeros((frame.h, frame.w), np.float32)


def read_ouster(path: str | Path, *, meta: str | Path | None = None, only: int | None = None) -> Iterator[Sweep]:
    """The complete sweeps of an Ouster capture, one sensor (the first) of it.

    Args:
        path: `.pcap`, `.osf`, or a ROS bag of Ouster packets.
        meta: the metadata JSON of a pcap, when ouster-sdk cannot find it beside the pcap.
        only: yield only the sweep of this index (the others are counted, not converted to points).
    """
    path = Path(path)
    core, open_source = _sdk(path)
    if not path.is_file():
        raise PointCloudFileError(path, "no such file")
    kwargs = {"meta": [str(meta)]} if meta is not None else {}
    try:
        source = open_source(str(path), sensor_idx=0, **kwargs)
    except Exception as exc:  # ouster-sdk wraps everything in SourceURLException; its last line says why
        reason = str(exc).strip().splitlines()[-1].removeprefix("more details: ")
        raise PointCloudFileError(path, f"ouster-sdk cannot read it: {reason}") from None
    return _sweeps(path, core, source, only)


def _sweeps(path: Path, core, source, only: int | None) -> Iterator[Sweep]:
    info = source.sensor_info[0]
    lut = core.XYZLut(info)
    sensor = f"Ouster {info.prod_line} {info.sn} {info.fw_rev} {info.config.lidar_mode}"
    h, w = info.format.pixels_per_column, info.format.columns_per_frame
    rings = np.broadcast_to(np.arange(h, dtype=np.int16)[:, None], (h, w))
    index = 0
    try:
        for frames in source:
            frame = frames[0]  # a FrameSet of the one sensor chosen by sensor_idx
            if frame is None:
                continue
            if not frame.complete():  # the capture's first or last revolution, cut by the recording
                continue
            if only is not None and index != only:
                index += 1
                if index > only:
                    break
                continue
            columns_ok = (np.asarray(frame.status) & 1).astype(bool)
            column_time = np.asarray(frame.timestamp, dtype=np.int64)
            t0 = int(column_time[columns_ok].min())
            valid = (frame.field(core.ChanField.RANGE) > 0) & columns_ok[None, :]
            xyz = lut(frame)[valid].astype(np.float32)  # (H, W, 3) -> (N, 3), metres
            time = np.broadcast_to((column_time - t0)[None, :], (h, w))[valid] * 1e-9
            host = frame.get_first_valid_packet_timestamp()
            yield Sweep(xyz=xyz, intensity=_intensity_field(core, frame)[valid].astype(np.float32),
                        time=time.astype(np.float64), ring=rings[valid].copy(), stamp=t0 * 1e-9, index=index,
                        sensor=sensor, host_stamp=host * 1e-9 if host else None,
                        extra={"beams": h, "columns": w, "frame_id": int(frame.frame_id),
                               "fields": sorted(str(f) for f in frame.fields)})
            index += 1
    except PointCloudFileError:
        raise
    except Exception as exc:
        raise PointCloudFileError(path, f"ouster-sdk failed after {index} sweeps: {exc}") from None
    finally:
        source.close()
