"""The tool checks what it prints.

Three independent checks, each returning figures the documents quote:

* **symbolic**: at a small concrete size (width 2, depth ≤ 4) the loss is expanded into one scalar
  expression of all parameters and differentiated directly with `sympy.diff`; the δ-form formulas of
  the derivation are evaluated at the same random rational point and must agree — exactly when every
  function involved is rational (identity, relu, mse), otherwise to 50 significant digits.
* **minibatch**: the minibatch formulas must equal the mean of the per-sample formulas (exact).
* **derivatives**: the generated NumPy module's `gradients` against complex-step derivatives of the
  network's definition (`complex_step`; no cancellation, so one relative tolerance holds at every
  depth), and its `loss` against the definition's value.
* **stability**: its forward pass, loss and gradients under pre-activations of ±1000 with
  floating-point overflow, division by zero and invalid operations turned into errors.
* **workspace form**: the module's in-place `gradients_into` equals `gradients` bit for bit,
  `sgd_step` applies −lr·gradients, and float32 gradients agree with float64 ones.

Figures in the documents are rounded up to a power of ten so that documents are byte-identical
across machines whose BLAS round differently.
"""

from __future__ import annotations

import math
import random
import types
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from derive import complex_step
from derive.derivation import Derivation
from derive.expr import TimeLimitExceeded, time_limit
from derive.indexing import transform
from derive.matrixform import evaluate_index_form
from derive.nonsmooth import breakpoints, kink_convention
from derive.model import Model
from derive.notation import BATCH_SIZE, A, LayerRef, Q, Y, Z, size
from derive.parallel import Background, BackgroundFailed
from derive.nonsmooth import NON_SMOOTH

SYMBOLIC_MAX_DEPTH = 4
SYMBOLIC_WIDTH = 2
DIGITS = 50
FLOAT_TOLERANCE = sp.Float("1e-35", DIGITS)
PREACTIVATION_BOUND = 3.0  # the derivative check's point: every |z| within this (see numeric_point)
KINK_MARGIN = 1e-3  # … and no z this close to a kink
DERIVATIVE_TOLERANCE = 1e-9  # relative to the largest entry of the same parameter's gradient
TINY = float(np.finfo(float).tiny)
STABILITY_SCALE = 1e3
NUMERIC_MAX_PARAMS = 2000
SMALL_COST_OPS = 160  # expanded losses up to this size are evaluated with evalf, larger ones compiled


@dataclass
class Check:
    name: str  # "symbolic", "minibatch", "derivatives", "stability", "workspace", "recognition", "readable_forms"
    passed: bool
    ran: bool = True
    figures: dict = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.ran)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


