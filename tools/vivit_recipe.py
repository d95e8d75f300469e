"""The "Optimizing ViViT Training" recipe against full fine-tuning, in one run, on the synthetic action set.

    omnisense data make actions --out data/actions --size full --seed 0
    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/vivit_recipe.py --data data/actions --out runs/vivit_recipe --measure

Stage 0 alone, for `omnisense fit --config configs/recognition/vivit_tiny_pretrained_synthetic.yaml` (the full
fine-tuning arm as a config-driven run):

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/vivit_recipe.py --data data/actions --out runs/vivit_recipe \
        --pretrain-only runs/image_vit/image_vit.safetensors

Stages (every arm gets the same decoded clips, the same seed, batch, steps, optimiser and schedule, and the
same initial spatial weights):
0. Image pre-training (the paper starts from an ImageNet-21k / CLIP ViT; none exists at this size, and
   nothing can be downloaded here): a timm `VisionTransformer` of the ViViT-tiny spatial size is trained on
   SINGLE FRAMES of the training videos to predict what the generator knows about that one frame: the
   object's shape (5 classes), its colour, and its pose as drawn (centre, size, marker orientation). No
   frame carries its action (mirrored classes share their frame distribution), so the temporal reasoning
   is left to the video stage. Its weights enter ViViT through `load_image_vit` (central-frame tubelet
   inflation, scenic's default), the path an official ViT checkpoint takes.
1. From scratch (diagnostic, `--scratch`): every weight random, every parameter trained.
2. Full fine-tuning (the ViViT FE baseline): spatial encoder from stage 0 (at `--spatial-lr-scale` x the lr),
   temporal encoder random.
3. Naive freezing: spatial frozen, no adapter, temporal random (cached features).
4. The recipe without the cache: spatial frozen, compact adapter, temporal encoder initialised from the
   spatial blocks; only timed (`--timing-steps`), its model is stage 5's up to float16 rounding of the cache.
5. The recipe with its spatial tokens computed once and cached (`SpatialFeatureCache`).
6. Ablations (`--arms ...,adapter_only,tinit_only`): frozen + adapter with a random temporal encoder, and frozen
   + temporal initialisation without the adapter (both on cached features).
Per arm: median time per training step (forward, backward, optimiser; clips already in memory), training
memory (weights + gradients + AdamW state of the trained parameters + the activations autograd saves for
backward, counted exactly with saved-tensor hooks; on CUDA also the allocator's peak), and top-1 / top-5 /
mean class accuracy on the held-out test split (centre clip, centre crop). With `--measure`, two more
measurements per arm: the step memory actually used (the resident-set high-water mark above the idle model
during 6 steps, each arm in a fresh process) and the step time with the arms taking turns step by step
(so that the shared machine's changing load hits them alike).

Resumable: the decoded clips, the pre-trained ViT and each finished arm are stored under `--out`, and the same
command skips what is there (`--fresh` redoes everything). Step times are comparable only between arms timed
in one process on a quiet machine; `results.json` records the load average at each arm's start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
from video.recognition.synthetic import SHAPES, load_attributes  # noqa: E402
from video.sampling import test_clips, train_clips  # noqa: E402
from video.transforms import VIT_MEAN, VIT_STD, crop, normalize, resize_short_side, to_clip  # noqa: E402

STORE = 40  # decoded frames are kept at 40x40 (the 80x80 videos halved); clips are cut from them
CLIP_LEN, INTERVAL = 8, 3  # 8x3x1: the whole 24-frame motion, as in configs/recognition/


# -- data ----------------------------------------------------------------------------------------------------
def decode_split(folder: Path, split: str, cache: Path) -> dict[str, torch.Tensor]:
    """Every frame of every video of a split at 40x40, `uint8 [N, 3, F, 40, 40]`, with labels and attributes
    (pixel attributes in the generator's 80x80 frames). Stored in `cache` (safetensors) after the first decode."""
    from safetensors.torch import load_file, save_file

    if cache.is_file():
        return load_file(cache)
    samples, _ = read_list(folder / f"{split}.csv", folder)
    attrs = load_attributes(folder, split)
    frames = []
    for sample in samples:
        reader = VideoReader(sample.path)
        frames.append(resize_short_side(to_clip(reader.get_frames(np.arange(len(reader)))), STORE))
    data = {"frames": torch.stack(frames), "labels": torch.tensor([s.label for s in samples]),
            "shape": torch.as_tensor(attrs["shape"]), "colour": torch.as_tensor(attrs["colour"]),
            "cx": torch.as_tensor(attrs["cx"]), "cy": torch.as_tensor(attrs["cy"]),
            "radius": torch.as_tensor(attrs["radius"]), "angle": torch.as_tensor(attrs["angle"])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in data.items()}, str(cache))
    return data


