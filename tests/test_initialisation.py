"""The derived initial scales: the known closed forms exactly, the Gaussian integrals right, and
signals that keep their variance through 20 layers of the generated code."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.catalog import ACTIVATIONS, Activation
from derive.initialisation import (
    N_IN,
    N_OUT,
    STD,
    activation_scale,
    derive_initialisation,
    gaussian_expectation,
    quadrature,
)
from derive.model import build_model, make_spec
from derive.notation import LayerRef, Z, size
from derive.run import model_source
from derive.verify import load_module

from conftest import derivation_for

HE, LECUN, GLOROT = 2 / N_IN, 1 / N_IN, 2 / (N_IN + N_OUT)

# SELU with PyTorch's constants (torch.nn.SELU), written as a user would: any activation gets a scale
SELU = Activation(
    "selu_test",
    "scaled exponential linear unit",
    sp.Float("1.0507009873554804934193349852946", 32)
    * sp.Piecewise((Z, Z > 0), (sp.Float("1.6732632423543772848170429916717", 32) * (sp.exp(Z) - 1), True)),
)


@pytest.mark.parametrize("name, expected, known, method", [
    ("relu", HE, "He", "integration"),
    ("tanh", GLOROT, "Glorot", "linearisation"),
    ("identity", GLOROT, "Glorot", "linearisation"),
])
def test_catalog_activations_get_the_known_closed_forms_exactly(name, expected, known, method):
    scale = activation_scale(ACTIVATIONS[name])
    assert sp.simplify(scale.variance - expected) == 0 and scale.variance == sp.factor(expected)
    assert scale.known == known and scale.method == method


def _gauss(f, std: float = 1.0) -> float:
    """E[f(z)] for z ~ N(0, std²) by NumPy's 200-point Gauss–Hermite rule (the engine uses 60 nodes)."""
    nodes, weights = np.polynomial.hermite.hermgauss(200)
    return float(weights @ f(np.sqrt(2) * std * nodes) / np.sqrt(np.pi))


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_sigmoid_solves_the_exact_forward_condition_with_its_offset():
    """σ(0) = ½ ≠ 0: the linearisation's Glorot variance (gain 4) drops σ(0)² from E[σ(z)²], so it is
    kept only for comparison; the variance used solves n_in σ_w² E[σ(z)²] = 1 at σ_z = 1."""
    scale = activation_scale(ACTIVATIONS["sigmoid"])
    moment = _gauss(lambda z: _sigmoid(z) ** 2)
    assert scale.method == "offset" and scale.known is None
    assert float(scale.variance * N_IN) == pytest.approx(1 / moment, rel=1e-9)
    assert scale.convention == sp.factor(16 * GLOROT) and scale.figures["convention_gain"] == "4"
    slopes = _gauss(lambda z: (_sigmoid(z) * (1 - _sigmoid(z))) ** 2)
    assert scale.figures["backward_factor"] == f"{slopes / moment:.4g}"  # n σ_w² E[σ′²], as many inputs as outputs
    assert scale.figures["backward_gain"] == f"{1 / slopes:.4g}"  # what the backward condition alone asks


def test_selu_gets_lecun_from_its_fixed_point():
    scale = activation_scale(SELU)
    assert scale.variance == LECUN and scale.known == "LeCun" and scale.method == "integration"
    assert int(scale.figures["digits"]) >= 25  # E[selu(z)²] = 1 at s = 1 to the precision of the constants


def test_relu_second_moment_is_half_the_variance():
    integrals, value = gaussian_expectation(ACTIVATIONS["relu"].expr ** 2)
    assert value == STD**2 / 2


def test_input_layer_is_lecun_and_later_layers_follow_the_activation_below():
    init = derive_initialisation(build_model(make_spec(4, "relu,tanh,sigmoid", None, "ce")))
    n = [size(LayerRef(l)) for l in range(5)]
    assert [layer.variance for layer in init.layers][:3] == [1 / n[0], 2 / n[1], 2 / (n[2] + n[3])]
    sigmoid = init.layers[3].variance  # the exact forward condition, a number over n₃
    assert sigmoid.free_symbols == {n[3]} and float(sigmoid * n[3]) == pytest.approx(1 / _gauss(lambda z: _sigmoid(z) ** 2))
    assert [layer.source for layer in init.layers] == ["input", "relu", "tanh", "sigmoid"]


