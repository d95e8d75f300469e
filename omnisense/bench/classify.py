"""`omnisense bench classify`: GPSFormer training and inference throughput (samples per second).

Each model runs on the same random unit-sphere clouds: inference is a no-grad forward in eval mode, training
one AdamW step (forward, cross-entropy, backward, step). The naive baseline measured in the same run is a
vanilla PointNet (shared MLP 3-64-128-1024, max pool, 512-256 head): `vs_pointnet` is GPSFormer's throughput
divided by PointNet's (below 1: slower). Parameters and forward FLOPs (torch.utils.flop_counter, 2 per
multiply-add; GMACs, the multiply-adds, are what the paper's "0.7 GFLOPs" compares with) are printed with each model.
"""

from __future__ import annotations

import argparse

HELP = "GPSFormer training and inference samples per second, against a vanilla PointNet (issue #6)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="gpsformer,gpsformer_elite",
                        help="comma-separated GPSFormer variants (default gpsformer,gpsformer_elite)")
    parser.add_argument("--points", default="256,1024", help="comma-separated points per cloud (default 256,1024)")
    parser.add_argument("--batch", type=int, default=16, help="clouds per batch (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median; default 3)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's default)")
    parser.add_argument("--num-classes", type=int, default=40)


def pointnet(num_classes: int):
    """Vanilla PointNet (no T-nets), the naive baseline: [B, N, 3] -> [B, num_classes]."""
    from torch import nn

    class PointNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1024))
            self.head = nn.Sequential(nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                      nn.Linear(256, num_classes))

        def forward(self, xyz):
            return self.head(self.mlp(xyz).max(dim=1).values)

    return PointNet()


def run(args: argparse.Namespace):
    import torch
    import torch.nn.functional as F

    from omnisense.bench._common import BenchReport, base_context, measure
    from omnisense.models import VARIANTS
    from perception3d.models.gpsformer import count_flops

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    choices = [v for v in VARIANTS if v.startswith("gpsformer") and "partseg" not in v]
    unknown = [m for m in names if m not in choices]
    if unknown:
        raise ValueError(f"unknown classification variants {unknown}; choose from {choices}")
    g = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    for n in (int(p) for p in args.points.split(",")):
        x = torch.randn(args.batch, n, 3, generator=g)
        x = (x / x.norm(dim=-1).amax(dim=1)[:, None, None]).to(device)
        y = torch.randint(0, args.num_classes, (args.batch,), generator=g).to(device)
        baseline: dict[str, float] = {}
        for name in ["pointnet", *names]:
            torch.manual_seed(0)
            model = (pointnet(args.num_classes) if name == "pointnet" else VARIANTS[name](num_classes=args.num_classes))
            params = sum(p.numel() for p in model.parameters())
            flops = count_flops(model, x[:1].cpu())
            model.to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def infer():
                with torch.no_grad():
                    model(x)

            def train():
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            model.eval()
            t_inf = measure(infer, device=device, warmup=1, repeat=args.repeat)
            model.train()
            t_train = measure(train, device=device, warmup=1, repeat=args.repeat)
            row = {"model": name, "points": n, "batch": args.batch, "params_M": params / 1e6,
                   "GFLOPs_per_cloud": flops / 1e9, "GMACs_per_cloud": flops / 2e9,
                   "infer_samples_s": args.batch / t_inf.seconds, "train_samples_s": args.batch / t_train.seconds}
            if name == "pointnet":
                baseline = {"infer": row["infer_samples_s"], "train": row["train_samples_s"]}
            else:
                row["infer_vs_pointnet"] = row["infer_samples_s"] / baseline["infer"]
                row["train_vs_pointnet"] = row["train_samples_s"] / baseline["train"]
            if t_inf.peak_bytes is not None:
                row["train_peak_MB"] = (t_train.peak_bytes or 0) / 1e6
            rows.append(row)
    notes = ["paper: GPSFormer 2.36M parameters and 0.7 GFLOPs at 1024 points; GPSFormer-elite 0.68M",
             "FLOPs count matmuls and linears (2 per multiply-add); attention is counted through explicit matmuls",
             "the paper's 'FLOPs' compare with GMACs (multiply-adds, the thop / fvcore count point-cloud papers report)"]
    return BenchReport(title="GPSFormer throughput (samples/s)", rows=rows, context=base_context(device), notes=notes)
