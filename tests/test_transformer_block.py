"""A pre-LayerNorm transformer encoder block written as a network file (examples/transformer_block.toml)
and a causal variant: derived, verified, and equal to the same block built in PyTorch from the same
weights (F.layer_norm, nn.MultiheadAttention, nn.Linear, F.gelu, both residual paths)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from derive.model import make_net_spec
from derive.netfile import parse_network
from derive.run import generate
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transformer_block.toml"


def block(E: int, T: int, heads: int, hidden: int, causal: bool) -> dict:
    return {"input": [E, T], "loss": "mse", "layers": [
        {"kind": "layernorm"},
        {"kind": "attention", "heads": heads, "causal": causal},
        {"kind": "add", "from": "input", "name": "h"},
        {"kind": "layernorm"},
        {"kind": "linear", "units": hidden, "activation": "gelu"},
        {"kind": "linear", "units": E},
        {"kind": "add", "from": "h"},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"}]}


CASES = {"example": (4, 3, 2, 8, False), "causal_three_heads": (6, 4, 3, 5, True)}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    if request.param == "example":
        spec = replace(make_net_spec(str(EXAMPLE)), formats=("py",))
    else:
        spec = replace(parse_network(block(*CASES[request.param]), "block.toml", text="(in the test)"), formats=("py",))
    return CASES[request.param], generate(spec)


def test_every_check_passes(case):
    _, outcome = case
    assert outcome.report.passed
    assert {"derivatives", "workspace", "stability"} <= {c.name for c in outcome.report.checks if c.ran}


def _torch_block(params, X, Y, E, T, H, causal):
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(X.transpose(2, 1, 0))  # (m, T, E)
    m = x.shape[0]
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([t[k].detach().reshape(E, E) for k in ("Wq2", "Wk2", "Wv2")]))
        mha.in_proj_bias.copy_(torch.cat([t[k].detach().reshape(E) for k in ("bq2", "bk2", "bv2")]))
        mha.out_proj.weight.copy_(t["Wo2"].detach().reshape(E, E))
        mha.out_proj.bias.copy_(t["bo2"].detach().reshape(E))
    n1 = F.layer_norm(x, (E,), t["gamma1"].reshape(E), t["beta1"].reshape(E), eps=1e-5)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
    attended, _ = mha(n1, n1, n1, attn_mask=mask, need_weights=False)
    h = x + attended
    n2 = F.layer_norm(h, (E,), t["gamma4"].reshape(E), t["beta4"].reshape(E), eps=1e-5)
    mlp = F.linear(F.gelu(F.linear(n2, t["W5"], t["b5"].reshape(-1))), t["W6"], t["b6"].reshape(-1))
    out = (h + mlp).permute(0, 2, 1).reshape(m, E * T) @ t["W9"].T + t["b9"].reshape(-1)
    loss = 0.5 * ((out - torch.tensor(Y.T)) ** 2).sum() / m
    loss.backward()
    grads = {k: t[k].grad.numpy() for k in params if not k[1:].startswith(("q2", "k2", "v2", "o2"))}
    E_ = E
    d = {"Wq2": mha.in_proj_weight.grad[:E_], "Wk2": mha.in_proj_weight.grad[E_:2 * E_],
         "Wv2": mha.in_proj_weight.grad[2 * E_:], "bq2": mha.in_proj_bias.grad[:E_],
         "bk2": mha.in_proj_bias.grad[E_:2 * E_], "bv2": mha.in_proj_bias.grad[2 * E_:],
         "Wo2": mha.out_proj.weight.grad, "bo2": mha.out_proj.bias.grad}
    grads.update({k: v.numpy().reshape(params[k].shape) for k, v in d.items()})
    return loss.item(), grads


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
def test_equal_to_a_pytorch_block(case):
    (E, T, H, _, causal), outcome = case
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(5)
    worst = 0.0
    for m in (1, 6):
        params = module.init_params(module.SIZES, rng)
        params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
        X, Y = rng.standard_normal((E, T, m)), rng.standard_normal((2, m))
        loss, grads = _torch_block(params, X, Y, E, T, H, causal)
        assert module.loss(params, X, Y) == pytest.approx(loss, rel=1e-12)
        ours = module.gradients(params, X, Y)
        assert set(ours) == set(grads)
        for key, value in grads.items():
            scale = max(1.0, float(np.max(np.abs(value))))
            worst = max(worst, float(np.max(np.abs(ours[key] - value))) / scale)
    assert worst < 1e-11
