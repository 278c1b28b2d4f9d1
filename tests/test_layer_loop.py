"""`backprop(params, X, Y)` of model.py, the backward pass as a loop over the layers, gives the
gradients of the unrolled `gradients` (and so of the derivation) on networks of several depths,
activations, losses and sizes; where the layers differ, no loop is printed."""

from __future__ import annotations

import numpy as np
import pytest

from derive.layer_loop import relative
from derive.model import make_spec
from derive.run import generate
from derive.verify import load_module

CONFIGURATIONS = [
    dict(layers=3, act="sigmoid"),
    dict(layers=3, act="relu", loss="ce"),
    dict(layers=2, act="tanh", loss="bce"),
    dict(layers=4, act="elu", loss="huber", sizes="3,6,4,5,2"),
    dict(layers=1, act="sigmoid", loss="bce"),
    dict(layers=3, act="tanh", loss="mse", l2="0.01"),
]


def _model(config: dict):
    config = dict(config)
    layers, act, loss = config.pop("layers"), config.pop("act"), config.pop("loss", "mse")
    return load_module(generate(make_spec(layers, act, None, loss, formats="py", **config)).files["model.py"].decode())


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_the_loop_gives_the_unrolled_gradients(config):
    model = _model(config)
    rng = np.random.default_rng(3)
    params = model.init_params(model.SIZES, rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # biases not 0
    X = rng.standard_normal((model.SIZES[0], 7))
    n_out = model.SIZES[-1]
    Y = np.eye(n_out)[rng.integers(0, n_out, 7)].T if config.get("loss") in ("ce", "bce") and n_out > 1 else \
        rng.integers(0, 2, (n_out, 7)).astype(float) if config.get("loss") == "bce" else rng.standard_normal((n_out, 7))
    looped, unrolled = model.backprop(params, X, Y), model.gradients(params, X, Y)
    assert list(looped) == list(unrolled)
    for key in unrolled:
        assert looped[key].shape == unrolled[key].shape
        np.testing.assert_allclose(looped[key], unrolled[key], rtol=1e-12, atol=1e-15)
    # and against a central difference of the loss, for one weight of the first layer
    h, shifted = 1e-6, {k: v.copy() for k, v in params.items()}
    shifted["W1"][0, 0] += h
    up = model.loss(shifted, X, Y)
    shifted["W1"][0, 0] -= 2 * h
    down = model.loss(shifted, X, Y)
    assert looped["W1"][0, 0] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)


def test_no_loop_where_the_hidden_layers_differ():
    model = _model(dict(layers=3, act="relu,tanh"))
    assert not hasattr(model, "backprop")


def test_names_are_written_relative_to_the_layer():
    assert relative("A2*(1 - A2)*(W3.T @ delta3)", 3, "l") == "A[l - 1]*(1 - A[l - 1])*(W[l].T @ delta[l])"
    assert relative("(W1 @ A0) + b1", 1, "l") == "(W[l] @ A[l - 1]) + b[l]"
