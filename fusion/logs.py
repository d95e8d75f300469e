"""Robot and sensor logs as timestamped streams: ROS 1 bags, ROS 2 bags, MCAP files, and native lidar captures.

Logs mix cameras, microphones, IMUs and lidars, so they are read here, above `perception3d` and `video`:

- ROS 1 `.bag` and ROS 2 bag folders (sqlite3 or MCAP storage) through `rosbags`' AnyReader; plain `.mcap` files
  through `mcap`'s reader, their ROS 1 / ROS 2 messages decoded by `rosbags` from the schemas the file carries.
- Decoded values: `sensor_msgs/PointCloud2` -> `perception3d.sensors.Sweep` (per-point time from the drivers'
  `t` / `time` / `timestamp` fields, ring from `ring`); `Image` / `CompressedImage` -> `Frame` (RGB or mono
  pixels); `Imu` -> `ImuSample`; `audio_common_msgs` audio -> `AudioChunk`; anything else -> the message object.
  Each comes as a `LogMessage` with its header stamp (integer nanoseconds) and the log's receive time.
- Ouster `.pcap` / `.osf` captures, and ROS bags of raw Ouster packets, are sweeps of `perception3d.sensors`.

    from fusion.logs import inspect_log, read_log, read_sweep
    sweep = read_sweep("drive.bag", 3, topic="/ouster/points")     # the fourth cloud of that topic
    for msg in read_log("drive.mcap", topics=["/camera/image_raw"]): ...
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fusion._errors import FileProblem

__all__ = ["AudioChunk", "Frame", "ImuSample", "LogMessage", "inspect_log", "is_log", "log_format", "read_log",
           "read_scan", "read_sweep", "sweep_topics"]

CAPTURE_SUFFIXES = (".pcap", ".osf")
LOG_SUFFIXES = (".bag", ".mcap", ".db3")
POINTCLOUD = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
IMU = "sensor_msgs/msg/Imu"
# the Ouster ROS 1 and ROS 2 drivers' raw packets, which ouster-sdk decodes into sweeps
OUSTER_PACKETS = ("ouster_ros/msg/PacketMsg", "ouster_sensor_msgs/msg/PacketMsg")

# audio_common's messages (ROS 1 and ROS 2 alike), which the stock type stores lack
AUDIO_MSGS = {
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioDataStamped": "std_msgs/Header header\naudio_common_msgs/AudioData audio\n",
    "audio_common_msgs/msg/AudioInfo": ("uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
                                        "string coding_format\n"),
}
# sample_format -> numpy dtype, for raw PCM (coding_format "wave" or "raw")
PCM_FORMATS = {"S8": "i1", "U8": "u1", "S16LE": "<i2", "S16BE": ">i2", "S32LE": "<i4", "S32BE": ">i4",
               "F32LE": "<f4", "F32BE": ">f4", "F64LE": "<f8"}


@dataclass
class Frame:
    """A camera image: `pixels` uint8 `(H, W, 3)` RGB or `(H, W)` mono (uint16 for 16-bit encodings)."""

    pixels: np.ndarray
    encoding: str


@dataclass
class ImuSample:
    """`orientation` (4,) quaternion x y z w; `angular_velocity` (3,) rad/s; `linear_acceleration` (3,) m/s^2."""

    orientation: np.ndarray
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray


@dataclass
class AudioChunk:
    """Audio bytes of one message; `samples` float32 `(n, channels)` in [-1, 1] when the format is known PCM."""

    data: bytes
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    coding_format: str | None = None


@dataclass
class LogMessage:
    """One message of a log.

    Args:
        topic, msgtype: as the log names them (ROS 2 style type names: `sensor_msgs/msg/Image`).
        stamp_ns: the header stamp in integer nanoseconds; the log time where the message has no header.
        log_time_ns: when the recorder received it.
        frame_id: the header's frame, "" without a header.
        value: the decoded value (`Sweep`, `Frame`, `ImuSample`, `AudioChunk`) or the message object itself.
        index: position of the message on its topic, from 0.
    """

    topic: str
    msgtype: str
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    value: Any
    index: int

    @property
    def stamp(self) -> float:
        return self.stamp_ns * 1e-9


def log_format(path: str | Path) -> str | None:
    """"ros1", "ros2", "mcap", "capture" (Ouster / Velodyne .pcap, .osf), or None for anything else."""
    path = Path(path)
    if path.is_dir():
        return "ros2" if (path / "metadata.yaml").is_file() else None
    suffix = path.suffix.lower()
    if suffix in CAPTURE_SUFFIXES:
        return "capture"
    if suffix == ".bag":
        return "ros1"
    if suffix in (".mcap", ".db3"):
        # a file of a ROS 2 bag folder is read as the whole bag; a lone MCAP file as itself
        return "ros2" if (path.parent / "metadata.yaml").is_file() else ("mcap" if suffix == ".mcap" else None)
    return None


def is_log(path: str | Path) -> bool:
    return log_format(path) is not None


def _check(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    if not path.exists():
        raise FileProblem(path, "no such file")
    kind = log_format(path)
    if kind is None:
        raise FileProblem(path, "not a log this reads (ROS 1 .bag, ROS 2 bag folder, .mcap, lidar .pcap/.osf)")
    if kind == "ros2" and path.is_file():
        path = path.parent
    return path, kind


# --- reading raw messages ---------------------------------------------------------------------------------------


def _typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, text in AUDIO_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


@dataclass
class _Topic:
    topic: str
    msgtype: str
    count: int
    encoding: str = "cdr"


class _Reader:
    """The raw side of a log: topics with counts, and (topic, type, log_time_ns, decoded message) in log order."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind

    def __enter__(self):
        try:
            if self.kind in ("ros1", "ros2"):
                from rosbags.highlevel import AnyReader

                self._any = AnyReader([self.path], default_typestore=_typestore())
                self._any.open()
                if self.kind == "ros2":  # a bag with its own audio definitions keeps them
                    self._any.typestore.register({k: v for k, v in _typestore().FIELDDEFS.items()
                                                  if k.startswith("audio_common_msgs/")
                                                  and k not in self._any.typestore.FIELDDEFS})
                counts: dict[tuple[str, str], int] = {}
                for c in self._any.connections:
                    counts[(c.topic, c.msgtype)] = counts.get((c.topic, c.msgtype), 0) + c.msgcount
                self.topics = [_Topic(t, m, n) for (t, m), n in counts.items()]
                self.start_ns, self.end_ns = self._any.start_time, self._any.end_time
            else:
                self._open_mcap()
        except FileProblem:
            raise
        except Exception as exc:
            raise FileProblem(self.path, f"cannot read it as a {self.kind} log: {exc}") from None
        return self

    def _open_mcap(self) -> None:
        from mcap.reader import make_reader

        self._file = open(self.path, "rb")
        self._mcap = make_reader(self._file)
        summary = self._mcap.get_summary()
        if summary is None:
            raise FileProblem(self.path, "MCAP file has no summary (unfinished recording?)")
        stats = summary.statistics
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        # the types as the file defines them (its ROS distribution's), like AnyReader does for bags
        types: dict = {}
        for schema in summary.schemas.values():
            if schema.encoding in ("ros2msg", "ros1msg"):
                types.update(get_types_from_msg(schema.data.decode(), _ros2_name(schema.name)))
        self.store = get_typestore(Stores.EMPTY)
        self.store.register(types)
        self.topics = []
        for cid, channel in summary.channels.items():
            schema = summary.schemas.get(channel.schema_id)
            msgtype = _ros2_name(schema.name) if schema else channel.topic
            self.topics.append(_Topic(channel.topic, msgtype, stats.channel_message_counts.get(cid, 0) if stats else 0,
                                      channel.message_encoding))
        self.start_ns = stats.message_start_time if stats else 0
        self.end_ns = stats.message_end_time if stats else 0

    def __exit__(self, *exc):
        if self.kind in ("ros1", "ros2"):
            self._any.close()
        else:
            self._file.close()

    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[str, str, int, Any]]:
        known = {t.topic for t in self.topics}
        for name in topics or []:
            if name not in known:
                raise FileProblem(self.path, f"has no topic {name!r}; topics: {', '.join(sorted(known))}")
        try:
            if self.kind in ("ros1", "ros2"):
                conns = [c for c in self._any.connections if not topics or c.topic in topics]
                for con, log_time, raw in self._any.messages(connections=conns):
                    yield con.topic, con.msgtype, log_time, self._any.deserialize(raw, con.msgtype)
            else:
                for schema, channel, message in self._mcap.iter_messages(topics=topics):
                    msgtype = _ros2_name(schema.name) if schema else channel.topic
                    yield channel.topic, msgtype, message.log_time, self._decode_mcap(channel, msgtype, message.data)
        except FileProblem:
            raise
        except Exception as exc:
            raise FileProblem(self.path, f"a message cannot be decoded: {exc}") from None

    def _decode_mcap(self, channel, msgtype: str, data: bytes) -> Any:
        encoding = channel.message_encoding
        if encoding == "cdr":
            return self.store.deserialize_cdr(data, msgtype)
        if encoding == "ros1":
            return self.store.deserialize_ros1(data, msgtype)
        if encoding == "json":
            import json

            return json.loads(data)
        return data  # protobuf, flatbuffers: kept as bytes


