"""How parameters move: the update rule and the optimizers, derived with SymPy.

Three kinds of work, each recorded as `Step`s (an equation and the rule that justifies it):

* **The update rule.** Gradient descent is the minimiser of the first-order Taylor model of the cost
  plus the proximal term ‖θ′ − θ‖²/(2η): SymPy differentiates that model entry by entry (Kronecker
  deltas collapse as in the backward pass), solves the stationarity condition and checks the second
  derivative. Replacing the gradient by the minibatch gradient gives SGD, and the minibatch gradient
  is unbiased because the expectation of a mean of uniformly drawn samples is the mean gradient.
* **The chosen optimizer's equations**, from the catalog (torch.optim's definitions), written for
  step t with the variant the user chose.
* **What SymPy derives about the optimizer**: recurrences solved with `rsolve` (how much weight a
  past gradient keeps in a momentum buffer or a moving average), geometric series summed
  symbolically (Adam's bias correction from E[mₜ] = (1 − β₁ᵗ) E[g]), steady states and first steps.

Only the derivations of the chosen optimizer run, so the default job stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from derive.backprop import Step
from derive.catalog.optimizers import (
    ALPHA,
    BETA1,
    BETA2,
    BUFFER,
    DAMPENING,
    EPS,
    EXP_AVG,
    EXP_AVG_SQ,
    INITIAL_ACCUMULATOR,
    LR_DECAY,
    M_HAT,
    MOMENTUM,
    SQUARE_AVG,
    SUM,
    V_HAT,
    WEIGHT_DECAY,
    Optimizer,
    optimizer_of,
)
from derive.indexing import collapse
from derive.notation import BATCH_COST, BATCH_SIZE, LEARNING_RATE
from derive.rewrite import normalise_signs, tidy
from derive.spec import OptimizerChoice
from derive.notation import (
    COST_ANY,
    COST_L2,
    FULL_GRAD,
    GRAD,
    GRAD_ENTRY,
    GRAD_SAMPLE,
    GRADIENT,
    MODEL,
    PAST,
    STEP,
    THETA,
    THETA_NEXT,
    Expectation,
    symbol,
    timed,
)

t, k, eta = STEP, PAST, LEARNING_RATE
N_STEPS = sp.Symbol("n", integer=True, nonnegative=True)  # steps since a gradient entered a buffer
ENTRIES = sp.Symbol("N", integer=True, positive=True)  # entries of a parameter array
DIRECTION = symbol("direction", "d", real=True)  # the direction Nesterov's step takes
DRAWN = symbol("drawn", r"\xi", integer=True)  # the training sample a draw picks
STEP_SIZE = symbol("step_size", r"\lvert \Delta\theta \rvert", nonnegative=True)  # size of one entry's step


@dataclass
class Fact:
    """One derivation about the optimizer: its steps and figures for this run's hyper-parameters."""

    key: str
    steps: list[Step]
    figures: dict[str, str | sp.Expr] = field(default_factory=dict)  # name → LaTeX of a value, or a formula


@dataclass
class Training:
    optimizer: Optimizer
    choice: OptimizerChoice
    values: dict[str, object]  # hyper-parameter name → value used
    update_steps: list[Step]  # gradient descent from the proximal model
    minibatch_steps: list[Step]  # SGD with the minibatch gradient, and why it is unbiased
    equations: list[Step]  # one step t of the chosen optimizer (its variant), as defined by torch.optim
    equations_with_values: list[Step] | None  # the same with this run's zero hyper-parameters put in
    facts: list[Fact]


# --------------------------------------------------------------------------------------------------
# the update rule


def _entry_index(name: str) -> sp.Idx:
    return sp.Idx(sp.Symbol(name, integer=True), (0, ENTRIES - 1))


