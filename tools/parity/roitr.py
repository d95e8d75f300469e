"""Regenerate the RoITr parity fixture from a checkout of the official code (haoyu94/RoITr).

    python tools/parity/roitr.py CHECKOUT [--out tests/fixtures/parity/roitr]

Runs the official `RIGA_v2` (encoder, global transformer, decoder, coarse and fine matching) on CPU at a tiny
width (the official widths 64/128/256/256 x factor, with factor = 1/8), seeded random weights and two fixed
random clouds, and saves the official state dict, the inputs, the outputs and intermediates as safetensors.
The official code is imported from the checkout and never copied. Its compiled CUDA ops (`pointops_cuda`) are
replaced by pure-torch equivalents written from their documented behaviour:
- `knnquery(k, xyz, new_xyz, offset, new_offset)`: the k nearest `xyz` points of each `new_xyz` point within
  its batch, ascending distance, global int32 indices, and the distances (sqrt of squared distances);
- `furthestsampling(xyz, offset, new_offset)`: per batch, start at the batch's first point, then repeatedly the
  point farthest from the chosen set (squared distances, the first maximum), global int32 indices.
`torch.cuda.*Tensor` and `.cuda()` are redirected to the CPU. One LayerNorm input is shrunk (the
`enc1.1` block's output projection scaled by 1e-3) so that the norm's eps matters: a model with a wrong eps
does not pass (the test's probe).

Also writes `layouts.json`: every official key and shape of the released 3DMatch model (factor 1) and of the
4DMatch model (factor 2), for the converter's layout checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

N_POINTS = 1100  # 1100 -> 275 -> 68 -> 17 nodes: the coarsest level still has nsample + 1 = 17 points


class _Eighth:
    """The official widths are `64 * factor` etc.; `64 * _Eighth()` is 8."""

    def __rmul__(self, other: int) -> int:
        return other // 8


def _knnquery(nsample, xyz, new_xyz, offset, new_offset):
    new_xyz = xyz if new_xyz is None else new_xyz
    idx, dist = [], []
    starts, new_starts = [0] + offset[:-1].tolist(), [0] + new_offset[:-1].tolist()
    for s, e, ns, ne in zip(starts, offset.tolist(), new_starts, new_offset.tolist()):
        d2 = ((new_xyz[ns:ne, None, :] - xyz[None, s:e, :]) ** 2).sum(-1)  # [m, n]
        d, i = d2.topk(nsample, dim=1, largest=False, sorted=True)
        idx.append(i + s)
        dist.append(d)
    return torch.cat(idx).int(), torch.cat(dist).sqrt()


def _furthestsampling(xyz, offset, new_offset):
    out = []
    starts, new_starts = [0] + offset[:-1].tolist(), [0] + new_offset[:-1].tolist()
    for s, e, ns, ne in zip(starts, offset.tolist(), new_starts, new_offset.tolist()):
        pts = xyz[s:e]
        tmp = torch.full((pts.shape[0],), 1e10)
        chosen = [0]
        for _ in range(1, ne - ns):
            tmp = torch.minimum(tmp, ((pts - pts[chosen[-1]]) ** 2).sum(-1))
            chosen.append(int(torch.argmax(tmp)))
        out.append(torch.tensor(chosen) + s)
    return torch.cat(out).int()


def _load_official(checkout: Path):
    sys.path.insert(0, str(checkout))
    sys.modules["pointops_cuda"] = types.ModuleType("pointops_cuda")
    torch.cuda.IntTensor = lambda *a: torch.IntTensor(*a)
    torch.cuda.FloatTensor = lambda *a: torch.FloatTensor(*a)
    torch.Tensor.cuda = lambda self, *a, **k: self
    from cpp_wrappers.pointops.functions import pointops

    pointops.knnquery = _knnquery
    pointops.furthestsampling = _furthestsampling
    import lib.utils
    import model.RIGA_v2 as official

    lib.utils.knnquery = _knnquery
    return official


def _config(benchmark: str) -> SimpleNamespace:
    return SimpleNamespace(
        with_cross_pos_embed=True, benchmark=benchmark, num_est_coarse_corr=16,
        transformer_architecture=["self", "cross"], mode="test", point_per_patch=32, matching_radius=0.05,
        num_gt_coarse_corr=16, coarse_overlap_threshold=0.1, fine_matching_topk=3, fine_matching_mutual=True,
        fine_matching_confidence_threshold=0.02, fine_matching_use_dustbin=False,
        fine_matching_use_global_score=False, fine_matching_correspondence_threshold=3)


def _layout(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/roitr"))
    args = parser.parse_args()
    official = _load_official(args.checkout.resolve())
    args.out.mkdir(parents=True, exist_ok=True)

    layouts = {}
    for name, benchmark in (("3dmatch", "3DMatch"), ("4dmatch", "4DMatch")):
        cfg = _config(benchmark)
        cfg.transformer_architecture = ["self", "cross"] * 3
        layouts[name] = _layout(official.RIGA_v2(cfg))

    original = official.RIPointTransformer
    official.RIPointTransformer = lambda **kw: original(**{**kw, "factor": _Eighth()})
    torch.manual_seed(0)
    model = official.RIGA_v2(_config("3DMatch"))
    model.coarse_proj = torch.nn.Linear(32, 32)
    model.fine_proj = torch.nn.Linear(8, 8)
    with torch.no_grad():
        for name, p in model.named_parameters():  # LayerNorm scales and biases away from 1 and 0
            if "norm" in name or "bn2" in name or ".linear1.1." in name or ".linear2.1." in name:
                p.copy_(p + 0.2 * torch.randn_like(p))
        model.backbone.enc1[1].transformer.transformer.out_proj.weight.mul_(1e-3)
        model.backbone.enc1[1].transformer.transformer.out_proj.bias.mul_(1e-3)
    model.eval()

    gen = torch.Generator().manual_seed(1)
    src = torch.rand(N_POINTS, 3, generator=gen) * torch.tensor([0.8, 0.8, 0.3])
    src_normals = torch.nn.functional.normalize(torch.randn(N_POINTS, 3, generator=gen), dim=1)
    angle = 0.4
    rot = torch.tensor([[1.0, 0, 0], [0, torch.cos(torch.tensor(angle)), -torch.sin(torch.tensor(angle))],
                        [0, torch.sin(torch.tensor(angle)), torch.cos(torch.tensor(angle))]])
    trans = torch.tensor([[0.05], [-0.02], [0.03]])
    tgt = (src @ rot.T + trans.T + 0.005 * torch.randn(N_POINTS, 3, generator=gen)).contiguous()
    tgt_normals = (src_normals @ rot.T).contiguous()
    ones = torch.ones(N_POINTS, 1)

    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            if name not in captured:  # the source cloud runs first
                captured[name] = output[6] if isinstance(output, list) else output
        return hook

    for i in (2, 3, 4):
        getattr(model.backbone, f"enc{i}")[0].register_forward_hook(keep(f"src_fps_idx{i}"))
    model.backbone.enc1.register_forward_hook(lambda m, i, o: keep("src_level1_feats")(m, i, o[1]))
    with torch.no_grad():
        out = model(src, tgt, ones, ones, src_normals, tgt_normals, rot, trans, src)

    tensors = {f"official.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({"input.src_points": src, "input.src_normals": src_normals, "input.tgt_points": tgt,
                    "input.tgt_normals": tgt_normals, "input.rot": rot, "input.trans": trans})
    for key in ("src_nodes", "tgt_nodes", "src_node_feats", "tgt_node_feats", "src_point_feats", "tgt_point_feats",
                "src_node_corr_indices", "tgt_node_corr_indices", "matching_scores", "tgt_corr_points",
                "src_corr_points", "corr_scores"):
        tensors[f"output.{key}"] = out[key].contiguous()
    for key, value in captured.items():
        tensors[f"output.{key}"] = value.long().contiguous() if "idx" in key else value.contiguous()
    save_file(tensors, str(args.out / "roitr.safetensors"))
    (args.out / "layouts.json").write_text(json.dumps(layouts, indent=0, sort_keys=True) + "\n")
    for k, v in tensors.items():
        if k.startswith("output."):
            print(k, tuple(v.shape), v.dtype)


if __name__ == "__main__":
    main()
