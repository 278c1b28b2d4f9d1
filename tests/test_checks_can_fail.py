"""The verification is not a formality: a wrong formula or wrong code is caught.

Each test corrupts one thing the engine produced (a δ, a gradient, a line of generated code) and
asserts that the check meant to catch it fails, and that the command then writes nothing.
"""

import dataclasses

import pytest
import sympy as sp

from derive.derivation import derive
from derive.errors import VerificationFailed
from derive.model import build_model, make_spec
from derive.notation import Q, quantity_of
from derive.run import model_source
from derive.verify import finite_difference_check, load_module, minibatch_check, symbolic_check


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


def test_finite_differences_catch_wrong_code():
    d = fresh()
    source = model_source(d, title="t", command="t")
    assert finite_difference_check(d.model, load_module(source)).passed
    broken = source.replace("dW1 = ((Delta1/m) @ A0.T)", "dW1 = ((Delta1/(m + 1)) @ A0.T)")
    assert broken != source
    assert not finite_difference_check(d.model, load_module(broken)).passed


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    import derive.run as run

    original = run.verify

    def failing(derivation, source, direct=None):
        report = original(derivation, source, direct)
        report.checks[0].passed = False
        return report

    monkeypatch.setattr(run, "verify", failing)
    with pytest.raises(VerificationFailed):
        run.generate_and_write(make_spec(2, "sigmoid"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


CURVED = ("sigmoid(sigmoid(0.5*z)) - 3*sin(z)*z", "0.5*log(cosh(a-y)) + 0.5*tanh(a)*y")  # found by Hypothesis


def test_strong_curvature_is_checked_with_richardson_extrapolation_and_still_catches_small_errors():
    # third derivatives of order 1e5: the central difference alone misses by more than the tolerance
    d = derive(build_model(make_spec(2, CURVED[0], None, CURVED[1])))
    source = model_source(d, title="t", command="t")
    check = finite_difference_check(d.model, load_module(source))
    assert check.passed and check.figures["extrapolated"] >= 1, check.figures
    # an error of one part in ten thousand in one gradient is still caught
    broken = source.replace("dW1 = ((Delta1/m) @ A0.T)", "dW1 = ((Delta1/(m*1.0001)) @ A0.T)")
    assert broken != source
    assert not finite_difference_check(d.model, load_module(broken)).passed