def _ros2_name(name: str) -> str:
    """`sensor_msgs/Image` (ROS 1, MCAP schemas) -> `sensor_msgs/msg/Image`, as rosbags names types."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name


# --- decoding values -------------------------------------------------------------------------------------------


def _stamp_ns(msg: Any) -> int | None:
    header = getattr(msg, "header", None)
    if header is None:
        return None
    stamp = header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(getattr(stamp, "nanosec", getattr(stamp, "nsec", 0)))


# PointField datatypes (sensor_msgs/PointField) -> numpy
_POINTFIELD = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def cloud_array(msg: Any) -> np.ndarray:
    """A PointCloud2 message -> structured numpy `(height * width,)` with its fields."""
    endian = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _POINTFIELD:
            raise ValueError(f"PointField {f.name!r} has unknown datatype {f.datatype}")
        names.append(f.name)
        formats.append((endian + _POINTFIELD[f.datatype], (f.count,)) if f.count > 1 else endian + _POINTFIELD[f.datatype])
        offsets.append(f.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    n = msg.height * msg.width
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.row_step * msg.height > data.size or msg.point_step * msg.width > msg.row_step:
        raise ValueError(f"PointCloud2 of {n} points has {data.size} bytes, not {msg.row_step * msg.height}")
    rows = data[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)[:, : msg.point_step * msg.width]
    return np.ascontiguousarray(rows).view(dtype).reshape(n)


def cloud_to_sweep(msg: Any, *, index: int, topic: str) -> Any:
    """A PointCloud2 -> `Sweep` in the message's frame; points with no return (zero or NaN) are dropped."""
    from perception3d.sensors import Sweep

    cloud = cloud_array(msg)
    names = cloud.dtype.names
    for axis in "xyz":
        if axis not in names:
            raise ValueError(f"PointCloud2 has no {axis!r} field (fields: {', '.join(names)})")
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1).astype(np.float32)
    keep = np.isfinite(xyz).all(axis=1) & (np.abs(xyz).sum(axis=1) > 0)
    stamp_ns = _stamp_ns(msg) or 0
    # per-point time, as the common drivers write it: Ouster `t` (uint32 ns after the stamp), Velodyne `time`
    # (float s after the stamp), Hesai/Livox `timestamp` (float64 s absolute, or int ns absolute)
    if "t" in names:
        time = cloud["t"].astype(np.float64) * 1e-9
    elif "time" in names:
        time = cloud["time"].astype(np.float64)
    elif "timestamp" in names:
        raw = cloud["timestamp"].astype(np.float64)
        time = (raw - stamp_ns) * 1e-9 if np.issubdtype(cloud["timestamp"].dtype, np.integer) else raw - stamp_ns * 1e-9
    else:
        time = np.zeros(len(cloud))
    intensity = next((cloud[k] for k in ("intensity", "reflectivity", "signal") if k in names), np.zeros(len(cloud)))
    ring = cloud["ring"] if "ring" in names else np.zeros(len(cloud))
    frame = getattr(msg.header, "frame_id", "")
    return Sweep(xyz=xyz[keep], intensity=np.asarray(intensity, np.float32)[keep], time=time[keep],
                 ring=np.asarray(ring).astype(np.int16)[keep], stamp=stamp_ns * 1e-9, index=index,
                 sensor=f"{topic} ({frame})" if frame else topic,
                 extra={"fields": list(names), "organized": [int(msg.height), int(msg.width)]})


