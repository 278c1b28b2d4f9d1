"""Every derivative the tool prints is checked twice: against direct differentiation of the fully
expanded loss (exact or 50 digits), and — through the generated NumPy code — against complex-step
derivatives of the network's definition.

The grid covers depths 1…4 × every hidden activation × every loss (with its default output
activation), plus every output activation with mse.
"""

import pytest

from derive.run import model_source
from derive.verify import derivative_check, load_module, minibatch_check, stability_check, symbolic_check

from conftest import derivation_for

HIDDEN = ["identity", "sigmoid", "tanh", "relu"]
LOSSES = ["mse", "ce", "bce"]
GRID = [(layers, act, loss, None) for layers in (1, 2, 3, 4) for act in HIDDEN for loss in LOSSES]
GRID += [(layers, "tanh", "mse", out) for layers in (1, 3) for out in ("softmax", "sigmoid", "relu", "identity")]
GRID += [(2, "relu", "ce", "sigmoid")]


def module_for(derivation):
    source = model_source(derivation, title="test", command="test")
    return load_module(source)


def config_id(config):
    layers, act, loss, out = config
    return f"L{layers}-{act}-{out or 'default'}-{loss}"


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_delta_form_equals_direct_differentiation(config):
    layers, act, loss, out = config
    d = derivation_for(layers, act, loss, out)
    check = symbolic_check(d)
    assert check.ran and check.passed, check.figures
    assert check.figures["partials"] == layers * 6


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_minibatch_formulas_are_the_mean_of_per_sample_ones(config):
    check = minibatch_check(derivation_for(*config[:3], config[3]))
    assert check.passed, check.figures


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_generated_code_matches_complex_step_derivatives_and_is_stable(config):
    d = derivation_for(*config[:3], config[3])
    module = module_for(d)
    derivatives = derivative_check(d.model, module)
    assert derivatives.passed, derivatives.figures
    stable = stability_check(d.model, module)
    assert stable.passed, stable.figures


def test_the_rounding_bound_is_the_working_precision_whatever_the_evaluation_order():
    """Below 10^-50 two 50-digit evaluations differ by rounding, whose size (10^-51, 10^-52) follows the
    order of their operations: the check states the unit 10^-50 (overall and per layer), so a faster
    direct differentiation cannot change a document; a larger difference keeps its own decade."""
    import sympy as sp

    from derive.verify_symbolic import rounding_bound

    assert [rounding_bound(x, 50) for x in (sp.S.Zero, sp.Float("3e-52", 60), sp.Float("2e-51", 60),
                                            sp.Rational(1, 10**50))] == ["0", "1e-50", "1e-50", "1e-50"]
    assert rounding_bound(sp.Float("2e-50", 60), 50) == "1e-49"
    assert rounding_bound(sp.Float("3e-102", 110), 100) == "1e-100"
    assert rounding_bound(sp.Float("3e-40", 60), 50) == "1e-39"
    check = symbolic_check(derivation_for(3, "sigmoid", "mse"))
    assert check.passed and not check.figures["exact"]
    assert check.figures["largest_difference"] in ("0", "1e-50")
    assert set(check.figures["per_node"].values()) <= {"0", "1e-50"}
    exact = symbolic_check(derivation_for(2, "relu", "mse"))
    assert exact.figures["exact"] and exact.figures["largest_difference"] == "0"


def test_symbolic_check_is_skipped_beyond_depth_four_and_says_so():
    check = symbolic_check(derivation_for(5, "tanh", "mse"))
    assert not check.ran and check.figures["depth"] == 5


def test_chained_direct_differentiation_runs_at_any_depth():
    """Beyond depth 4 the expanded loss is too large; differentiating each entry's own rule and
    chaining the local derivatives (`chained_gradients`, what networks with windows use) runs there
    and agrees with the derived formulas; the deep rational network in 50 digits."""
    from derive.verify_symbolic import DirectDifferentiation, _compare_with_direct

    for layers, act in ((5, "tanh"), (12, "relu")):
        d = derivation_for(layers, act, "mse")
        direct = DirectDifferentiation(d.model)
        direct.chained, direct.skipped = True, False
        direct.values = __import__("derive.verify_symbolic", fromlist=["symbolic_point"]).symbolic_point(d.model)
        check = _compare_with_direct(d, direct)
        assert check.passed and check.figures["method"] == "chained" and not check.figures["exact"]


