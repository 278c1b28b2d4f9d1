"""One generic derivative checker run over every catalog entry (the autograd `check_grads` idea).

For each activation the engine's derivative (with its kink conventions), the form the formulas use
(in terms of the output a, or branch by branch) and SymPy's own derivative are compared with central
differences of g itself; for each loss the engine's ∂ℓ/∂a is compared with central differences of ℓ.
Points come from each entry's own valid domain and stay away from its kinks (located by the engine,
and checked here independently against the known ones). Differences are taken at 40 digits, so the
tolerance can be tight.
"""

import pytest
import sympy as sp

from derive.catalog import ACTIVATIONS, LOSSES, resolve_activation, resolve_loss
from derive.catalog.constants import SELU_ALPHA, SELU_SCALE
from derive.errors import DeriveError
from derive.nonsmooth import breakpoints, kink_convention
from derive.notation import A, Y, Z
from derive.rewrite import activation_derivative

DIGITS = 40
STEP = sp.Float("1e-12", DIGITS)
POINTS = [-7.3, -2.3, -1.1, -0.4, -0.05, 0.05, 0.3, 0.9, 1.7, 4.2]
KINK_MARGIN = 0.02


def value(expr, point):
    return expr.xreplace({k: sp.Float(v, DIGITS) for k, v in point.items()}).evalf(DIGITS)


def central_difference(expr, variable, point):
    up = value(expr, {**point, variable: point[variable] + STEP})
    down = value(expr, {**point, variable: point[variable] - STEP})
    return (up - down) / (2 * STEP)


def close(x, y, tol=1e-15):
    return abs(x - y) <= tol * max(1, abs(x), abs(y))


# every element-wise activation, bound to its default parameters, plus non-default parameters
ELEMENTWISE = [resolve_activation(name) for name, a in ACTIVATIONS.items() if not a.is_vector]
ELEMENTWISE += [resolve_activation(t) for t in ("leaky_relu:0.2", "elu:0.5", "elu:2.5")]


def domain(activation):
    """Sample points of the activation's domain (all reals) away from its kinks."""
    kinks = [float(p) for p in breakpoints(activation.expr)[0]]
    return [p for p in POINTS if all(abs(p - k) > KINK_MARGIN for k in kinks)]


@pytest.mark.parametrize("activation", ELEMENTWISE, ids=lambda a: a.spec_text)
def test_activation_derivative_matches_finite_differences(activation):
    d = activation_derivative(activation)
    for x in domain(activation):
        fd = central_difference(activation.expr, Z, {Z: x})
        assert close(value(d.computed, {Z: x}), fd), (activation.spec_text, x, "SymPy's derivative")
        assert close(value(d.derivative, {Z: x}), fd), (activation.spec_text, x, "with kink conventions")
        used = d.used.xreplace({A: activation.expr})  # the form the formulas and code use, a = g(z)
        assert close(value(used, {Z: x}), fd), (activation.spec_text, x, "form used")


@pytest.mark.parametrize("activation", ELEMENTWISE, ids=lambda a: a.spec_text)
def test_kinks_are_where_the_derivative_jumps(activation):
    """Every reported kink has different one-sided slopes of g itself, and the value used there is
    one of SymPy's branches' values (never a typed number)."""
    d = activation_derivative(activation)
    for kink in d.kinks:
        x = sp.Float(kink.point, DIGITS)
        h = sp.Float("1e-20", DIGITS)
        left = (value(activation.expr, {Z: x}) - value(activation.expr, {Z: x - h})) / h
        right = (value(activation.expr, {Z: x + h}) - value(activation.expr, {Z: x})) / h
        assert close(left, value(kink.left, {}), 1e-10) and close(right, value(kink.right, {}), 1e-10)
        assert not close(left, right, 1e-6)
        assert kink.used == kink_convention(d.computed).xreplace({Z: kink.point})


def test_known_kinks_and_conventions():
    relu = activation_derivative(resolve_activation("relu"))
    assert [(k.point, k.left, k.right, k.used) for k in relu.kinks] == [(0, 0, 1, 0)]
    leaky = activation_derivative(resolve_activation("leaky_relu:0.2"))
    assert [(k.point, k.used) for k in leaky.kinks] == [(0, sp.Rational(1, 5))]  # the z ≤ 0 branch, as PyTorch
    hard = activation_derivative(resolve_activation("hard_tanh"))
    assert [(k.point, k.used) for k in hard.kinks] == [(-1, 0), (1, 0)]
    assert activation_derivative(resolve_activation("elu")).kinks == ()  # α = 1: g′ is continuous at 0
    assert activation_derivative(resolve_activation("elu:0.5")).kinks[0].used == sp.Rational(1, 2)
    softsign = activation_derivative(resolve_activation("softsign"))
    assert softsign.kinks == () and softsign.conventions == ("sign",)