def image_to_frame(msg: Any, msgtype: str) -> Frame:
    """An Image (rgb8 bgr8 rgba8 bgra8 mono8 mono16 8UC1 8UC3 16UC1) or CompressedImage (JPEG, PNG) -> `Frame`."""
    if msgtype.endswith("CompressedImage"):
        from PIL import Image

        image = Image.open(io.BytesIO(bytes(msg.data)))
        pixels = np.asarray(image.convert("RGB") if image.mode not in ("L", "I;16") else image)
        return Frame(pixels=pixels, encoding=msg.format)
    enc = msg.encoding.lower()
    channels = {"rgb8": 3, "bgr8": 3, "8uc3": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "mono16": 1,
                "16uc1": 1}.get(enc)
    if channels is None:
        raise ValueError(f"Image encoding {msg.encoding!r} is not read (rgb8 bgr8 rgba8 bgra8 mono8 mono16)")
    dtype = np.dtype(">u2" if msg.is_bigendian else "<u2") if "16" in enc else np.dtype(np.uint8)
    data = np.asarray(msg.data, np.uint8)
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, : msg.width * channels * dtype.itemsize]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    if enc in ("bgr8", "8uc3", "bgra8"):
        pixels = pixels[..., [2, 1, 0]]
    elif enc == "rgba8":
        pixels = pixels[..., :3]
    return Frame(pixels=np.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels).astype(dtype.newbyteorder("=")),
                 encoding=msg.encoding)