def diff_under_sums(expr: sp.Expr, target: sp.Basic) -> sp.Expr:
    """∂expr/∂target with each Σ differentiated under the sum sign (its limits do not involve the
    target): the same result as sympy.diff, which checks the limits at length, in a tenth of the time."""
    total = sp.S.Zero
    for term in sp.Add.make_args(expr):
        factor, rest = term.as_independent(sp.Sum, as_Add=False)
        if isinstance(rest, sp.Sum) and not factor.has(target) and not any(
            bound.has(target) for limit in rest.limits for bound in limit[1:]
        ):
            total += factor * sp.Sum(sp.diff(rest.function, target), *rest.limits)
        else:
            total += sp.diff(term, target)
    return total


def proximal_update() -> list[Step]:
    """θ′ = argmin C(θ) + ∇C(θ)ᵀ(θ′ − θ) + ‖θ′ − θ‖²/(2η), solved entry by entry."""
    i, q = _entry_index("p"), _entry_index("q")  # p, q: entries of a parameter array (i, j, k are units)
    new, old = timed(THETA_NEXT), timed(THETA)
    slope = timed(GRAD_ENTRY)[i]  # ∂C/∂θᵢ at the current point: a number for this step
    model = COST_ANY + sp.Sum(slope * (new[i] - old[i]), (i, i.lower, i.upper)) + sp.Sum(
        (new[i] - old[i]) ** 2, (i, i.lower, i.upper)
    ) / (2 * eta)
    steps = [Step(MODEL, model, "proximal_model")]
    target = new[q]
    raw = sp.factor_terms(diff_under_sums(model, target))  # constants out of the sums: Σ 2x/(2η) → Σ x/η
    lhs = sp.Derivative(MODEL, target)
    steps.append(Step(lhs, raw, "differentiate_model"))
    stationary = collapse(raw)
    steps.append(Step(lhs, stationary, "kronecker_collapse"))
    unknown = sp.Dummy("x")
    solved = sp.solve_linear(stationary.xreplace({target: unknown}), symbols=[unknown])
    if solved[0] != unknown:
        raise AssertionError(f"the stationarity condition {stationary} is not linear in {target}")
    steps.append(Step(target, solved[1].xreplace({unknown: target}), "stationarity"))
    curvature = collapse(diff_under_sums(stationary, target))
    if not (curvature.is_positive):
        raise AssertionError(f"the proximal model's curvature {curvature} is not positive")
    steps.append(Step(sp.Derivative(MODEL, target, 2), curvature, "convexity"))
    steps.append(Step(THETA_NEXT, THETA - eta * FULL_GRAD, "vector_form"))
    return steps


def minibatch_update() -> list[Step]:
    """SGD: the derived step with the minibatch gradient, whose expectation is the full gradient."""
    s = sp.Idx(sp.Symbol("s", integer=True), (1, BATCH_SIZE))
    drawn = sp.IndexedBase(DRAWN)  # ξ_s: which training sample the s-th draw is (i is a unit index)
    per_sample = timed(GRAD_SAMPLE)[drawn[s]]
    mean = sp.Sum(Expectation(per_sample), (s, 1, BATCH_SIZE)) / BATCH_SIZE
    steps = [
        Step(THETA_NEXT, THETA - eta * GRAD, "minibatch_gradient"),
        Step(Expectation(GRAD), mean, "expectation_linear"),
    ]
    uniform = mean.xreplace({Expectation(per_sample): FULL_GRAD})
    steps.append(Step(Expectation(GRAD), uniform, "uniform_sample"))
    steps.append(Step(Expectation(GRAD), uniform.doit(), "sum_constant"))
    return steps


# --------------------------------------------------------------------------------------------------
# the optimizer's equations for step t


