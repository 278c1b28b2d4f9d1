"""Multi-head self-attention (`kind = "attention"`): derived by the engine step by step, verified, and
equal to PyTorch's `nn.MultiheadAttention` and `F.scaled_dot_product_attention` built from the same
weights, with and without the causal mask; the readable forms are proved, and a wrong one is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

from derive.derivation import backward_pass
from derive.layers.attention import Weights
from derive.layers.normcompact import proved_equal
from derive.model import build_model
from derive.netfile import NetFileError, parse_network
from derive.run import generate
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()

CONFIGS = {  # name: (features E, tokens T, heads H, causal)
    "one_head_causal": (2, 3, 1, True),
    "two_heads": (4, 3, 2, False),
}


def network(E: int, T: int, heads: int, causal: bool) -> dict:
    return {"input": [E, T], "loss": "mse", "layers": [
        {"kind": "attention", "heads": heads, "causal": causal},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"}]}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request):
    E, T, H, causal = CONFIGS[request.param]
    spec = replace(parse_network(network(E, T, H, causal), "attention.toml", text="(in the test)"), formats=("py",))
    return (E, T, H, causal), generate(spec)


def test_every_check_passes(case):
    _, outcome = case
    assert outcome.report.passed
    assert {"symbolic", "derivatives", "workspace", "stability"} <= {c.name for c in outcome.report.checks if c.ran}


def _random_point(module, E, T, m, rng):
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    return params, rng.standard_normal((E, T, m)), rng.standard_normal((2, m))


def test_finite_differences_on_model_py(case):
    (E, T, H, causal), outcome = case
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(3)
    params, X, Y = _random_point(module, E, T, 4, rng)
    grads = module.gradients(params, X, Y)
    h = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            up = module.loss(params, X, Y)
            value[idx] = old - h
            down = module.loss(params, X, Y)
            value[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        assert np.max(np.abs(numeric - grads[key])) < 1e-7, key


def _torch_reference(params, X, Y, E, T, H, causal, how):
    """The loss and the gradients of the same network in PyTorch: nn.MultiheadAttention with
    in_proj_weight = [Wq; Wk; Wv] reshaped to (3E, E), or F.scaled_dot_product_attention per head."""
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(X.transpose(2, 1, 0))  # (m, T, E): PyTorch's batch_first layout
    m = x.shape[0]
    if how == "module":
        mha = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([t[k].detach().reshape(E, E) for k in ("Wq1", "Wk1", "Wv1")]))
            mha.in_proj_bias.copy_(torch.cat([t[k].detach().reshape(E) for k in ("bq1", "bk1", "bv1")]))
            mha.out_proj.weight.copy_(t["Wo1"].detach().reshape(E, E))
            mha.out_proj.bias.copy_(t["bo1"].detach().reshape(E))
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
        z, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
        weights = {"in": mha.in_proj_weight, "in_b": mha.in_proj_bias, "out": mha.out_proj.weight,
                   "out_b": mha.out_proj.bias}
    else:
        def heads(name):  # (m, H, T, d)
            W, b = t["W" + name + "1"], t["b" + name + "1"]
            return torch.einsum("hdc,mjc->mhjd", W, x) + b[None, :, None, :]

        o = F.scaled_dot_product_attention(heads("q"), heads("k"), heads("v"), is_causal=causal)
        z = torch.einsum("fhd,mhjd->mjf", t["Wo1"], o) + t["bo1"].reshape(-1)
        weights = None
    flat = z.permute(0, 2, 1).reshape(m, E * T)  # our flatten: feature-major, C order over (E, T)
    out = flat @ t["W3"].T + t["b3"][:, 0]
    loss = 0.5 * ((out - torch.tensor(Y.T)) ** 2).sum() / m
    loss.backward()
    if weights is not None:
        d = {"Wq1": weights["in"].grad[:E], "Wk1": weights["in"].grad[E:2 * E], "Wv1": weights["in"].grad[2 * E:],
             "bq1": weights["in_b"].grad[:E], "bk1": weights["in_b"].grad[E:2 * E], "bv1": weights["in_b"].grad[2 * E:],
             "Wo1": weights["out"].grad, "bo1": weights["out_b"].grad}
        grads = {k: v.numpy().reshape(params[k].shape) for k, v in d.items()}
    else:
        grads = {k: t[k].grad.numpy() for k in params if k.endswith("1")}
    grads.update(W3=t["W3"].grad.numpy(), b3=t["b3"].grad.numpy())
    return loss.item(), grads


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
@pytest.mark.parametrize("how", ["module", "sdpa"])
def test_equal_to_pytorch(case, how):
    (E, T, H, causal), outcome = case
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(11)
    worst = 0.0
    for m in (1, 5):
        params, X, Y = _random_point(module, E, T, m, rng)
        loss, grads = _torch_reference(params, X, Y, E, T, H, causal, how)
        assert module.loss(params, X, Y) == pytest.approx(loss, rel=1e-12, abs=1e-14)
        ours = module.gradients(params, X, Y)
        for key, value in grads.items():
            worst = max(worst, float(np.max(np.abs(ours[key] - value))))
    assert worst < 1e-12


def _weights_node_and_pass(causal: bool, batch: bool):
    model = build_model(parse_network(network(2, 3, 1, causal), "a.toml", text=""))
    node = next(n for n in model.network.layers if isinstance(n.kind, Weights))
    return node, backward_pass(model.network, batch)


@pytest.mark.parametrize("causal", [False, True])
def test_readable_forms_are_used_and_a_wrong_one_is_refused(causal):
    node, result = _weights_node_and_pass(causal, batch=True)
    steps = result.steps[node.inputs[0].gradient]
    rules = [s.rule for s in steps]
    assert "attention_softmax_output" in rules  # the Jacobian α(δ − α), proved by substitution
    assert "attention_score_error_proved" in rules  # dS = A ⊙ (dA − rowsum(dA ⊙ A))
    assert "KeySum" in str(steps[-1].rhs)
    engine = result.results[node.inputs[0].gradient]
    free = tuple(engine.lhs.indices)
    alpha, grad = node.out(True).base, node.output.gradient.batched(True).base

    def down(expr):
        return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == alpha,
                            lambda e: node.kind.entry(node, tuple(e.indices[:3]), e.indices[3]))

    diagonal_only = alpha[free] * grad[free] * (1 - alpha[free])  # the common slip: the Jacobian's diagonal
    assert not proved_equal(engine.rhs, diagonal_only, free, down)
    u = sp.Idx(sp.Symbol("u", integer=True), (free[2].lower, free[2].upper))
    right = alpha[free] * (grad[free] - sp.Sum(grad[(*free[:2], u, free[3])] * alpha[(*free[:2], u, free[3])],
                                                (u, u.lower, u.upper)))
    assert proved_equal(engine.rhs, right, free, down)


@pytest.mark.parametrize("layers, message", [
    ([{"kind": "attention", "heads": 3}], "3 heads do not divide the 4 features"),
    ([{"kind": "attention", "causal": "yes"}], "causal = 'yes'; expected true or false"),
])
def test_bad_attention_layers_are_refused_in_one_line(layers, message):
    with pytest.raises(NetFileError) as error:
        build_model(parse_network({"input": [4, 3], "layers": layers + [{"kind": "flatten"}, {"kind": "dense", "units": 1}]},
                                  "bad.toml", text=""))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_vector_input_is_refused():
    with pytest.raises(NetFileError, match=r"attention reads a sequence \[features, tokens\]"):
        build_model(parse_network({"input": 4, "layers": [{"kind": "attention"}, {"kind": "dense", "units": 1}]},
                                  "bad.toml", text=""))


def test_input_is_a_reserved_name_and_linear_reads_sequences():
    with pytest.raises(NetFileError, match="name 'input' is the network's input x"):
        parse_network({"input": [4, 3], "layers": [{"kind": "linear", "units": 4, "name": "input"}]}, "bad.toml", text="")
    with pytest.raises(NetFileError, match=r"linear reads a sequence \[features, tokens\]"):
        build_model(parse_network({"input": 4, "layers": [{"kind": "linear", "units": 2}]}, "bad.toml", text=""))
    with pytest.raises(NetFileError, match="needs them of one shape"):
        build_model(parse_network({"input": [4, 3], "layers": [{"kind": "linear", "units": 5}, {"kind": "add", "from": "input"},
                                                              {"kind": "flatten"}]}, "bad.toml", text=""))
    model = build_model(parse_network({"input": [4, 3], "layers": [{"kind": "linear", "units": 4},
                                                                   {"kind": "add", "from": "input"}, {"kind": "flatten"}]},
                                      "ok.toml", text=""))
    assert model.network.nodes[1].inputs[1].label == "a_0"  # from = "input" reads x


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
def test_position_embedding_equals_pytorch():
    """kind = "position": z = x + P with P the transpose of nn.Embedding(T, E).weight."""
    E, T = 3, 4
    spec = replace(parse_network({"input": [E, T], "loss": "mse", "layers": [
        {"kind": "position", "activation": "tanh"}, {"kind": "flatten"}, {"kind": "dense", "units": 2}]},
        "position.toml", text=""), formats=("py",))
    outcome = generate(spec)
    assert outcome.report.passed
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(2)
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in module.init_params(module.SIZES, rng).items()}
    X, Y = rng.standard_normal((E, T, 5)), rng.standard_normal((2, 5))
    embedding = torch.nn.Embedding(T, E, dtype=torch.float64)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor(params["Epos1"].T))
    W, b = (torch.tensor(params[k], requires_grad=True) for k in ("W3", "b3"))
    x = torch.tensor(X.transpose(2, 1, 0))  # (m, T, E)
    z = torch.tanh(x + embedding(torch.arange(T)))
    out = z.permute(0, 2, 1).reshape(5, E * T) @ W.T + b.reshape(-1)
    loss = 0.5 * ((out - torch.tensor(Y.T)) ** 2).sum() / 5
    loss.backward()
    grads = module.gradients(params, X, Y)
    assert module.loss(params, X, Y) == pytest.approx(loss.item(), rel=1e-12)
    assert np.max(np.abs(grads["Epos1"] - embedding.weight.grad.numpy().T)) < 1e-12
    assert np.max(np.abs(grads["W3"] - W.grad.numpy())) < 1e-12


def test_a_one_parameter_layer_on_the_input_gets_its_error_named():
    """A layer whose only parameter's gradient reads its error δ by name, and nothing else needs δ
    (a bias-free convolution on the input, like a positional embedding there): δ is computed. It used
    to be substituted away, and model.py could not be printed ("delta1 is used before it is computed")."""
    spec = replace(parse_network({"input": [1, 5, 5], "loss": "mse", "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 3, "bias": False, "activation": "tanh"},
        {"kind": "flatten"}, {"kind": "dense", "units": 2}]}, "conv.toml", text=""), formats=("py",))
    assert generate(spec).report.passed