def _vec(v: Any, names: str) -> np.ndarray:
    return np.array([getattr(v, n) for n in names], dtype=np.float64)


def _decode(msgtype: str, msg: Any, *, index: int, topic: str, audio_info: Any) -> Any:
    if msgtype == POINTCLOUD:
        return cloud_to_sweep(msg, index=index, topic=topic)
    if msgtype in IMAGE_TYPES:
        return image_to_frame(msg, msgtype)
    if msgtype == IMU:
        return ImuSample(orientation=_vec(msg.orientation, "xyzw"), angular_velocity=_vec(msg.angular_velocity, "xyz"),
                         linear_acceleration=_vec(msg.linear_acceleration, "xyz"))
    if msgtype.startswith("audio_common_msgs/msg/AudioData"):
        data = bytes(np.asarray((msg.audio if hasattr(msg, "audio") else msg).data, np.uint8))
        return _audio(data, audio_info)
    return msg


def _audio(data: bytes, info: Any) -> AudioChunk:
    if info is None:
        return AudioChunk(data=data)
    dtype = PCM_FORMATS.get(info.sample_format.upper())
    chunk = AudioChunk(data=data, sample_rate=int(info.sample_rate), coding_format=info.coding_format)
    channels = max(int(info.channels), 1)
    if dtype is None or info.coding_format.lower() not in ("wave", "raw", "pcm") or len(data) % (np.dtype(dtype).itemsize * channels):
        return chunk  # compressed (mp3, opus) or unknown: the bytes only
    samples = np.frombuffer(data, dtype).reshape(-1, channels).astype(np.float32)
    kind = np.dtype(dtype)
    if kind.kind == "i":
        samples /= float(2 ** (8 * kind.itemsize - 1))
    elif kind.kind == "u":
        samples = samples / float(2 ** (8 * kind.itemsize - 1)) - 1.0
    chunk.samples = samples
    return chunk


