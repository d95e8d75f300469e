"""The backbones learn a task only attention can solve: the mean of a scalar over each token's 3 x 3
neighbourhood of cells. A per-token model sees only its own value; the backbone must find neighbours
through the position embedding and pull their values."""

from __future__ import annotations

import pytest
import torch

from perception3d.kernels import dsvt, flatformer


def scene(gen: torch.Generator, n: int = 250, side: int = 24):
    flat = torch.randperm(side * side, generator=gen)[:n]
    coords = torch.stack([torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                          flat // side + 20, flat % side + 20], dim=1)
    s = torch.randn(n, generator=gen)
    grid = torch.zeros(2, side + 42, side + 42)
    grid[0, coords[:, 2], coords[:, 3]] = s
    grid[1, coords[:, 2], coords[:, 3]] = 1
    box = torch.nn.functional.conv2d(grid[:, None], torch.ones(1, 1, 3, 3), padding=1)[:, 0]
    return coords, s, box[0, coords[:, 2], coords[:, 3]] / box[1, coords[:, 2], coords[:, 3]]


@pytest.mark.slow
@pytest.mark.parametrize("name,margin", [("flatformer", 0.85), ("dsvt", 0.7)])
def test_backbone_learns_neighbourhood_means(name, margin):
    torch.manual_seed(0)
    model = flatformer("tiny") if name == "flatformer" else dsvt("pillar_tiny")
    embed, head = torch.nn.Linear(1, 32), torch.nn.Linear(32, 1)
    opt = torch.optim.AdamW([*model.parameters(), *embed.parameters(), *head.parameters()], lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def predict(coords, s):
        out = model(embed(s[:, None]), coords, 1)
        return head(out[0] if isinstance(out, tuple) else out).squeeze(1)

    for _ in range(300):
        coords, s, target = scene(gen)
        loss = torch.nn.functional.mse_loss(predict(coords, s), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ours, baseline = [], []
    with torch.no_grad():
        for _ in range(8):
            coords, s, target = scene(gen)
            ours.append(torch.nn.functional.mse_loss(predict(coords, s), target))
            a = torch.stack([s, torch.ones_like(s)], 1)  # the best linear fit on the token's own value
            fit = a @ torch.linalg.lstsq(a, target[:, None]).solution
            baseline.append((fit.squeeze(1) - target).square().mean())
    ours, baseline = torch.stack(ours).mean().item(), torch.stack(baseline).mean().item()
    print(f"{name}: test MSE {ours:.4f}, own-value linear fit {baseline:.4f}, ratio {ours / baseline:.2f}")
    assert ours < margin * baseline
