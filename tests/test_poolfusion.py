"""sgd_step pools before relu (derive.poolfusion): relu followed by max pooling is computed as max
pooling then relu, and the error as H(P) ⊙ G routed by the first maxima of Z. Checked on the
window helpers (ties and all-negative windows included, overlapping and padded windows), on which
formulas the rewrite touches, and on a generated model whose sgd_step must still move every
parameter by −lr·gradients."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive import convops
from derive.codegen import code_forms
from derive.convops import MaxPool, MaxPoolGrad
from derive.model import build_model
from derive.netfile import parse_network
from derive.poolfusion import pool_before_relu
from derive.run import derive_in_parallel, generate
from derive.inplace import INPLACE_FILE
from derive.verify import load_files

GEOMETRIES = [((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 1), (1, 1)),
              ((2, 2), (1, 1), (0, 0), (2, 2)), ((2, 3), (3, 2), (1, 0), (1, 1))]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[str(g) for g in GEOMETRIES])
def test_pooling_before_relu_gives_the_same_output_and_error(geometry):
    """Inputs from a few integers, so that windows hold ties, zeros and only negative entries."""
    rng = np.random.default_rng(0)
    Z = rng.integers(-3, 3, size=(3, 9, 8, 5)).astype(float)
    relu = np.maximum(0, Z)
    P = convops.max_pool(relu, *geometry)
    np.testing.assert_array_equal(np.maximum(0, convops.max_pool(Z, *geometry)), P)
    G = rng.standard_normal(P.shape)
    original = (Z > 0) * convops.max_pool_grad(G, relu, *geometry, Z.shape[1:3])
    fused = convops.max_pool_grad((P > 0) * G, Z, *geometry, Z.shape[1:3])
    np.testing.assert_array_equal(fused, original)
    assert np.count_nonzero(original) > 0 and np.count_nonzero((P == 0) & (G != 0)) > 0  # both cases occur


NETWORK = {
    "input": [1, 12, 10],
    "loss": "cross_entropy",
    "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 3, "padding": 1, "activation": "relu"},
        {"kind": "max_pool2d", "kernel": 2, "stride": 1, "padding": 1},  # overlapping, padded windows
        {"kind": "conv2d", "channels": 2, "kernel": 3, "stride": 2, "activation": "tanh"},
        {"kind": "max_pool2d", "kernel": 2, "stride": 1},  # after tanh: not rewritten
        {"kind": "conv2d", "channels": 2, "kernel": 1, "activation": "relu"},
        {"kind": "avg_pool2d", "kernel": 2},  # average pooling: not rewritten
        {"kind": "flatten"},
        {"kind": "dense", "units": 3, "activation": "softmax"},
    ],
}


@pytest.fixture(scope="module")
def spec():
    return parse_network(NETWORK, "fusion.toml", formats=("py",))


def test_only_relu_then_max_pooling_is_rewritten(spec):
    derivation = derive_in_parallel(build_model(spec))
    forms = code_forms(derivation)
    fused = pool_before_relu(derivation, forms)
    named = {f"{key.kind}{key.layer.number}": key for key in forms}
    changed = {name for name, key in named.items() if fused[key] != forms[key]}
    assert changed == {"a2", "delta1"}, changed
    pooled = fused[named["a2"]]
    assert isinstance(pooled, sp.Max) and any(isinstance(a, MaxPool) and str(a.args[0]) == "Z_1" for a in pooled.args)
    error = fused[named["delta1"]]
    assert isinstance(error, MaxPoolGrad) and str(error.args[1]) == "Z_1"
    assert error.args[0].has(sp.Heaviside(derivation.batch.results[named["a2"]].matrix_lhs, 0))


def test_the_generated_step_still_moves_every_parameter_by_minus_lr_times_the_gradient(spec):
    outcome = generate(spec)
    assert outcome.report.passed
    source = outcome.files[INPLACE_FILE].decode()
    step = source[source.index("def sgd_step"):source.index("def train")]
    assert "_max_pool(Z1," in step and "np.maximum(0, Z1" not in step  # pooled first, no relu pass over Z1
    assert "_max_pool(A3," in step  # after tanh, as derived
    module, inplace = load_files(outcome.files, "fusion_model")
    rng = np.random.default_rng(4)
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    m = 7
    X = rng.standard_normal((1, 12, 10, m))
    Y = np.eye(3)[:, rng.integers(0, 3, size=m)]
    grads = module.gradients(params, X, Y)
    stepped = {k: v.copy() for k, v in params.items()}
    inplace.sgd_step(inplace.Workspace(module.SIZES, m), stepped, X, Y, 0.1)
    for key in params:
        expected = params[key] - 0.1 * grads[key]
        assert np.max(np.abs(stepped[key] - expected)) <= 1e-12 * max(1.0, np.max(np.abs(expected))), key
