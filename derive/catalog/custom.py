"""User-written activations and losses: safely parsed text becomes a catalog entry like any other.

`--act "z*tanh(log(1+exp(z)))"` and `--loss "(a-y)**4/4"` go through `derive.expr.parse_expression`
(a whitelist over Python's `ast`; nothing is evaluated). The resulting SymPy expression is then
checked where the network will use it, so that a function the engine cannot derive soundly is
refused up front with a one-line error rather than failing verification later:

* an activation is applied to any real pre-activation, so g and SymPy's g′ must be finite and real
  on a spread of points from −100 to 100 (0 and points near it included), and g′ not 0 at all of
  them (a step passes no gradient);
* a loss must be finite and real, with a finite derivative, for the outputs its output activation
  produces; its targets are real numbers unless it needs them in (0, 1) (e.g. it takes log y); and
  the cost must change with those outputs (not `Heaviside(a)`, nor `3*a` summed over softmax
  outputs, which sum to 1).

These are sampled checks at 60 significant digits (SymPy `evalf`), not proofs; they only decide
what is refused. Everything that is accepted is derived and then verified like a catalog entry.
"""

from __future__ import annotations

import sympy as sp

from derive.catalog.activations import Activation
from derive.catalog.losses import Loss
from derive.errors import DeriveError
from derive.expr import ExpressionError, TimeLimitExceeded, parse_expression, time_limit
from derive.notation import A, Y, Z

DIGITS = 60
ACTIVATION_POINTS = (0, 0.001, -0.001, 0.3, -0.3, 1, -1, 2.5, -2.5, 7, -7, 30, -30, 100, -100)
TARGETS = {"real": (-1.5, -0.3, 0, 0.4, 1, 2.2), "unit": (0.1, 0.5, 0.9)}


EVALUATION_SECONDS = 0.8


class _Unevaluable(Exception):
    """SymPy could not evaluate the expression at a point (values beyond any representation)."""


def _value(expr: sp.Expr, point: dict) -> sp.Expr:
    try:
        return expr.xreplace({k: sp.Float(v, DIGITS) for k, v in point.items()}).evalf(DIGITS)
    except (ValueError, OverflowError, ArithmeticError, RecursionError, MemoryError) as error:
        raise _Unevaluable from error


def _checked(option: str, shown: str, check):
    """Run a sampling check under a deadline; a function too large to evaluate is refused."""
    try:
        with time_limit(EVALUATION_SECONDS):
            return check()
    except (TimeLimitExceeded, _Unevaluable):
        sp.core.cache.clear_cache()
        raise DeriveError(
            f"invalid value for {option}: {shown!r} cannot be evaluated on sample points up to |z| = 100 "
            f"(its values are too large to represent, or take over {EVALUATION_SECONDS:g} s); "
            f"expected a function whose values stay representable"
        ) from None


def _finite_real(value: sp.Expr) -> bool:
    return bool(value.is_Number and value.is_finite is True and value.is_extended_real is True)


def _smooth_parts(derivative: sp.Expr) -> sp.Expr:
    """The derivative away from jumps: steps contribute no impulse (DiracDelta → 0)."""
    return derivative.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _point_text(value: float) -> str:
    return f"{value:g}"


def custom_activation(text: str, *, option: str = "--act") -> Activation:
    """An element-wise activation from the user's expression in z."""
    try:
        g = parse_expression(text, {"z": Z}, what="activation expression")
    except ExpressionError as error:
        raise DeriveError(f"invalid value for {option}: {error}") from None
    shown = _shown(text)
    if not g.has(Z):
        raise DeriveError(f"invalid value for {option}: activation {shown!r} does not depend on z; "
                          "expected a function of z such as 'z*tanh(z)'")
    derivative = _smooth_parts(sp.diff(g, Z))

    def check() -> bool:
        unit, flat = True, True
        for point in ACTIVATION_POINTS:
            value = _value(g, {Z: point})
            if not _finite_real(value):
                raise DeriveError(
                    f"invalid value for {option}: activation {shown!r} is not a finite real number at "
                    f"z = {_point_text(point)}; an activation must be defined for every real z"
                )
            slope = _value(derivative, {Z: point})
            if not _finite_real(slope):
                raise DeriveError(
                    f"invalid value for {option}: the derivative of activation {shown!r} is not finite at "
                    f"z = {_point_text(point)}; expected a function with a finite derivative"
                )
            unit &= bool(0 < value < 1)
            flat &= slope == 0
        if flat:  # a step: no gradient passes through the layer
            raise DeriveError(
                f"invalid value for {option}: the derivative of activation {shown!r} is 0 wherever it is defined "
                f"(from z = -100 to 100), so no gradient passes through it; expected a function that changes with z"
            )
        return unit

    unit = _checked(option, shown, check)
    return Activation("custom", "user-written", g, in_unit_interval=unit, source=text)


