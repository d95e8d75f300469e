"""The commands' picture flags: register --view/--save-aligned, detect --view/--save-boxes, recognize --overlay,
fuse --view/--overlay. Each writes its file through the library function, the rest of the command unchanged."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def _run(command, argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args([str(a) for a in argv]))


def test_register_view_and_aligned_ply(tmp_path):
    import open3d as o3d

    from omnisense.commands import register

    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(400, 3)) * [1.0, 0.6, 0.3]
    np.savetxt(tmp_path / "s.xyz", cloud)
    np.savetxt(tmp_path / "t.xyz", cloud + [0.2, 0.1, 0.0])
    assert _run(register, [tmp_path / "s.xyz", tmp_path / "t.xyz", "--method", "fpfh", "--output", tmp_path / "r.json",
                           "--view", tmp_path / "v.html", "--save-aligned", tmp_path / "a.ply"]) == 0
    assert "registered source" in (tmp_path / "v.html").read_text()
    assert len(o3d.io.read_point_cloud(str(tmp_path / "a.ply")).points) == 800


def test_recognize_overlay_matches_the_input(tmp_path):
    from omnisense.commands import recognize
    from omnisense.models import VARIANTS
    from omnisense.weights import WeightsMeta, save_weights
    from video.io import VideoReader, write_video
    from video.recognition import CLASSES, render_clip

    video = write_video(tmp_path / "clip.mp4", render_clip("rise", "arrow", np.random.default_rng(0)), 12.0)
    torch.manual_seed(0)
    net = VARIANTS["uniformer_tiny"](num_classes=len(CLASSES))
    meta = WeightsMeta(task="recognition", model={"variant": "uniformer_tiny", "kwargs": {"num_classes": len(CLASSES)}},
                       classes=list(CLASSES),
                       input={"clip_len": 8, "frame_interval": 2, "fps": 12.0, "short_side": 72, "crop_size": 64})
    weights = save_weights(tmp_path / "w.safetensors", net.state_dict(), meta)
    assert _run(recognize, [video, "--weights", weights, "--clips", "2", "--topk", "3", "--output", tmp_path / "r.json",
                            "--overlay", tmp_path / "o.mp4"]) == 0
    src, out = VideoReader(video), VideoReader(tmp_path / "o.mp4")
    assert len(out) == len(src) and (out.info.width, out.info.height) == (src.info.width, src.info.height)
    clips = json.loads((tmp_path / "r.json").read_text())["clips"]  # one JSON line: the record
    assert all(len(c["topk"]) == 3 for c in clips)


def test_detect_view_and_boxes(tmp_path):
    import open3d as o3d

    from omnisense.commands import detect
    from perception3d.detection.simulator import LidarConfig, simulate_frame

    frame = simulate_frame(np.random.default_rng(5), LidarConfig(beams=32, azimuth_steps=512))
    np.save(tmp_path / "scan.npy", frame.points.astype(np.float32))
    assert _run(detect, [tmp_path / "scan.npy", "--output", tmp_path / "b.json", "--view", tmp_path / "v.html",
                         "--save-boxes", tmp_path / "b.ply", "--score-threshold", "0.05"]) == 0
    kept = json.loads((tmp_path / "b.json").read_text())["boxes"]  # one JSON line: the record, scores >= 0.05
    assert kept and all(b["score"] >= 0.05 for b in kept)
    assert len(o3d.io.read_line_set(str(tmp_path / "b.ply")).lines) == 13 * len(kept)
    assert f"{len(kept)} of" in (tmp_path / "v.html").read_text()


def test_fuse_view_and_overlay(tmp_path):
    from fusion.recordings import make_recording
    from omnisense.commands import fuse
    from video.io import VideoReader

    manifest = make_recording(tmp_path / "rec", seed=4, duration=3.0)
    assert _run(fuse, [tmp_path / "rec", "--output", tmp_path / "r.json", "--view", tmp_path / "v.html",
                       "--overlay", tmp_path / "o.mp4"]) == 0
    first = next(s for s in manifest["sensors"] if s["kind"] == "video")
    assert len(VideoReader(tmp_path / "o.mp4")) == len(VideoReader(tmp_path / "rec" / first["path"]))
    assert "cameras" in (tmp_path / "v.html").read_text()