def scale_and_crop(x: torch.Tensor, size: int, rng: np.random.Generator | None) -> tuple[torch.Tensor, float, int, int]:
    """Scale jitter + random crop (train, `rng` given: short side uniform in [size, 5/4 size]) or resize to
    9/8 size + centre crop (test), on `[..., H, W]`. Returns the crop and (scale, top, left) to map pixels."""
    if rng is not None:
        side = int(rng.integers(size, size * 5 // 4 + 1))
    else:
        side = size * 9 // 8
    x = resize_short_side(x, side)
    h, w = x.shape[-2:]
    if rng is not None:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    return crop(x, top, left, size, size), side, top, left


def make_clips(data: dict, size: int, views: int, rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed clips `uint8 [N*views, 3, 8, size, size]` (train: mmaction2's random offset, scale jitter, random
    crop, drawn once so every arm and the feature cache see the same clips; test: the centre clip and crop)."""
    clips, labels = [], []
    for video, label in zip(data["frames"], data["labels"]):
        for _ in range(views):
            if rng is not None:
                inds = train_clips(video.shape[1], clip_len=CLIP_LEN, frame_interval=INTERVAL, rng=rng)[0]
            else:
                inds = test_clips(video.shape[1], clip_len=CLIP_LEN, frame_interval=INTERVAL)[0]
            clips.append(scale_and_crop(video[:, torch.as_tensor(inds)], size, rng)[0])
            labels.append(label)
    return torch.stack(clips), torch.stack(labels)


def frame_batch(data: dict, size: int, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """Single frames with their per-frame targets, under the same scale jitter and crop as the clips:
    shape (class), colour (RGB in [0, 1]), centre (in [-1, 1] of the crop), log radius, (cos, sin) of the angle."""
    n, f = data["frames"].shape[0], data["frames"].shape[2]
    idx, fr = rng.integers(0, n, batch), rng.integers(0, f, batch)
    images, pose = [], []
    for i, j in zip(idx, fr):
        img, side, top, left = scale_and_crop(data["frames"][i, :, j:j + 1], size, rng)
        images.append(img[:, 0])
        s = side / 80  # generator pixels (80x80 frames, pixel centres at integers) to crop pixels
        cx = ((float(data["cx"][i, j]) + 0.5) * s - left) / size * 2 - 1
        cy = ((float(data["cy"][i, j]) + 0.5) * s - top) / size * 2 - 1
        r = math.log(float(data["radius"][i, j]) * s / size)
        a = float(data["angle"][i, j])
        pose.append([cx, cy, r, math.cos(a), math.sin(a)])
    targets = {"shape": data["shape"][idx], "colour": data["colour"][idx], "pose": torch.tensor(pose)}
    return torch.stack(images), targets


def prepare(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips `[B, 3, T, H, W]` to the ViT's normalised input."""
    return normalize(clips, VIT_MEAN, VIT_STD)


def prepare_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images `[B, 3, H, W]`, normalised as the clips' frames."""
    return prepare(images[:, :, None])[:, :, 0]


# -- stage 0: image pre-training -----------------------------------------------------------------------------
class ImageViT(torch.nn.Module):
    """A timm ViT with heads for the frame's attributes: shape logits, colour, pose (cx, cy, log r, cos, sin)."""

    def __init__(self, size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.vit = VisionTransformer(img_size=size, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                                     num_classes=0, qkv_bias=True)
        self.shape = torch.nn.Linear(dim, len(SHAPES))
        self.colour = torch.nn.Linear(dim, 3)
        self.pose = torch.nn.Linear(dim, 5)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.vit(images)  # the CLS token after the final norm, as ViViT's spatial encoder emits it
        return {"shape": self.shape(z), "colour": self.colour(z), "pose": self.pose(z)}


def frame_loss(out: dict, tgt: dict) -> torch.Tensor:
    return (F.cross_entropy(out["shape"], tgt["shape"]) + 4 * F.mse_loss(out["colour"], tgt["colour"])
            + 4 * F.mse_loss(out["pose"], tgt["pose"]))


@torch.no_grad()
def frame_metrics(model: ImageViT, data: dict, size: int, seed: int) -> dict[str, float]:
    model.eval()
    rng = np.random.default_rng(seed)
    images, tgt = frame_batch(data, size, 512, rng)
    out = model(prepare_images(images))
    err = (out["pose"] - tgt["pose"])
    return {"shape_acc": float((out["shape"].argmax(-1) == tgt["shape"]).float().mean()),
            "colour_mae": float((out["colour"] - tgt["colour"]).abs().mean()),
            "centre_err_px": float(err[:, :2].norm(dim=-1).mean() * size / 2),
            "angle_err_deg": float(torch.rad2deg(torch.atan2(out["pose"][:, 4], out["pose"][:, 3])
                                                 - torch.atan2(tgt["pose"][:, 4], tgt["pose"][:, 3])).remainder(360)
                                   .sub(180).abs().neg().add(180).mean())}


def pretrain_image_vit(train: dict, test: dict, args, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Stage 0; returns the timm ViT state dict (stored at `path`) and its held-out frame metrics."""
    from safetensors.torch import load_file, save_file

    if path.is_file():
        return load_file(path), json.loads(path.with_suffix(".json").read_text())
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = ImageViT(args.img_size, args.patch, 96, 4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=args.pretrain_lr, weight_decay=0.05)
    warm = max(1, args.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, args.pretrain_steps) / args.pretrain_steps)))
    start = time.perf_counter()
    for step in range(args.pretrain_steps):
        model.train()
        images, tgt = frame_batch(train, args.img_size, args.pretrain_batch, rng)
        loss = frame_loss(model(prepare_images(images)), tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.pretrain_steps - 1:
            print(f"  image pre-training step {step}: loss {float(loss):.3f}", flush=True)
    info = {"steps": args.pretrain_steps, "batch": args.pretrain_batch, "seconds": time.perf_counter() - start,
            "test_frames": frame_metrics(model, test, args.img_size, args.seed)}
    state = {k: v.contiguous() for k, v in model.vit.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    path.with_suffix(".json").write_text(json.dumps(info, indent=2))
    return state, info


# -- the arms ------------------------------------------------------------------------------------------------
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
              cached: bool, device: str, spatial_lr_scale: float = 1.0, evaluate_model: bool = True
              ) -> tuple[dict, ViViTFactorised]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)  # the same batches, in the same order, for every arm
    model.to(device).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    spatial = {id(p) for p in model.spatial_parameters()}
    groups = [{"params": [p for p in trained if id(p) not in spatial], "lr": lr},
              {"params": [p for p in trained if id(p) in spatial], "lr": lr * spatial_lr_scale}]
    opt = torch.optim.AdamW([g_ for g_ in groups if g_["params"]], weight_decay=0.05)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / steps)))
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
    step_times, saved, losses = [], [], []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    load = os.getloadavg()[0]
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
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        sched.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - start)
        saved.append(sb.total)
        losses.append(float(loss))
        if step % 100 == 0:
            print(f"  {name} step {step}: loss {np.mean(losses[-20:]):.3f}, {1e3 * step_times[-1]:.0f} ms", flush=True)
    state_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    trained_bytes = sum(p.numel() * p.element_size() for p in trained)
    memory = state_bytes + trained_bytes * 3 + max(saved)  # weights + grads + AdamW exp_avg, exp_avg_sq + activations
    model.eval()
    metrics = {}
    if evaluate_model:
        scores = []
        with torch.no_grad():
            for k in range(0, len(data["test_clips"]), 64):
                scores.append(model(prepare(data["test_clips"][k:k + 64]).to(device)).float().cpu())
        metrics = evaluate(torch.cat(scores), data["test_labels"], 10)
    row = {"arm": name, "steps": steps, "spatial_lr_scale": spatial_lr_scale if not model.freeze_spatial else None, "trained_params": sum(p.numel() for p in trained), "step_ms": 1e3 * statistics.median(step_times[5:]),
           "saved_activation_MB": max(saved) / 2**20, "train_memory_MB": memory / 2**20, **metrics,
           "final_train_loss": float(np.mean(losses[-50:])), "cache_build_s": cache_seconds, "load_avg_at_start": load}
    if device.startswith("cuda"):
        row["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(row), flush=True)
    return row, model


_CACHED = ("naive", "recipe", "adapter_only", "tinit_only")


def _arm_kwargs(args) -> dict[str, dict]:
    recipe = dict(freeze_spatial=True, adapter_dim=args.adapter_dim, init_temporal_from_spatial=True)
    return {"scratch": {}, "full": {}, "naive": dict(freeze_spatial=True), "recipe_nocache": recipe, "recipe": recipe,
            "adapter_only": dict(freeze_spatial=True, adapter_dim=args.adapter_dim),
            "tinit_only": dict(freeze_spatial=True, init_temporal_from_spatial=True)}


def rss_probe(key: str, args) -> dict:
    """Measured memory of training steps, for one arm, in this (fresh) process: the model is built with random
    weights (same shapes as the arm), then 6 steps run on a random batch while a thread samples the resident
    set size every millisecond. Reports the high-water mark above the RSS just before the first step (so: the
    gradients, the optimiser state, the activations and any transient buffers, not the weights)."""
    import gc
    import threading

    torch.manual_seed(args.seed)
    kw = _arm_kwargs(args)[key]
    cached = key in _CACHED
    model = vivit_tiny(num_classes=10, img_size=args.img_size, patch_size=args.patch, **kw).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.05)
    n = (args.img_size // args.patch) ** 2
    x = torch.randn(args.batch, model.num_times, 1 + n, model.token_dim) if cached else \
        torch.randn(args.batch, 3, CLIP_LEN, args.img_size, args.img_size)
    y = torch.randint(0, 10, (args.batch,))
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    gc.collect()
    base, peak, stop = rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    for _ in range(6):
        logits = model.forward_cached(x) if cached else model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        peak[0] = max(peak[0], rss())
    stop.set()
    thread.join()
    return {"key": key, "peak_rss_above_idle_MB": (peak[0] - base) / 2**20}


def interleaved_step_times(keys: list[str], args, rounds: int = 40) -> dict[str, float]:
    """Median ms per training step of each arm, the arms taking turns step by step (round robin) so that a
    change of the machine's load hits all of them alike. Random weights and batches of the arms' shapes."""
    torch.manual_seed(args.seed)
    kws = _arm_kwargs(args)
    n = (args.img_size // args.patch) ** 2
    video = torch.randn(args.batch, 3, CLIP_LEN, args.img_size, args.img_size)
    y = torch.randint(0, 10, (args.batch,))
    arms = {}
    for key in keys:
        model = vivit_tiny(num_classes=10, img_size=args.img_size, patch_size=args.patch, **kws[key]).train()
        cached = key in _CACHED
        x = torch.randn(args.batch, model.num_times, 1 + n, model.token_dim) if cached else video
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        arms[key] = (model, cached, x, opt, [])
    for r in range(rounds):
        for key, (model, cached, x, opt, times) in arms.items():
            start = time.perf_counter()
            loss = F.cross_entropy(model.forward_cached(x) if cached else model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if r >= 3:  # warm-up rounds not counted
                times.append(time.perf_counter() - start)
    return {key: 1e3 * statistics.median(a[4]) for key, a in arms.items()}


def measure_rss(keys: list[str], argv: list[str]) -> dict[str, float]:
    """`rss_probe` of each arm in its own fresh process (so one arm's allocator state cannot hide another's)."""
    import subprocess

    out = {}
    for key in keys:
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--rss-probe", key]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        out[key] = json.loads(line)["peak_rss_above_idle_MB"]
        print(f"  measured step memory, {key}: {out[key]:.1f} MB", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/actions"))
    ap.add_argument("--out", type=Path, default=Path("runs/vivit_recipe"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--views", type=int, default=1, help="augmented clips drawn per training video (fixed for the run)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pretrain-steps", type=int, default=1200)
    ap.add_argument("--pretrain-batch", type=int, default=64)
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--img-size", type=int, default=32, help="crop size (the configs' 32 on a shared CPU)")
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--adapter-dim", type=int, default=32)
    ap.add_argument("--scratch", action="store_true", help="also train a from-scratch arm (diagnostic)")
    ap.add_argument("--arms", default="full,naive,recipe_nocache,recipe,adapter_only,tinit_only",
                    help="comma-separated subset of the arms to run")
    ap.add_argument("--spatial-lr-scale", type=float, default=0.1,
                    help="full fine-tuning: lr of the pre-trained spatial encoder relative to --lr")
    ap.add_argument("--timing-steps", type=int, default=60, help="steps of the arm that is only timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fresh", action="store_true", help="ignore stored stages under --out")
    ap.add_argument("--measure", action="store_true",
                    help="also measure each arm's step memory (RSS high-water mark, fresh process per arm) and its "
                         "step time with the arms interleaved step by step")
    ap.add_argument("--pretrain-only", type=Path, metavar="PATH",
                    help="run stage 0 only and write the image ViT (timm layout, .safetensors + .json) to PATH, "
                         "the file a config's model.init_args.init_image_vit takes (kept if PATH exists)")
    ap.add_argument("--rss-probe", help=argparse.SUPPRESS)  # internal: one arm's measurement, printed as JSON
    args = ap.parse_args(argv)
    if args.rss_probe:
        print(json.dumps(rss_probe(args.rss_probe, args)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for f in args.out.glob("*"):
            if f.is_file():
                f.unlink()
    size = args.img_size
    start = time.perf_counter()
    train = decode_split(args.data, "train", args.out / "decoded_train.safetensors")
    test = decode_split(args.data, "test", args.out / "decoded_test.safetensors")
    if args.pretrain_only:
        _, pre = pretrain_image_vit(train, test, args, args.pretrain_only)
        print(f"image ViT: {args.pretrain_only}\nimage pre-training: {json.dumps(pre)}", flush=True)
        return 0
    tr_clips, tr_labels = make_clips(train, size, args.views, np.random.default_rng(args.seed))
    te_clips, te_labels = make_clips(test, size, 1, None)
    data = {"train_clips": tr_clips, "train_labels": tr_labels, "test_clips": te_clips, "test_labels": te_labels}
    print(f"{len(tr_clips)} train and {len(te_clips)} test clips ready in {time.perf_counter() - start:.0f} s", flush=True)

    vit_state, pre = pretrain_image_vit(train, test, args, args.out / "image_vit.safetensors")
    print(f"image pre-training: {json.dumps(pre)}", flush=True)

    def build(pretrained: bool = True, **kw) -> ViViTFactorised:
        torch.manual_seed(args.seed + 1)  # the same random temporal encoder / head in every arm
        m = vivit_tiny(num_classes=10, img_size=size, patch_size=args.patch, **kw)
        if pretrained:
            unused = m.load_image_vit(vit_state, center=True)  # re-copies the temporal init when it is on
            assert not unused, unused
        torch.nn.init.normal_(m.head.weight, std=0.02)  # same non-zero head init in every arm
        return m

    recipe = dict(freeze_spatial=True, adapter_dim=args.adapter_dim, init_temporal_from_spatial=True)
    # key: (name, constructor, cached, extra train_arm arguments)
    arms = {
        "scratch": ("from scratch (no image pre-training)", lambda: build(pretrained=False), False, {}),
        "full": ("full fine-tuning", lambda: build(), False, {"spatial_lr_scale": args.spatial_lr_scale}),
        "naive": ("frozen spatial, naive (cached features)", lambda: build(freeze_spatial=True), True, {}),
        "recipe_nocache": ("recipe without the cache (timed only)", lambda: build(**recipe), False,
                           {"steps": args.timing_steps, "evaluate_model": False}),
        "recipe": ("recipe: frozen + adapter + temporal init + cached features", lambda: build(**recipe), True, {}),
        # ablations of the recipe's two additions (cached features)
        "adapter_only": ("frozen + adapter, random temporal (cached)",
                         lambda: build(freeze_spatial=True, adapter_dim=args.adapter_dim), True, {}),
        "tinit_only": ("frozen + temporal init, no adapter (cached)",
                       lambda: build(freeze_spatial=True, init_temporal_from_spatial=True), True, {}),
    }
    wanted = (["scratch"] if args.scratch else []) + [a for a in args.arms.split(",") if a]
    rows = []
    for key in wanted:
        done = args.out / f"arm_{key}.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            print(f"{key}: stored result reused", flush=True)
            continue
        name, make, cached, extra = arms[key]
        common = dict(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, device=args.device)
        row, model = train_arm(name, make(), data, cached=cached, **{**common, **extra})
        row["key"] = key
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / f"vivit_{key}.safetensors"))
        done.write_text(json.dumps(row, indent=2))
        rows.append(row)
    if args.measure:
        base_argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--measure"]
        measured = measure_rss([r["key"] for r in rows], base_argv)
        interleaved = interleaved_step_times([r["key"] for r in rows], args)
        for row in rows:
            row["measured_step_memory_MB"] = measured[row["key"]]
            row["interleaved_step_ms"] = interleaved[row["key"]]
    full = next((r for r in rows if r.get("key") == "full"), None)
    if full is not None:
        for row in rows:
            row["step_time_saving"] = 1 - row["step_ms"] / full["step_ms"]
            row["memory_saving"] = 1 - row["train_memory_MB"] / full["train_memory_MB"]
            if "measured_step_memory_MB" in row:
                row["measured_memory_saving"] = 1 - row["measured_step_memory_MB"] / full["measured_step_memory_MB"]
                row["interleaved_step_time_saving"] = 1 - row["interleaved_step_ms"] / full["interleaved_step_ms"]
    result = {"command": " ".join(sys.argv), "device": args.device, "img_size": size, "patch": args.patch,
              "threads": torch.get_num_threads(), "train_clips": len(tr_clips), "test_clips": len(te_clips),
              "steps": args.steps, "batch": args.batch, "lr": args.lr, "image_pretraining": pre, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
