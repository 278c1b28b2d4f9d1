"""The verification is not a formality: a wrong formula or wrong code is caught.

Each test corrupts one thing the engine produced (a δ, a gradient, a line of generated code) and
asserts that the check meant to catch it fails, and that the command then writes nothing.
"""

import dataclasses

import numpy as np
import pytest
import sympy as sp

from derive.derivation import derive
from derive.errors import VerificationFailed
from derive.model import build_model, make_spec
from derive.notation import Q, quantity_of
from derive.run import model_source, model_sources
from derive.verify import derivative_check, load_module, load_package, minibatch_check, symbolic_check, workspace_check


def fresh(layers=2, act="sigmoid", loss="mse"):
    return derive(build_model(make_spec(layers, act, None, loss)))


def corrupt(derivation, key, factor, batch=False):
    results = (derivation.batch if batch else derivation.sample).results
    key = quantity_of(key)
    results[key] = dataclasses.replace(results[key], rhs=results[key].rhs * factor)


@pytest.mark.parametrize("key", ["delta_2", "delta_1", "grad_W_1", "grad_b_2"])
def test_symbolic_check_catches_a_wrong_per_sample_formula(key):
    d = fresh()
    corrupt(d, key, sp.Rational(101, 100))
    assert not symbolic_check(d).passed


def test_symbolic_check_catches_a_missing_derivative_factor():
    d = fresh(2, "tanh")
    result = d.sample.results[Q("delta", 1)]
    wrong = result.rhs.replace(lambda e: e.is_Add and e.has(sp.Pow), lambda e: sp.S.One)  # drop (1 - a²)
    d.sample.results[Q("delta", 1)] = dataclasses.replace(result, rhs=wrong)
    assert not symbolic_check(d).passed


def test_minibatch_check_catches_a_wrong_batch_formula():
    d = fresh()
    corrupt(d, "grad_W_1", 2, batch=True)
    assert not minibatch_check(d).passed


def test_derivative_check_catches_wrong_code():
    d = fresh()
    source = model_source(d, title="t", command="t")
    assert derivative_check(d.model, load_module(source)).passed
    broken = source.replace("dW1 = ((delta1/m) @ A0.T)", "dW1 = ((delta1/(m + 1)) @ A0.T)")
    assert broken != source
    check = derivative_check(d.model, load_module(broken))
    assert not check.passed and "differ from complex-step derivatives" in check.figures["error"]


def test_derivative_check_catches_a_wrong_loss():
    d = fresh()
    source = model_source(d, title="t", command="t")
    broken = source.replace("return float(np.sum(", "return 1.0001*float(np.sum(")
    assert broken != source
    check = derivative_check(d.model, load_module(broken))
    assert not check.passed and "loss of model.py differs" in check.figures["error"]


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    import derive.run as run

    original = run.verify

    def failing(derivation, source, direct=None, minibatch=None, inplace_source=None):
        report = original(derivation, source, direct, minibatch, inplace_source)
        report.checks[0].passed = False
        return report

    monkeypatch.setattr(run, "verify", failing)
    with pytest.raises(VerificationFailed):
        run.generate_and_write(make_spec(2, "sigmoid"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


CURVED = ("sigmoid(sigmoid(0.5*z)) - 3*sin(z)*z", "0.5*log(cosh(a-y)) + 0.5*tanh(a)*y")  # found by Hypothesis


def with_one_entry_off(module, key, relative=1e-4):
    """`module` whose `gradients` returns the largest entry of `key` off by `relative`."""
    original = module.gradients

    def gradients(params, X, Y):
        grads = original(params, X, Y)
        entry = np.unravel_index(np.argmax(np.abs(grads[key])), grads[key].shape)
        grads[key][entry] *= 1 + relative
        return grads

    module.gradients = gradients
    return module


def test_strong_curvature_passes_and_an_error_of_one_part_in_ten_thousand_is_caught():
    # third derivatives of order 1e5 (a central difference alone missed by more than its tolerance)
    d = derive(build_model(make_spec(2, CURVED[0], None, CURVED[1])))
    source = model_source(d, title="t", command="t")
    assert derivative_check(d.model, load_module(source)).passed
    for key in ("W1", "b2"):
        assert not derivative_check(d.model, with_one_entry_off(load_module(source), key)).passed


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_deep_network_with_vanishing_gradients_is_checked_as_strictly_as_a_shallow_one(act):
    """At depth 64 the first layer's gradients are orders of magnitude below the last layer's; each
    parameter is compared against its own scale, so one entry off by 1e-4 is caught in either."""
    d = derive(build_model(make_spec(64, act)))
    source = model_source(d, title="t", command="t")
    check = derivative_check(d.model, load_module(source))
    assert check.passed, check.figures
    assert float(check.figures["smallest_gradient"]) <= 1e-10 * float(check.figures["largest_gradient"])
    assert check.figures["tolerance"] == "1e-9"
    for key in ("W1", "b1", "W64"):
        wrong = derivative_check(d.model, with_one_entry_off(load_module(source), key))
        assert not wrong.passed and float(wrong.figures["largest_error"]) in (1e-4, 1e-3), (key, wrong.figures)


def test_float32_is_measured_against_the_network_scale_and_still_catches_a_wrong_float32_path():
    d = derive(build_model(make_spec(64, "tanh")))
    plain, source = model_sources(d, title="t", command="t")
    check = workspace_check(d.model, *load_package(plain, source))
    assert check.passed and check.figures["float32_tolerance"] == "1e-4", check.figures
    # the float32 path computing in float16 (3 digits) is far outside the tolerance
    broken = source.replace("self.dtype = np.dtype(dtype)", "self.dtype = np.dtype(np.float16 if np.dtype(dtype) == np.float32 else dtype)")
    assert broken != source
    module, inplace = load_package(plain, broken)
    original = inplace.gradients_into

    def gradients_into(ws, params, X, Y):  # hand it float16 inputs, as its arrays now are
        low = {k: v.astype(ws.dtype) for k, v in params.items()}
        return original(ws, low, X.astype(ws.dtype), Y.astype(ws.dtype))

    inplace.gradients_into = gradients_into
    assert not workspace_check(d.model, module, inplace).passed
