"""How parameters start: the variance of the initial weights, derived per layer.

Under the usual independence assumptions (weights independent, zero-mean and identically
distributed, independent of the layer's input; biases 0) the pre-activations of layer l have
Var(z⁽ˡ⁾) = n_{l−1} Var(W⁽ˡ⁾) E[(a⁽ˡ⁻¹⁾)²] (forward) and the errors have
Var(δ⁽ˡ⁻¹⁾) = n_l Var(W⁽ˡ⁾) E[g′(z⁽ˡ⁻¹⁾)²] Var(δ⁽ˡ⁾) (backward). SymPy carries out both. Keeping
them constant from layer to layer needs E[g(z)²] and E[g′(z)²] for z ~ N(0, s²), and those depend
on the activation g that produced the layer's input:

* **piecewise activations** (relu, selu, …, anything with Max/Heaviside/Piecewise): g(z)² is split
  into its pieces and each term of the form zⁿ e^{cz} is integrated against the Gaussian density by
  SymPy. relu gives s²/2, hence Var(W) = 2/n_in (He et al. 2015). When the result is not
  proportional to s² (selu), the unit-variance fixed point s = 1 is used; for selu E[g(z)²] = 1 there,
  hence Var(W) = 1/n_in (LeCun; Klambauer et al. 2017). Only the forward condition is imposed, as
  He et al. do. If a piece has no closed form, the expectation is computed by numerical quadrature
  at s = 1 and the document says so.
* **smooth activations** (identity, tanh, sigmoid, user-written smooth g): the linearisation
  g(z) ≈ g(0) + g′(0) z gives E[(g − g(0))²] ≈ g′(0)² s² and E[g′²] ≈ g′(0)², the forward and
  backward conditions give 1/(n_in g′(0)²) and 1/(n_out g′(0)²), and Glorot & Bengio's compromise
  (their harmonic mean) gives 2/((n_in + n_out) g′(0)²): Glorot/Xavier, with gain 1/|g′(0)|.
  A numerical quadrature at s = 1 shows how far the linearisation is off.
* **smooth activations with g(0) ≠ 0** (sigmoid, softplus, a user's g with an offset): the
  linearisation keeps only the fluctuation g(z) − g(0) and drops g(0)² from E[g(z)²], so its
  Glorot variance (gain 4 for the sigmoid) lets Var(z) grow layer by layer into the flat part. It is
  derived for comparison only; the variance used solves the exact forward condition
  n_in σ_w² E[g(z)²] = 1 at the unit-variance point s = 1 (E[g²] in closed form if SymPy finds one,
  else by quadrature: 0.2934 for the sigmoid, σ_w² = 3.409/n_in). The errors then lose variance by
  n σ_w² E[g′(z)²] per layer (0.1528 for the sigmoid): no variance keeps both.

The input layer sees the data, assumed standardised (E[x²] = 1): Var(W⁽¹⁾) = 1/n₀.
Each activation is analysed once (cached), and only the activations of the model are analysed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from derive.backprop import Step
from derive.catalog import Activation
from derive.layers import Dense, Node
from derive.model import Model
from derive.notation import LayerRef, Q, Quantity, Z, size
from derive.rewrite import NON_SMOOTH, activation_derivative
from derive.notation import Expectation, Variance, symbol

STD = symbol("sigma_z", r"\sigma_{z}", positive=True)  # standard deviation of the pre-activations (s is a sample)
N_IN = symbol("n_in", r"n_{\mathrm{in}}", integer=True, positive=True)
N_OUT = symbol("n_out", r"n_{\mathrm{out}}", integer=True, positive=True)
VAR_W = symbol("var_w", r"\sigma_{w}^{2}", positive=True)  # Var(W_ij) of one layer
G = sp.Function("g")
G_PRIME = sp.Function("g'")
KNOWN = (("He", (2, "in")), ("LeCun", (1, "in")), ("Glorot", (2, "sum")))  # named closed forms of Var(W)
QUADRATURE_NODES = 60
CONSTANT_DIGITS = 25  # digits to which an expectation must match a simple rational to be named as one


@dataclass(frozen=True)
class ActivationScale:
    """The derived variance of weights that receive the output of this activation."""

    activation: Activation
    method: str  # "integration", "linearisation", "offset" (smooth, g(0) ≠ 0: exact forward) or "quadrature"
    steps: tuple[Step, ...]
    variance: sp.Expr  # Var(W) in N_IN, N_OUT
    known: str | None  # "He", "LeCun", "Glorot" when it equals that closed form
    gain: sp.Expr | None  # for a multiple of Glorot: the gain
    figures: dict  # numbers the document quotes (LaTeX strings)
    convention: sp.Expr | None = None  # method "offset": the linearised (Glorot) variance it replaces


@dataclass(frozen=True)
class LayerScale:
    layer: int
    source: str  # "input", the name of the activation whose output the weight multiplies, or a kind
    variance: sp.Expr  # in the size symbols of the weight's input and output layers
    known: str | None
    param: Quantity | None = None  # the weight: W⁽ˡ⁾ unless another kind's (P⁽ˡ⁾ of a projection)

    @property
    def weight(self) -> Quantity:
        return self.param if self.param is not None else Q("W", self.layer)


@dataclass(frozen=True)
class VarianceMap:
    """Where the variance goes through many layers of one activation with the derived σ_w² and equal
    fan-in and fan-out (n σ_w² = `gain`): the map σ_z² ↦ gain · E[g(z)²], z ~ N(0, σ_z²), and its
    fixed points above 0, found numerically. `kind`: "kept" (every variance is fixed), "settles"
    (it has fixed points) or "decays" (none: the variance falls towards 0)."""

    gain: sp.Expr
    kind: str
    fixed_points: tuple[float, ...]
    at_unit: float  # E[g(z)²] at σ_z = 1, the whole second moment (with g(0)²)
    slopes: tuple[float, ...] = ()  # the map's derivative at each fixed point: below 1, iterates converge to it
    grid: tuple[float, float, int] = (0.0, 0.0, 0)  # the σ_z² the map was evaluated at: from, to, how many


@dataclass
class Initialisation:
    forward: list[Step]
    backward: list[Step]
    conditions: list[Step]
    input_steps: list[Step]
    activations: list[ActivationScale]
    layers: list[LayerScale]
    maps: dict[str, VarianceMap] = field(default_factory=dict)  # per smooth activation (linearised or offset), by name
    path: tuple[tuple[int, float], ...] = ()  # Var(z⁽ˡ⁾) through this chain, standardised inputs
    offsets: tuple[tuple[int, float], ...] = ()  # the part n σ_w² g(0)² of each Var(z⁽ˡ⁾) (l ≥ 2): the dropped constant
    errors: tuple[tuple[int, float], ...] = ()  # Var(δ⁽ˡ⁾) / Var(δ⁽ˡ⁺¹⁾) at the variances of `path`, l = 1 … L−1


# --------------------------------------------------------------------------------------------------
# the general relations


def general_relations() -> tuple[list[Step], list[Step], list[Step]]:
    """Var(z⁽ˡ⁾) and Var(δ⁽ˡ⁻¹⁾) from the layer rule and BP2, and the conditions that keep them."""
    l = LayerRef.symbolic()
    dense = Node(Dense(), l, (Q("a", l.shifted(-1)),))
    # the letters of the lesson: j a unit of the layer of the derived quantity, k one of the layer
    # before, i one of the layer after (forward: z of layer l from layer l-1; backward: δ of layer
    # l-1 from layer l)
    j_out, k = dense.out_index("j"), dense.in_index("k")
    W, a, z = Q("W", l).base, Q("a", l.shifted(-1)).base, Q("z", l).base
    w_jk = W[j_out, k]
    i, j = dense.out_index("i"), dense.in_index("j")  # the layer rule's own letters, renamed
    forward = [Step(z[j_out], dense.entry(i, None).xreplace({i: j_out, j: k}), "layer_rule")]
    spread = sp.Sum(Variance(w_jk * a[k]), (k, k.lower, k.upper))
    forward.append(Step(Variance(z[j_out]), spread, "independent_terms"))
    product = Expectation(w_jk**2) * Expectation(a[k] ** 2) - Expectation(w_jk) ** 2 * Expectation(a[k]) ** 2
    forward.append(Step(Variance(w_jk * a[k]), product, "independent_product"))
    zero_mean = product.xreplace({Expectation(w_jk): 0, Expectation(w_jk**2): VAR_W})
    forward.append(Step(Variance(w_jk * a[k]), zero_mean, "zero_mean_weights"))
    a_sq = Expectation(Q("a", l.shifted(-1)).symbol ** 2)
    identical = sp.Sum(zero_mean.xreplace({Expectation(a[k] ** 2): a_sq}), (k, k.lower, k.upper))
    forward.append(Step(Variance(z[j_out]), identical, "identically_distributed"))
    forward.append(Step(Variance(z[j_out]), identical.doit(), "sum_constant"))
    w_ij = W[i, j]

    below = l.shifted(-1)
    delta_below, delta = Q("delta", below).base, Q("delta", l).base
    z_below = Q("z", below).base
    backprop = G_PRIME(z_below[j]) * sp.Sum(w_ij * delta[i], (i, i.lower, i.upper))
    backward = [Step(delta_below[j], backprop, "bp2")]
    var_delta = Variance(Q("delta", l).symbol)
    spread = Expectation(G_PRIME(z_below[j]) ** 2) * sp.Sum(VAR_W * var_delta, (i, i.lower, i.upper))
    backward.append(Step(Variance(delta_below[j]), spread, "independent_backward"))
    backward.append(Step(Variance(delta_below[j]), spread.doit(), "sum_constant"))

    conditions = [
        Step(N_IN * VAR_W * Expectation(G(Z) ** 2), STD**2, "forward_condition"),
        Step(N_OUT * VAR_W * Expectation(G_PRIME(Z) ** 2), sp.S.One, "backward_condition"),
    ]
    return forward, backward, conditions


# --------------------------------------------------------------------------------------------------
# Gaussian expectations


def _pieces(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Interval]]:
    """expr as (formula, interval) pieces over the real line (Max, Heaviside, Abs … become Piecewise)."""
    folded = sp.piecewise_fold(expr.rewrite(sp.Piecewise))
    if not isinstance(folded, sp.Piecewise):
        return [(folded, sp.Interval(-sp.oo, sp.oo))]
    remaining = sp.Interval(-sp.oo, sp.oo)
    out = []
    for formula, condition in folded.args:
        region = remaining if condition is sp.true else remaining.intersect(condition.as_set())
        remaining = remaining - region
        for part in (region.args if isinstance(region, sp.Union) else (region,)):
            if isinstance(part, sp.Interval) and part.measure != 0:
                out.append((formula, part))
    return out


def _monomials(formula: sp.Expr) -> list[tuple[sp.Expr, int, sp.Expr]] | None:
    """formula as Σ coefficient · zⁿ · e^{cz}, or None when some term has another form."""
    terms = []
    for term in sp.Add.make_args(sp.expand(formula, power_exp=True)):
        if term == 0:
            continue
        coefficient, rest = term.as_independent(Z, as_Add=False)
        power, rate = 0, sp.S.Zero
        for factor, exponent in rest.as_powers_dict().items():
            if factor == Z and exponent.is_Integer and exponent >= 0:
                power += int(exponent)
            elif factor == sp.E or (isinstance(factor, sp.exp) and exponent.is_Integer):
                argument = sp.expand(exponent if factor == sp.E else factor.args[0] * exponent)
                slope = argument.coeff(Z)
                if argument != slope * Z or slope.has(Z):
                    return None
                rate += slope
            elif factor == 1:
                continue
            else:
                return None
        terms.append((coefficient, power, rate))
    return terms


@lru_cache(maxsize=None)
def density() -> sp.Expr:
    """N(z; 0, s²), the density of a pre-activation."""
    return sp.exp(-Z**2 / (2 * STD**2)) / (STD * sp.sqrt(2 * sp.pi))


@lru_cache(maxsize=None)
def known_forms() -> tuple[tuple[str, sp.Expr], ...]:
    """He 2/n_in, LeCun 1/n_in, Glorot 2/(n_in + n_out)."""
    size = {"in": N_IN, "sum": N_IN + N_OUT}
    return tuple((name, sp.Integer(numerator) / size[fan]) for name, (numerator, fan) in KNOWN)


@lru_cache(maxsize=None)
def _monomial_integral(power: int, rate: sp.Expr, lower: sp.Expr, upper: sp.Expr) -> sp.Expr:
    """∫ zⁿ e^{cz} N(z; 0, s²) dz over [lower, upper], by SymPy."""
    return sp.expand(sp.integrate(Z**power * sp.exp(rate * Z) * density(), (Z, lower, upper)))


def gaussian_expectation(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """E[expr(z)] for z ~ N(0, s²) in closed form: (the integrals over the pieces, their value).

    None when a piece is not a sum of zⁿ e^{cz} terms (then no closed form is attempted)."""
    pieces = _pieces(expr)
    integrals, value = [], sp.S.Zero
    for formula, interval in pieces:
        terms = _monomials(formula)
        if terms is None:
            return None
        if formula != 0:
            integrals.append(sp.Integral(formula * density(), (Z, interval.start, interval.end)))
        for coefficient, power, rate in terms:
            value += coefficient * _monomial_integral(power, rate, interval.start, interval.end)
    if value.has(sp.Integral):
        return None
    return sp.Add(*integrals), value


def quadrature(expr: sp.Expr, std: float = 1.0) -> float:
    """E[expr(z)] for z ~ N(0, std²) numerically (Gauss–Hermite, or mpmath for piecewise functions)."""
    if _non_smooth(expr):
        import mpmath

        f = _compiled(expr, "mpmath")
        density = lambda x: mpmath.exp(-x * x / (2 * std * std)) / (std * mpmath.sqrt(2 * mpmath.pi))  # noqa: E731
        return float(mpmath.quad(lambda x: f(x) * density(x), _breakpoints(expr)))
    nodes, weights = _gauss_hermite()
    f = _compiled(expr, "math")  # the math namespace is already loaded; numpy's costs 0.4 s of imports
    values = np.array([_finite(f, std * float(x)) for x in nodes])
    return float(np.dot(weights, values) / np.sqrt(2 * np.pi))


@lru_cache(maxsize=256)
def _compiled(expr: sp.Expr, module: str):
    return sp.lambdify(Z, expr, module)


@lru_cache(maxsize=256)
def _non_smooth(expr: sp.Expr) -> bool:
    return expr.has(*NON_SMOOTH)


@lru_cache(maxsize=1)
def _gauss_hermite() -> tuple[np.ndarray, np.ndarray]:
    """The nodes and weights once (an eigenvalue problem): the variance map asks for many integrals."""
    return np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)


def _breakpoints(expr: sp.Expr) -> list:
    """−∞, the kinks of a piecewise function (where its formula changes), +∞: quadrature per piece."""
    import mpmath

    points = {0.0}
    try:
        for _, interval in _pieces(expr):
            points |= {float(p) for p in (interval.start, interval.end) if p.is_finite}
    except (TypeError, ValueError, NotImplementedError):
        pass
    return [-mpmath.inf, *sorted(points), mpmath.inf]


def _finite(f, x: float) -> float:
    """f(x), or 0 where math overflows far in the tails (the Gaussian weight there is below 1e-300)."""
    try:
        return float(f(x))
    except OverflowError:
        return 0.0


# --------------------------------------------------------------------------------------------------
# per activation


def _solve_for_variance(condition: Step) -> sp.Expr:
    x = sp.Dummy("x", positive=True)
    equation = (condition.lhs - condition.rhs).xreplace({VAR_W: x})
    solved, value = sp.solve_linear(equation, symbols=[x])
    if solved != x:
        raise AssertionError(f"{condition.lhs} = {condition.rhs} is not linear in the weight variance")
    return sp.factor(sp.cancel(value))


def recognise(variance: sp.Expr, first: str = "He") -> tuple[str | None, sp.Expr | None]:
    """Name the variance when it equals He, LeCun or Glorot exactly, or is Glorot times a gain²
    (`first` is tried first: the form the method is expected to give)."""
    for name, form in sorted(known_forms(), key=lambda item: item[0] != first):
        ratio = sp.cancel(variance / form)
        if ratio == 1:
            return name, None
        if name == "Glorot" and ratio.is_number and ratio.is_positive:
            return name, sp.sqrt(ratio)
    return None, None


def _latex_number(value: float) -> str:
    return f"{value:.4g}"


def _linearisation(activation: Activation) -> ActivationScale | None:
    g = activation.expr
    g0 = sp.sympify(g.xreplace({Z: sp.S.Zero}))
    slope = sp.sympify(activation_derivative(activation).computed.xreplace({Z: sp.S.Zero}))  # g′ as the engine derived it
    if not slope.is_number or slope == 0 or not slope.is_finite:
        return None
    gz = G(Z)
    steps = [
        Step(gz, g, "activation"),
        Step(gz, g0 + slope * Z, "linearise"),
        Step(Expectation((gz - G(0)) ** 2), slope**2 * Expectation(Z**2), "linear_second_moment"),
        Step(Expectation((gz - G(0)) ** 2), slope**2 * STD**2, "gaussian_variance"),
        Step(Expectation(G_PRIME(Z) ** 2), slope**2, "linear_derivative"),
    ]
    # with g(0) ≠ 0 (sigmoid) the linearised forward condition is the usual convention, not the exact one
    forward = Step(N_IN * VAR_W * slope**2 * STD**2, STD**2,
                   "forward_with_fluctuation" if g0 == 0 else "forward_with_fluctuation_offset")
    backward = Step(N_OUT * VAR_W * slope**2, sp.S.One, "backward_with_moment")
    v_forward, v_backward = _solve_for_variance(forward), _solve_for_variance(backward)
    harmonic = 2 / (1 / v_forward + 1 / v_backward)
    variance = sp.factor(sp.cancel(harmonic))
    steps += [
        forward, Step(VAR_W, v_forward, "solve_forward"),
        backward, Step(VAR_W, v_backward, "solve_backward"),
        Step(VAR_W, 2 / sp.Add(1 / v_forward, 1 / v_backward, evaluate=False), "harmonic_mean"),
        Step(VAR_W, variance, "algebra_variance"),
    ]
    known, gain = recognise(variance, first="Glorot")
    exact = quadrature((g - g0) ** 2)
    figures = {
        "g0": sp.latex(g0),
        "slope": sp.latex(slope),
        "quadrature": _latex_number(exact),
        "linear": _latex_number(float(slope**2)),
        "nodes": str(QUADRATURE_NODES),
    }
    if g0 == 0:
        return ActivationScale(activation, "linearisation", tuple(steps), variance, known, gain, figures)
    return _with_offset(activation, steps, figures, variance, gain)


def _with_offset(activation: Activation, steps: list[Step], figures: dict, convention: sp.Expr,
                 convention_gain: sp.Expr | None) -> ActivationScale:
    """g(0) ≠ 0 (the sigmoid): the linearisation drops the constant g(0)² from E[g(z)²], and its
    variance (`convention`, Glorot's) lets Var(z) grow layer by layer into the flat part. The exact
    forward condition n_in σ_w² E[g(z)²] = 1 at the unit-variance point σ_z = 1 (standardised inputs
    give layer 1 that variance) is used instead; E[g(z)²] in closed form when SymPy finds one, else by
    quadrature. The errors pay: their variance changes per layer by n σ_w² E[g′(z)²] (as many inputs
    as outputs), and no σ_w² keeps both, since the backward condition asks for 1 / (n_out E[g′(z)²])."""
    g, gz = activation.expr, G(Z)
    found = gaussian_expectation(g**2)
    closed = found is not None and found[1].xreplace({STD: 1}).is_Rational
    moment = found[1].xreplace({STD: 1}) if closed else sp.Float(quadrature(g**2), 15)
    steps = [*steps, Step(Expectation(gz**2), moment, "offset_moment" if closed else "offset_quadrature")]
    forward = Step(N_IN * VAR_W * moment, sp.S.One, "forward_condition_unit")
    variance = _solve_for_variance(forward)
    steps += [forward, Step(VAR_W, variance, "solve_forward")]
    slopes = quadrature(sp.diff(g, Z) ** 2)
    exact_gain = 1 / float(moment)
    figures = figures | {
        "offset": sp.latex(activation.expr.xreplace({Z: sp.S.Zero})), "moment_exact": _latex_number(float(moment)),
        "exact_gain": _latex_number(exact_gain), "slope_moment": _latex_number(slopes),
        "backward_factor": _latex_number(exact_gain * slopes), "backward_gain": _latex_number(1 / slopes),
        "convention": sp.latex(convention),
        "convention_gain": "" if convention_gain is None else sp.latex(convention_gain)}
    known, gain = recognise(variance)
    return ActivationScale(activation, "offset", tuple(steps), variance, known, gain, figures, convention)


def _recognise_constant(value: sp.Expr) -> tuple[sp.Expr, int] | None:
    """A Float expectation that equals a simple rational to the precision of its constants."""
    digits = min([f._prec for f in value.atoms(sp.Float)], default=None)
    decimal_digits = int(digits * 0.30103) if digits else 50
    tolerance = sp.Float(10) ** -(min(decimal_digits, CONSTANT_DIGITS + 5) - 3)
    evaluated = sp.N(value, max(decimal_digits, 15) + 5)
    number = sp.re(evaluated)
    if abs(sp.im(evaluated)) > tolerance:
        return None
    candidate = sp.nsimplify(number, rational=True, tolerance=float(tolerance))
    if candidate.is_Rational and candidate.q <= 100 and abs(number - candidate) < tolerance:
        matched = int(-sp.log(abs(number - candidate), 10).evalf()) if number != candidate else decimal_digits
        return candidate, min(matched, decimal_digits)
    return None


def _integration(activation: Activation) -> ActivationScale:
    g = activation.expr
    gz = G(Z)
    steps = [Step(gz, g, "activation")]
    figures: dict[str, str] = {}
    found = gaussian_expectation(g**2)
    if found is not None:
        integrals, second_moment = found
        steps.append(Step(Expectation(gz**2), sp.Integral(g**2 * density(), (Z, -sp.oo, sp.oo)), "gaussian_expectation"))
        one = isinstance(integrals, sp.Integral)  # g vanishes off one piece: nothing to split, one integral left
        steps.append(Step(Expectation(gz**2), integrals, "one_piece" if one else "split_pieces"))
        steps.append(Step(Expectation(gz**2), second_moment, "integrate_one" if one else "integrate"))
        method = "integration"
    else:
        second_moment = sp.Float(quadrature(g**2), 15)
        steps.append(Step(Expectation(gz**2), second_moment, "quadrature_unit"))
        method = "quadrature"
        forward = Step(N_IN * VAR_W * second_moment, sp.S.One, "forward_condition_unit")
        variance = _solve_for_variance(forward)
        steps += [forward, Step(VAR_W, variance, "solve_forward")]
        known, gain = recognise(variance)
        return ActivationScale(activation, method, tuple(steps), variance, known, gain, figures)
    homogeneous = not sp.cancel(second_moment / STD**2).has(STD)
    if homogeneous:  # E[g²] ∝ s²: the scale holds for every s (relu, leaky relu)
        forward = Step(N_IN * VAR_W * second_moment, STD**2, "forward_with_moment")
        variance = _solve_for_variance(forward)
        steps += [forward, Step(VAR_W, variance, "solve_forward")]
    else:  # the scale depends on s: keep the unit-variance fixed point s = 1 (selu)
        forward = Step(N_IN * VAR_W * Expectation(gz**2), STD**2, "forward_with_moment")
        general = _solve_for_variance(forward)
        steps += [forward, Step(VAR_W, general, "solve_forward")]
        at_unit = second_moment.xreplace({STD: 1})
        named = _recognise_constant(at_unit) if at_unit.has(sp.Float) else None
        if named is not None:
            constant, digits = named
            figures["digits"] = str(digits)
            steps.append(Step(Expectation(gz**2), constant, "recognise_constant"))
        else:
            constant = sp.Float(sp.re(sp.N(at_unit, 20)), 15)
            steps.append(Step(Expectation(gz**2), constant, "unit_variance_value"))
        figures["moment_at_unit"] = sp.latex(constant)
        variance = sp.factor(sp.cancel(general.xreplace({STD: 1, Expectation(gz**2): constant})))
        steps.append(Step(VAR_W, variance, "unit_variance"))
    derivative = activation_derivative(activation).derivative  # g′ with the kink convention, as derived
    backward_moment = gaussian_expectation(derivative**2)
    if backward_moment is not None:
        value = backward_moment[1]
        if not value.has(STD):
            steps.append(Step(Expectation(G_PRIME(Z) ** 2), value, "integrate_derivative"))
            condition = Step(N_OUT * VAR_W * value, sp.S.One, "backward_with_moment")
            steps += [condition, Step(VAR_W, _solve_for_variance(condition), "backward_not_used")]
    known, gain = recognise(variance)
    return ActivationScale(activation, method, tuple(steps), variance, known, gain, figures)


@lru_cache(maxsize=None)
def activation_scale(activation: Activation) -> ActivationScale:
    """The variance of weights fed by `activation`: linearised when g is smooth at 0, else integrated."""
    if activation.is_vector:
        raise ValueError(f"{activation.name} is an output activation; no layer receives its output")
    if not activation.expr.has(*NON_SMOOTH):
        linear = _linearisation(activation)
        if linear is not None:
            return linear
    return _integration(activation)


# --------------------------------------------------------------------------------------------------
# what the derived variances do to the whole second moment (the linearisation drops g(0)²)

MAP_GRID = tuple(10 ** (k / 10) for k in range(-20, 21))  # σ_z² from 0.01 to 100, log-spaced


def second_moment(activation: Activation, variance: float) -> float:
    """E[g(z)²] for z ~ N(0, variance), by quadrature."""
    return quadrature(activation.expr ** 2, float(np.sqrt(variance)))


def _bisect(f, low: float, high: float) -> float:
    for _ in range(40):  # the interval shrinks below 10⁻¹¹ of its size: far beyond the four digits printed
        middle = (low + high) / 2
        if (f(low) > 0) == (f(middle) > 0):
            low = middle
        else:
            high = middle
    return (low + high) / 2


def variance_map(activation: Activation, scale: ActivationScale) -> VarianceMap:
    """The map σ_z² ↦ n σ_w² E[g(z)²] of a layer with n_in = n_out = n, and its fixed points."""
    gain = sp.cancel(scale.variance.xreplace({N_OUT: N_IN}) * N_IN)
    factor = float(gain)

    def excess(v: float) -> float:
        return factor * second_moment(activation, v) - v

    values = [excess(v) for v in MAP_GRID]
    at_unit = second_moment(activation, 1.0)
    grid = (MAP_GRID[0], MAP_GRID[-1], len(MAP_GRID))
    if all(abs(e) <= 1e-9 * max(1.0, v) for e, v in zip(values, MAP_GRID)):
        return VarianceMap(gain, "kept", (), at_unit, grid=grid)
    points = tuple(_bisect(excess, MAP_GRID[k], MAP_GRID[k + 1]) for k in range(len(MAP_GRID) - 1)
                   if (values[k] > 0) != (values[k + 1] > 0))
    # the slope of the map at a fixed point decides whether the variance settles there (|slope| < 1)
    # or is driven away from it: a central difference, 10⁻⁴ of the point on either side
    slopes = tuple((excess(v * (1 + 1e-4)) - excess(v * (1 - 1e-4))) / (2e-4 * v) + 1 for v in points)
    if points:
        kind = "settles" if all(abs(k) < 1 for k in slopes) else "repels"
    else:
        kind = "decays" if values[0] < 0 else "grows"
    return VarianceMap(gain, kind, points, at_unit, slopes, grid)


def _layer_variances(model: Model, layers: list[LayerScale]) -> dict[int, float]:
    sizes = {size(LayerRef(l)): n for l, n in enumerate(model.sizes)}
    return {scale.layer: float(scale.variance.xreplace(sizes)) for scale in layers if scale.weight.kind == "W"}


def variance_path(model: Model, layers: list[LayerScale]) -> tuple[tuple[int, float], ...]:
    """Var(z⁽ˡ⁾) for l = 1 … L of a chain with the derived variances at this network's sizes and
    standardised inputs: Var(z⁽¹⁾) = n₀ σ_w² · 1, then Var(z⁽ˡ⁺¹⁾) = n_l σ_w² E[g(z⁽ˡ⁾)²]."""
    if not model.is_chain:
        return ()
    weights = _layer_variances(model, layers)
    path, previous = [], None
    for l in range(1, model.depth + 1):
        if previous is None:
            variance = model.sizes[0] * weights[l]
        else:
            variance = model.sizes[l - 1] * weights[l] * second_moment(model.activations[l - 2], previous)
        path.append((l, variance))
        previous = variance
    return tuple(path)


def offset_path(model: Model, layers: list[LayerScale]) -> tuple[tuple[int, float], ...]:
    """The part of each Var(z⁽ˡ⁾), l ≥ 2, that the constant g(0)² of the activation before it contributes,
    n_{l−1} σ_w² g(0)² (empty when every g(0) is 0): what the exact forward condition counts and the
    linearisation, which keeps only the fluctuation g(z) − g(0), would leave out."""
    if not model.is_chain:
        return ()
    weights = _layer_variances(model, layers)
    offsets = tuple((l, model.sizes[l - 1] * weights[l] * float(model.activations[l - 2].expr.xreplace({Z: 0})) ** 2)
                    for l in range(2, model.depth + 1))
    return offsets if any(v for _, v in offsets) else ()


def error_path(model: Model, layers: list[LayerScale], path: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
    """Var(δ⁽ˡ⁾) / Var(δ⁽ˡ⁺¹⁾) = n_{l+1} σ_w⁽ˡ⁺¹⁾² E[g′(z⁽ˡ⁾)²] for l = 1 … L−1, with E[g′²] by quadrature
    at the variance Var(z⁽ˡ⁾) of `path`: what the backward relation gives this network, where the
    backward condition held only for n_in = n_out, and for a smooth g only as σ_z → 0."""
    if not model.is_chain or not path:
        return ()
    weights, variance = _layer_variances(model, layers), dict(path)
    out = []
    for l in range(1, model.depth):
        slope = activation_derivative(model.activations[l - 1]).derivative
        out.append((l, model.sizes[l + 1] * weights[l + 1] * quadrature(slope**2, float(np.sqrt(variance[l])))))
    return tuple(out)


def input_steps() -> tuple[list[Step], sp.Expr]:
    """The first layer sees standardised data, E[x²] = 1, and keeps unit variance: Var(W⁽¹⁾) = 1/n₀."""
    x = Q("a", 0).symbol
    condition = Step(N_IN * VAR_W * Expectation(x**2), sp.S.One, "input_condition")
    standardised = Step(N_IN * VAR_W, sp.S.One, "standardised_input")
    variance = _solve_for_variance(standardised)
    return [condition, standardised, Step(VAR_W, variance, "solve_forward")], variance


def _for_weight(variance: sp.Expr, node: Node, read: Quantity) -> sp.Expr:
    fans = getattr(node.kind, "fans", None)  # a kernel: fan-in C·kh·kw, fan-out F·kh·kw (as PyTorch)
    if fans is not None:
        fan_in, fan_out = fans(node)
        return variance.xreplace({N_IN: fan_in, N_OUT: fan_out})
    return variance.xreplace({N_IN: size(read.layer), N_OUT: size(node.layer)})


def derive_initialisation(model: Model) -> Initialisation:
    """The general relations, then a variance for every weight of the network from what it
    multiplies: the standardised input, the output of an activation (its own derived scale), or any
    other quantity (a residual sum, a linear layer), which is treated as the identity's output."""
    forward, backward, conditions = general_relations()
    steps, input_variance = input_steps()
    network = model.network
    scales: dict[str, ActivationScale] = {}
    layers = []
    for node in network.layers:
        for param, read in node.kind.weights(node).items():
            if read == Q("a", 0):
                layers.append(LayerScale(node.layer.number, "input", _for_weight(input_variance, node, read),
                                         recognise(input_variance)[0], param))
                continue
            producer = network.producers[read]
            activation = getattr(producer.kind, "activation", None)
            source = activation.name if activation is not None and not activation.is_vector else producer.kind.name
            if activation is None or activation.is_vector:
                activation = activation_entry_identity()
            if activation.name not in scales and source == activation.name:
                scales[activation.name] = activation_scale(activation)
            scale = scales.get(activation.name) or activation_scale(activation)
            layers.append(LayerScale(node.layer.number, source, _for_weight(scale.variance, node, read), scale.known,
                                     param))
    maps = {name: variance_map(scale.activation, scale) for name, scale in scales.items()
            if scale.method in ("linearisation", "offset")}
    path = variance_path(model, layers)
    return Initialisation(forward, backward, conditions, steps, list(scales.values()), layers, maps, path,
                          offset_path(model, layers), error_path(model, layers, path))


def activation_entry_identity() -> Activation:
    from derive.catalog import resolve_activation

    return resolve_activation("identity")


__all__ = [
    "ActivationScale",
    "LayerScale",
    "Initialisation",
    "activation_scale",
    "derive_initialisation",
    "gaussian_expectation",
    "quadrature",
    "recognise",
    "N_IN",
    "N_OUT",
    "VAR_W",
    "STD",
]