@pytest.mark.parametrize("layers, act, loss", [(3, "sigmoid", "mse"), (3, "relu", "mse"), (4, "tanh", "ce")])
def test_chained_derivatives_equal_those_of_the_expanded_loss(layers, act, loss):
    """The two forms of direct differentiation (one expression of the whole loss, or each entry's
    rule chained) give the same numbers: exactly for a rational network, else to 45 digits."""
    from derive.verify_symbolic import chained_gradients, direct_gradients, symbolic_point

    model = derivation_for(layers, act, loss).model
    values = symbolic_point(model)
    whole, exact = direct_gradients(model, values)
    chained, chained_exact = chained_gradients(model, values)
    assert exact == chained_exact and sorted(whole) == sorted(chained)
    for key, value in whole.items():
        assert (value == chained[key]) if exact else abs(value - chained[key]) <= 1e-45 * max(1, abs(value))


@pytest.mark.parametrize("layers, act, loss", [(3, "sigmoid", "mse"), (3, "relu", "ce"), (2, "gelu", "nll"),
                                                 (3, "relu", "mse"), (2, "tanh", "bce")])
def test_partial_derivatives_are_those_of_sympy_diff(layers, act, loss):
    """The direct check's derivatives of the expanded loss, each repeated subtree differentiated once,
    are the very expressions `sympy.diff` gives (compared with ==, not numerically), and so are their
    values at the point; `Expr.diff` is SymPy's own again afterwards, also after an error."""
    import sympy as sp

    from derive.verify_symbolic import (SYMBOLIC_WIDTH, _expanded_network, partial_derivatives, shared_xreplace,
                                        symbolic_point)

    model = derivation_for(layers, act, loss).model
    values = symbolic_point(model)
    expanded = _expanded_network(model, SYMBOLIC_WIDTH, values, symbolic=True)
    symbols = list(expanded.params.values())
    original = sp.Expr.diff
    fast = partial_derivatives(expanded.cost, symbols)
    assert sp.Expr.diff is original
    slow = [sp.diff(expanded.cost, s) for s in symbols]
    assert len(fast) == len(symbols) and all(f == s for f, s in zip(fast, slow))
    point = {sym: sp.Float(values[key], 50) for key, sym in expanded.params.items()}
    assert shared_xreplace(fast, point) == [s.xreplace(point) for s in slow]

    class Failing(sp.Function):
        def fdiff(self, argindex=1):
            raise ValueError("no derivative here")

    with pytest.raises(ValueError, match="no derivative here"):
        partial_derivatives(expanded.cost + Failing(symbols[0]), symbols)
    assert sp.Expr.diff is original


def test_partial_derivatives_keep_sympy_diff_where_a_rule_is_missing():
    """An unevaluated derivative (a function without a derivative rule) and a second derivative come
    out as `sympy.diff` gives them."""
    import sympy as sp

    from derive.verify_symbolic import partial_derivatives

    x, y = sp.symbols("x y", real=True)
    f = sp.Function("f")
    expr = f(x * y) * sp.exp(x) + sp.Max(0, x - y) + (x * y) ** 3
    assert partial_derivatives(expr, [x, y]) == [sp.diff(expr, x), sp.diff(expr, y)]


