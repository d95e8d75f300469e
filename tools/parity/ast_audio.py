"""Parity fixture for AST (named ast_audio.py: a script named ast.py would shadow the standard library)
from the official code (YuanGongND/ast, `src/models/ast_models.py`).

    python tools/parity/ast_audio.py /path/to/ast-checkout [--out tests/fixtures/parity/ast]

Builds the official `ASTModel` on CPU at a tiny size (DeiT-style ViT of width 32, 2 blocks, 2 heads, 32 mel
bins x 48 frames), fills every parameter with seeded random values, runs it on a fixed input and writes
`fixture.safetensors`: `official.*` (the state dict as the official model names it, `module.` prefixed as in
the released checkpoints), `input.fbank`, `output.logits`, `output.tokens` (after the final norm) and
`output.logits_probe` (the same weights with `v.norm`'s scale and shift multiplied by `PROBE_SCALE`, so that
the head LayerNorm's eps matters). Nothing of the official code is written out.

Stubs: the official file needs timm 0.4.5 and `wget`; the newest timm builds the same DeiT (its `Block` has the
same parameters and computation), `wget` is never called (no pretraining), and the official `PatchEmbed`
override (which timm >= 0.9 no longer picks up through the module attribute) is installed by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

PROBE_SCALE = 1e-3
SIZE = dict(embed_dim=32, depth=2, num_heads=2, input_fdim=32, input_tdim=48, label_dim=7, fstride=10, tstride=10)


def load_official(checkout: Path):
    import timm
    from timm.models.deit import VisionTransformerDistilled

    sys.modules.setdefault("wget", types.ModuleType("wget"))
    spec = importlib.util.spec_from_file_location("official_ast_models", checkout / "src/models/ast_models.py")
    module = importlib.util.module_from_spec(spec)
    version = timm.__version__
    timm.__version__ = "0.4.5"  # the file asserts it; restored below
    original_create = timm.create_model

    def create_model(name, pretrained=False, **_):
        assert not pretrained and "distilled" in name
        v = VisionTransformerDistilled(img_size=224, patch_size=16, embed_dim=SIZE["embed_dim"], depth=SIZE["depth"],
                                       num_heads=SIZE["num_heads"], num_classes=5)
        v.patch_embed = module.PatchEmbed(img_size=224, patch_size=16, in_chans=3, embed_dim=SIZE["embed_dim"])
        return v

    spec.loader.exec_module(module)
    timm.create_model = create_model
    return module, lambda: (setattr(timm, "__version__", version), setattr(timm, "create_model", original_create))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of YuanGongND/ast")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/ast"))
    args = parser.parse_args()
    module, restore = load_official(args.checkout)
    torch.manual_seed(0)
    model = module.ASTModel(label_dim=SIZE["label_dim"], fstride=SIZE["fstride"], tstride=SIZE["tstride"],
                            input_fdim=SIZE["input_fdim"], input_tdim=SIZE["input_tdim"], imagenet_pretrain=False,
                            audioset_pretrain=False, model_size="tiny224", verbose=False)
    restore()
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # seeded values everywhere, norms around 1
            is_norm = "norm" in name or name.startswith("mlp_head.0")
            is_norm_scale = p.ndim == 1 and is_norm and name.endswith("weight")
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if is_norm_scale else 0.0))
    fbank = torch.randn(2, SIZE["input_tdim"], SIZE["input_fdim"])
    tokens = {}
    def keep_tokens(module, inputs, output):  # returns None: the output is left as it is
        tokens.setdefault("tokens", output.detach().clone())

    model.v.norm.register_forward_hook(keep_tokens)
    with torch.no_grad():
        logits = model(fbank).float()
        model.v.norm.weight.mul_(PROBE_SCALE)
        model.v.norm.bias.mul_(PROBE_SCALE)
        probe = model(fbank).float()
        model.v.norm.weight.div_(PROBE_SCALE)
        model.v.norm.bias.div_(PROBE_SCALE)
    state = {f"official.module.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({**state, "input.fbank": fbank, "output.logits": logits, "output.tokens": tokens["tokens"],
               "output.logits_probe": probe},
              str(args.out / "fixture.safetensors"),
              metadata={"repository": "YuanGongND/ast", "commit": commit, "probe_scale": str(PROBE_SCALE),
                        "size": repr(SIZE), "script": "tools/parity/ast_audio.py"})
    print(f"wrote {args.out / 'fixture.safetensors'}: {len(state)} tensors, logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main()
