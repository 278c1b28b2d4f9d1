"""Inverted dropout as a layer kind: derived with the mask held fixed, every check passing (the
numeric ones with masks that drop units), the generated code equal to PyTorch's F.dropout with the
same mask (taken from torch's own generator), evaluation mode equal to no dropout, masks drawn by
the generated code, and the network-file option checked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

from derive.netfile import NetFileError, parse_network
from derive.notation import Q
from derive.run import generate
from derive.inplace import INPLACE_FILE, load_inplace
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()
needs_torch = pytest.mark.skipif(torch is None, reason=NO_TORCH)


def network(p=0.25, n0=3, n1=4, n2=2) -> dict:
    return {"input": n0, "loss": "mse", "layers": [
        {"kind": "dense", "units": n1, "activation": "tanh"},
        {"kind": "dropout", "p": p},
        {"kind": "dense", "units": n2, "activation": "identity"}]}


def outcome_for(data: dict, formats=("md", "py", "json")):
    return generate(replace(parse_network(data, "dropout.toml", text="(in the test)"), formats=formats))


@pytest.fixture(scope="module")
def outcome():
    return outcome_for(network())


@pytest.fixture(scope="module")
def module(outcome):
    return load_module(outcome.files["model.py"].decode())


@pytest.fixture(scope="module")
def inplace(module, outcome):
    """model_inplace.py, reading `module` (whose dropout_mode it follows) as its model."""
    return load_inplace(module, outcome.files[INPLACE_FILE].decode())


def test_every_check_passes(outcome):
    assert outcome.report.passed
    ran = {c.name for c in outcome.report.checks if c.ran}
    assert {"symbolic", "minibatch", "derivatives", "workspace", "training_loop"} <= ran


def test_the_mask_is_held_fixed_in_the_derivation(outcome):
    delta = outcome.derivation.sample.results[Q("delta", 1)].rhs
    mask = Q("mask", 2).base
    p = sp.Symbol("p_2", positive=True)
    assert delta.has(mask) and delta.has(p)  # the error of x is the masked, scaled error of a
    steps = outcome.derivation.sample.steps[Q("delta", 1)]
    local = [s for s in steps if s.rule == "local_derivative" and s.lhs.args[0].base == Q("a", 2).base][0].rhs
    i, q = sorted(local.atoms(sp.KroneckerDelta).pop().args, key=str)
    assert sp.expand(local - sp.KroneckerDelta(i, q) * mask[i] / (1 - p)) == 0


def test_masks_are_drawn_by_the_generated_code(module):
    rng = np.random.default_rng(0)
    masks = module.draw_masks(module.SIZES, 4000, rng)
    assert set(masks) == {"M2"} and masks["M2"].shape == (module.SIZES[2], 4000)
    assert set(np.unique(masks["M2"])) == {0.0, 1.0}
    assert abs(1 - masks["M2"].mean() - 0.25) < 0.02  # each entry dropped with probability p
    params = module.init_params(module.SIZES, rng)
    X = rng.standard_normal((3, 5))
    module.dropout_mode("train", rng=np.random.default_rng(1))
    first, second = module.forward(params, X)["M2"], module.forward(params, X)["M2"]
    module.dropout_mode("eval")
    assert not np.array_equal(first, second)  # a fresh mask on every forward pass
    with pytest.raises(ValueError, match="needs rng"):
        module.dropout_mode("train")


def test_evaluation_mode_passes_the_input_on(module):
    rng = np.random.default_rng(2)
    params = module.init_params(module.SIZES, rng)
    X = rng.standard_normal((3, 6))
    module.dropout_mode("eval")
    cache = module.forward(params, X)
    np.testing.assert_allclose(cache["A2"], cache["A1"], rtol=1e-15, atol=0)


def test_workspace_form_with_a_fixed_mask(module, inplace):
    rng = np.random.default_rng(3)
    params = module.init_params(module.SIZES, rng)
    X, Y = rng.standard_normal((3, 7)), rng.standard_normal((2, 7))
    module.dropout_mode("fixed", masks=module.draw_masks(module.SIZES, 7, rng))
    try:
        exact = module.gradients(params, X, Y)
        got = inplace.gradients_into(inplace.Workspace(module.SIZES, 7), params, X, Y)
        for key in exact:
            assert np.array_equal(got[key], exact[key])
        single = inplace.gradients_into(inplace.Workspace(module.SIZES, 7, np.float32),
                                       {k: v.astype(np.float32) for k, v in params.items()},
                                       X.astype(np.float32), Y.astype(np.float32))
        for key in exact:
            assert single[key].dtype == np.float32
            assert np.linalg.norm(single[key] - exact[key]) <= 1e-4 * max(np.linalg.norm(exact[key]), 1e-30)
    finally:
        module.dropout_mode("eval")


def torch_reference(params, X, Y, p, seed, training=True):
    """The same network in PyTorch with F.dropout, its mask drawn by torch's generator from `seed`."""
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x, y = torch.tensor(X.T), torch.tensor(Y.T)
    h = torch.tanh(x @ t["W1"].T + t["b1"][:, 0])
    torch.manual_seed(seed)
    h = F.dropout(h, p, training=training)
    out = h @ t["W3"].T + t["b3"][:, 0]
    loss = ((out - y) ** 2).sum() / 2 / X.shape[1]
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