def timed_equations(opt: Optimizer, substitutions: dict) -> list[Step]:
    """The catalog's assignments as equations of step t: state on the right is from step t − 1
    unless already updated in this step; an assignment overwritten later in the step is inlined."""
    current = {THETA: timed(THETA)[t - 1], GRAD: timed(GRAD)[t]}
    for state in opt.state:
        current[state.symbol] = timed(state.symbol)[t - 1]
    last = {a.target: n for n, a in enumerate(opt.equations)}
    steps = []
    for n, assign in enumerate(opt.equations):
        value = assign.value.xreplace(substitutions).xreplace(current)
        if assign.target in current and value == current[assign.target]:
            continue  # unchanged in this variant (e.g. the AMSGrad maximum without amsgrad)
        if last[assign.target] != n:
            current[assign.target] = value
            continue
        lhs = timed(assign.target)[t]
        steps.append(Step(lhs, value, "optimizer_definition"))
        current[assign.target] = lhs
    return steps


def _flags(opt: Optimizer, values: dict) -> dict:
    return {h.symbols[0]: bool(values[h.name]) for h in opt.hypers if h.kind == "flag"}


def _zeros(opt: Optimizer, values: dict) -> dict:
    out = {}
    for h in opt.hypers:
        if h.kind == "real" and values[h.name] == 0:
            out[h.symbols[0]] = sp.S.Zero
    return out


# --------------------------------------------------------------------------------------------------
# what SymPy derives about the optimizers


def _number(expr: sp.Expr) -> str:
    """A value for the documents (LaTeX): integers exactly, others to 6 significant digits."""
    value = float(expr)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.6g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \times {power}"


def _sum_doit(expr: sp.Expr) -> sp.Expr:
    """Evaluate every Σ over k with its k-independent factors taken out first (SymPy sums the bare
    geometric term in milliseconds, but tries telescoping solvers, for seconds, with factors inside)."""

    def rule(e):
        if not isinstance(e, sp.Sum):
            return e
        (index, lower, upper), = e.limits
        constant, varying = e.function.as_independent(index, as_Add=False)
        return constant * sp.Sum(varying, (index, lower, upper)).doit()

    return expr.replace(lambda e: isinstance(e, sp.Sum), rule)


def signs(expr: sp.Expr) -> sp.Expr:
    """(τ − 1)/(μ − 1) → (1 − τ)/(1 − μ) and −a(β − 1) → a(1 − β): the forms textbooks print."""
    numerator, denominator = sp.fraction(sp.factor(expr))
    flips = 0
    factors = []
    for factor in sp.Mul.make_args(denominator):
        if factor.is_Add and _leading_negative(factor):
            factor, flips = -factor, flips + 1
        factors.append(factor)
    numerator = numerator * (-1) ** flips
    numerator = normalise_signs(numerator)
    if numerator.is_Add and _leading_negative(numerator):
        return -sp.Mul(-numerator, *[1 / f for f in factors])
    return sp.Mul(numerator, *[1 / f for f in factors])


def _leading_negative(expr: sp.Add) -> bool:
    """β − 1 reads better as −(1 − β): true when the constant term is negative and the rest is not."""
    constant, rest = expr.as_coeff_Add()
    return constant.is_negative and not rest.could_extract_minus_sign()


