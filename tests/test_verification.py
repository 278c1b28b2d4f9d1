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


def test_symbolic_check_is_skipped_beyond_depth_four_and_says_so():
    check = symbolic_check(derivation_for(5, "tanh", "mse"))
    assert not check.ran and check.figures["depth"] == 5


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