def decade_bound(x: float) -> str:
    """The smallest power of ten ≥ x, as text ('1e-9'); '0' for exactly zero."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"1e{math.ceil(math.log10(x))}"


# --------------------------------------------------------------------------------------------------
# a concrete point


def _random_point(model: Model, width: int, samples: int, rng: random.Random) -> dict:
    """Exact rational values for the input, targets and parameters (keys: (label, index tuple))."""
    values = {}
    sizes = [width] * (model.depth + 1)
    for s in range(samples):
        for j in range(sizes[0]):
            values[("a_0", (j,)) if samples == 1 else ("A_0", (j, s))] = sp.Rational(rng.randint(-9, 9), 7)
        targets = _targets(model, sizes[-1], rng)
        for i, y in enumerate(targets):
            values[("y", (i,)) if samples == 1 else ("Y", (i, s))] = y
    for layer in range(1, model.depth + 1):
        for i in range(sizes[layer]):
            values[(Q("b", layer).label, (i,))] = sp.Rational(rng.randint(-9, 9), 11)
            for j in range(sizes[layer - 1]):
                values[(Q("W", layer).label, (i, j))] = sp.Rational(rng.randint(-9, 9), 8)
    return values


def _targets(model: Model, n: int, rng: random.Random) -> list[sp.Rational]:
    if model.loss.target == "probability":
        weights = [rng.randint(1, 9) for _ in range(n)]
        return [sp.Rational(w, sum(weights)) for w in weights]
    if model.loss.target in ("binary", "unit"):
        return [sp.Rational(rng.randint(1, 8), 9) for _ in range(n)]
    return [sp.Rational(rng.randint(-9, 9), 9) for _ in range(n)]


def _concrete_sizes(model: Model, width: int, samples: int | None) -> dict:
    """Concrete values for the symbols of the formulas: sizes, batch size, penalty strengths."""
    env = {size(LayerRef(l)): width for l in range(model.depth + 1)}
    if samples is not None:
        env[BATCH_SIZE] = samples
    if model.penalty is not None:
        env.update(model.penalty.strengths)
    return env


# --------------------------------------------------------------------------------------------------
# direct differentiation of the expanded loss


def _vector_activation(act, z: list) -> list:
    total = sum(sp.exp(zk) for zk in z)
    if act.is_softmax:
        return [sp.exp(zi) / total for zi in z]
    return [zi - sp.log(total) for zi in z]


def _active_piece(expr: sp.Expr, point: dict) -> sp.Expr:
    """`expr` with each piecewise part replaced by the branch that holds at `point` (a dict of
    numbers for its variables), unless the point lies on a boundary, where the whole is kept.

    The derivative at a point inside a piece is the derivative of that piece, so the direct check
    may differentiate the active piece; SymPy would otherwise fold nested piecewise functions of
    consecutive layers into every combination of branches.
    """

    def on_boundary(condition) -> bool:
        for relation in condition.atoms(sp.core.relational.Relational):
            gap = sp.N((relation.lhs - relation.rhs).xreplace(point), DIGITS)
            if gap == 0 or abs(gap) < sp.Float(10) ** -(DIGITS - 10):
                return True
        return False

    def rule(e):
        if not isinstance(e, sp.Piecewise):
            return e
        for branch, condition in e.args:
            if on_boundary(condition):
                return e
            if condition.xreplace(point) == sp.true:
                return branch
        return e

    return transform(expr, rule) if expr.has(sp.Piecewise) else expr


def _numeric(value: sp.Expr, exact: bool) -> sp.Expr:
    return value if exact else sp.N(value, DIGITS + 10)


def _expanded_network(model: Model, width: int, values: dict, symbolic: bool) -> tuple[sp.Expr, dict, list]:
    """Forward pass of one sample written out in full: the loss, the parameter symbols, the z's.

    With `symbolic` the parameters are symbols (input and targets are numbers) and the forward pass
    is also followed with the numbers of `values`, to pick the active piece of piecewise functions
    (see `_active_piece`); otherwise everything is numbers.
    """
    params = {}
    exact = _rational_model(model)

    def parameter(label, idx, name):
        key = (label, idx)
        if not symbolic:
            return values[key]
        params[key] = sp.Symbol(name, real=True)
        return params[key]

    a = [values[("a_0", (j,))] for j in range(width)]
    a_num = list(a)
    preactivations, penalty_terms = [], []
    for layer in range(1, model.depth + 1):
        W = [[parameter(Q("W", layer).label, (i, j), f"W{layer}_{i}_{j}") for j in range(width)] for i in range(width)]
        b = [parameter(Q("b", layer).label, (i,), f"b{layer}_{i}") for i in range(width)]
        z = [sum(W[i][j] * a[j] for j in range(width)) + b[i] for i in range(width)]
        preactivations += z
        act = model.activations[layer - 1]
        if symbolic:
            Wn = [[values[(Q("W", layer).label, (i, j))] for j in range(width)] for i in range(width)]
            bn = [values[(Q("b", layer).label, (i,))] for i in range(width)]
            z_num = [_numeric(sum(Wn[i][j] * a_num[j] for j in range(width)) + bn[i], exact) for i in range(width)]
        if act.is_vector:
            a = _vector_activation(act, z)
            if symbolic:
                a_num = [_numeric(v, exact) for v in _vector_activation(act, z_num)]
        elif symbolic:
            a = [_active_piece(act.expr, {Z: zn}).xreplace({Z: zi}) for zi, zn in zip(z, z_num)]
            a_num = [_numeric(act.entry(zn), exact) for zn in z_num]
        else:
            a = [act.entry(zi) for zi in z]
        if model.penalty is not None:
            for kind, entries in (("W", [w for row in W for w in row]), ("b", b)):
                if model.penalty.covers(kind):
                    penalty_terms += [model.penalty.term(e) for e in entries]
    y = [values[("y", (i,))] for i in range(width)]
    if symbolic:
        cost = sum(_active_piece(model.loss.expr, {A: an, Y: yi}).xreplace({A: ai, Y: yi})
                   for ai, an, yi in zip(a, a_num, y))
    else:
        cost = sum(model.loss.entry(ai, yi) for ai, yi in zip(a, y))
    if penalty_terms:
        cost += sp.Add(*penalty_terms).xreplace(model.penalty.strengths)
    return cost, params, preactivations


def _is_rational_valued(expr: sp.Expr) -> bool:
    """Rational inputs give rational outputs: exact comparison is possible."""
    allowed = (sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.Piecewise, sp.sign)
    return all(isinstance(f, allowed) for f in expr.atoms(sp.Function)) and not expr.atoms(sp.NumberSymbol) \
        and not expr.atoms(sp.Float) and all(p.exp.is_Integer for p in expr.atoms(sp.Pow))


def _rational_model(model: Model) -> bool:
    if any(a.is_vector or not _is_rational_valued(a.expr) for a in model.activations):
        return False
    return _is_rational_valued(model.loss.expr)


def symbolic_point(model: Model, seed: int = 0) -> dict:
    """A random rational point where no pre-activation sits exactly on a kink."""
    rng = random.Random(seed)
    kinks = {sp.S.Zero}
    nonsmooth = False
    for act in model.activations:
        if not act.is_vector and act.expr.has(*NON_SMOOTH):
            nonsmooth = True
            kinks.update(breakpoints(act.expr)[0])
    for _ in range(20):
        values = _random_point(model, SYMBOLIC_WIDTH, 1, rng)
        if not nonsmooth:  # a smooth network has no kink to avoid: skip the exact forward pass
            break
        _, _, preactivations = _expanded_network(model, SYMBOLIC_WIDTH, values, symbolic=False)
        if all(z not in kinks for z in preactivations):
            break
    return values


def direct_gradients(model: Model, values: dict, digits: int = DIGITS) -> tuple[dict, bool]:
    """∂C/∂θ for every parameter θ by `sympy.diff` of the fully expanded loss, at `values`."""
    cost, params, _ = _expanded_network(model, SYMBOLIC_WIDTH, values, symbolic=True)
    exact = _is_rational_valued(cost)
    point = {sym: (values[key] if exact else sp.Float(values[key], digits)) for key, sym in params.items()}
    derivatives = {key: sp.diff(cost, sym) for key, sym in params.items()}
    if exact:
        return {key: derivative.xreplace(point) for key, derivative in derivatives.items()}, exact
    if sp.count_ops(cost) <= SMALL_COST_OPS:  # small trees: evalf directly, no compilation needed
        return {key: derivative.xreplace(point).evalf(digits) for key, derivative in derivatives.items()}, exact
    return dict(zip(derivatives, _evaluate_digits(list(derivatives.values()), point, digits))), exact


def _evaluate_digits(exprs: list, point: dict, digits: int = DIGITS) -> list:
    """The expressions at `point` to DIGITS significant digits: compiled together for mpmath (shared
    subexpressions once) when its printer knows every function, which is much faster than evalf on
    large trees; otherwise SymPy's evalf."""
    constants = {c: c.evalf(digits + 10) for e in exprs for c in e.atoms(sp.NumberSymbol) if c not in (sp.pi, sp.E)}
    exprs = [e.xreplace(constants) for e in exprs]
    if not any(e.has(sp.Heaviside, sp.DiracDelta, sp.Piecewise, sp.Max, sp.Min) for e in exprs):
        try:
            symbols = list(point)
            function = sp.lambdify(symbols, exprs, "mpmath", cse=True)
            with mpmath.workdps(digits + 10):
                values = function(*[mpmath.mpf(point[s]._mpf_) for s in symbols])
            return [sp.Float(v, digits) for v in values]
        except (NameError, TypeError, AttributeError, ValueError):
            pass
    return [e.xreplace(point).evalf(digits) for e in exprs]


