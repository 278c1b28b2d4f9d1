"""One generic derivative checker run over every catalog entry (the autograd `check_grads` idea).

For each activation the engine's derivative (with its kink convention) and its form in terms of
the output are compared with central differences of g itself; for each loss the engine's ∂ℓ/∂a is
compared with central differences of ℓ. Points come from each entry's valid domain, away from kinks.
"""

import math

import pytest
import sympy as sp

from derive.catalog import ACTIVATIONS, LOSSES
from derive.notation import A, Y, Z
from derive.rewrite import activation_derivative

POINTS = [-2.3, -1.1, -0.4, 0.3, 0.9, 1.7]
STEP = 1e-6


def central_difference(f, x):
    return (f(x + STEP) - f(x - STEP)) / (2 * STEP)


ELEMENTWISE = [a for a in ACTIVATIONS.values() if not a.is_softmax]


@pytest.mark.parametrize("activation", ELEMENTWISE, ids=lambda a: a.name)
def test_activation_derivative_matches_finite_differences(activation):
    d = activation_derivative(activation)
    g = sp.lambdify(Z, activation.expr, "math")
    gp = sp.lambdify(Z, d.derivative, "math")
    for x in POINTS:
        assert math.isclose(gp(x), central_difference(g, x), rel_tol=1e-7, abs_tol=1e-9), (activation.name, x)


@pytest.mark.parametrize("activation", ELEMENTWISE, ids=lambda a: a.name)
def test_derivative_in_terms_of_output_matches(activation):
    d = activation_derivative(activation)
    if d.in_terms_of_output is None:
        pytest.skip(f"{activation.name}: no form in terms of a (expected for non-smooth or constant g′)")
    g = sp.lambdify(Z, activation.expr, "math")
    h = sp.lambdify(A, d.in_terms_of_output, "math")
    for x in POINTS:
        assert math.isclose(h(g(x)), central_difference(g, x), rel_tol=1e-7, abs_tol=1e-9)


LOSS_POINTS = {"real": [(-1.2, 0.3), (0.4, -0.7), (2.0, 2.5)], "probability": [(0.2, 0.5), (0.7, 0.1), (0.35, 1.0)],
               "binary": [(0.2, 0.5), (0.7, 0.1), (0.35, 1.0)]}


@pytest.mark.parametrize("loss", LOSSES.values(), ids=lambda l: l.name)
def test_loss_derivative_matches_finite_differences(loss):
    ell = sp.lambdify((A, Y), loss.expr, "math")
    dell = sp.lambdify((A, Y), sp.diff(loss.expr, A), "math")
    for a, y in LOSS_POINTS[loss.target]:
        assert math.isclose(dell(a, y), central_difference(lambda u: ell(u, y), a), rel_tol=1e-6, abs_tol=1e-8)


def test_readable_forms_the_engine_must_find():
    """Textbook identities, found and proved by the engine (a wrong engine result fails here)."""
    assert sp.expand(activation_derivative(ACTIVATIONS["sigmoid"]).in_terms_of_output - A * (1 - A)) == 0
    assert sp.expand(activation_derivative(ACTIVATIONS["tanh"]).in_terms_of_output - (1 - A**2)) == 0
    relu = activation_derivative(ACTIVATIONS["relu"])
    assert relu.derivative == sp.Heaviside(Z, 0) and relu.kink_convention
    assert activation_derivative(ACTIVATIONS["identity"]).derivative == 1