def custom_loss(text: str) -> Loss:
    """A per-unit loss from the user's expression in a and y (targets decided by `fit_targets`)."""
    try:
        ell = parse_expression(text, {"a": A, "y": Y}, what="loss expression")
    except ExpressionError as error:
        raise DeriveError(f"invalid value for --loss: {error}") from None
    if not ell.has(A):
        raise DeriveError(f"invalid value for --loss: loss {_shown(text)!r} does not depend on the output a; "
                          "expected a function of a and y such as '(a-y)**2/2'")
    return Loss("custom", "user-written loss", ell, source=text)


def _sample_outputs(output: Activation) -> list[float]:
    if output.is_softmax:
        return [0.02, 0.3, 0.6, 0.97]
    if output.is_log_softmax:
        return [-4.0, -1.0, -0.05]
    return [float(_value(output.expr, {Z: z})) for z in (-6, -1.5, -0.2, 0.4, 2, 6)]


def fit_targets(loss: Loss, output: Activation) -> Loss:
    """The user-written loss with the least restrictive targets it is defined for, given the outputs
    of `output`; a one-line error when it is undefined for them."""
    return _checked("--loss", _shown(loss.source), lambda: _fit_targets(loss, output))


def _fit_targets(loss: Loss, output: Activation) -> Loss:
    outputs = _sample_outputs(output)
    derivative = _smooth_parts(sp.diff(loss.expr, A))
    problem = None
    for target, targets in TARGETS.items():
        problem = None
        for a in outputs:
            for y in targets:
                if not (_finite_real(_value(loss.expr, {A: a, Y: y})) and _finite_real(_value(derivative, {A: a, Y: y}))):
                    problem = (a, y)
                    break
            if problem:
                break
        if problem is None:
            _require_change(loss, output, derivative, outputs, targets)
            return loss if target == loss.target else Loss(
                loss.name, loss.title, loss.expr, target=target, source=loss.source)
    a, y = problem
    raise DeriveError(
        f"invalid combination: loss {_shown(loss.source)!r} or its derivative is not a finite real number "
        f"at a = {a:.3g}, y = {y:g}, an output of {output.spec_text!r} with targets in (0, 1); "
        f"choose an output activation whose values the loss accepts (--out-act)"
    )


def _require_change(loss: Loss, output: Activation, derivative: sp.Expr, outputs: list, targets: tuple) -> None:
    """Refuse a loss whose cost cannot change with the network's output: every gradient would be 0.

    Element-wise outputs: ℓ′ = ∂ℓ/∂a is 0 at every sample (a step such as Heaviside(a)). Softmax
    outputs sum to 1, so Σᵢ ℓ(aᵢ, yᵢ) is constant when ℓ′ is one constant (ℓ = 3a − y). Log-softmax
    outputs satisfy Σᵢ exp(aᵢ) = 1, so it is constant when ℓ′ is c·exp(a) (ℓ = exp(a)).
    """
    shown = _shown(loss.source)
    values = []
    for a in outputs:
        for y in targets:
            slope = _value(derivative, {A: a, Y: y})
            values.append(slope * sp.exp(-sp.Float(a, DIGITS)) if output.is_log_softmax else slope)
    if all(v == 0 for v in values):
        raise DeriveError(f"invalid combination: the derivative of loss {shown!r} with respect to a is 0 for every "
                          f"output of {output.spec_text!r} (where it is defined), so every gradient would be 0; "
                          "expected a loss that changes with a")
    if not output.is_vector:
        return
    spread = max(values) - min(values)
    if spread <= sp.Float(10, DIGITS) ** (10 - DIGITS) * max(abs(v) for v in values):
        held = "softmax outputs sum to 1" if output.is_softmax else "the exponentials of log-softmax outputs sum to 1"
        raise DeriveError(
            f"invalid combination: loss {shown!r} summed over the outputs of {output.spec_text!r} is the same for "
            f"every input ({held}), so every gradient would be 0; choose another loss or --out-act"
        )
