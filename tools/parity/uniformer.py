"""Parity fixture for UniFormer (video) from the official code (Sense-X/UniFormer,
`video_classification/slowfast/models/uniformer.py`, the PySlowFast model behind the released K400/K600/SSv2
checkpoints).

    python tools/parity/uniformer.py /path/to/UniFormer-checkout [--out tests/fixtures/parity/uniformer]

Builds the official `Uniformer(cfg)` on CPU at a tiny size (depth 1/1/1/1, dims 16/32/32/48, head dim 16),
fills every parameter and BatchNorm statistic with seeded random values, runs it in eval mode on a fixed clip
`[2, 3, 4, 32, 32]` and writes `fixture.safetensors`: `official.*` (the state dict, `model_state` names),
`input.video`, `output.features` (after the final BatchNorm), `output.logits`, and `output.logits_probe`: the
same weights with `patch_embed3.proj`, `patch_embed3.norm` and `blocks3.0.pos_embed` scaled by `PROBE_SCALE`,
so that the eps of patch_embed3's LayerNorm (1e-5) and of the first stage-3 block's LayerNorm (1e-6) decide
the output.

Stubs: the file imports `slowfast.utils.logging` and the model registry; both are replaced by minimal modules
(a logger, a registry whose `register()` returns the class unchanged). The config node is a namespace holding
only the keys `Uniformer.__init__` reads. Nothing of the official code is written out.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

PROBE_SCALE = 1e-3
SIZE = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 32, 48], head_dim=16, num_classes=5, frames=4, crop=32)


def load_official(checkout: Path):
    for name in ("slowfast", "slowfast.utils", "slowfast.models"):
        sys.modules.setdefault(name, types.ModuleType(name))
    log = types.ModuleType("slowfast.utils.logging")
    log.get_logger = logging.getLogger
    build = types.ModuleType("slowfast.models.build")
    build.MODEL_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    sys.modules["slowfast.utils.logging"], sys.modules["slowfast.models.build"] = log, build
    path = checkout / "video_classification/slowfast/models/uniformer.py"
    spec = importlib.util.spec_from_file_location("slowfast.models.uniformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cfg():
    ns = types.SimpleNamespace
    return ns(UNIFORMER=ns(DEPTH=SIZE["depth"], EMBED_DIM=SIZE["embed_dim"], HEAD_DIM=SIZE["head_dim"], MLP_RATIO=4,
                           QKV_BIAS=True, QKV_SCALE=None, REPRESENTATION_SIZE=None, DROPOUT_RATE=0.0,
                           ATTENTION_DROPOUT_RATE=0.0, DROP_DEPTH_RATE=0.0, SPLIT=False, STD=False, PRETRAIN_NAME=""),
              MODEL=ns(NUM_CLASSES=SIZE["num_classes"], USE_CHECKPOINT=False, CHECKPOINT_NUM=[0, 0, 0, 0]),
              DATA=ns(TRAIN_CROP_SIZE=SIZE["crop"], INPUT_CHANNEL_NUM=[3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of Sense-X/UniFormer")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/uniformer"))
    args = parser.parse_args()
    module = load_official(args.checkout)
    torch.manual_seed(0)
    model = module.Uniformer(tiny_cfg()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_scale = p.ndim == 1 and "norm" in name and name.endswith("weight")
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if is_scale else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    video = torch.randn(2, 3, SIZE["frames"], SIZE["crop"], SIZE["crop"])
    with torch.no_grad():
        features = model.forward_features(video)
        logits = model([video])
        pe, pos = model.patch_embed3, model.blocks3[0].pos_embed
        probe_params = [pe.proj.weight, pe.proj.bias, pe.norm.weight, pe.norm.bias, pos.weight, pos.bias]
        for p in probe_params:
            p.mul_(PROBE_SCALE)
        probe = model([video])
        for p in probe_params:
            p.div_(PROBE_SCALE)
    state = {f"official.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({**state, "input.video": video, "output.features": features, "output.logits": logits,
               "output.logits_probe": probe}, str(args.out / "fixture.safetensors"),
              metadata={"repository": "Sense-X/UniFormer", "commit": commit, "probe_scale": str(PROBE_SCALE),
                        "size": repr(SIZE), "script": "tools/parity/uniformer.py"})
    print(f"wrote {args.out / 'fixture.safetensors'}: {len(state)} tensors, logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main()