@pytest.mark.parametrize("expr", [
    sp.Max(0, Z), sp.Max(Z / 10, Z), sp.Abs(Z), sp.Piecewise((Z, Z > 0), (sp.exp(Z) - 1, True)), Z**2 + 3 * Z,
    sp.Min(1, sp.Max(-1, Z)),
], ids=str)
@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
def test_closed_form_gaussian_expectations_agree_with_quadrature(expr, s):
    found = gaussian_expectation(expr**2)
    assert found is not None, expr
    exact = float(found[1].xreplace({STD: s}))
    assert np.isclose(exact, quadrature(expr**2, std=s), rtol=1e-9), (expr, s)


def test_no_closed_form_falls_back_to_quadrature_and_says_so():
    scale = activation_scale(Activation("clipped_tanh", "t", sp.Max(0, sp.tanh(Z))))
    assert scale.method == "quadrature"
    expected = 1 / quadrature(sp.Max(0, sp.tanh(Z)) ** 2)
    assert np.isclose(float(scale.variance * N_IN), expected, rtol=1e-12)


def test_user_written_smooth_activation_with_an_offset_solves_the_exact_forward_condition():
    # softplus(0) = log 2 ≠ 0: like the sigmoid, the exact forward condition; Glorot with gain 1/g'(0) = 2
    # stays the comparison
    scale = activation_scale(Activation("softplus_test", "softplus", sp.log(1 + sp.exp(Z))))
    assert scale.method == "offset" and scale.convention == sp.factor(4 * GLOROT)
    moment = _gauss(lambda z: np.log1p(np.exp(z)) ** 2)
    assert float(scale.variance * N_IN) == pytest.approx(1 / moment, rel=1e-9)


def test_user_written_smooth_activation_through_zero_gets_a_glorot_gain():
    scale = activation_scale(Activation("odd_test", "z/(1+|z|)-like", sp.tanh(Z) / 2))
    assert scale.method == "linearisation" and scale.variance == sp.factor(4 * GLOROT) and scale.gain == 2


def _variances_through_layers(act: str, input_std: float, networks: int = 4) -> np.ndarray:
    """Var(z⁽ˡ⁾)/Var(x) for l = 1…20 with the generated init_params and forward (256 units per layer),
    averaged over a few independently drawn networks: the expectation is what the derivation keeps
    constant; a single finite-width network fluctuates around it (by tens of percent at 20 layers)."""
    module = load_module(model_source(derivation_for(20, act), title="t", command="t"), f"deep_{act}")
    width, ratios = 256, []
    for seed in range(networks):
        rng = np.random.default_rng(seed)
        params = module.init_params((width,) * 21, rng)
        X = input_std * rng.standard_normal((width, 512))
        cache = module.forward(params, X)
        ratios.append([np.var(cache[f"Z{l}"]) / np.var(X) for l in range(1, 21)])
    return np.mean(ratios, axis=0)


def test_relu_he_keeps_the_variance_through_20_layers():
    ratios = _variances_through_layers("relu", 1.0)
    assert np.all((ratios > 0.5) & (ratios < 2)), ratios


def test_tanh_glorot_keeps_the_variance_through_20_layers_in_its_linear_regime():
    # the Glorot derivation linearises tanh around 0; with inputs of standard deviation 0.1 it holds
    ratios = _variances_through_layers("tanh", 0.1)
    assert np.all((ratios > 0.5) & (ratios < 2)), ratios


def test_sigmoid_keeps_unit_variance_through_20_layers():
    # the exact forward condition holds at σ_z = 1 (not only near 0): standardised inputs, 20 layers
    ratios = _variances_through_layers("sigmoid", 1.0)
    assert np.all((ratios > 0.8) & (ratios < 1.25)), ratios


def test_an_offset_with_a_closed_form_second_moment_is_solved_exactly():
    # g(z) = z + 1: E[g(z)²] = σ_z² + 1 by SymPy's integration, 2 at σ_z = 1, so σ_w² = 1/(2 n_in) exactly,
    # and the map σ_z² ↦ (σ_z² + 1)/2 has its fixed point at 1
    scale = activation_scale(Activation("shifted_test", "z + 1", Z + 1))
    assert scale.method == "offset" and scale.variance == 1 / (2 * N_IN)
    assert [step.rule for step in scale.steps][-3:] == ["offset_moment", "forward_condition_unit", "solve_forward"]
    assert scale.convention == sp.factor(GLOROT)  # the linearisation's rule: slope 1, g(0)² dropped
