"""ROS 1 bags, ROS 2 bags (sqlite3 and MCAP storage) and MCAP files written here (rosbags' and mcap's writers) from real Ouster sweeps, a real
video frame, IMU samples and PCM audio, read back through fusion.logs and `omnisense data inspect` with stamps and
values intact; and the lidar captures of the Ouster sample data through the same entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion import FileProblem
from fusion.logs import AudioChunk, Frame, ImuSample, inspect_log, read_log, read_scan, read_sweep, sweep_topics

pytest.importorskip("rosbags")
pytest.importorskip("mcap")

OS1 = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"
T0 = 1_650_410_295_350_216_000  # the first capture's host time, ns: every stamp below is T0 + something
IMU_STAMPS = [T0 + 5_000_000 * k + 17 for k in range(4)]
AUDIO_RATE = 16000


@pytest.fixture(scope="module")
def sweeps(sample_data):
    pytest.importorskip("ouster.sdk")
    from perception3d.sensors import read_sweeps

    return list(read_sweeps(sample_data("ouster-samples") / OS1))


@pytest.fixture(scope="module")
def video_frame(sample_data):
    import av

    with av.open(str(sample_data("opencv-samples") / "examples" / "data" / "vtest.avi")) as container:
        frame = next(container.decode(video=0))
    return frame.to_ndarray(format="rgb24")  # (576, 768, 3)


def _sweep_stamp_ns(sweep) -> int:
    return int(round(sweep.stamp * 1e9))


def _messages(store, sweeps, video_frame, birds, ros1: bool):
    """(topic, msgtype, stamp_ns, message) of every message to write, in time order."""
    T = store.types
    Header = T["std_msgs/msg/Header"]
    Time = T["builtin_interfaces/msg/Time"]

    def header(ns, frame_id):
        stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return Header(seq=0, stamp=stamp, frame_id=frame_id) if ros1 else Header(stamp=stamp, frame_id=frame_id)

    PointField = T["sensor_msgs/msg/PointField"]
    out = []
    for s in sweeps:
        # the Ouster ROS driver's layout: x y z intensity (f4), t (u4, ns after the stamp), ring (u2)
        rec = np.zeros(len(s), dtype=np.dtype({"names": ["x", "y", "z", "intensity", "t", "ring"],
                                                "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2"],
                                                "offsets": [0, 4, 8, 16, 20, 24], "itemsize": 32}))
        rec["x"], rec["y"], rec["z"] = s.xyz.T
        rec["intensity"], rec["t"], rec["ring"] = s.intensity, np.round(s.time * 1e9), s.ring
        fields = [PointField(name=n, offset=o, datatype=d, count=1)
                  for n, o, d in (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 16, 7), ("t", 20, 6),
                                  ("ring", 24, 4))]
        ns = T0 + (_sweep_stamp_ns(s) - _sweep_stamp_ns(sweeps[0]))
        msg = T["sensor_msgs/msg/PointCloud2"](header=header(ns, "os_sensor"), height=1, width=len(s), fields=fields,
                                                is_bigendian=False, point_step=32, row_step=32 * len(s),
                                                data=rec.view(np.uint8), is_dense=True)
        out.append(("/ouster/points", "sensor_msgs/msg/PointCloud2", ns, msg))
    h, w, _ = video_frame.shape
    image = T["sensor_msgs/msg/Image"](header=header(T0 + 40_000_000, "camera"), height=h, width=w, encoding="bgr8",
                                       is_bigendian=0, step=3 * w,
                                       data=np.ascontiguousarray(video_frame[..., ::-1]).reshape(-1))
    out.append(("/camera/image_raw", "sensor_msgs/msg/Image", T0 + 40_000_000, image))
    from PIL import Image as PILImage
    import io

    buf = io.BytesIO()
    PILImage.fromarray(video_frame).save(buf, format="PNG")  # lossless, so the pixels can be compared exactly
    compressed = T["sensor_msgs/msg/CompressedImage"](header=header(T0 + 80_000_000, "camera"), format="png",
                                                      data=np.frombuffer(buf.getvalue(), np.uint8))
    out.append(("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", T0 + 80_000_000, compressed))
    Vec, Quat = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Quaternion"]
    cov = np.zeros(9)
    for k, ns in enumerate(IMU_STAMPS):
        imu = T["sensor_msgs/msg/Imu"](header=header(ns, "os_imu"), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0),
                                       orientation_covariance=cov, angular_velocity=Vec(x=0.01 * k, y=0.0, z=0.5),
                                       angular_velocity_covariance=cov,
                                       linear_acceleration=Vec(x=0.1, y=-0.2, z=9.81 + k),
                                       linear_acceleration_covariance=cov)
        out.append(("/ouster/imu", "sensor_msgs/msg/Imu", ns, imu))
    info = T["audio_common_msgs/msg/AudioInfo"](channels=1, sample_rate=AUDIO_RATE, sample_format="S16LE",
                                                bitrate=0, coding_format="wave")
    out.append(("/audio/info", "audio_common_msgs/msg/AudioInfo", T0, info))
    pcm = (np.clip(birds[:4000], -1, 1) * 32767).astype("<i2")
    chunk = T["audio_common_msgs/msg/AudioDataStamped"](header=header(T0 + 1_000, "mic"),
                                                        audio=T["audio_common_msgs/msg/AudioData"](
                                                            data=pcm.view(np.uint8)))
    out.append(("/audio/audio_stamped", "audio_common_msgs/msg/AudioDataStamped", T0 + 1_000, chunk))
    return sorted(out, key=lambda m: m[2]), pcm


def _store(ros1: bool):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from fusion.logs import AUDIO_MSGS

    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    types = {}
    for name, text in AUDIO_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def write_ros1(path, messages, store):
    from rosbags.rosbag1 import Writer

    with Writer(path) as writer:
        conns = {}
        for topic, msgtype, ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conns[topic], ns + 3_000_000, store.serialize_ros1(msg, msgtype))


def write_ros2(path, messages, store):
    from rosbags.rosbag2 import Writer

    with Writer(path) as writer:
        conns = {}
        for topic, msgtype, ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conns[topic], ns + 3_000_000, store.serialize_cdr(msg, msgtype))


def write_mcap(path, messages, store):
    from mcap.writer import Writer

    with open(path, "wb") as f:
        writer = Writer(f)
        writer.start(profile="ros2", library="omnisense tests")
        channels = {}
        for topic, msgtype, ns, msg in messages:
            if topic not in channels:
                text, _ = store.generate_msgdef(msgtype, ros_version=2)
                schema = writer.register_schema(name=msgtype, encoding="ros2msg", data=text.encode())
                channels[topic] = writer.register_channel(topic=topic, message_encoding="cdr", schema_id=schema)
            writer.add_message(channels[topic], log_time=ns + 3_000_000, publish_time=ns,
                               data=bytes(store.serialize_cdr(msg, msgtype)))
        writer.finish()


def write_ros2_mcap(path, messages, store):
    """A ROS 2 bag with MCAP storage (Iron's default): rosbags writes sqlite3 only, so its metadata is re-pointed
    at an MCAP file of the same messages."""
    import yaml

    write_ros2(path, messages, store)
    meta = yaml.safe_load((path / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    (path / info["relative_file_paths"][0]).unlink()
    name = f"{path.name}_0.mcap"
    write_mcap(path / name, messages, store)
    info["storage_identifier"] = "mcap"
    info["relative_file_paths"] = [name]
    info["files"][0]["path"] = name
    (path / "metadata.yaml").write_text(yaml.safe_dump(meta))


WRITERS = {"ros1": (write_ros1, "drive.bag", True), "ros2": (write_ros2, "drive_ros2", False),
           "ros2-mcap": (write_ros2_mcap, "drive_ros2_mcap", False), "mcap": (write_mcap, "drive.mcap", False)}


@pytest.fixture(scope="module")
def birds(sample_data):
    import soundfile

    samples, rate = soundfile.read(str(sample_data("opensoundscape-birds") / "birds_10s.wav"), dtype="float32")
    return samples if samples.ndim == 1 else samples[:, 0]


@pytest.fixture(scope="module", params=sorted(WRITERS))
def log(request, tmp_path_factory, sweeps, video_frame, birds):
    write, name, ros1 = WRITERS[request.param]
    store = _store(ros1)
    messages, pcm = _messages(store, sweeps, video_frame, birds, ros1)
    path = tmp_path_factory.mktemp(request.param) / name
    write(path, messages, store)
    return request.param, path, messages, pcm


def test_round_trip_values_and_stamps(log, sweeps, video_frame):
    kind, path, written, pcm = log
    got = list(read_log(path))
    # header stamps as written; a message with no header (AudioInfo) is stamped with its log time
    assert [(m.topic, m.stamp_ns) for m in got] == [
        (t, ns if hasattr(msg, "header") else ns + 3_000_000) for t, _, ns, msg in written]
    assert all(m.log_time_ns == ns + 3_000_000 for m, (_, _, ns, _) in zip(got, written))
    clouds = [m for m in got if m.topic == "/ouster/points"]
    assert len(clouds) == len(sweeps) == 3
    for m, s in zip(clouds, sweeps):
        assert m.index == s.index and m.frame_id == "os_sensor"
        np.testing.assert_array_equal(m.value.xyz, s.xyz)
        np.testing.assert_array_equal(m.value.ring, s.ring)
        np.testing.assert_allclose(m.value.time, s.time, atol=1e-9)  # ns resolution of the driver's `t` field
        # the sweeps keep their spacing on the sensor clock, to the nanosecond
        assert m.stamp_ns - clouds[0].stamp_ns == _sweep_stamp_ns(s) - _sweep_stamp_ns(sweeps[0])
    raw, png = (next(m.value for m in got if m.topic == t) for t in ("/camera/image_raw", "/camera/image_raw/compressed"))
    assert isinstance(raw, Frame) and isinstance(png, Frame)
    np.testing.assert_array_equal(raw.pixels, video_frame)
    np.testing.assert_array_equal(png.pixels, video_frame)
    imus = [m for m in got if m.topic == "/ouster/imu"]
    assert [m.stamp_ns for m in imus] == IMU_STAMPS
    assert all(isinstance(m.value, ImuSample) for m in imus)
    np.testing.assert_allclose([m.value.linear_acceleration[2] for m in imus], 9.81 + np.arange(4))
    audio = next(m.value for m in got if m.topic == "/audio/audio_stamped")
    assert isinstance(audio, AudioChunk) and audio.sample_rate == AUDIO_RATE
    np.testing.assert_allclose(audio.samples[:, 0], pcm / 32768.0)


def test_inspect_lists_topics(log):
    kind, path, written, _ = log
    info = inspect_log(path)
    assert info["format"] == {"ros1": "ROS 1 bag", "ros2": "ROS 2 bag", "ros2-mcap": "ROS 2 bag", "mcap": "MCAP"}[kind]
    assert info["messages"] == len(written)
    topics = {row["topic"]: row for row in info["topics"]}
    assert topics["/ouster/points"]["count"] == 3 and topics["/ouster/imu"]["count"] == 4
    assert topics["/ouster/points"]["type"] == "sensor_msgs/msg/PointCloud2"
    assert "768 x 576" in topics["/camera/image_raw"]["info"]
    assert info["duration_s"] == pytest.approx((max(ns for *_, ns, _ in written) - min(ns for *_, ns, _ in written)) * 1e-9)


def test_read_sweep_by_topic_and_frame(log, sweeps):
    kind, path, *_ = log
    assert sweep_topics(path) == ["/ouster/points"]
    sweep = read_sweep(path, 2)  # one lidar topic: no --topic needed
    np.testing.assert_array_equal(sweep.xyz, sweeps[2].xyz)
    np.testing.assert_array_equal(read_scan(path, frame=1, topic="/ouster/points"), sweeps[1].points())
    with pytest.raises(FileProblem, match="has 3 clouds; there is no frame 3"):
        read_sweep(path, 3)
    with pytest.raises(FileProblem, match="not a lidar topic"):
        read_sweep(path, 0, topic="/camera/image_raw")


def test_cli_data_inspect(log, capsys):
    from omnisense.cli import main

    kind, path, *_ = log
    assert main(["data", "inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {row["topic"] for row in info["topics"]} >= {"/ouster/points", "/camera/image_raw", "/ouster/imu"}


def test_bad_logs_are_one_line_errors(tmp_path):
    bad = tmp_path / "broken.bag"
    bad.write_bytes(b"#ROSBAG V2.0\nnot really")
    with pytest.raises(FileProblem, match="broken.bag"):
        list(read_log(bad))
    with pytest.raises(FileProblem, match="no such file"):
        inspect_log(tmp_path / "missing.mcap")
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(FileProblem, match="not a log"):
        read_log(other).__next__()


def test_ouster_packet_bag_and_capture(sample_data):
    pytest.importorskip("ouster.sdk")
    root = sample_data("ouster-samples")
    info = inspect_log(root / "bags" / "512x10_raw.bag")
    assert {row["topic"]: row["count"] for row in info["topics"]} == {
        "/os_node0/imu_packets": 10, "/os_node0/lidar_packets": 32, "/os_node0/metadata": 1}
    sweep = read_sweep(root / "bags" / "512x10_raw.bag", 0, topic="/os_node0/lidar_packets")
    assert sweep.extra["beams"] == 128 and sweep.extra["columns"] == 512
    cap = inspect_log(root / OS1)
    assert cap["sweeps"] == 3 and cap["beams"] == 128 and cap["columns"] == 1024
