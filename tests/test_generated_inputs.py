"""The generated forward, loss and gradients check their inputs as the workspace functions do: a
wrong shape or type is one clear ValueError/TypeError naming what was expected, not a broadcasting
error deep inside NumPy or, worse, an array of the wrong shape."""

import numpy as np
import pytest

from conftest import derivation_for
from derive.run import model_source
from derive.verify import load_module


@pytest.fixture(scope="module")
def net():
    module = load_module(model_source(derivation_for(3, "tanh", "mse"), title="t", command="t"))
    rng = np.random.default_rng(0)
    params = module.init_params(module.SIZES, rng)
    return module, params, rng.standard_normal((4, 5)), rng.standard_normal((3, 5))


def replaced(params, key, value):
    return {**params, key: value} if value is not None else {k: v for k, v in params.items() if k != key}


CASES = [  # (call, exception, words of the message)
    (lambda m, p, X, Y: m.gradients(p, X[:, 0], Y[:, 0]), ValueError, ["X must be 2-D", "got shape (4,)", "reshape(-1, 1)"]),
    (lambda m, p, X, Y: m.loss(p, X[:3], Y), ValueError, ["X has shape (3, 5)", "which takes n0 = 4", "X must have shape (4, m)"]),
    (lambda m, p, X, Y: m.loss(p, X, Y[:, :4]), ValueError, ["Y must have shape (3, 5)", "got shape (3, 4)"]),
    (lambda m, p, X, Y: m.gradients(p, X, Y[:2]), ValueError, ["Y must have shape (3, 5)"]),
    (lambda m, p, X, Y: m.forward(p, X[:, :0]), ValueError, ["m >= 1", "(4, 0)"]),
    (lambda m, p, X, Y: m.forward(replaced(p, "b2", None), X), ValueError, ["params has no 'b2'", "init_params"]),
    (lambda m, p, X, Y: m.forward(replaced(p, "W2", p["W2"][:, :4]), X), ValueError,
     ["params['W2'] has shape (5, 4)", "n1 = 5", "params['W1'] (shape (5, 4))", "expected shape (5, 5)"]),
    (lambda m, p, X, Y: m.forward(replaced(p, "b2", p["b2"].ravel()), X), ValueError,
     ["params['b2'] must be 2-D, shape (5, 1)", "got shape (5,)"]),
    (lambda m, p, X, Y: m.forward(replaced(p, "W3", p["W3"][None]), X), ValueError, ["params['W3'] must be 2-D, shape (n3, 5)"]),
    (lambda m, p, X, Y: m.loss(p, X.tolist(), Y), TypeError, ["X must be a NumPy array of real numbers", "got list"]),
    (lambda m, p, X, Y: m.loss(p, X, Y + 1j), TypeError, ["Y must be a NumPy array of real numbers", "complex128"]),
    (lambda m, p, X, Y: m.loss(p, X, None), TypeError, ["Y must be a NumPy array", "NoneType"]),
    (lambda m, p, X, Y: m.gradients(replaced(p, "W1", p["W1"].astype(int)), X, Y), TypeError,
     ["params['W1'] must be a NumPy array of floats", "int64"]),
    (lambda m, p, X, Y: m.forward(replaced(p, "b3", [[0.0]] * 3), X), TypeError, ["params['b3']", "got list"]),
]


@pytest.mark.parametrize("call, error, words", CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_wrong_input_is_one_clear_error(net, call, error, words):
    module, params, X, Y = net
    with pytest.raises(error) as caught:
        call(module, params, X, Y)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_valid_inputs_of_any_real_dtype_pass(net):
    module, params, X, Y = net
    reference = module.gradients(params, X, Y)
    single = {k: v.astype(np.float32) for k, v in params.items()}
    low = module.gradients(single, X.astype(np.float32), Y.astype(np.float32))
    assert all(low[k].dtype == np.float32 and np.allclose(low[k], reference[k], rtol=1e-3, atol=1e-5) for k in params)
    assert np.isfinite(module.loss(params, np.rint(X).astype(int), Y))  # integer inputs are numbers too
    assert module.forward(params, X[:, [0]])["A3"].shape == (3, 1)  # one sample, as a column


def test_a_graph_network_checks_every_parameter_against_the_sizes_it_shares():
    """The residual network of examples/residual_projection.toml: the projection P3 maps the 4
    units of the skip source onto the 6 of the layer it is added to, so its shape is bound from two
    other parameters; the generated check says which."""
    from dataclasses import replace as with_fields
    from pathlib import Path

    from derive.model import make_net_spec
    from derive.run import generate

    path = Path(__file__).resolve().parent.parent / "examples" / "residual_projection.toml"
    outcome = generate(with_fields(make_net_spec(str(path)), formats=("py",)))
    module = load_module(outcome.files["model.py"])
    rng = np.random.default_rng(0)
    params = module.init_params(module.SIZES, rng)
    X, Y = rng.standard_normal((3, 2)), np.eye(3)[:, :2]
    assert np.isfinite(module.loss(params, X, Y))
    with pytest.raises(ValueError) as caught:
        module.gradients({**params, "P3": params["P3"][:, :3]}, X, Y)
    message = str(caught.value)
    assert "params['P3'] has shape (6, 3)" in message and "params['W1']" in message, message
    with pytest.raises(ValueError, match=r"Y must have shape \(3, 2\)"):
        module.loss(params, X, Y[:2])


def test_targets_that_do_not_sum_to_one_are_refused_where_the_derivation_assumed_they_do():
    """Softmax with cross entropy derives δ = a − y using Σ_j y_j = 1: with other targets the
    printed gradients would be silently wrong (a fresh reviewer measured 11 % off with random Y).
    So loss, gradients and train refuse them in one line; one-hot and smoothed labels, also in
    float32, pass; a loss that assumed nothing (tanh + mse) takes any Y."""
    module = load_module(model_source(derivation_for(2, "relu", "ce"), title="t", command="t"))
    rng = np.random.default_rng(1)
    params = module.init_params(module.SIZES, rng)
    n_in, n_out = module.SIZES[0], module.SIZES[-1]
    X = rng.standard_normal((n_in, 6))
    one_hot = np.eye(n_out)[rng.integers(0, n_out, 6)].T
    smoothed = (0.9 * one_hot + 0.1 / n_out).astype(np.float32)
    module.gradients(params, X, one_hot)
    module.loss({k: v.astype(np.float32) for k, v in params.items()}, X.astype(np.float32), smoothed)
    wrong = one_hot.copy()
    wrong[:, 4] *= 2  # sample 4's targets sum to 2
    for call in (lambda: module.gradients(params, X, wrong), lambda: module.loss(params, X, wrong),
                 lambda: module.train(params, X, wrong, epochs=1, batch_size=3, rng=rng, quiet=True)):
        with pytest.raises(ValueError) as caught:
            call()
        assert "must sum to 1" in str(caught.value) and "sample 4 sums to 2" in str(caught.value)
    free = load_module(model_source(derivation_for(2, "tanh", "mse"), title="t", command="t"))
    free_params = free.init_params(free.SIZES, rng)
    free.gradients(free_params, rng.standard_normal((free.SIZES[0], 3)), rng.random((free.SIZES[-1], 3)))