def test_the_chained_check_catches_a_wrong_formula():
    """A kernel gradient of a convolution off by one entry's factor is reported, per node."""
    import dataclasses
    import tomllib

    import sympy as sp

    from derive.cnn import network_text
    from derive.derivation import derive
    from derive.model import build_model
    from derive.netfile import parse_network
    from derive.notation import Q

    text = network_text("1x5x4", "conv 2 k2 s2 p1 tanh, avgpool 2 s1, flatten, dense 2 softmax", "cross_entropy",
                        "derive cnn")
    d = derive(build_model(parse_network(tomllib.loads(text), "derive cnn", text=text, formats=("py",))))
    check = symbolic_check(d)
    assert check.passed and check.figures["method"] == "chained"
    result = d.sample.results[Q("grad_K", 1)]
    d.sample.results[Q("grad_K", 1)] = dataclasses.replace(result, rhs=result.rhs * sp.Rational(11, 10))
    wrong = symbolic_check(d)
    assert not wrong.passed and wrong.figures["per_node"]["z_1"] != "0"


def test_minibatch_check_of_a_deep_rational_network_uses_digits_not_exact_numbers():
    """softsign is rational, and exact numbers double their digits at each of its layers: at depth 32
    the check never finished. Beyond the depth of the direct check it runs with 50 digits."""
    import time

    start = time.process_time()
    check = minibatch_check(derivation_for(32, "softsign", "mse"))
    assert check.passed and not check.figures["exact"] and check.figures["digits"] == 50
    assert time.process_time() - start < 60  # CPU seconds; exactly, depth 14 alone took 65
    assert minibatch_check(derivation_for(4, "softsign", "mse")).figures["exact"]


def test_evaluation_in_digits_keeps_the_precision_of_its_point():
    """Constants (√2 of gelu) were floated at 10 digits more than the values they met, and the result
    then set the next layer's precision: 700 digits at depth 64, and gelu at depth 128 took minutes."""
    import random

    import mpmath
    import sympy as sp

    from derive.verify_symbolic import DIGITS, _random_point, concrete_sizes, evaluate_derivation

    d = derivation_for(24, "gelu", "mse")
    point = {k: sp.Float(v, DIGITS) for k, v in _random_point(d.model, 2, 1, random.Random(0)).items()}
    values = evaluate_derivation(d, False, point, concrete_sizes(d.model, 2, None))
    finest = max(v._prec for v in values.values() if isinstance(v, sp.Float))
    assert finest <= mpmath.libmp.dps_to_prec(DIGITS + 10)  # guard digits once, not once per layer


def test_directional_complex_step_agrees_with_the_per_entry_reference_and_catches_one_wrong_entry():
    """Beyond NUMERIC_MAX_PARAMS entries the code's gradients are checked along random directions
    (one copy of the network per direction): the directional reference is the per-entry reference
    projected, and one entry of one gradient off by 0.1 % fails the check."""
    import tomllib
    import types

    import numpy as np

    from derive import complex_step
    from derive.cnn import network_text
    from derive.derivation import derive
    from derive.model import build_model
    from derive.netfile import parse_network
    from derive.verify import derivative_check_directions, numeric_point

    text = network_text("2x6x5", "conv 3 k3 s2 p1 tanh, maxpool 2 s1, flatten, dense 3 softmax", "cross_entropy",
                        "derive cnn")
    d = derive(build_model(parse_network(tomllib.loads(text), "derive cnn", text=text, formats=("py",))))
    module = module_for(d)
    _, params, X, Y = numeric_point(d.model, module)
    entries, _, _ = complex_step.gradients(d.model, params, X, Y)
    directions = complex_step.random_directions(d.model, params, 3)
    along, _, _ = complex_step.directional_derivatives(d.model, params, X, Y, directions)
    for key, v in directions.items():
        np.testing.assert_allclose(along[key], v @ entries[key].ravel(), rtol=1e-12, atol=1e-15)
    check = derivative_check_directions(d.model, module)
    assert check.passed and check.figures["method"] == "directional" and check.figures["directions"] == 4 * 4

    def wrong_gradients(params, X, Y):
        grads = module.gradients(params, X, Y)
        grads["K1"] = grads["K1"].copy()
        grads["K1"].flat[5] *= 1.001
        return grads

    tampered = types.SimpleNamespace(**{**module.__dict__, "gradients": wrong_gradients})
    assert not derivative_check_directions(d.model, tampered).passed


