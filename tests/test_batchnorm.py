"""Batch normalisation in training mode: a kind that couples the samples of a minibatch, derived on
the minibatch path only (every path through the batch mean and the batch variance, then the compact
three-term form proved equal), checked symbolically on an expanded minibatch (a check that fails
when a path is left out), and equal to PyTorch's F.batch_norm(training=True) with the same weights
on random configurations; the workspace form bit-identical, float32 within 1e-4."""

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


def network(n0=3, n1=4, n2=2, act="tanh") -> dict:
    return {"input": n0, "loss": "mse", "layers": [
        {"kind": "dense", "units": n1},
        {"kind": "batchnorm", "activation": act},
        {"kind": "dense", "units": n2, "activation": "identity"}]}


def outcome_for(data: dict, formats=("md", "py", "json")):
    return generate(replace(parse_network(data, "bn.toml", text="(in the test)"), formats=formats))


@pytest.fixture(scope="module")
def outcome():
    return outcome_for(network())


def test_the_kind_couples_the_samples_and_the_derivation_takes_the_minibatch_path(outcome):
    network = outcome.derivation.model.network
    assert network.couples_samples
    from derive.layers.normalise import NoSampleForm

    centre = network.producers[Q("centred", 2)]
    with pytest.raises(NoSampleForm):
        centre.call_entry(centre.out_indices(), None)  # no per-sample form
    steps = outcome.derivation.batch.steps[Q("delta", 1)]
    local = [s for s in steps if s.rule == "kronecker_collapse" and isinstance(s.lhs, sp.Derivative)][0].rhs
    m = sp.Symbol("m", integer=True, positive=True)
    assert local.has(1 / m)  # the path through the batch mean: [s = r] − 1/m
    scaled = outcome.derivation.batch.steps[Q("grad_centred", 2)]
    assert "normalise_output" in [s.rule for s in scaled]  # the path through the batch variance, then x̂
    assert [s.rule for s in steps[-2:]] == ["compact_form_proved", "matrix_form"]


def test_every_check_passes_and_the_symbolic_check_expands_a_minibatch(outcome):
    assert outcome.report.passed
    symbolic = outcome.report.check("symbolic")
    assert symbolic.ran and symbolic.figures["samples"] == 2 and symbolic.figures["partials"] > 0
    assert outcome.report.check("minibatch").figures == {"reason": "couples_samples"}
    assert {"derivatives", "workspace", "training_loop"} <= {c.name for c in outcome.report.checks if c.ran}
    assert "couples the samples" in outcome.files["derivation.md"].decode()


def test_the_symbolic_check_fails_without_the_path_through_the_mean(outcome):
    """Drop the −1/m Σ term (the common slip of treating the batch mean as a constant): the
    expanded-minibatch check must say no."""
    from dataclasses import replace as dc_replace

    from derive.verify_symbolic import symbolic_check

    derivation = outcome.derivation
    key = Q("delta", 1)
    result = derivation.batch.results[key]
    wrong = result.rhs.func(*[a for a in result.rhs.args if not a.has(sp.Sum)])  # keep ∂C/∂U only
    assert wrong != result.rhs
    results = dict(derivation.batch.results)
    results[key] = dc_replace(result, rhs=wrong)
    from derive.backprop import Pass

    broken = dc_replace(derivation, batch=Pass(True, derivation.batch.steps, results))
    assert not symbolic_check(broken).passed
    assert symbolic_check(derivation).passed


def torch_reference(params, X, Y, act):
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x, y = torch.tensor(X.T), torch.tensor(Y.T)
    h = x @ t["W1"].T + t["b1"][:, 0]
    h = F.batch_norm(h, None, None, t["gamma2"][:, 0], t["beta2"][:, 0], training=True, eps=1e-5)
    h = act(h)
    out = h @ t["W3"].T + t["b3"][:, 0]
    loss = ((out - y) ** 2).sum() / 2 / X.shape[1]
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


@needs_torch
def test_gradients_equal_pytorch_batch_norm_on_random_configurations():
    rng = np.random.default_rng(31)
    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda h: h}
    for trial, act in enumerate(("tanh", "sigmoid", "identity")):
        n0, n1, n2 = (int(v) for v in rng.integers(2, 6, size=3))
        out = outcome_for(network(n0, n1, n2, act), formats=("py",))
        assert out.report.passed
        module = load_module(out.files["model.py"].decode())
        for m in (2, 5, 16):
            params = module.init_params(module.SIZES, rng)
            params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
            X, Y = rng.standard_normal((n0, m)), rng.standard_normal((n2, m))
            expected_loss, expected = torch_reference(params, X, Y, acts[act])
            assert module.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-12)
            grads = module.gradients(params, X, Y)
            scale = max(np.max(np.abs(g)) for g in expected.values())
            for key in expected:  # ∂C/∂b1 is 0: the batch mean removes the bias
                np.testing.assert_allclose(grads[key], expected[key], rtol=1e-9, atol=1e-12 * scale)
            assert np.max(np.abs(grads["b1"])) <= 1e-12 * scale


def test_workspace_float64_exact_and_float32_close(outcome):
    module, inplace = load_files(outcome.files)
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
    scale = max(np.linalg.norm(g) for g in exact.values())
    for key in exact:
        assert single[key].dtype == np.float32
        assert np.linalg.norm(single[key] - exact[key]) <= 1e-4 * max(np.linalg.norm(exact[key]), 1e-3 * scale), key


@needs_torch
def test_running_statistics_and_evaluation_mode_equal_pytorch(outcome):
    """Three training steps of PyTorch's batch_norm (momentum 0.1, unbiased running variance) and
    update_running give the same running statistics; evaluation mode then gives the same outputs."""
    import torch.nn.functional as F

    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(41)
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    running = module.init_running(module.SIZES)
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    for m in (5, 8, 3):
        X = rng.standard_normal((3, m))
        module.update_running(running, params, X)
        h = torch.tensor(X.T) @ t["W1"].T + t["b1"][:, 0]
        F.batch_norm(h, rm, rv, t["gamma2"][:, 0], t["beta2"][:, 0], training=True, momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(running["running_mean2"][:, 0], rm.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(running["running_var2"][:, 0], rv.numpy(), rtol=1e-13, atol=1e-15)
    X = rng.standard_normal((3, 7))
    h = torch.tensor(X.T) @ t["W1"].T + t["b1"][:, 0]
    h = torch.tanh(F.batch_norm(h, rm, rv, t["gamma2"][:, 0], t["beta2"][:, 0], training=False, eps=1e-5))
    expected = (h @ t["W3"].T + t["b3"][:, 0]).numpy().T
    np.testing.assert_allclose(module.predict(params, running, X), expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="at least 2 samples"):
        module.update_running(running, params, X[:, :1])


def test_train_updates_the_running_statistics(outcome):
    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 120))
    Y = np.stack([np.sin(X[0]) + X[1], X[2] * X[0]])
    params = module.init_params(module.SIZES, rng)
    running = module.init_running(module.SIZES)
    history = module.train(params, X, Y, epochs=30, batch_size=20, rng=rng, quiet=True, lr=0.05, running=running)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert np.all(running["running_var2"] != 1) and np.all(running["running_mean2"] != 0)
    # after training, evaluation mode on the training data is close to the training-mode output
    train_out = module.forward(params, X)["A3"]
    eval_out = module.predict(params, running, X)
    assert np.mean((train_out - eval_out) ** 2) < 0.1 * np.mean(train_out**2)