def _geometric(expr: sp.Expr, ratio: sp.Symbol, offset: int = 0) -> sp.Expr:
    """Keep the branch of SymPy's geometric-series Piecewise for ratio ≠ 1 (ratios lie in [0, 1)),
    and collect it in the power ratio^(t − offset): (1 − β₁ᵗ), or 1 − τ − μᵗ⁻¹(μ − τ) for a buffer
    whose first gradient enters whole."""

    def rule(e):
        if isinstance(e, sp.Piecewise):
            for branch, condition in e.args[:-1]:
                if not (isinstance(condition, sp.Eq) and condition.free_symbols <= {ratio}):
                    raise ValueError(f"unexpected condition {condition} in a geometric series")
            return e.args[-1][0]
        return e

    chosen = expr.replace(lambda e: isinstance(e, sp.Piecewise), rule)
    power = sp.Dummy("P", positive=True)

    def place(e):  # ratio^(c₀ + c₁t) = (P · ratio^offset)^c₁ · ratio^c₀ with P = ratio^(t − offset)
        c1 = sp.expand(e.exp).coeff(t)
        c0 = sp.expand(e.exp - c1 * t)
        if not c1.is_Integer or c0.has(t):
            return e
        return (power * ratio**offset) ** c1 * ratio**c0

    placed = chosen.replace(lambda e: e.is_Pow and e.base == ratio and e.exp.has(t), place)
    if placed.has(t):
        raise ValueError(f"could not collect {chosen} in powers of {ratio}^t")
    coefficient, polynomial = sp.factor(sp.cancel(placed)).as_independent(power, as_Add=False)
    polynomial = sp.expand(polynomial)
    slope = sp.factor(polynomial.coeff(power))
    rest = sp.factor(polynomial - slope * power)
    numerator, denominator = sp.fraction(coefficient)
    if denominator.is_Add and _leading_negative(denominator):  # (… )/(μ − 1) → (−…)/(1 − μ)
        denominator, rest, slope = -denominator, sp.factor(-rest), sp.factor(-slope)
    collected = normalise_signs(numerator * (rest + slope * power)) / denominator
    return collected.xreplace({power: sp.Pow(ratio, t - offset)})


def _vanish_powers(expr: sp.Expr, ratio: sp.Symbol) -> sp.Expr:
    """ratio^(… t …) → 0: the limit t → ∞ for a ratio in [0, 1)."""
    return signs(tidy(expr.replace(lambda e: e.is_Pow and e.base == ratio and e.exp.has(t), lambda e: sp.S.Zero)))


def _weight_steps(decay: sp.Expr, first: sp.Expr) -> tuple[list[Step], sp.Expr]:
    """The weight wₙ a gradient keeps n steps after it entered: wₙ = decay · wₙ₋₁, w₀ = first."""
    w = sp.Function("w")
    n = N_STEPS
    solution = _solve_weight(decay, first)
    return [Step(w(n), decay * w(n - 1), "weight_recurrence"), Step(w(n), solution, "rsolve")], solution


@lru_cache(maxsize=None)
def _solve_weight(decay: sp.Expr, first: sp.Expr) -> sp.Expr:
    w = sp.Function("w")
    n = N_STEPS
    solution = sp.rsolve(w(n) - decay * w(n - 1), w(n), {w(0): first})
    if solution is None:
        raise AssertionError("rsolve found no solution for the weight recurrence")
    return signs(sp.factor(solution))


def _moving_average(state: sp.Symbol, decay: sp.Symbol, source: Callable[[sp.Expr], sp.Expr]) -> tuple[list[Step], sp.Expr]:
    """xₜ = decay xₜ₋₁ + (1 − decay) sourceₜ with x₀ = 0, unrolled into a weighted sum of the past."""
    x = timed(state)
    steps = [Step(x[t], decay * x[t - 1] + (1 - decay) * source(t), "recurrence"), Step(x[0], sp.S.Zero, "initial_zero")]
    weight_steps, weight = _weight_steps(decay, 1 - decay)
    steps += weight_steps
    unrolled = sp.Sum(weight.xreplace({N_STEPS: t - k}) * source(k), (k, 1, t))
    steps.append(Step(x[t], unrolled, "unrolled"))
    return steps, unrolled


def _expectation_of_average(state: sp.Symbol, decay: sp.Symbol, unrolled: sp.Expr, source: Callable) -> list[Step]:
    """E[xₜ] = (1 − decayᵗ) E[source]: the moving average is biased towards its initial 0."""
    x = timed(state)
    summand, limits = unrolled.function, unrolled.limits[0]
    weight = summand / source(k)
    linear = sp.Sum(weight * Expectation(source(k)), limits)
    steps = [Step(Expectation(x[t]), linear, "expectation_linear")]
    stationary = Expectation(_undated(source))
    same = sp.Sum(weight * stationary, limits)
    steps.append(Step(Expectation(x[t]), same, "stationary_gradient"))
    summed = _geometric(_sum_doit(same), decay)
    steps.append(Step(Expectation(x[t]), summed, "geometric_series"))
    corrected = sp.cancel(summed / (1 - decay**t))
    hat = {EXP_AVG: M_HAT, EXP_AVG_SQ: V_HAT}.get(state)
    if hat is not None:
        steps.append(Step(Expectation(timed(hat)[t]), corrected, "bias_corrected"))
    return steps