def test_derivatives_found_once_per_pattern_equal_sympy_diff():
    """The chained check differentiates each pattern of terms once (entries renamed into standard
    symbols) and renames the derivative back: the same expression `sympy.diff` gives for each entry,
    also where the entry's position among the term's symbols differs (a softmax's numerator)."""
    import sympy as sp

    from derive.verify_symbolic import _renamed_diff

    a, b, c, d = (sp.Symbol(f"a_2[0,{k}]", real=True) for k in range(4))
    y = sp.Symbol("y[1]", real=True)
    softmax = [sp.exp(x) / (sp.exp(a) + sp.exp(b) + sp.exp(c)) for x in (a, b, c)]
    terms = [sp.Max(a, b, c, d), sp.Max(0, c), -y * sp.log(d), *softmax, sp.tanh(a * b) + c**2]
    for term in terms:
        for symbol in sorted(term.free_symbols, key=sp.default_sort_key):
            assert _renamed_diff(term, symbol) == sp.diff(term, symbol)
    other = sp.Symbol("p", positive=True)  # not a placeholder's assumptions: differentiated as it is
    assert _renamed_diff(other * sp.log(a), a) == other / a


@pytest.mark.parametrize("layers, act, loss", [(2, "relu", "mse"), (2, "sigmoid", "ce")])
def test_the_second_process_evaluates_the_per_sample_pass_as_the_check_would(layers, act, loss, monkeypatch):
    """Started in a second process with the per-sample pass, the direct differentiation brings that
    pass back evaluated at its point: the check's own first evaluation, number for number and
    precision for precision; the check reads it (it passes without evaluating here; with one of
    those numbers off, an exact check fails and a 50-digit one evaluates again here with more
    digits, as it does for an ill-conditioned point)."""
    import sympy as sp

    import derive.verify_symbolic as vs
    from derive.parallel import Background

    d = derivation_for(layers, act, loss)
    direct = vs.DirectDifferentiation(d.model).start(Background, d.sample)
    _, exact = direct.result()
    values = direct.values if exact else {k: sp.Float(v, vs.DIGITS) for k, v in direct.values.items()}
    here = vs.evaluate_derivation(d, False, values, vs.concrete_sizes(d.model, vs.SYMBOLIC_WIDTH, None))
    assert direct.derived is not None and len(here) > 5
    assert {k: sp.srepr(v) for k, v in direct.derived.items()} == {k: sp.srepr(v) for k, v in here.items()}
    with monkeypatch.context() as patch:
        patch.setattr(vs, "evaluate_derivation", lambda *a: pytest.fail("evaluated again here"))
        assert vs._compare_with_direct(d, direct).passed
    key = sorted(direct.derived)[0]
    direct.derived[key] = direct.derived[key] * sp.Rational(1001, 1000) + sp.Rational(1, 1000)
    check = vs._compare_with_direct(d, direct)
    if exact:
        assert not check.passed
    else:
        assert check.passed and check.figures["working_digits"] == 2 * vs.DIGITS


def test_the_loss_agreement_is_printed_no_finer_than_a_few_units_in_the_last_place():
    """The loss of model.py against the definition's: 0 on one CPU and one unit in the last place on
    another (NumPy's exp and log kernels follow the instruction set), so the printed figure is the
    decade above a floor of 4 ulps, the same on every machine; a real disagreement still shows."""
    from derive.verify import LOSS_FLOOR, _derivative_result

    d = derivation_for(3, "sigmoid", "mse")
    check = derivative_check(d.model, module_for(d))
    assert check.figures["loss_error"] == "1e-15" and LOSS_FLOOR < 1e-15
    point, extent = ((2, 2), 3, 4.0), (1e-3, 1.0)
    for value, printed in ((1.0, "1e-15"), (1.0 + 2.2e-16, "1e-15"), (1.0 + 3e-12, "1e-11")):
        assert _derivative_result({}, point, True, 0.0, (value, 1.0, 1.0), extent).figures["loss_error"] == printed
