"""Layer normalisation and RMS normalisation as layer kinds: derived by the engine step by step (the
path through the mean, the path through the variance), the compact three-term form proved equal,
every check of the report passing, and the generated code equal to PyTorch's `layer_norm` and
`rms_norm` with the same weights on random configurations (float64), float32 within 1e-4."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

from derive.netfile import parse_network
from derive.notation import Q
from derive.run import generate
from derive.verify import load_files, load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()
needs_torch = pytest.mark.skipif(torch is None, reason=NO_TORCH)


def network(kind: str, n0: int = 3, n1: int = 4, n2: int = 2, act: str = "tanh", first_act: str | None = None) -> dict:
    first = {"kind": "dense", "units": n1}
    if first_act:
        first["activation"] = first_act
    return {"input": n0, "loss": "mse", "layers": [
        first, {"kind": kind, "activation": act}, {"kind": "dense", "units": n2, "activation": "identity"}]}


def outcome_for(data: dict, formats=("md", "py", "json")):
    spec = parse_network(data, "norm.toml", text="(in the test)")
    return generate(replace(spec, formats=formats))


@pytest.fixture(scope="module", params=["layernorm", "rmsnorm"])
def outcome(request):
    return request.param, outcome_for(network(request.param))


def test_every_check_passes(outcome):
    _, out = outcome
    assert out.report.passed
    ran = {c.name for c in out.report.checks if c.ran}
    assert {"symbolic", "minibatch", "derivatives", "workspace", "recognition", "readable_forms"} <= ran


def test_the_paths_through_the_mean_and_the_variance_are_derived_step_by_step(outcome):
    kind, out = outcome
    sample = out.derivation.sample
    # the scaling: its local derivative carries the variance term, rewritten with the output x̂ (proved)
    scaled = sample.steps[Q("grad_centred", 2) if kind == "layernorm" else Q("delta", 1)]
    rules = [s.rule for s in scaled]
    assert "local_derivative" in rules and "normalise_output" in rules
    local = [s for s in scaled if s.rule == "kronecker_collapse"][0].rhs
    assert local.has(sp.KroneckerDelta) and any(p.exp == sp.Rational(-3, 2) for p in local.atoms(sp.Pow))
    if kind == "layernorm":  # the centring: [i = q] − 1/n, the path through the mean
        steps = sample.steps[Q("delta", 1)]
        local = [s for s in steps if s.rule == "kronecker_collapse" and isinstance(s.lhs, sp.Derivative)][0].rhs
        n = sp.Symbol("n_1", integer=True, positive=True)
        (delta,) = local.atoms(sp.KroneckerDelta)
        assert sp.expand(local.doit() - (delta - 1 / n)) == 0


def test_the_compact_three_term_form_is_proved_and_shown(outcome):
    kind, out = outcome
    if kind != "layernorm":
        return
    for run in (out.derivation.sample, out.derivation.batch):
        steps = run.steps[Q("delta", 1)]
        assert [s.rule for s in steps[-2:]] == ["compact_form_proved", "matrix_form"]
    markdown = out.files["derivation.md"].decode()
    assert r"\hat{x}" in markdown and r"\epsilon" in markdown


def test_the_proof_of_the_compact_form_can_fail():
    """The same proof with the mean term dropped (the common slip) says no."""
    from derive.layers.normcompact import proved_equal

    x = sp.IndexedBase("x", real=True)
    g = sp.IndexedBase("g", real=True)
    n = sp.Symbol("n_1", integer=True, positive=True)
    q = sp.Idx(sp.Symbol("q", integer=True), (0, n - 1))
    i = sp.Idx(sp.Symbol("i", integer=True), (0, n - 1))
    k = sp.Idx(sp.Symbol("k", integer=True), (0, n - 1))
    mean = lambda idx: sp.Sum(x[k], (k, 0, n - 1)) / n  # noqa: E731
    sigma = sp.sqrt(sp.Sum((x[k] - sp.Sum(x[i], (i, 0, n - 1)) / n) ** 2, (k, 0, n - 1)) / n + sp.Rational(1, 7))
    xhat = lambda j: (x[j] - mean(j)) / sigma  # noqa: E731
    right = (g[q] - sp.Sum(g[i], (i, 0, n - 1)) / n - xhat(q) * sp.Sum(g[i] * xhat(i), (i, 0, n - 1)) / n) / sigma
    wrong = (g[q] - xhat(q) * sp.Sum(g[i] * xhat(i), (i, 0, n - 1)) / n) / sigma
    assert proved_equal(right, right, (q,), lambda e: e)
    assert not proved_equal(right, wrong, (q,), lambda e: e)


def test_gamma_starts_at_one_and_beta_at_zero(outcome):
    kind, out = outcome
    module = load_module(out.files["model.py"].decode())
    params = module.init_params(module.SIZES, np.random.default_rng(0))
    assert np.all(params["gamma2"] == 1) and params["gamma2"].shape == (4, 1)
    assert ("beta2" in params) == (kind == "layernorm")


def torch_reference(kind: str, params: dict, X: np.ndarray, Y: np.ndarray, act, first_act):
    """The same network in PyTorch (samples as rows there): F.layer_norm / F.rms_norm with the same γ, β."""
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x, y = torch.tensor(X.T), torch.tensor(Y.T)
    h = x @ t["W1"].T + t["b1"][:, 0]
    h = first_act(h)
    n = h.shape[1]
    if kind == "layernorm":
        h = F.layer_norm(h, (n,), t["gamma2"][:, 0], t["beta2"][:, 0], eps=1e-5)
    else:
        h = F.rms_norm(h, (n,), t["gamma2"][:, 0], eps=1e-5)
    h = act(h)
    out = h @ t["W3"].T + t["b3"][:, 0]
    loss = ((out - y) ** 2).sum() / 2 / X.shape[1]
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


@needs_torch
@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_gradients_equal_pytorch_on_random_configurations(kind):
    rng = np.random.default_rng(12 if kind == "layernorm" else 13)
    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda h: h}
    for trial in range(3):
        n0, n1, n2 = (int(v) for v in rng.integers(2, 6, size=3))
        act = ["tanh", "sigmoid", "identity"][trial]
        first = [None, "tanh", None][trial]
        out = outcome_for(network(kind, n0, n1, n2, act, first), formats=("py",))
        assert out.report.passed
        module = load_module(out.files["model.py"].decode())
        for m in (1, 6):
            params = module.init_params(module.SIZES, rng)
            params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
            X = rng.standard_normal((n0, m))
            Y = rng.standard_normal((n2, m))
            expected_loss, expected = torch_reference(kind, params, X, Y, acts[act],
                                                      acts[first] if first else (lambda h: h))
            assert module.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-12)
            grads = module.gradients(params, X, Y)
            assert sorted(grads) == sorted(expected)
            for key in expected:
                np.testing.assert_allclose(grads[key], expected[key], rtol=1e-9, atol=1e-11)


def test_workspace_float64_exact_and_float32_close(outcome):
    _, out = outcome
    module, inplace = load_files(out.files)
    rng = np.random.default_rng(5)
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    X, Y = rng.standard_normal((3, 16)), rng.standard_normal((2, 16))
    exact = module.gradients(params, X, Y)
    got = inplace.gradients_into(inplace.Workspace(module.SIZES, 16, np.float64), params, X, Y)
    for key in exact:
        assert np.array_equal(got[key], exact[key])
    single = inplace.gradients_into(inplace.Workspace(module.SIZES, 16, np.float32),
                                   {k: v.astype(np.float32) for k, v in params.items()},
                                   X.astype(np.float32), Y.astype(np.float32))
    for key in exact:
        assert single[key].dtype == np.float32
        error = np.linalg.norm(single[key] - exact[key]) / max(np.linalg.norm(exact[key]), 1e-30)
        assert error <= 1e-4, (key, error)


def test_a_network_file_with_a_normalisation_after_a_dense_layer(tmp_path):
    from derive.model import make_net_spec

    path = tmp_path / "ln.toml"
    path.write_text('input = 3\nloss = "mse"\n\n[[layers]]\nkind = "dense"\nunits = 4\n\n'
                    '[[layers]]\nkind = "layernorm"\nactivation = "relu"\n\n'
                    '[[layers]]\nkind = "dense"\nunits = 2\n')
    spec = make_net_spec(str(path))
    assert [layer.kind for layer in spec.layers] == ["dense", "layernorm", "dense"]
    bad = tmp_path / "bad.toml"
    bad.write_text('input = 3\n\n[[layers]]\nkind = "layernorm"\nunits = 4\n')
    from derive.netfile import NetFileError

    with pytest.raises(NetFileError, match="unknown key 'units'"):
        make_net_spec(str(bad))