def torch_mask(shape, p, seed) -> np.ndarray:
    """The mask F.dropout draws from `seed` for an array of `shape` (samples as rows), as 0 and 1."""
    import torch.nn.functional as F

    torch.manual_seed(seed)
    kept = F.dropout(torch.ones(shape, dtype=torch.float64), p, training=True)
    return (kept != 0).numpy().astype(float)


@needs_torch
def test_gradients_equal_pytorch_dropout_with_the_same_mask():
    rng = np.random.default_rng(21)
    for trial, p in enumerate((0.1, 0.5, 0.8)):
        n0, n1, n2 = (int(v) for v in rng.integers(2, 6, size=3))
        out = outcome_for(network(p, n0, n1, n2), formats=("py",))
        assert out.report.passed
        module = load_module(out.files["model.py"].decode())
        for m in (1, 8):
            params = module.init_params(module.SIZES, rng)
            params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
            X, Y = rng.standard_normal((n0, m)), rng.standard_normal((n2, m))
            seed = 100 * trial + m
            mask = torch_mask((m, n1), p, seed).T
            expected_loss, expected = torch_reference(params, X, Y, p, seed)
            module.dropout_mode("fixed", masks={"M2": mask})
            try:
                assert module.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-12)
                grads = module.gradients(params, X, Y)
            finally:
                module.dropout_mode("eval")
            for key in expected:
                np.testing.assert_allclose(grads[key], expected[key], rtol=1e-10, atol=1e-12)
            eval_loss, eval_grads = torch_reference(params, X, Y, p, seed, training=False)
            assert module.loss(params, X, Y) == pytest.approx(eval_loss, rel=1e-12)
            for key in eval_grads:
                np.testing.assert_allclose(module.gradients(params, X, Y)[key], eval_grads[key], rtol=1e-10, atol=1e-12)


def test_training_with_dropout_lowers_the_loss(module):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 200))
    Y = np.stack([np.sin(X[0]) + X[1], X[2] * X[0]])
    params = module.init_params(module.SIZES, rng)
    history = module.train(params, X, Y, epochs=40, batch_size=20, rng=rng, quiet=True, lr=0.05)
    assert history["loss"][-1] < 0.6 * history["loss"][0]


@pytest.mark.parametrize("value", [1, 1.5, -0.1, "0.5", True])
def test_a_bad_probability_is_refused_in_one_line(value):
    data = network()
    data["layers"][1]["p"] = value
    with pytest.raises(NetFileError, match=r"p = .*; expected a number from 0 up to \(not including\) 1"):
        parse_network(data, "dropout.toml", text="")