def _undated(source: Callable) -> sp.Expr:
    """The source of a moving average without its step index: g, or g²."""
    probe = source(k)
    return probe.xreplace({timed(GRADIENT)[k]: GRADIENT})


def _g(step: sp.Expr) -> sp.Expr:
    return timed(GRADIENT)[step]


def _g2(step: sp.Expr) -> sp.Expr:
    return timed(GRADIENT)[step] ** 2


def fact_weight_decay(values: dict) -> Fact:
    """torch's weight_decay adds λθ to the gradient: the gradient of the penalty (λ/2)‖θ‖²."""
    i, q = _entry_index("p"), _entry_index("q")  # p, q: entries of a parameter array (i, j, k are units)
    theta = timed(THETA)
    penalty = WEIGHT_DECAY / 2 * sp.Sum(theta[i] ** 2, (i, i.lower, i.upper))
    lhs = sp.Derivative(COST_L2, theta[q])
    raw = sp.Derivative(BATCH_COST, theta[q]) + sp.factor_terms(diff_under_sums(penalty, theta[q]))
    steps = [
        Step(COST_L2, BATCH_COST + penalty, "l2_penalty"),
        Step(lhs, raw, "differentiate_penalty"),
        Step(lhs, collapse(raw), "kronecker_collapse"),
        Step(GRADIENT, GRAD + WEIGHT_DECAY * THETA, "weight_decay_gradient"),
    ]
    return Fact("weight_decay", steps, {"lambda": _number(sp.Float(values["weight_decay"]))})


def fact_decoupled_weight_decay(values: dict) -> Fact:
    """AdamW shrinks θ by the factor 1 − ηλ each step, outside the adaptive normalisation."""
    f = sp.Function(r"\theta")
    theta0 = timed(THETA)[0]
    factor = 1 - eta * WEIGHT_DECAY
    direction = timed(M_HAT)[t] / (sp.sqrt(timed(V_HAT)[t]) + EPS)
    steps = [Step(timed(THETA)[t], factor * timed(THETA)[t - 1] - eta * direction, "decoupled_decay")]
    steps.append(Step(f(t), factor * f(t - 1), "decay_without_gradient"))
    solution = sp.rsolve(f(t) - factor * f(t - 1), f(t), {f(0): theta0})
    steps.append(Step(timed(THETA)[t], solution, "rsolve"))
    value = factor.xreplace({eta: sp.Float(values["lr"]), WEIGHT_DECAY: sp.Float(values["weight_decay"])})
    return Fact("decoupled_weight_decay", steps, {"factor": _number(value)})


def fact_momentum_sum(values: dict, dampening: bool = True) -> Fact:
    """The momentum buffer as a weighted sum of past gradients, and its steady state."""
    b = timed(BUFFER)
    tau = DAMPENING if dampening else sp.S.Zero
    steps = [
        Step(b[1], _g(1), "first_buffer"),
        Step(b[t], MOMENTUM * b[t - 1] + (1 - tau) * _g(t), "recurrence"),
    ]
    weight_steps, weight = _weight_steps(MOMENTUM, sp.Symbol("w_0"))
    steps += weight_steps
    first = weight.xreplace({sp.Symbol("w_0"): 1, N_STEPS: t - 1})
    later = weight.xreplace({sp.Symbol("w_0"): 1 - tau, N_STEPS: t - k})
    unrolled = first * _g(1) + sp.Sum(later * _g(k), (k, 2, t))
    steps.append(Step(b[t], unrolled, "unrolled_momentum"))
    constant = unrolled.xreplace({_g(1): GRADIENT}).replace(lambda e: e == _g(k), lambda e: GRADIENT)
    constant = constant.xreplace({_g(k): GRADIENT})
    steps.append(Step(b[t], constant, "constant_gradient"))
    summed = _geometric(_sum_doit(constant), MOMENTUM, offset=1 if dampening else 0)
    steps.append(Step(b[t], summed, "geometric_series"))
    steady = _vanish_powers(summed, MOMENTUM)
    steps.append(Step(b[sp.oo], steady, "steady_state"))
    factor = signs(sp.cancel(steady / GRADIENT))
    numbers = {MOMENTUM: sp.Float(values["momentum"]), DAMPENING: sp.Float(values.get("dampening", 0.0))}
    return Fact("momentum_sum", steps, {"factor": factor, "value": _number(factor.xreplace(numbers))})


