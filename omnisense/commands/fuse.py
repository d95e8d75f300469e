"""`omnisense fuse RECORDING`: multi-view, multi-modal action recognition of one recording with MultiTSF.

RECORDING is a folder of per-view videos (their audio tracks are used; a `lidar/` sweep folder too), a folder with
a `recording.json` manifest, or the manifest itself (`fusion.streams.read_recording`; the manifest carries the
per-sensor clocks). The sensors are aligned on the model's 2.5 Hz grid, fused window by window (12 s), and the
result holds per-frame label scores and the sequence labels; `--plot` draws a label timeline.

The library functions `fuse_recording` and `plot_timeline` are what the command (and the tests, and the demo) call.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "fuse a multi-view recording (videos with audio, lidar sweeps): per-frame and sequence action labels"
DEFAULT_WEIGHTS = "multitsf_small_synthetic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="folder of per-view videos (with audio), or a manifest JSON")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors); default: the shipped ones")
    parser.add_argument("--output", type=Path, default=Path("result.json"))
    parser.add_argument("--plot", type=Path, help="PNG timeline of the labels")


def load_fusion_model(weights: str | Path | None = None):
    """(MultiTSF with its frame encoder, metadata) from a weights file (default: the shipped ones)."""
    from omnisense.weights import load_model_weights, load_weights, shipped_weights
    from fusion.models import VARIANTS

    path = Path(weights) if weights else shipped_weights(DEFAULT_WEIGHTS)
    state, meta = load_weights(path)
    model = VARIANTS[meta.get("variant", "multitsf_small")](num_classes=len(meta["classes"]),
                                                            **meta.get("model_args", {}))
    load_model_weights(model, state)
    return model.eval(), {**meta, "path": str(path)}


def fuse_recording(recording: str | Path, weights: str | Path | None = None, *, model=None, meta=None
                   ) -> dict[str, Any]:
    """Fuse one recording; returns the JSON-ready result (grid times, per-frame scores, sequence labels)."""
    import numpy as np
    import torch

    from fusion.streams import read_recording
    from omnisense.train.multiview import frames_to_tensor, prepare_recording

    if model is None:
        model, meta = load_fusion_model(weights)
    classes = list(meta["classes"])
    size = int(meta["frame_size"])
    rec = read_recording(recording, frame_size=(size, size), audio_rate=int(meta["audio"]["rate"]))
    rec.classes = rec.classes or classes
    grid = rec.grid(float(meta["grid_rate_hz"]))
    if len(grid) == 0:
        from omnisense._errors import FileProblem

        raise FileProblem(Path(recording), "recording shorter than one grid step")
    steps = int(meta["window_steps"])
    stats = meta["audio"]
    frame_scores, seq_scores, valid_frac = [], [], {}
    has_audio = bool(rec.of_kind("audio"))
    has_video = bool(rec.of_kind("video"))
    for s in range(0, len(grid), steps):
        g = grid[s:s + steps]
        a = prepare_recording(rec, g, max_sweeps=int(len(g) / meta["grid_rate_hz"] * 10) + 12, seed=s)
        for name, v in (("video", a["video_valid"]), ("audio", a["audio_valid"])):
            valid_frac.setdefault(name, []).append(v)
        fb = (a["fbank"] - stats["fbank_mean"]) / (2 * stats["fbank_std"])
        with torch.no_grad():
            out = model(times=torch.from_numpy(a["times"])[None],
                        video=frames_to_tensor(a["frames"])[None] if has_video else None,
                        video_valid=torch.from_numpy(a["video_valid"])[None],
                        audio=torch.from_numpy(fb)[None] if has_audio else None,
                        audio_valid=torch.from_numpy(a["audio_valid"])[None],
                        lidar=torch.from_numpy(a["lidar"])[None] if a["lidar_valid"].any() else None,
                        lidar_mask=torch.from_numpy(a["lidar_mask"])[None],
                        lidar_times=torch.from_numpy(a["lidar_times"])[None],
                        lidar_valid=torch.from_numpy(a["lidar_valid"])[None])
        frame_scores.append(torch.sigmoid(out.frame[0]).numpy())
        seq_scores.append(torch.sigmoid(out.sequence[0]).numpy())
    frames = np.concatenate(frame_scores)
    seq = np.max(seq_scores, axis=0)  # a label present in any window is present in the recording
    result = {
        "recording": str(recording), "weights": meta.get("path"), "classes": classes,
        "sensors": [{"name": st.name, "kind": st.kind, "samples": int(len(st.times)) if st.kind != "audio" else None,
                     "clock": {"scale": st.clock.scale, "offset": st.clock.offset}} for st in rec.streams],
        "grid_rate_hz": meta["grid_rate_hz"], "times": [round(float(t), 3) for t in grid],
        "frame_scores": [[round(float(x), 4) for x in row] for row in frames],
        "sequence_scores": {c: round(float(p), 4) for c, p in zip(classes, seq)},
        "sequence_labels": [c for c, p in zip(classes, seq) if p >= 0.5],
        "coverage": {k: round(float(np.concatenate(v, axis=-1).mean()), 3) for k, v in valid_frac.items()},
        "lidar": bool(rec.of_kind("lidar")),
    }
    if rec.tricks:
        result["ground_truth"] = rec.tricks
    return result


def plot_timeline(result: dict[str, Any], path: str | Path) -> Path:
    """Label timeline: per-frame scores (one row per class), the ground truth under it when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from omnisense._io import write_bytes_atomic

    classes, times = result["classes"], np.asarray(result["times"])
    scores = np.asarray(result["frame_scores"]).T  # [K, T]
    gt = result.get("ground_truth")
    fig, axes = plt.subplots(2 if gt else 1, 1, figsize=(10, 1.2 + 0.45 * len(classes) * (2 if gt else 1)),
                             sharex=True, squeeze=False)
    step = times[1] - times[0] if len(times) > 1 else 0.4
    extent = (times[0] - step / 2, times[-1] + step / 2, len(classes) - 0.5, -0.5)
    ax = axes[0, 0]
    im = ax.imshow(scores, aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(classes)), classes)
    labels = ", ".join(result["sequence_labels"]) or "none"
    ax.set_title(f"MultiTSF frame scores; sequence labels: {labels}", fontsize=9)
    fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01)
    if gt:
        ax = axes[1, 0]
        truth = np.zeros_like(scores)
        for tr in gt:
            for lab in tr["labels"]:
                if lab in classes:
                    truth[classes.index(lab), (times >= tr["start"]) & (times <= tr["end"])] = 1
        ax.imshow(truth, aspect="auto", extent=extent, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_title("ground truth", fontsize=9)
    axes[-1, 0].set_xlabel("time (s, common clock)")
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def run(args: argparse.Namespace) -> int:
    from omnisense._io import write_json_atomic

    result = fuse_recording(args.recording, args.weights)
    write_json_atomic(args.output, result)
    print(f"{args.recording}: {len(result['times'])} grid steps at {result['grid_rate_hz']} Hz, "
          f"{sum(s['kind'] == 'video' for s in result['sensors'])} views; sequence labels: "
          f"{', '.join(result['sequence_labels']) or 'none'} -> {args.output}")
    if args.plot:
        plot_timeline(result, args.plot)
        print(f"timeline -> {args.plot}")
    return 0