class DirectDifferentiation:
    """The expensive half of the symbolic check, started early (in a second process where the
    platform can fork) so that it runs while the engine derives."""

    def __init__(self, model: Model, seed: int = 0):
        self.model = model
        self.skipped = model.depth > SYMBOLIC_MAX_DEPTH
        self.error = None  # why the expanded loss could not be evaluated, if it could not
        self.values = None
        self._job = None
        if not self.skipped:
            try:
                self.values = symbolic_point(model, seed)
            except UNEVALUABLE as error:
                self.error = _unevaluable_text(error)
        if self.values is not None:
            self._job = Background(direct_gradients, model, self.values)

    def result(self) -> tuple[dict, bool]:
        try:
            return self._job.result()
        except BackgroundFailed:  # repeat here, where the error itself is raised
            return direct_gradients(self.model, self.values)


# what exact evaluation of an astronomically large network raises (mpmath, SymPy, Python)
UNEVALUABLE = (MemoryError, OverflowError, ValueError, ArithmeticError, RecursionError)


def _unevaluable_text(error: BaseException) -> str:
    return (f"the expanded network could not be evaluated exactly at the test point ({type(error).__name__}); "
            "its values are too large to represent")


def symbolic_check(derivation: Derivation, direct: DirectDifferentiation | None = None) -> Check:
    model = derivation.model
    direct = direct if direct is not None else DirectDifferentiation(model)
    if direct.skipped:
        return Check("symbolic", True, ran=False, figures={"depth": model.depth, "max_depth": SYMBOLIC_MAX_DEPTH})
    try:
        if direct.error is not None:
            raise ValueError(direct.error)
        return _compare_with_direct(derivation, direct)
    except UNEVALUABLE as error:
        reason = direct.error or _unevaluable_text(error)
        return Check("symbolic", False, figures={"partials": 0, "width": SYMBOLIC_WIDTH, "depth": model.depth,
                                                 "exact": False, "digits": DIGITS, "working_digits": DIGITS,
                                                 "largest_difference": "nan", "error": reason})


