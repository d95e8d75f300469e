"""The "Optimizing ViViT Training" recipe against full fine-tuning, in one run, on the synthetic action set.

    PYTHONPATH=. python tools/vivit_recipe.py --data data/actions --out runs/vivit_recipe --views 1 --steps 400

Steps (all on the same decoded clips, same batch size, steps, optimiser and schedule):
0. Image pre-training stand-in: the ViViT-tiny spatial encoder learns the object's *shape* (5 classes) from
   single frames of the training videos. The paper starts from an ImageNet-21k / CLIP ViT; we have none at
   this size, so this gives the spatial side image features that know nothing of the action labels.
1. Full fine-tuning (the ViViT FE baseline): spatial encoder from step 0, temporal encoder random
   (scenic #351), every parameter trained.
2. Naive freezing: spatial frozen, no adapter, temporal random.
3. The recipe: spatial frozen, compact adapter, temporal encoder initialised from the spatial blocks,
   spatial tokens computed once and cached.
For each: median time per training step (forward, backward, optimiser; data already in memory), training
memory (parameters + gradients + AdamW state of the trained parameters + activations saved for backward,
counted exactly with saved-tensor hooks; on CUDA also the allocator's peak), and top-1 / top-5 / mean
class accuracy on the held-out test split (one centre clip per video).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from video.io import VideoReader  # noqa: E402
from video.models.vivit import SpatialFeatureCache, ViViTFactorised, vivit_tiny  # noqa: E402
from video.recognition.datasets import read_list  # noqa: E402
from video.recognition.metrics import evaluate  # noqa: E402
from video.sampling import test_clips, train_clips  # noqa: E402
from video.transforms import VIT_MEAN, VIT_STD, ClipTransform, normalize, to_clip  # noqa: E402

SHAPES = ("circle", "square", "triangle", "ell", "arrow")


def load_split(folder: Path, split: str, views: int, rng: np.random.Generator, transform: ClipTransform):
    """Decode `views` clips per video (train: random clips and crops; test: the centre clip and crop)."""
    import csv

    samples, names = read_list(folder / f"{split}.csv", folder)
    shapes = [SHAPES.index(r["shape"]) for r in csv.DictReader((folder / f"{split}.csv").open())]
    clips, labels, shape_labels = [], [], []
    for sample, shape in zip(samples, shapes):
        reader = VideoReader(sample.path)
        for _ in range(views):
            if split == "train":
                inds = train_clips(len(reader), clip_len=8, frame_interval=3, rng=rng)[0]
                clip = transform.train(to_clip(reader.get_frames(inds)), rng)
            else:
                inds = test_clips(len(reader), clip_len=8, frame_interval=3)[0]
                clip = transform.test(to_clip(reader.get_frames(inds)))[0]
            clips.append(clip)
            labels.append(sample.label)
            shape_labels.append(shape)
    return torch.stack(clips), torch.tensor(labels), torch.tensor(shape_labels), names


def prepare(clips: torch.Tensor) -> torch.Tensor:
    return normalize(clips, VIT_MEAN, VIT_STD)


def pretrain_spatial(model: ViViTFactorised, clips: torch.Tensor, shapes: torch.Tensor, steps: int, batch: int,
                     seed: int) -> float:
    """Single-frame shape classification through the spatial encoder (a still 2-frame tubelet per frame)."""
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(model.token_dim, len(SHAPES))
    params = [model.spatial_cls, model.spatial_pos, *model.patch_embed.parameters(), *model.spatial_blocks.parameters(),
              *model.spatial_norm.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    n, t = clips.shape[0], clips.shape[2]
    accs = []
    for step in range(steps):
        i = torch.randint(0, n, (batch,), generator=g)
        f = torch.randint(0, t, (batch,), generator=g)
        frames = clips[i, :, f]  # [B, 3, H, W]
        still = prepare(frames[:, :, None].repeat(1, 1, 2, 1, 1))  # [B, 3, 2, H, W]
        cls = model.extract_spatial(still)[:, 0, 0]  # [B, D]
        logits = head(cls)
        loss = F.cross_entropy(logits, shapes[i])
        opt.zero_grad()
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.step()
        accs.append(float((logits.argmax(-1) == shapes[i]).float().mean()))
    return float(np.mean(accs[-20:]))


class SavedBytes:
    """Bytes of every tensor autograd saves for backward while the context is open."""

    def __init__(self):
        self.total = 0

    def pack(self, t: torch.Tensor):
        self.total += t.numel() * t.element_size()
        return t

    def __enter__(self):
        self.ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self.ctx.__exit__(*exc)


def train_arm(name: str, model: ViViTFactorised, data: dict, *, steps: int, batch: int, lr: float, seed: int,
              cached: bool, device: str) -> dict:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    clips, labels = data["train_clips"], data["train_labels"]
    cache = SpatialFeatureCache() if cached else None
    cache_seconds = 0.0
    if cached:  # computed once, outside the timed steps; its cost is reported separately
        start = time.perf_counter()
        with torch.no_grad():
            for k in range(0, len(clips), 64):
                keys = [str(j) for j in range(k, min(k + 64, len(clips)))]
                cache.features(model, keys, prepare(clips[k:k + 64]).to(device))
        cache_seconds = time.perf_counter() - start
    step_times, saved = [], []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps):
        i = torch.randint(0, len(clips), (batch,), generator=g)
        if cached:
            x = torch.stack([cache.get(str(j)) for j in i.tolist()]).to(device, torch.float32)
        else:
            x = prepare(clips[i]).to(device)
        y = labels[i].to(device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with SavedBytes() as sb:
            logits = model.forward_cached(x) if cached else model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - start)
        saved.append(sb.total)
    state_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    trained_bytes = sum(p.numel() * p.element_size() for p in trained)
    memory = state_bytes + trained_bytes * 3 + max(saved)  # weights + grads + AdamW exp_avg, exp_avg_sq + activations
    model.eval()
    scores = []
    with torch.no_grad():
        for k in range(0, len(data["test_clips"]), 64):
            scores.append(model(prepare(data["test_clips"][k:k + 64]).to(device)).float().cpu())
    metrics = evaluate(torch.cat(scores), data["test_labels"], 10)
    row = {"arm": name, "trained_params": sum(p.numel() for p in trained), "step_ms": 1e3 * statistics.median(step_times[5:]),
           "saved_activation_MB": max(saved) / 2**20, "train_memory_MB": memory / 2**20, **metrics,
           "cache_build_s": cache_seconds}
    if device.startswith("cuda"):
        row["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/actions"))
    ap.add_argument("--out", type=Path, default=Path("runs/vivit_recipe"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--pretrain-steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--views", type=int, default=2, help="augmented clips decoded per training video")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--img-size", type=int, default=32, help="crop size (the configs' 32 on a shared CPU; 64 fits the videos)")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    size = args.img_size
    transform = ClipTransform(crop_size=size, jitter_scales=(size, size * 5 // 4), crop_scale=(0.6, 1.0), flip_prob=0.0,
                              test_short_side=size * 9 // 8)
    start = time.perf_counter()
    tr = load_split(args.data, "train", args.views, rng, transform)
    te = load_split(args.data, "test", 1, rng, transform)
    data = {"train_clips": tr[0], "train_labels": tr[1], "test_clips": te[0], "test_labels": te[1]}
    print(f"decoded {len(tr[0])} train and {len(te[0])} test clips in {time.perf_counter() - start:.0f} s", flush=True)

    base = vivit_tiny(num_classes=10, img_size=size, patch_size=size // 8)
    start = time.perf_counter()
    shape_acc = pretrain_spatial(base, tr[0], tr[2], args.pretrain_steps, 64, args.seed)
    print(f"spatial pre-training (shape from one frame): train acc {shape_acc:.3f} in {time.perf_counter() - start:.0f} s",
          flush=True)
    spatial = {k: v for k, v in base.state_dict().items() if k.startswith(("patch_embed", "spatial_"))}

    def build(**kw) -> ViViTFactorised:
        torch.manual_seed(args.seed + 1)
        m = vivit_tiny(num_classes=10, img_size=size, patch_size=size // 8, **kw)
        m.load_state_dict(spatial, strict=False)
        if kw.get("init_temporal_from_spatial"):
            m.copy_spatial_to_temporal()
        torch.nn.init.normal_(m.head.weight, std=0.02)  # same head init in every arm
        return m

    common = dict(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, device=args.device)
    rows = [
        train_arm("full fine-tuning", build(), data, cached=False, **common),
        train_arm("frozen spatial, naive", build(freeze_spatial=True), data, cached=False, **common),
        train_arm("recipe (frozen + adapter + temporal init), no cache",
                  build(freeze_spatial=True, adapter_dim=32, init_temporal_from_spatial=True), data, cached=False, **common),
        train_arm("recipe + cached spatial features",
                  build(freeze_spatial=True, adapter_dim=32, init_temporal_from_spatial=True), data, cached=True, **common),
    ]
    full = rows[0]
    for row in rows[1:]:
        row["step_time_saving"] = 1 - row["step_ms"] / full["step_ms"]
        row["memory_saving"] = 1 - row["train_memory_MB"] / full["train_memory_MB"]
    result = {"device": args.device, "img_size": size, "threads": torch.get_num_threads(), "train_clips": len(tr[0]),
              "test_clips": len(te[0]), "steps": args.steps, "batch": args.batch, "pretrain_shape_acc": shape_acc,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
