"""Regenerate the ViViT parity fixture from a checkout of scenic (google-research/scenic).

    PYTHON_WITH_JAX tools/parity/vivit.py CHECKOUT [--out tests/fixtures/parity/vivit]

Needs jax, flax, ml_collections, immutabledict, scipy, msgpack and safetensors (a throwaway virtual
environment: `python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax flax ml_collections immutabledict
scipy safetensors`), never the project's own environment. Scenic is imported from the checkout and never copied;
`tensorflow` and `clu` (imported by scenic's ViT and debug modules, unused here) are stubbed.

Builds scenic's `SpaceTimeViViT` with the K400 factorised-encoder configuration (attention type
'factorized_encoder', classifier 'token', 3D-conv tubelets, no representation layer) at a tiny size: hidden 32,
2 heads, MLP 64, 2 spatial and 2 temporal layers, 4 x 4 x 2 tubelets on 4 frames of 16 x 16, 400 classes.
Every parameter is drawn at random (seed 0; flax's init would leave the output projection at zero), and the
temporal CLS token is set to minus the temporal position embedding of its slot plus noise of 1e-3, so that the
temporal encoder's first LayerNorm sees a variance of ~1e-6 and its eps matters (the test's probe).

Writes `checkpoint_0` (the parameters as `flax.training.checkpoints` saves a train state: msgpack of
{"global_step", "params", "model_state", "rng", "metadata"}), `vivit.safetensors` with the input clips (flax
layout [B, T, H, W, C]), the logits and the temporal encoder's output (after its LayerNorm; the vmapped
spatial encoder's intermediates cannot be captured).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/vivit"))
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    for name in ("tensorflow", "tensorflow.io", "clu", "clu.parameter_overview"):  # imported, unused here
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["tensorflow"].io = sys.modules["tensorflow.io"]
    sys.modules["tensorflow.io"].gfile = None
    sys.modules["clu"].parameter_overview = sys.modules["clu.parameter_overview"]

    import jax
    import jax.numpy as jnp
    import ml_collections
    from flax import serialization
    from safetensors.numpy import save_file
    from scenic.projects.vivit.model import SpaceTimeViViT

    config = ml_collections.ConfigDict()
    config.attention_config = ml_collections.ConfigDict({"type": "factorized_encoder"})
    config.patches = ml_collections.ConfigDict({"size": (4, 4, 2)})
    config.temporal_encoding_config = ml_collections.ConfigDict({"method": "3d_conv",
                                                                 "kernel_init_method": "central_frame_initializer"})
    model = SpaceTimeViViT(spatial_mlp_dim=64, spatial_num_layers=2, spatial_num_heads=2, temporal_mlp_dim=64,
                           temporal_num_layers=2, temporal_num_heads=2, num_classes=400, patches=config.patches,
                           hidden_size=32, temporal_encoding_config=config.temporal_encoding_config,
                           attention_config=config.attention_config, representation_size=None, dropout_rate=0.0,
                           attention_dropout_rate=0.0, classifier="token")
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((2, 4, 16, 16, 3)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(0), jnp.asarray(clips), train=False)

    def randomise(path, leaf):
        name = "/".join(str(getattr(p, "key", p)) for p in path)
        shape = np.shape(leaf)
        if name.endswith("scale"):
            return (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
        # Kernels at std 1/sqrt(fan in) (2/sqrt for the MLP's first layer, so that its pre-activations reach the
        # range where flax's tanh GELU and the exact one differ by ~1e-4), biases and embeddings at 0.2.
        fan_in = int(np.prod(shape[:-1])) if name.endswith("kernel") else 1
        if name.endswith("out/kernel"):  # [heads, head_dim, D]
            fan_in = shape[0] * shape[1]
        elif "MultiHeadDotProductAttention" in name and name.endswith("kernel"):  # [D, heads, head_dim]
            fan_in = shape[0]
        std = (2.0 if name.endswith("Dense_0/kernel") else 1.0) / np.sqrt(fan_in) if fan_in > 1 else 0.2
        return (std * rng.standard_normal(shape)).astype(np.float32)

    params = jax.tree_util.tree_map_with_path(randomise, variables["params"])
    params = jax.tree_util.tree_map(np.asarray, params)
    pos = params["TemporalTransformer"]["posembed_input"]["pos_embedding"]
    params["cls_TemporalTransformer"] = (-pos[:, :1] + 1e-3 * rng.standard_normal(pos[:, :1].shape)).astype(np.float32)

    logits, state = model.apply({"params": params}, jnp.asarray(clips), train=False,
                                capture_intermediates=lambda mdl, _: mdl.name == "TemporalTransformer")
    inter = state["intermediates"]
    args.out.mkdir(parents=True, exist_ok=True)
    train_state = {"global_step": 0, "params": params, "model_state": {}, "rng": np.zeros(2, np.uint32),
                   "metadata": {"note": "random weights for a parity fixture"}}
    (args.out / "checkpoint_0").write_bytes(serialization.to_bytes(train_state))
    tensors = {"input.clips": clips, "output.logits": np.asarray(logits),
               "output.temporal": np.asarray(inter["TemporalTransformer"]["__call__"][0])}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(args.out / "vivit.safetensors"))
    for k, v in tensors.items():
        print(k, v.shape)


if __name__ == "__main__":
    main()