def _compare_with_direct(derivation: Derivation, direct: DirectDifferentiation) -> Check:
    model = derivation.model
    expected, exact = direct.result()
    for digits in (DIGITS, 2 * DIGITS, 4 * DIGITS):
        # an ill-conditioned point (cosh(z)**64 of a large z) loses digits in both evaluations:
        # evaluate both again with more working digits before calling a difference an error
        if digits != DIGITS:
            expected, exact = direct_gradients(model, direct.values, digits)
        values = direct.values if exact else {k: sp.Float(v, digits) for k, v in direct.values.items()}
        derived = _evaluate_gradients(derivation.sample.results, derivation, values,
                                      _concrete_sizes(model, SYMBOLIC_WIDTH, None))
        worst = sp.S.Zero
        for key, value in expected.items():
            got = derived[key] if exact else derived[key].evalf(digits)  # named constants (selu) → digits
            worst = max(worst, abs(value - got) / max(sp.S.One, abs(value)))
        passed = worst == 0 if exact else worst <= FLOAT_TOLERANCE
        if exact or passed:
            break
    return Check(
        "symbolic",
        bool(passed),
        figures={
            "partials": len(expected),
            "width": SYMBOLIC_WIDTH,
            "depth": model.depth,
            "exact": exact,
            "digits": DIGITS,
            "working_digits": digits,
            "largest_difference": "0" if worst == 0 else decade_bound(float(worst)),
        },
    )


def _point_digits(values: dict) -> int | None:
    """The working digits of a point given in floats (None for an exact, rational point), taken once
    from the point itself: values computed with 10 guard digits must not raise it further, or every
    layer would work 10 digits finer than the one before (700 digits at depth 64, where one erf
    took 20 ms)."""
    precisions = [v._prec for v in values.values() if isinstance(v, sp.Float)]
    return mpmath.libmp.prec_to_dps(max(precisions)) if precisions else None


def _formula(rhs: sp.Expr, digits: int | None) -> sp.Expr:
    """A formula ready for evaluation at a point of `digits` digits: its constant parts (√2, π, named
    constants) become floats too, so that products stay numbers instead of growing."""
    return rhs if digits is None else _floated(rhs, digits)


@lru_cache(maxsize=None)
def _floated(rhs: sp.Expr, digits: int) -> sp.Expr:
    return rhs.replace(lambda e: isinstance(e, sp.Expr) and e.is_number and not e.is_Number and not e.is_Atom
                       or isinstance(e, sp.NumberSymbol), lambda e: e.evalf(digits + 10))


def _evaluate_forward(derivation: Derivation, values: dict, env: dict) -> dict:
    results = derivation.sample.results
    values, digits = dict(values), _point_digits(values)
    for layer in range(1, derivation.model.depth + 1):
        for kind in ("z", "a"):
            result = results[f"{kind}_{layer}"]
            (i,) = result.free
            for n in range(env[size(LayerRef(layer))]):
                values[(f"{kind}_{layer}", (n,))] = evaluate_index_form(_formula(result.rhs, digits), values, {**env, i: n})
    return values


def _evaluate_gradients(results: dict, derivation: Derivation, values: dict, env: dict) -> dict:
    """Evaluate the derived δ-form, layer by layer from the output, at a concrete point."""
    model = derivation.model
    digits = _point_digits(values)
    values = _evaluate_forward(derivation, values, env)
    grads = {}
    for layer in range(model.depth, 0, -1):
        delta = results[f"delta_{layer}"]
        (q,) = delta.free
        for n in range(env[size(LayerRef(layer))]):
            values[(f"delta_{layer}", (n,))] = evaluate_index_form(_formula(delta.rhs, digits), values, {**env, q: n})
        for name, kind in (("grad_W", "W"), ("grad_b", "b")):
            result = results[f"{name}_{layer}"]
            ranges = [range(env[size(LayerRef(layer))]), range(env[size(LayerRef(layer - 1))])][: len(result.free)]
            for idx in np.ndindex(*[len(r) for r in ranges]):
                grads[(Q(kind, layer).label, tuple(idx))] = evaluate_index_form(
                    _formula(result.rhs, digits), values, {**env, **dict(zip(result.free, idx))}
                )
    return grads


# --------------------------------------------------------------------------------------------------
# minibatch formulas against per-sample formulas


def minibatch_check(derivation: Derivation, seed: int = 1, samples: int = 2) -> Check:
    try:
        return _minibatch_check(derivation, seed, samples)
    except UNEVALUABLE as error:
        return Check("minibatch", False, figures={"partials": 0, "samples": samples, "exact": False,
                                                  "digits": DIGITS, "largest_difference": "nan",
                                                  "error": _unevaluable_text(error)})


def _minibatch_check(derivation: Derivation, seed: int, samples: int) -> Check:
    """(1/m) Σ_s of the per-sample gradients equals the minibatch formulas, exactly."""
    model = derivation.model
    width = SYMBOLIC_WIDTH
    rng = random.Random(seed)
    batch_values = _random_point(model, width, samples, rng)
    # exact for rational networks up to the depth of the direct check; deeper, their exact numbers grow
    # with every layer (softsign doubles their digits: depth 14 took a minute), so 50 digits instead
    exact = _rational_model(model) and model.depth <= SYMBOLIC_MAX_DEPTH
    if not exact:
        batch_values = {k: sp.Float(v, DIGITS) for k, v in batch_values.items()}
    per_sample_sum: dict = {}
    for s in range(samples):
        values = {k: v for k, v in batch_values.items() if k[0] not in ("A_0", "Y")}
        for (label, idx), v in batch_values.items():
            if label == "A_0" and idx[1] == s:
                values[("a_0", (idx[0],))] = v
            if label == "Y" and idx[1] == s:
                values[("y", (idx[0],))] = v
        grads = _evaluate_gradients(derivation.sample.results, derivation, values, _concrete_sizes(model, width, None))
        for key, v in grads.items():
            per_sample_sum[key] = per_sample_sum.get(key, 0) + v
    batch = _evaluate_batch(derivation, batch_values, _concrete_sizes(model, width, samples))
    worst = max(abs(batch[k] - per_sample_sum[k] / samples) for k in batch)
    if not exact:
        worst = worst.evalf(DIGITS)
    passed = worst == 0 if exact else worst <= FLOAT_TOLERANCE
    return Check(
        "minibatch",
        bool(passed),
        figures={
            "partials": len(batch),
            "samples": samples,
            "exact": exact,
            "digits": DIGITS,
            "largest_difference": "0" if worst == 0 else decade_bound(float(worst)),
        },
    )