def fact_nesterov_direction(values: dict) -> Fact:
    """torch's Nesterov step uses gₜ + μ bₜ; for a constant gradient it tends to g/(1 − μ)."""
    b, d = timed(BUFFER), timed(DIRECTION)
    steady_buffer = GRADIENT / (1 - MOMENTUM)
    steps = [
        Step(d[t], _g(t) + MOMENTUM * b[t], "nesterov_direction"),
        Step(d[sp.oo], GRADIENT + MOMENTUM * steady_buffer, "steady_buffer"),
    ]
    simplified = signs(sp.cancel(GRADIENT + MOMENTUM * steady_buffer))
    steps.append(Step(d[sp.oo], simplified, "algebra"))
    factor = signs(sp.cancel(simplified / GRADIENT))
    value = factor.xreplace({MOMENTUM: sp.Float(values["momentum"])})
    return Fact("nesterov_direction", steps, {"factor": factor, "value": _number(value)})


def fact_adagrad_sum(values: dict) -> Fact:
    """Adagrad's sum grows without bound, so the step shrinks like η/√t for a constant gradient."""
    G = timed(SUM)
    f = sp.Function("G")
    steps = [Step(G[t], G[t - 1] + _g2(t), "recurrence"), Step(G[0], INITIAL_ACCUMULATOR, "initial_accumulator")]
    weight_steps, weight = _weight_steps(sp.S.One, sp.S.One)
    steps += weight_steps
    steps.append(Step(G[t], INITIAL_ACCUMULATOR + sp.Sum(weight * _g2(k), (k, 1, t)), "unrolled"))
    positive = sp.Symbol("g", positive=True)
    solution = sp.rsolve(f(t) - f(t - 1) - positive**2, f(t), {f(0): INITIAL_ACCUMULATOR})
    steps.append(Step(G[t], solution.xreplace({positive: GRADIENT}), "constant_gradient_rsolve"))
    rate = eta / (1 + (t - 1) * LR_DECAY)
    step = rate * positive / (sp.sqrt(solution) + EPS)
    size = timed(STEP_SIZE)
    steps.append(Step(size[t], step.xreplace({positive: GRADIENT}), "effective_step"))
    limit = step.xreplace({INITIAL_ACCUMULATOR: 0, EPS: 0})
    steps.append(Step(size[t], limit, "effective_step_limit"))
    at_100 = limit.xreplace({t: 100, eta: sp.Float(values["lr"]), LR_DECAY: sp.Float(values["lr_decay"])})
    return Fact("adagrad_sum", steps, {"at_100": _number(at_100)})


