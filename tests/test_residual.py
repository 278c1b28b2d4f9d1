"""The residual MLP of examples/residual_mlp.toml: derived through the graph, checked, coded, trained,
and its gradients equal PyTorch autograd's on the same weights (with and without a projection)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.model import make_net_spec
from derive.notation import Q
from derive.run import generate
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

ROOT = Path(__file__).resolve().parent.parent
RESIDUAL = str(ROOT / "examples" / "residual_mlp.toml")
PROJECTED = """input = 3
loss = "mse"

[[layers]]
kind = "dense"
units = 4
activation = "tanh"
name = "h1"

[[layers]]
kind = "dense"
units = 5
activation = "sigmoid"

[[layers]]
kind = "add"
from = "h1"

[[layers]]
kind = "dense"
units = 2
activation = "identity"
"""


def outcome_for(path: str):
    return generate(replace(make_net_spec(path), formats=("md", "tex", "py", "json")))


@pytest.fixture(scope="module")
def residual():
    return outcome_for(RESIDUAL)


@pytest.fixture(scope="module")
def projected(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "projected.toml"
    path.write_text(PROJECTED)
    return outcome_for(str(path))


def test_every_check_passes(residual, projected):
    for outcome in (residual, projected):
        assert outcome.report.passed
        ran = {c.name for c in outcome.report.checks if c.ran}
        assert {"symbolic", "minibatch", "derivatives", "workspace", "stability"} <= ran


def test_the_skip_source_receives_the_sum_of_both_paths(residual):
    steps = residual.derivation.sample.steps[Q("grad_a", 1)]
    assert steps[1].rule == "chain_rule_paths"
    result = residual.derivation.batch.results[Q("grad_a", 1)]
    from derive.matrixform import MatProd, Tr

    expected = Q("grad_A", 3).symbol + MatProd(Tr(Q("W", 2).symbol), Q("Delta", 2).symbol)
    assert sp.expand(result.matrix_rhs - expected) == 0


def test_projection_appears_when_sizes_differ(projected):
    module = load_module(projected.files["model.py"].decode())
    params = module.init_params(module.SIZES, np.random.default_rng(0))
    assert params["P3"].shape == (5, 4)
    assert "dP3" not in params and "P3" in module.gradients(params, np.ones((3, 2)), np.ones((2, 2)))


torch = optional_torch()


def torch_loss(params: dict, X: np.ndarray, Y: np.ndarray, acts, project: bool):
    """The same network written directly in PyTorch (samples are columns, as in model.py)."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x, y = torch.tensor(X), torch.tensor(Y)
    a1 = acts[0](t["W1"] @ x + t["b1"])
    a2 = acts[1](t["W2"] @ a1 + t["b2"])
    a3 = a2 + (t["P3"] @ a1 if project else a1)
    a4 = t["W4"] @ a3 + t["b4"]
    loss = ((a4 - y) ** 2).sum() / 2 / X.shape[1]
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
@pytest.mark.parametrize("which", ["residual", "projected"])
def test_gradients_equal_pytorch_autograd(which, residual, projected):
    outcome = residual if which == "residual" else projected
    acts = (torch.tanh, torch.tanh) if which == "residual" else (torch.tanh, torch.sigmoid)
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(3)
    for trial in range(5):
        params = module.init_params(module.SIZES, rng)
        params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
        X = rng.standard_normal((module.SIZES[0], 7))
        Y = rng.standard_normal((module.SIZES[-1], 7))
        expected_loss, expected = torch_loss(params, X, Y, acts, which == "projected")
        assert module.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-13)
        grads = module.gradients(params, X, Y)
        assert sorted(grads) == sorted(expected)
        for key in expected:
            np.testing.assert_allclose(grads[key], expected[key], rtol=1e-11, atol=1e-13)


def test_generated_model_trains(residual):
    module = load_module(residual.files["model.py"].decode())
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 256))
    Y = np.stack([np.sin(X[0]) + X[1] * X[2], np.tanh(X[3] - X[0]), X[1] ** 2 - 0.5])
    params = module.init_params(module.SIZES, rng)
    history = module.train(params, X, Y, epochs=60, batch_size=32, rng=rng, quiet=True, lr=0.05)
    assert history["loss"][-1] < 0.35 * history["loss"][0]


def test_a_penalty_covers_the_projection_like_any_weight(tmp_path):
    from derive.notation import L2_STRENGTH

    path = tmp_path / "penalised.toml"
    path.write_text(PROJECTED.replace('loss = "mse"', 'loss = "mse"\nl2 = 0.01'))
    outcome = outcome_for(str(path))
    assert outcome.report.passed and outcome.report.check("symbolic").ran
    gradient = outcome.derivation.batch.results[Q("grad_P", 3)].matrix_rhs
    assert gradient.has(L2_STRENGTH) and gradient.has(Q("P", 3).symbol)
    assert not outcome.derivation.batch.results[Q("grad_b", 2)].matrix_rhs.has(L2_STRENGTH)  # biases are not