def _evaluate_batch(derivation: Derivation, values: dict, env: dict) -> dict:
    model, results = derivation.model, derivation.batch.results
    values, digits = dict(values), _point_digits(values)
    m = env[BATCH_SIZE]
    for layer in range(1, model.depth + 1):
        for kind, label in (("z", "Z"), ("a", "A")):
            result = results[f"{kind}_{layer}"]
            for idx in np.ndindex(env[size(LayerRef(layer))], m):
                values[(f"{label}_{layer}", tuple(idx))] = evaluate_index_form(_formula(result.rhs, digits), values, {**env, **dict(zip(result.free, idx))})
    grads = {}
    for layer in range(model.depth, 0, -1):
        delta = results[f"delta_{layer}"]
        for idx in np.ndindex(env[size(LayerRef(layer))], m):
            values[(f"Delta_{layer}", tuple(idx))] = evaluate_index_form(_formula(delta.rhs, digits), values, {**env, **dict(zip(delta.free, idx))})
        for name, kind in (("grad_W", "W"), ("grad_b", "b")):
            result = results[f"{name}_{layer}"]
            shape = [env[size(LayerRef(layer))], env[size(LayerRef(layer - 1))]][: len(result.free)]
            for idx in np.ndindex(*shape):
                grads[(Q(kind, layer).label, tuple(idx))] = evaluate_index_form(_formula(result.rhs, digits), values, {**env, **dict(zip(result.free, idx))})
    return grads


# --------------------------------------------------------------------------------------------------
# the generated code