def fact_rmsprop_average(values: dict) -> Fact:
    """RMSprop's vₜ is a moving average started at 0 and never corrected: the first steps are large."""
    steps, unrolled = _moving_average(SQUARE_AVG, ALPHA, _g2)
    v = timed(SQUARE_AVG)
    constant = unrolled.xreplace({_g2(k): GRADIENT**2})
    steps.append(Step(v[t], constant, "constant_gradient"))
    summed = _geometric(_sum_doit(constant), ALPHA)
    steps.append(Step(v[t], summed, "geometric_series"))
    positive = sp.Symbol("g", positive=True)
    first = summed.xreplace({t: 1, GRADIENT: positive})
    step = sp.powsimp(sp.cancel(LEARNING_RATE * positive / sp.sqrt(first)))
    steps.append(Step(timed(STEP_SIZE)[1], step, "first_step_size"))
    value = sp.cancel(step / LEARNING_RATE).xreplace({ALPHA: sp.Float(values["alpha"])})
    return Fact("rmsprop_average", steps, {"factor": _number(value)})


def fact_adam_bias_correction(values: dict) -> Fact:
    """E[mₜ] = (1 − β₁ᵗ) E[g] by the geometric series, so m̂ₜ = mₜ/(1 − β₁ᵗ) is unbiased; same for v."""
    steps, unrolled = _moving_average(EXP_AVG, BETA1, _g)
    steps += _expectation_of_average(EXP_AVG, BETA1, unrolled, _g)
    second, unrolled_sq = _moving_average(EXP_AVG_SQ, BETA2, _g2)
    steps += [s for s in second if s.rule in ("unrolled",)]
    steps += _expectation_of_average(EXP_AVG_SQ, BETA2, unrolled_sq, _g2)
    beta1, beta2 = values["betas"]
    return Fact(
        "adam_bias_correction",
        steps,
        {"first": _number(1 - sp.Float(beta1)), "second": _number(1 - sp.Float(beta2))},
    )


def fact_adam_first_step(values: dict) -> Fact:
    """At t = 1 the bias-corrected moments are g₁ and g₁², so every entry moves by about η."""
    m, v, theta = timed(EXP_AVG), timed(EXP_AVG_SQ), timed(THETA)
    m1, v1 = (1 - BETA1) * _g(1), (1 - BETA2) * _g2(1)
    m_hat, v_hat = sp.cancel(m1 / (1 - BETA1)), sp.cancel(v1 / (1 - BETA2))
    real = sp.Symbol("g_1", real=True)
    moved = (theta[0] - eta * m_hat / (sp.sqrt(v_hat) + EPS))
    steps = [
        Step(m[1], m1, "first_moments"),
        Step(v[1], v1, "first_moments"),
        Step(timed(M_HAT)[1], m_hat, "bias_corrected_first"),
        Step(timed(V_HAT)[1], v_hat, "bias_corrected_first"),
        Step(theta[1], moved, "substitute_first_moments"),
        Step(theta[1], moved.xreplace({_g(1): real}).xreplace({real: _g(1)}), "real_square_root"),
    ]
    return Fact("adam_first_step", steps, {"lr": _number(sp.Float(values["lr"]))})


FACTS: dict[str, Callable[[dict], Fact]] = {
    "weight_decay": fact_weight_decay,
    "decoupled_weight_decay": fact_decoupled_weight_decay,
    "momentum_sum": lambda values: fact_momentum_sum(values, dampening="dampening" in values),
    "nesterov_direction": fact_nesterov_direction,
    "adagrad_sum": fact_adagrad_sum,
    "rmsprop_average": fact_rmsprop_average,
    "adam_bias_correction": fact_adam_bias_correction,
    "adam_first_step": fact_adam_first_step,
}


def derive_training(choice: OptimizerChoice) -> Training:
    """The update rule, the chosen optimizer's equations and what SymPy derives about them."""
    opt = optimizer_of(choice)
    values = opt.values(choice)
    flags = _flags(opt, values)
    equations = timed_equations(opt, flags)
    with_values = timed_equations(opt, {**flags, **_zeros(opt, values)})
    return Training(
        optimizer=opt,
        choice=choice,
        values=values,
        update_steps=proximal_update(),
        minibatch_steps=minibatch_update(),
        equations=equations,
        equations_with_values=with_values if with_values != equations else None,
        facts=[FACTS[key](values) for key in opt.facts],
    )