def read_log(path: str | Path, *, topics: list[str] | None = None, first_only: bool = False) -> Iterator[LogMessage]:
    """The messages of a ROS 1 bag, ROS 2 bag or MCAP file (of `topics`, else all), decoded, in log-time order.

    Audio is decoded to samples when an `audio_common_msgs/msg/AudioInfo` message came before it in the log.
    `first_only`: the first message of each topic only (the rest are skipped undecoded).
    """
    path, kind = _check(path)
    if kind == "capture":
        raise FileProblem(path, "a lidar capture, not a message log: read it with read_sweep / perception3d.sensors")
    counts: dict[str, int] = {}
    audio_info = None
    with _Reader(path, kind) as reader:
        for topic, msgtype, log_time, msg in reader.messages(topics):
            index = counts.get(topic, 0)
            counts[topic] = index + 1
            if first_only and index:
                continue
            if msgtype == "audio_common_msgs/msg/AudioInfo":
                audio_info = msg
            try:
                value = _decode(msgtype, msg, index=index, topic=topic, audio_info=audio_info)
            except (ValueError, OSError) as exc:
                raise FileProblem(path, f"{topic} message {index} ({msgtype}): {exc}") from None
            stamp = _stamp_ns(msg)
            header = getattr(msg, "header", None)
            yield LogMessage(topic=topic, msgtype=msgtype, stamp_ns=log_time if stamp is None else stamp,
                             log_time_ns=int(log_time), frame_id=getattr(header, "frame_id", "") if header else "",
                             value=value, index=index)


def sweep_topics(path: str | Path) -> list[str]:
    """The PointCloud2 and Ouster-packet topics of a log."""
    path, kind = _check(path)
    if kind == "capture":
        return []
    with _Reader(path, kind) as reader:
        return [t.topic for t in reader.topics if t.msgtype in (POINTCLOUD, *OUSTER_PACKETS)]


def read_sweep(path: str | Path, frame: int = 0, *, topic: str | None = None):
    """Sweep `frame` (from 0) of a lidar capture, or of a log's PointCloud2 topic (`topic` needed if it has several).

    A ROS bag of raw Ouster packets is decoded by ouster-sdk.
    """
    from perception3d._errors import PointCloudFileError
    from perception3d.sensors import read_sweep as read_capture_sweep

    path, kind = _check(path)
    if frame < 0:
        raise FileProblem(path, f"frame {frame} is negative")
    if kind == "capture":
        try:
            return read_capture_sweep(path, frame)
        except PointCloudFileError as exc:
            raise FileProblem(path, exc.reason) from None
    with _Reader(path, kind) as reader:
        clouds = [t for t in reader.topics if t.msgtype in (POINTCLOUD, *OUSTER_PACKETS)]
        listing = ", ".join(f"{t.topic} ({t.msgtype})" for t in clouds) or "none"
        if topic is None:
            if len({t.topic for t in clouds}) != 1:
                raise FileProblem(path, f"name the lidar topic with --topic; lidar topics: {listing}")
            topic = clouds[0].topic
        chosen = [t for t in clouds if t.topic == topic]
        if not chosen:
            raise FileProblem(path, f"{topic!r} is not a lidar topic; lidar topics: {listing}")
        if chosen[0].msgtype in OUSTER_PACKETS:
            try:
                return read_capture_sweep(path, frame, vendor="ouster")
            except PointCloudFileError as exc:
                raise FileProblem(path, exc.reason) from None
        if frame >= chosen[0].count:
            raise FileProblem(path, f"{topic} has {chosen[0].count} clouds; there is no frame {frame}")
    for msg in read_log(path, topics=[topic]):
        if msg.index == frame:
            return msg.value
    raise FileProblem(path, f"{topic} has no frame {frame}")


