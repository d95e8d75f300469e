"""Why a from-scratch ViViT FE stays at chance here: what the temporal encoder gets to see.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/vivit_probe.py --run runs/vivit_recipe

The factorised encoder hands the temporal transformer ONE vector per time step: the spatial CLS token. Every
action of the synthetic set is a change of the object's state over time (centre, size, orientation), so the
temporal side can only solve the task if that state is linearly readable from the CLS of each step. This
script fits ridge regressions from per-step features of training clips to the object's state and reports
R^2 on held-out clips, for the spatial encoders of `tools/vivit_recipe.py`'s run (random init; the
image-pretrained ViT; each trained arm found in the run folder), and for three read-outs: the CLS token,
the mean of the patch tokens, and the patch tokens on a 4x4 grid (average-pooled), concatenated: what
the tokens hold at all.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vivit_recipe import CLIP_LEN, INTERVAL, prepare, scale_and_crop  # noqa: E402

from video.models.vivit import vivit_tiny  # noqa: E402
from video.sampling import test_clips  # noqa: E402

TARGETS = ("cx", "cy", "log_r", "cos", "sin")


def clips_with_state(data: dict, size: int, limit: int) -> tuple[torch.Tensor, np.ndarray]:
    """Centre clips and crops `uint8 [N, 3, 8, S, S]` and the object's state per tubelet step `[N, 4, 5]`
    (the mean over the tubelet's two frames; centre in crop pixels, log radius, cos / sin of the angle)."""
    clips, states = [], []
    inds = test_clips(data["frames"].shape[2], clip_len=CLIP_LEN, frame_interval=INTERVAL)[0]
    for i in range(min(limit, data["frames"].shape[0])):
        clip, side, top, left = scale_and_crop(data["frames"][i][:, torch.as_tensor(inds)], size, None)
        s = side / 80
        per_frame = np.stack([(data["cx"][i, inds].numpy() + 0.5) * s - left, (data["cy"][i, inds].numpy() + 0.5) * s - top,
                              np.log(data["radius"][i, inds].numpy() * s), np.cos(data["angle"][i, inds].numpy()),
                              np.sin(data["angle"][i, inds].numpy())], -1)  # [8, 5]
        clips.append(clip)
        states.append(per_frame.reshape(CLIP_LEN // 2, 2, 5).mean(1))
    return torch.stack(clips), np.stack(states)


@torch.no_grad()
def features(model, clips: torch.Tensor) -> dict[str, np.ndarray]:
    model.eval()
    out = {"cls": [], "patch_mean": [], "patches": []}
    for k in range(0, len(clips), 50):
        tokens = model.extract_spatial(prepare(clips[k:k + 50]))  # [B, T', 1+N, D]
        out["cls"].append(tokens[:, :, 0])
        out["patch_mean"].append(tokens[:, :, 1:].mean(2))
        b, t, n, d = tokens[:, :, 1:].shape
        side = int(math.isqrt(n))
        grid = tokens[:, :, 1:].reshape(b * t, side, side, d).permute(0, 3, 1, 2)
        out["patches"].append(torch.nn.functional.adaptive_avg_pool2d(grid, 4).reshape(b, t, -1))  # 4x4 grid of D
    return {k: torch.cat(v).flatten(0, 1).numpy().astype(np.float64) for k, v in out.items()}


def ridge_r2(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    xtr, xte = np.c_[xtr, np.ones(len(xtr))], np.c_[xte, np.ones(len(xte))]
    w = np.linalg.solve(xtr.T @ xtr + alpha * len(xtr) * 1e-3 * np.eye(xtr.shape[1]), xtr.T @ ytr)
    res = ((xte @ w - yte) ** 2).sum(0)
    return 1 - res / ((yte - yte.mean(0)) ** 2).sum(0)


def main(argv=None) -> int:
    from safetensors.torch import load_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/vivit_recipe"))
    ap.add_argument("--train-clips", type=int, default=1200)
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    train = load_file(args.run / "decoded_train.safetensors")
    test = load_file(args.run / "decoded_test.safetensors")
    tr_clips, tr_state = clips_with_state(train, args.img_size, args.train_clips)
    te_clips, te_state = clips_with_state(test, args.img_size, 600)
    ytr, yte = tr_state.reshape(-1, 5), te_state.reshape(-1, 5)

    def model_from(state: dict | None, image_vit: bool = False):
        torch.manual_seed(1)
        m = vivit_tiny(num_classes=10, img_size=args.img_size, patch_size=args.patch)
        if state is not None and image_vit:
            m.load_image_vit(state, center=True)
        elif state is not None:
            m.load_state_dict(state, strict=False)
        return m

    encoders = {"random init": model_from(None)}
    if (args.run / "image_vit.safetensors").is_file():
        encoders["image-pretrained ViT (stage 0)"] = model_from(load_file(args.run / "image_vit.safetensors"), image_vit=True)
    for arm in ("scratch", "full"):
        path = args.run / f"vivit_{arm}.safetensors"
        if path.is_file():
            state = {k: v for k, v in load_file(path).items() if k.startswith(("patch_embed", "spatial_"))}
            encoders[f"after training: arm '{arm}'"] = model_from(state)
    rows = []
    for name, model in encoders.items():
        ftr, fte = features(model, tr_clips), features(model, te_clips)
        for readout in ("cls", "patch_mean", "patches"):
            r2 = ridge_r2(ftr[readout], ytr, fte[readout], yte)
            rows.append({"encoder": name, "readout": readout, **{t: round(float(v), 3) for t, v in zip(TARGETS, r2)}})
            print(json.dumps(rows[-1]), flush=True)
    (args.run / "probe.json").write_text(json.dumps(rows, indent=2))
    print("| encoder | read-out | " + " | ".join(f"R² {t}" for t in TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for r in rows:
        print(f"| {r['encoder']} | {r['readout']} | " + " | ".join(f"{r[t]:.2f}" for t in TARGETS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
