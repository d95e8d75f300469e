"""One contract over every CPU-sized video variant: shapes, finiteness, gradients, batch independence."""

from __future__ import annotations

import pytest
import torch

from omnisense.models import VARIANTS

SMALL = ["uniformer_tiny", "uniformer_mini", "vivit_tiny", "vivit_tiny_frozen"]


def _build(name: str) -> torch.nn.Module:
    extra = {"img_size": 32} if name.startswith("vivit") else {}
    return VARIANTS[name](num_classes=7, **extra)


def _video(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, 8, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SMALL)
def test_logits_and_tokens(name):
    torch.manual_seed(0)
    model = _build(name).eval()
    x = _video()
    with torch.no_grad():
        logits = model(x)
        tokens = model.forward_tokens(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert tokens.ndim == 4 and tokens.shape[0] == 2 and tokens.shape[1] == 4 and tokens.shape[-1] == model.token_dim
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize("name", SMALL)
def test_every_trainable_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = _build(name).train()
    if hasattr(model, "head") and isinstance(model.head, torch.nn.Linear):
        torch.nn.init.normal_(model.head.weight, std=0.02)  # ViViT zero-inits its head: no gradient flows back
    if getattr(model, "adapter", None) is not None:
        torch.nn.init.normal_(model.adapter.up.weight, std=0.02)  # likewise the adapter's output projection
    model(_video()).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing


@pytest.mark.parametrize("name", SMALL)
def test_batch_of_b_equals_b_batches_of_one(name):
    torch.manual_seed(0)
    model = _build(name).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)
    x = _video(3)
    with torch.no_grad():
        together = model(x)
        apart = torch.cat([model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, apart, rtol=1e-4, atol=1e-5)