def read_scan(path: str | Path, *, frame: int = 0, topic: str | None = None) -> np.ndarray:
    """float32 `(N, 4)` x, y, z, intensity of one sweep: a log's or capture's (`frame`, `topic`), else a scan file."""
    if is_log(path):
        return read_sweep(path, frame, topic=topic).points()
    from perception3d.detection.data import read_scan as read_scan_file

    return read_scan_file(path)


def inspect_log(path: str | Path) -> dict[str, Any]:
    """What a log or capture holds: format, time span, and per topic its type, count, rate and a summary of its
    first message (cloud fields and size, image size and encoding, audio format)."""
    path, kind = _check(path)
    if kind == "capture":
        from perception3d._errors import PointCloudFileError
        from perception3d.sensors import capture_info

        try:
            info = capture_info(path)
        except PointCloudFileError as exc:
            raise FileProblem(path, exc.reason) from None
        return {"format": f"{path.suffix.lower().lstrip('.')} lidar capture", **info}
    with _Reader(path, kind) as reader:
        topics = reader.topics
        span = (reader.end_ns - reader.start_ns) * 1e-9
    firsts: dict[str, LogMessage] = {}
    if topics:
        wanted = [t.topic for t in topics if t.msgtype in (POINTCLOUD, IMU, *IMAGE_TYPES) or "audio" in t.msgtype.lower()]
        for msg in read_log(path, topics=wanted, first_only=True) if wanted else []:
            firsts.setdefault(msg.topic, msg)
            if len(firsts) == len(wanted):
                break
    rows = []
    for t in sorted(topics, key=lambda t: t.topic):
        row = {"topic": t.topic, "type": t.msgtype, "count": t.count,
               "rate_hz": round((t.count - 1) / span, 3) if span > 0 and t.count > 1 else None}
        first = firsts.get(t.topic)
        if first is not None:
            row["frame_id"] = first.frame_id
            row["first_stamp"] = first.stamp
            row["info"] = _describe(first.value)
        elif t.msgtype in OUSTER_PACKETS:
            row["info"] = "raw Ouster packets (read as sweeps with ouster-sdk)"
        rows.append(row)
    names = {"ros1": "ROS 1 bag", "ros2": "ROS 2 bag", "mcap": "MCAP"}
    out = {"file": str(path), "format": names[kind], "messages": sum(t.count for t in topics),
           "start": reader.start_ns * 1e-9, "end": reader.end_ns * 1e-9, "duration_s": span}
    if any(t.msgtype in OUSTER_PACKETS for t in topics):
        out.update(_ouster_packets(path))
    return {**out, "topics": rows}


def _ouster_packets(path: Path) -> dict[str, Any]:
    """The sensor behind a bag's raw Ouster packets, when ouster-sdk is there to decode them."""
    from perception3d._errors import PointCloudFileError
    from perception3d.sensors import capture_info

    try:
        info = capture_info(path, vendor="ouster")
    except PointCloudFileError as exc:
        return {"lidar": f"not decoded: {exc.reason}"}
    return {"lidar": info["sensor"], "beams": info["beams"], "columns": info["columns"], "sweeps": info["sweeps"],
            "points_per_sweep": info["points"]}


def _describe(value: Any) -> str:
    from perception3d.sensors import Sweep

    if isinstance(value, Sweep):
        h, w = value.extra.get("organized", (1, len(value)))
        return (f"{len(value)} points ({h} x {w} organized), fields {', '.join(value.extra.get('fields', []))}, "
                f"sweep {value.duration * 1e3:.1f} ms")
    if isinstance(value, Frame):
        return f"{value.pixels.shape[1]} x {value.pixels.shape[0]} {value.encoding}"
    if isinstance(value, ImuSample):
        return "orientation, angular velocity, linear acceleration"
    if isinstance(value, AudioChunk):
        if value.samples is not None:
            return f"{value.sample_rate} Hz, {value.samples.shape[1]} ch, {len(value.samples)} samples a message"
        return f"{len(value.data)} bytes a message" + (f" ({value.coding_format})" if value.coding_format else "")
    return type(value).__name__
