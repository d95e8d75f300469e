"""AST against the official code (YuanGongND/ast): the fixture's weights through `convert_official_ast`."""

from __future__ import annotations


import pytest
import torch

from tests.parity._fixtures import ATOL, RTOL, load, max_error
from video.models.ast import ASTModel, convert_official_ast, describe_official


def _ours(head_norm_eps: float | None = None) -> tuple[ASTModel, dict]:
    fx, meta = load("ast")
    state = convert_official_ast(fx["official"])
    info = describe_official(state)
    kwargs = {**info["kwargs"], "num_classes": state["head.weight"].shape[0]}
    if head_norm_eps is not None:
        kwargs["head_norm_eps"] = head_norm_eps
    size = eval(meta["size"], {})  # a dict literal written by the script
    model = ASTModel(embed_dim=size["embed_dim"], depth=size["depth"], num_heads=size["num_heads"],
                     input_fdim=size["input_fdim"], input_tdim=size["input_tdim"], fstride=size["fstride"],
                     tstride=size["tstride"], **kwargs).eval()
    report = model.load_state_dict(state, strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    return model, fx


def test_ast_matches_the_official_logits_and_tokens():
    model, fx = _ours()
    with torch.no_grad():
        tokens = model.forward_tokens(fx["input"]["fbank"])
        logits = model(fx["input"]["fbank"])
    torch.testing.assert_close(tokens, fx["output"]["tokens"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(logits, fx["output"]["logits"], atol=ATOL, rtol=RTOL)
    assert max_error(logits, fx["output"]["logits"]) < 1e-5


def _probe_logits(model: ASTModel, fx: dict, scale: float) -> torch.Tensor:
    with torch.no_grad():
        model.norm.weight.mul_(scale)
        model.norm.bias.mul_(scale)
        return model(fx["input"]["fbank"])


def test_ast_head_norm_eps_is_the_official_one_on_the_probe():
    _, meta = load("ast")
    scale = float(meta["probe_scale"])
    model, fx = _ours()
    torch.testing.assert_close(_probe_logits(model, fx, scale), fx["output"]["logits_probe"], atol=ATOL, rtol=RTOL)


def test_a_wrong_head_norm_eps_fails_the_probe():
    _, meta = load("ast")
    model, fx = _ours(head_norm_eps=1e-6)
    err = max_error(_probe_logits(model, fx, float(meta["probe_scale"])), fx["output"]["logits_probe"])
    assert err > 100 * ATOL, f"the probe does not tell eps 1e-6 from 1e-5 (max error {err:.2e})"


def test_describe_official_records_the_eps_and_audioset_classes():
    state = convert_official_ast(load("ast")[0]["official"])
    state["head.weight"] = torch.zeros(527, state["head.weight"].shape[1])
    info = describe_official(state)
    assert info["kwargs"]["head_norm_eps"] == 1e-5 and len(info["classes"]) == 527
    assert info["classes"][0] == "Speech" and info["input"]["sample_rate"] == 16000


@pytest.mark.parametrize("key", ["module.v.head.weight", "module.v.head_dist.bias"])
def test_the_unused_deit_classifiers_are_dropped(key):
    official = load("ast")[0]["official"]
    assert key in official and key.split("module.")[1] not in convert_official_ast(official)