def load_module(source: str, name: str = "derive_generated_model") -> types.ModuleType:
    """Import generated source (our own printer's output, never user text) as a fresh module."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - generated code
    return module


def _numeric_sizes(model: Model) -> tuple[int, ...]:
    sizes = model.spec.sizes
    count = sum(sizes[l] * sizes[l - 1] + sizes[l] for l in range(1, len(sizes)))
    if count <= NUMERIC_MAX_PARAMS:
        return sizes
    return tuple(min(n, 6) for n in sizes)


def _numeric_targets(model: Model, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if model.loss.target == "probability":
        return np.eye(n)[:, rng.integers(0, n, size=m)]
    if model.loss.target == "binary":
        return rng.integers(0, 2, size=(n, m)).astype(float)
    if model.loss.target == "unit":
        return rng.uniform(0.1, 0.9, size=(n, m))
    return rng.standard_normal((n, m))


def numeric_point(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3,
                  bound: float = PREACTIVATION_BOUND) -> tuple:
    """(sizes, params, X, Y) in float64 where every pre-activation lies within ±bound and none within
    KINK_MARGIN of a kink; the derivative and workspace checks both run here.

    The weights are drawn by the module's `init_params` (biases from N(0, 1/4), inputs from N(0, 1));
    a layer whose pre-activations exceed the bound has its weights and bias scaled down until they
    do not. Deep in a network drawn at random some layer otherwise saturates: every unit so far into
    a flat part of its activation (silu at z = −40, gelu_tanh's output at z = −100) that float64 rounds
    its derivative to 0, the code then computes 0 for every layer below, and no comparison could tell
    a right formula from a wrong one there. Within the bound every derivative is resolved, and
    gradients still vanish or explode through depth as they do at any point.
    """
    sizes = _numeric_sizes(model)
    rng = np.random.default_rng(seed)
    kinks = np.array(sorted({0.0} | {float(p) for a in model.activations if not a.is_vector
                                      for p in breakpoints(a.expr)[0]}))
    for _ in range(20):  # stay away from kinks
        params = module.init_params(sizes, rng)
        for key in params:
            if key.startswith("b"):
                params[key] = 0.5 * rng.standard_normal(params[key].shape)
        X = rng.standard_normal((sizes[0], samples))
        Z = _bounded_forward(model, params, X, bound)
        if np.nanmin(np.abs(Z[:, None] - kinks[None, :])) > KINK_MARGIN:
            break
    Y = _numeric_targets(model, sizes[-1], samples, rng)
    return sizes, params, X, Y


def _bounded_forward(model: Model, params: dict, X: np.ndarray, bound: float) -> np.ndarray:
    """Scale each layer's weights and bias (in place) so that its pre-activations stay within ±bound;
    the pre-activations, evaluated from the network's definition, as one flat array."""
    a, seen = X, []
    with np.errstate(all="ignore"):
        for layer in range(1, model.depth + 1):
            W, b = f"W{layer}", f"b{layer}"
            z = params[W] @ a + params[b]
            largest = float(np.max(np.abs(z)))
            if largest > bound:  # nan compares False: left for the check to report
                factor = bound / largest
                params[W], params[b], z = params[W] * factor, params[b] * factor, z * factor
            seen.append(z.ravel())
            a = complex_step.activation(model.activations[layer - 1], z[None] + 0j)[0].real
    return np.concatenate(seen)


def _finite_point(model: Model, module: types.ModuleType, evaluate, seed: int, samples: int) -> tuple:
    """The point of `numeric_point` with the largest bound (3, 1.5, 0.75, …) at which `evaluate(params,
    X, Y)` — returning (result, arrays) — gives only finite arrays: ((sizes, params, X, Y, bound), result,
    finite). A typed exp(exp(z)) exceeds float64 at the usual bound."""
    bound = PREACTIVATION_BOUND
    for _ in range(12):
        sizes, params, X, Y = numeric_point(model, module, seed, samples, bound)
        with np.errstate(all="ignore"):
            result, arrays = evaluate(params, X, Y)
        finite = all(np.all(np.isfinite(a)) for a in arrays)
        if finite:
            break
        bound /= 2
    return (sizes, params, X, Y, bound), result, finite


def derivative_check(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    """`gradients` of the generated code against complex-step derivatives of the network's definition
    (see `complex_step`), entry by entry, and `loss` against the definition's value.

    Each entry is compared relative to the largest reference entry of its own parameter array, so a
    layer whose gradients have vanished to 1e-40 is checked as strictly as the output layer. If the
    values at the point exceed float64 (a typed exp(exp(z))), the bound on the pre-activations is
    halved until they do not, and the document says so.
    """
    def by_complex_step(params, X, Y):
        grads, value, scale = complex_step.gradients(model, params, X, Y)
        return (grads, value, scale), [value, *grads.values()]

    (sizes, params, X, Y, bound), (reference, expected, scale), finite = _finite_point(
        model, module, by_complex_step, seed, samples)
    with np.errstate(all="ignore"):
        grads, value = module.gradients(params, X, Y), module.loss(params, X, Y)
    worst, smallest, largest = 0.0, math.inf, 0.0
    for key, ref in reference.items():
        size_of = float(np.max(np.abs(ref)))
        smallest, largest = min(smallest, size_of), max(largest, size_of)
        error = float(np.max(np.abs(grads[key] - ref))) / max(size_of, TINY)
        worst = max(worst, error if math.isfinite(error) else math.inf)
    loss_error = abs(value - expected) / max(scale, TINY) if math.isfinite(value) else math.inf
    passed = finite and worst <= DERIVATIVE_TOLERANCE and loss_error <= DERIVATIVE_TOLERANCE
    figures = {
        "partials": sum(r.size for r in reference.values()),
        "sizes": list(sizes),
        "samples": samples,
        "bound": bound,
        "step": decade_bound(complex_step.STEP),
        "largest_error": decade_bound(worst) if finite else "nan",
        "loss_error": decade_bound(loss_error) if finite else "nan",
        "tolerance": decade_bound(DERIVATIVE_TOLERANCE),
        "smallest_gradient": _decade_floor(smallest) if finite else "nan",
        "largest_gradient": decade_bound(largest) if finite else "nan",
    }
    if not passed:
        figures["error"] = _derivative_failure(finite, worst, loss_error)
    return Check("derivatives", bool(passed), figures=figures)


def _derivative_failure(finite: bool, worst: float, loss_error: float) -> str:
    tolerance = decade_bound(DERIVATIVE_TOLERANCE)
    if not finite:
        return "the values of the network exceed float64 at every test point tried"
    if worst > DERIVATIVE_TOLERANCE:
        return (f"the gradients of model.py differ from complex-step derivatives of the network by up to "
                f"{decade_bound(worst)} (relative; tolerance {tolerance})")
    return f"the loss of model.py differs from the network's definition by up to {decade_bound(loss_error)} (relative; tolerance {tolerance})"


def _decade_floor(x: float) -> str:
    """The largest power of ten ≤ x ('1e-45'), '0' for zero: with `decade_bound`, the range of sizes."""
    return "0" if x == 0 else f"1e{math.floor(math.log10(x))}"


def stability_check(model: Model, module: types.ModuleType, seed: int = 0) -> Check:
    """Forward, loss and gradients under huge pre-activations, with FP errors raised.

    When a scenario fails, the same forward pass is recomputed exactly (SymPy floats, no exponent
    limit): if its true values exceed the float64 range (exp(z) at z = 1000), the overflow belongs to
    the function, not to the code, and the check is reported as not applicable instead of failed.
    """
    sizes = _numeric_sizes(model)
    rng = np.random.default_rng(seed)
    largest = 0.0
    passed, inherent, largest_exact = True, True, sp.S.Zero
    for scenario in ("input", "output"):
        params = module.init_params(sizes, rng)
        X = rng.standard_normal((sizes[0], 4))
        if scenario == "input":
            X *= STABILITY_SCALE
        else:
            last = f"W{model.depth}"
            params[last] = params[last] * STABILITY_SCALE / max(np.abs(params[last]).max(), 1e-12)
            X = np.sign(X) * 3.0
        Y = _numeric_targets(model, sizes[-1], 4, rng)
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                module.forward(params, X)
                value = module.loss(params, X, Y)
                grads = module.gradients(params, X, Y)
                finite = np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
                if hasattr(module, "gradients_into"):  # the workspace form evaluates the same forms
                    ws = module.Workspace(sizes, 4)
                    grads = module.gradients_into(ws, params, X, Y)
                    stepped = {k: v.copy() for k, v in params.items()}
                    module.sgd_step(ws, stepped, X, Y, 0.1)
                    finite = finite and all(np.all(np.isfinite(g)) for g in [*grads.values(), *stepped.values()])
        except FloatingPointError:
            finite = False
        with np.errstate(all="ignore"):
            cache = module.forward(params, X)
        Z = np.concatenate([np.abs(v).ravel() for k, v in cache.items() if k.startswith("Z")])
        largest = max(largest, float(np.max(np.where(np.isnan(Z), np.inf, Z))))
        if not finite:
            passed = False
            try:
                with np.errstate(all="ignore"), time_limit(EXACT_SECONDS):  # mpmath may raise FPU flags
                    exact = exact_largest(model, params, X, Y)
            except (TimeLimitExceeded, ValueError, OverflowError, ArithmeticError):
                sp.core.cache.clear_cache()
                exact = sp.oo  # values too large for even SymPy's floats to reach in time
            largest_exact = max(largest_exact, exact)
            inherent &= exact > FLOAT64_MAX
    figures = {"largest_preactivation": decade_bound(largest)}
    if not passed and inherent:
        figures["largest_exact"] = _decade_text(largest_exact)
        return Check("stability", True, ran=False, figures=figures)
    return Check("stability", passed, figures=figures)


FLOAT64_MAX = sp.Float(np.finfo(float).max)
EXACT_SECONDS = 5.0


def _decade_text(x: sp.Expr) -> str:
    """A power of ten at least x for numbers beyond float range: '1e434' ('inf' when unreachable)."""
    if x == sp.oo:
        return "inf"
    exponent = int(mpmath.ceil(mpmath.log10(mpmath.mpf(sp.Float(x, 20)._mpf_))))
    if exponent >= 10**12:  # a tower: 10^(10^k) bounds it
        return f"1e1e{int(mpmath.ceil(mpmath.log10(exponent)))}"
    return f"1e{exponent}"


def exact_largest(model: Model, params: dict, X: np.ndarray, targets: np.ndarray) -> sp.Expr:
    """The largest magnitude among the exact pre-activations, activations, activation derivatives and
    loss terms of the network at (params, X, Y), in SymPy floats (whose exponents have no limit)."""
    digits = 20

    def exact(array):
        return np.vectorize(lambda v: sp.Float(float(v), digits), otypes=[object])(np.asarray(array, dtype=float))

    def apply(expr, variables, *arrays):
        return np.vectorize(lambda *vs: expr.xreplace(dict(zip(variables, vs))).evalf(digits), otypes=[object])(*arrays)

    largest = sp.S.Zero
    outputs = exact(X)
    for layer in range(1, model.depth + 1):
        pre = np.dot(exact(params[f"W{layer}"]), outputs) + exact(params[f"b{layer}"])
        act = model.activations[layer - 1]
        if act.is_vector:
            powers = np.vectorize(sp.exp, otypes=[object])(pre)
            total = powers.sum(axis=0, keepdims=True)
            outputs = powers / total if act.is_softmax else pre - np.vectorize(sp.log, otypes=[object])(total)
            values = [pre, outputs]
        else:
            outputs = apply(act.expr, (Z,), pre)
            values = [pre, outputs, apply(kink_convention(sp.diff(act.expr, Z)), (Z,), pre)]
        for array in values:
            largest = max([largest] + [abs(v) for v in array.ravel() if v.is_Number])
        if largest > FLOAT64_MAX:  # settled: deeper layers would only take longer to evaluate
            return largest
    ell, dell = model.loss.expr, kink_convention(sp.diff(model.loss.expr, A))
    for expr in (ell, dell):
        terms = apply(expr, (A, Y), outputs, exact(targets))
        largest = max([largest] + [abs(v) for v in terms.ravel() if v.is_Number])
    return largest


WORKSPACE_STEP_TOL = 1e-12  # sgd_step against params − lr·gradients, relative to the largest entry
FLOAT32_REL_TOL = 1e-4  # float32 gradients against float64 ones, relative to the largest gradient entry
FLOAT32_MAX = float(np.finfo(np.float32).max) / 1e4  # values this large leave float32 no headroom


def workspace_check(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    """The workspace form of the generated code against `gradients`, at the derivative check's point.

    `gradients_into` must give exactly the same numbers (float64, bit for bit) on two calls in a row
    with one workspace; `sgd_step` must move every parameter by −lr·gradients; in float32 every
    gradient entry must agree with float64 to FLOAT32_REL_TOL of the network's largest gradient entry,
    the size a training step is made of. Relative to a parameter's own gradient the difference is
    reported, not required: where gradients have vanished through many saturated units, float32
    keeps fewer of their digits (1 − a² of a = tanh(4) has three), whatever the code.
    """
    if not hasattr(module, "gradients_into"):
        return Check("workspace", True, ran=False)
    def plain(params, X, Y):
        grads = module.gradients(params, X, Y)
        return grads, [module.loss(params, X, Y), *grads.values()]

    (sizes, params, X, Y, _), expected, _ = _finite_point(model, module, plain, seed, samples)
    ws = module.Workspace(sizes, samples, np.float64)
    first = {k: v.copy() for k, v in module.gradients_into(ws, params, X, Y).items()}
    second = module.gradients_into(ws, params, X, Y)
    exact = sorted(first) == sorted(expected) and all(
        np.array_equal(first[k], expected[k]) and np.array_equal(second[k], expected[k]) for k in expected
    )
    lr = 0.1
    stepped = {k: v.copy() for k, v in params.items()}
    module.sgd_step(ws, stepped, X, Y, lr)
    step_error = max(  # relative to the larger of the parameters and the step itself
        float(np.max(np.abs(stepped[k] - (params[k] - lr * expected[k]))))
        / max(float(np.max(np.abs(params[k]))), lr * float(np.max(np.abs(expected[k]))), 1.0)
        for k in params
    )
    single = {k: v.astype(np.float32) for k, v in params.items()}
    ws32 = module.Workspace(sizes, samples, np.float32)
    with np.errstate(all="ignore"):
        low = module.gradients_into(ws32, single, X.astype(np.float32), Y.astype(np.float32))
        cache = module.forward(params, X)
    largest = max(float(np.max(np.abs(v))) for v in [*cache.values(), *expected.values()])
    float32_applies = largest < FLOAT32_MAX and all(np.all(np.isfinite(g)) for g in low.values())
    float32_error = own_error = None
    if float32_applies:  # measured against the largest gradient of the network, and of each parameter
        differences = {k: float(np.max(np.abs(low[k] - expected[k]))) for k in expected}
        sizes_of = {k: float(np.max(np.abs(expected[k]))) for k in expected}
        float32_error = max(differences.values()) / max(max(sizes_of.values()), TINY)
        own_error = max(differences[k] / max(sizes_of[k], TINY) for k in expected)
    passed = exact and step_error <= WORKSPACE_STEP_TOL and (not float32_applies or float32_error <= FLOAT32_REL_TOL)
    figures = {
        "partials": sum(v.size for v in expected.values()),
        "sizes": list(sizes),
        "samples": samples,
        "exact": bool(exact),
        "step_error": decade_bound(step_error),
        "float32_error": None if float32_error is None else decade_bound(float32_error),
        "float32_own_error": None if own_error is None else decade_bound(own_error),
        "float32_tolerance": decade_bound(FLOAT32_REL_TOL),
    }
    if not passed:
        figures["error"] = ("gradients_into does not give exactly the numbers of gradients" if not exact else
                            f"sgd_step differs from params − lr·gradients by {decade_bound(step_error)}"
                            if step_error > WORKSPACE_STEP_TOL else
                            f"float32 gradients differ from float64 ones by up to {decade_bound(float32_error)} of the "
                            f"largest gradient (tolerance {decade_bound(FLOAT32_REL_TOL)})")
    return Check("workspace", bool(passed), figures=figures)


# --------------------------------------------------------------------------------------------------


def derivation_figures(derivation: Derivation) -> list[Check]:
    """What the engine proved while deriving: matrix forms entry by entry, readable derivatives."""
    results = [r for p in derivation.passes() for r in p.results.values() if r.free or r.name != "cost"]
    recognised = sum(1 for r in results if r.recognition_proved)
    readable = [d for d in derivation.activation_derivatives if d.in_terms_of_output is not None]
    return [
        Check("recognition", recognised == len(results), figures={"formulas": len(results), "proved": recognised}),
        Check(
            "readable_forms",
            all(d.proof for d in readable),
            figures={"found": len(readable), "methods": sorted({d.proof for d in readable})},
        ),
    ]


def verify(derivation: Derivation, source: str, direct: DirectDifferentiation | None = None) -> Report:
    """Run every check; `direct` is the direct differentiation if it was started earlier."""
    module = load_module(source)
    checks = [symbolic_check(derivation, direct), minibatch_check(derivation)]
    checks += [derivative_check(derivation.model, module), stability_check(derivation.model, module)]
    checks.append(workspace_check(derivation.model, module))
    checks += derivation_figures(derivation)
    return Report(checks)
