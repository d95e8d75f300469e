"""Regenerate the MultiTSF parity fixture from a checkout of the official code (github.com/thanhhff/MultiTSF).

    python tools/parity/multitsf.py CHECKOUT [--out tests/fixtures/parity/multitsf]

Runs the official `CNN2D_Transformer` (frame encoder, audio MLP, early fusion, temporal transformer, frame and
human heads, device-interaction transformer, sequence head) on CPU at a tiny size, with seeded random weights and
a fixed batch of 2 samples x 2 views x 4 frames, and saves the official state dict, the inputs, the outputs and
intermediates as safetensors. The official code is imported from the checkout and never copied.

Tiny size: the model is built by the official constructor, then its parts are rebuilt by the official classes
at small widths (what the constructor hard-codes: the timm encoder `vit_small_patch32_224` becomes timm's
VisionTransformer of `fusion.multitsf`'s `vit_micro32` config, never downloaded; SimpleASTModel's
131072-512-256-128-384 layers become 64-32-16-16-16; the temporal transformer is the official
`TemporalTransformer` at 48 wide with 2 heads, the device transformer `nn.TransformerEncoderLayer(48, 4, 32)`).
Stubbed imports the model does not use: `transformers` (AST classes of an unused extractor) and
`pytorch_lightning`'s `rank_zero_only` when it is not installed.

The temporal CLS token is set to minus its time embedding plus noise of 1e-3, so the temporal LayerNorms see an
input of variance ~1e-6 and their eps matters: a model with eps 1e-6 instead of the official 1e-5 fails (the
test's probe). A batch of 2 exercises the official inter-view attention across batch x time.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

B, V, T, K = 2, 2, 4, 16
VIDEO_DIM, AUDIO_DIM, FBANK = 32, 16, (8, 8)


def _stub_imports() -> None:
    transformers = types.ModuleType("transformers")
    transformers.ASTConfig = transformers.ASTForAudioClassification = object
    sys.modules.setdefault("transformers", transformers)
    import importlib.util

    if importlib.util.find_spec("pytorch_lightning") is None:
        for name in ("pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.utilities.rank_zero"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["pytorch_lightning.utilities.rank_zero"].rank_zero_only = lambda f: f


def _micro_vit(*_args, **_kwargs) -> nn.Module:
    import timm

    return timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                            num_heads=2, mlp_ratio=2.0, num_classes=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/multitsf"))
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    _stub_imports()
    import models.cnn2d.resnet_2d as resnet_2d
    from models.cnn2d_transformer.cnn2d_transformer import CNN2D_Transformer
    from models.cnn2d_transformer.temporal_transformer.temporal_transformer import TemporalTransformer

    resnet_2d.timm = types.SimpleNamespace(create_model=_micro_vit)
    torch.manual_seed(0)
    model = CNN2D_Transformer("vit_micro32", VIDEO_DIM, K, T, "max")
    dim = VIDEO_DIM + AUDIO_DIM
    audio = model.audio_encoder
    audio.fc1, audio.fc2 = nn.Linear(FBANK[0] * FBANK[1], 32), nn.Linear(32, 16)
    audio.fc3, audio.output = nn.Linear(16, 16), nn.Linear(16, AUDIO_DIM)
    model.temporal_transformer = TemporalTransformer(
        num_classes=K, num_frames=T, img_size=32, patch_size=2, embed_dims=dim, in_channels=3, num_heads=2,
        tube_size=1, dropout_p=0.1, num_transformer_layers=1, num_time_transformer_layers=2, conv_type="Conv3d",
        attention_type="temporal_only", return_cls_token=True, use_learnable_pos_emb=False)
    model.device_transformer = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(d_model=dim, nhead=4, dim_feedforward=32, dropout=0.1), num_layers=1)
    model.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, K))
    model.mlp_head_frames = nn.Conv1d(dim, K, kernel_size=1, padding=0)
    model.mlp_human_frames = nn.Conv1d(VIDEO_DIM, 1, kernel_size=1, padding=0)
    with torch.no_grad():
        for module in model.modules():  # LayerNorm scales and biases away from 1 and 0
            if isinstance(module, nn.LayerNorm):
                module.weight.add_(0.3 * torch.randn_like(module.weight))
                module.bias.add_(0.3 * torch.randn_like(module.bias))
        tt = model.temporal_transformer
        tt.cls_token_temporal.copy_(-tt.time_embed[:, :1] + 1e-3 * torch.randn_like(tt.cls_token_temporal))
    model.eval()

    gen = torch.Generator().manual_seed(1)
    frames = torch.randn(B, V, T, 3, 32, 32, generator=gen)
    fbank = torch.randn(B, V, T, *FBANK, generator=gen)
    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            captured[name] = (output[1] if isinstance(output, tuple) else output).detach().clone()
        return hook

    model.video_encoder.register_forward_hook(keep("video_features"))
    model.audio_encoder.register_forward_hook(keep("audio_features"))
    model.temporal_transformer.register_forward_hook(keep("temporal_features"))
    model.device_transformer.register_forward_hook(keep("device_features"))
    with torch.no_grad():
        sequence, frame, _, human = model(frames, fbank, None)

    tensors = {f"official.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({"input.frames": frames, "input.fbank": fbank, "output.sequence": sequence,
                    "output.frame": frame, "output.human": human.contiguous()})
    tensors.update({f"output.{k}": v.contiguous() for k, v in captured.items()})
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "multitsf.safetensors"))
    for k, v in tensors.items():
        if not k.startswith("official."):
            print(k, tuple(v.shape))


if __name__ == "__main__":
    main()