def test_readable_forms_the_engine_must_find():
    """Textbook identities, found and proved by the engine (a wrong engine result fails here)."""
    def found(name):
        return activation_derivative(resolve_activation(name))

    assert sp.expand(found("sigmoid").in_terms_of_output - A * (1 - A)) == 0
    assert sp.expand(found("tanh").in_terms_of_output - (1 - A**2)) == 0
    assert sp.expand(found("softplus").in_terms_of_output - (1 - sp.exp(-A))) == 0
    relu = found("relu")
    assert relu.derivative == sp.Heaviside(Z, 0) and relu.kink_convention
    assert found("identity").derivative == 1
    elu = found("elu:0.5").branch_form
    assert elu == sp.Piecewise((1, Z > 0), (A + sp.Rational(1, 2), True))
    selu = found("selu").branch_form
    assert sp.simplify(selu.args[1][0] - (A + SELU_SCALE * SELU_ALPHA)) == 0
    assert found("gelu").in_terms_of_output is None  # not a function of a: the formulas keep z


def test_named_constants_have_their_published_values():
    assert sp.N(SELU_SCALE, 30) == sp.Float("1.0507009873554804934193349852946", 30)
    assert sp.N(SELU_ALPHA, 30) == sp.Float("1.6732632423543772848170429916717", 30)
    assert sp.N(SELU_SCALE, 60) != sp.N(SELU_SCALE, 30)  # evaluated at the precision asked for


# --------------------------------------------------------------------------------------------------
# losses

LOSS_ENTRIES = [resolve_loss(name) for name in LOSSES] + [resolve_loss("huber:0.3")]
OUTPUTS = {  # valid outputs a for each loss: log-losses need (0, 1), nll takes log-probabilities
    "ce": [0.05, 0.2, 0.7, 0.97], "bce": [0.05, 0.2, 0.7, 0.97], "kl": [0.05, 0.2, 0.7, 0.97],
    "nll": [-4.0, -1.2, -0.3, -0.01],
}
TARGETS = {"real": [-1.3, 0.2, 2.1], "probability": [0.0, 0.25, 1.0], "binary": [0.0, 0.4, 1.0]}


def loss_points(loss):
    outputs = OUTPUTS.get(loss.name, [-2.2, -0.6, 0.1, 0.8, 3.1])
    points = [(a, y) for a in outputs for y in TARGETS[loss.target]]
    if loss.name == "kl":
        points = [(a, y) for a, y in points if y > 0]  # y log y: the limit at y = 0 is checked in the code
    # away from the kinks of |a − y| and of huber's switch |a − y| = δ
    delta = float(loss.values[0]) if loss.values else None
    return [(a, y) for a, y in points
            if abs(a - y) > KINK_MARGIN and (delta is None or abs(abs(a - y) - delta) > KINK_MARGIN)]


@pytest.mark.parametrize("loss", LOSS_ENTRIES, ids=lambda l: l.spec_text)
def test_loss_derivative_matches_finite_differences(loss):
    derivative = kink_convention(sp.diff(loss.expr, A))
    points = loss_points(loss)
    assert len(points) >= 5
    for a, y in points:
        fd = central_difference(loss.expr, A, {A: a, Y: y})
        assert close(value(derivative, {A: a, Y: y}), fd), (loss.spec_text, a, y)


# --------------------------------------------------------------------------------------------------
# names and parameters


@pytest.mark.parametrize("text, spec_text", [
    ("relu", "relu"), ("ReLU", "relu"), ("swish", "silu"), (" leaky_relu:0.01 ", "leaky_relu"),
    ("leaky_relu:0.2", "leaky_relu:0.2"), ("elu:1.0", "elu"), ("elu:2.50", "elu:2.5"), ("hardtanh", "hard_tanh"),
])
def test_names_aliases_and_canonical_parameters(text, spec_text):
    assert resolve_activation(text).spec_text == spec_text


def test_parameter_values_are_exact_rationals():
    assert resolve_activation("leaky_relu:0.1").expr == sp.Piecewise((Z, Z > 0), (Z / 10, True))
    assert resolve_loss("huber:2").values == (2,)


@pytest.mark.parametrize("text, words", [
    ("leaky_relu:1.5", ["alpha", "1.5", "0 ≤ alpha < 1"]),
    ("leaky_relu:-0.1", ["alpha", "0 ≤ alpha < 1"]),
    ("leaky_relu:abc", ["'abc'", "not a number"]),
    ("leaky_relu:nan", ["'nan'", "finite"]),
    ("leaky_relu:1e999", ["too large"]),
    ("leaky_relu:0.1:0.2", ["takes 1 parameter"]),
    ("elu:0", ["0 < alpha"]),
    ("relu:0.1", ["takes no parameters"]),
    ("relux", ["unknown activation 'relux'", "did you mean 'relu'"]),
    ("foo:1", ["unknown activation 'foo:1'"]),
])
def test_bad_parameters_are_one_line_errors(text, words):
    with pytest.raises(DeriveError) as error:
        resolve_activation(text)
    message = str(error.value)
    assert "\n" not in message and message.startswith("invalid value for --act")
    for word in words:
        assert word in message, message


def test_bad_loss_parameter():
    with pytest.raises(DeriveError, match="parameter delta of huber is 0; expected 0 < delta"):
        resolve_loss("huber:0")
