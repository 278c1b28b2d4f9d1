"""Named, checked rewrites that make derived results readable.

Each rewrite here either proves the identity it uses (an exact `cancel`, or `simplify` on a small
scalar expression, never on a whole gradient) or is a stated convention (the value of a derivative
at a kink) or a stated assumption (targets that sum to one). The derivation records which rule
produced each step, and the documents name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from derive.catalog import Activation
from derive.indexing import transform
from derive.matrixform import ColSums, MatProd, RowSums
from derive.notation import A, Z, quantity_of

# --------------------------------------------------------------------------------------------------
# presentation helpers for small expressions


def normalise_signs(expr: sp.Expr) -> sp.Expr:
    """-a (a - 1) → a (1 - a): move a leading minus sign into a binomial factor."""
    if not expr.is_Mul:
        return expr
    coefficient, rest = expr.as_coeff_Mul()
    if coefficient >= 0:
        return expr
    factors = list(sp.Mul.make_args(rest))
    for n, factor in enumerate(factors):
        if factor.is_Add:
            factors[n] = -factor
            return -coefficient * sp.Mul(*factors)
    return expr


def simplest(*candidates: sp.Expr) -> sp.Expr:
    """The candidate with the fewest operations (ties: fewer powers, shorter text, then the first)."""
    scored = [(sp.count_ops(c), len(c.atoms(sp.Pow)), len(str(c)), n, c) for n, c in enumerate(candidates)]
    return min(scored, key=lambda t: t[:4])[4]


def tidy(expr: sp.Expr) -> sp.Expr:
    """A small local expression in its shortest common form: as is, cancelled or factored."""
    if not expr.is_Add and not any(p.exp.is_negative for p in expr.atoms(sp.Pow)):
        return normalise_signs(expr)  # a product without fractions: nothing to cancel or factor
    return simplest(expr, normalise_signs(sp.cancel(expr)), normalise_signs(sp.factor(expr)))


# --------------------------------------------------------------------------------------------------
# derivatives of activations


NON_SMOOTH = (sp.Heaviside, sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min, sp.DiracDelta)


@dataclass(frozen=True)
class ActivationDerivative:
    """g′ as SymPy computed it, the convention used at kinks, and g′ in terms of a = g(z)."""

    activation: Activation
    computed: sp.Expr  # sympy.diff(g(z), z), untouched
    derivative: sp.Expr  # the same, with the kink convention applied (used in formulas and code)
    in_terms_of_output: sp.Expr | None  # h with g′(z) = h(g(z)), proved; None if none was found
    proof: str | None  # how the identity was proved: "cancel" or "simplify"
    kink_convention: bool  # True when a Heaviside step's value at 0 was fixed to 0


def kink_convention(expr: sp.Expr) -> sp.Expr:
    """Heaviside(x) → Heaviside(x, 0): a derivative of 0 at a kink, as PyTorch and NumPy code use."""

    def rule(e):
        if isinstance(e, sp.Heaviside) and e.args[1] != 0:
            return sp.Heaviside(e.args[0], 0)
        return e

    return transform(expr, rule)


def _proves_identity(lhs: sp.Expr, rhs: sp.Expr) -> str | None:
    """'cancel' or 'simplify' if lhs − rhs is exactly zero, else None. Both sides are small."""
    difference = lhs - rhs
    if difference == 0 or sp.cancel(difference) == 0:
        return "cancel"
    if sp.simplify(difference) == 0:
        return "simplify"
    return None


def _polynomial_candidate(g: sp.Expr, gp: sp.Expr, degree: int = 3) -> sp.Expr | None:
    """Fit g′ = Σ_k c_k g^k at sample points and read off rational coefficients."""
    points = np.linspace(-1.7, 1.9, 9)
    g_f = sp.lambdify(Z, g, "math")
    gp_f = sp.lambdify(Z, gp, "math")
    try:
        gs = np.array([float(g_f(p)) for p in points])
        gps = np.array([float(gp_f(p)) for p in points])
    except (ValueError, OverflowError, ZeroDivisionError, TypeError):
        return None
    if not (np.all(np.isfinite(gs)) and np.all(np.isfinite(gps))):
        return None
    basis = np.vander(gs, degree + 1, increasing=True)
    coefficients, *_ = np.linalg.lstsq(basis, gps, rcond=None)
    if np.max(np.abs(basis @ coefficients - gps)) > 1e-9:
        return None
    rational = [sp.nsimplify(round(c, 9), rational=True, tolerance=1e-9) for c in coefficients]
    return sp.Add(*[c * A**k for k, c in enumerate(rational)])


def _inverse_candidate(g: sp.Expr, gp: sp.Expr) -> sp.Expr | None:
    """Substitute z = g⁻¹(a) into g′(z) when SymPy finds a unique inverse."""
    try:
        solutions = sp.solve(sp.Eq(A, g), Z)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if len(solutions) != 1:
        return None
    candidate = sp.simplify(gp.xreplace({Z: solutions[0]}))
    return None if candidate.has(Z) else candidate


@lru_cache(maxsize=None)
def activation_derivative(activation: Activation) -> ActivationDerivative:
    """Differentiate an element-wise activation and look for g′ as a function of its output."""
    g = activation.expr
    computed = sp.diff(g, Z)
    derivative = kink_convention(computed)
    h, proof = None, None
    smooth = not computed.has(*NON_SMOOTH)
    if computed.has(Z) and smooth:
        for finder in (_polynomial_candidate, _inverse_candidate):
            candidate = finder(g, computed)
            if candidate is None or candidate.has(Z):
                continue
            proof = _proves_identity(candidate.xreplace({A: g}), computed)
            if proof:
                h = tidy(candidate)
                break
    return ActivationDerivative(activation, computed, derivative, h, proof, derivative != computed)


# --------------------------------------------------------------------------------------------------
# softmax and targets


def softmax_in_terms_of_output(
    expr: sp.Expr, z_base: sp.IndexedBase, a_base: sp.IndexedBase, normaliser: sp.Sum
) -> sp.Expr:
    """Replace exp(z_x) / Σ_k exp(z_k) by a_x everywhere (the definition of the softmax output)."""
    s = sp.Dummy("S", positive=True)
    expr = expr.xreplace({normaliser: s})

    def rule(e):
        if isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == z_base:
            return a_base[e.args[0].indices] * s
        return e

    expr = transform(expr, rule)
    expr = sp.expand(expr)
    if expr.has(s):
        raise ValueError("softmax rewrite left the normaliser in place")
    return expr


def targets_sum_to_one(expr: sp.Expr, y_base: sp.IndexedBase) -> sp.Expr:
    """Σ_i y_i → 1 over a full layer: the targets of a categorical loss are probabilities."""

    def rule(e):
        if isinstance(e, sp.Sum) and len(e.limits) == 1:
            (i, lo, hi) = e.limits[0]
            f = e.function
            if isinstance(f, sp.Indexed) and f.base == y_base and f.indices[0] == i and (lo, hi) == (i.lower, i.upper):
                return sp.S.One
        return e

    return transform(expr, rule)


# --------------------------------------------------------------------------------------------------
# numerically stable forms for generated code


class Softplus(sp.Function):
    """log(1 + eˣ), computed without overflow (NumPy: logaddexp(0, x))."""

    nargs = 1
    is_real = True


class LogSumExp(sp.Function):
    """log 1ᵀ exp(X): the log of the column sums of exp(X), computed with a max shift."""

    nargs = 1
    is_real = True


class Softmax(sp.Function):
    """exp(X) / 1ᵀ exp(X), column by column, computed with the column maximum subtracted."""

    nargs = 1
    is_real = True


def softmax_shifted(X: sp.Expr, M: sp.Expr, E: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """exp(X) / 1ᵀ exp(X) = E / 1ᵀ E with E = exp(X − M), for any row M (e^{−M} cancels); with M the
    column maximum no exp overflows. Returns (E in terms of X and M, the softmax in terms of E); the
    generated `_softmax` helper and the workspace form both evaluate these two expressions."""
    return sp.exp(X - M), E / ColSums(E)


def logsumexp_shifted(X: sp.Expr, M: sp.Expr) -> sp.Expr:
    """log 1ᵀ exp(X) = M + log 1ᵀ exp(X − M) for any row M; with M the column maximum no exp overflows.

    The generated `_logsumexp` helper and the workspace form both evaluate this one expression.
    """
    return M + sp.log(ColSums(sp.exp(X - M)))


def logistic_as_tanh(u: sp.Expr) -> sp.Expr:
    """1 / (1 + e^u) = (1 − tanh(u/2)) / 2: the sigmoid with no exp that can overflow.

    Chosen over e^{−softplus(u)} because NumPy's tanh is vectorised and np.logaddexp is not (about
    30 ns per entry, as long as the matrix products of a layer); `sigmoid_tanh_identity` proves it.
    """
    return (1 - sp.tanh(u / 2)) / 2


def exp_identity_holds(lhs: sp.Expr, rhs: sp.Expr, u: sp.Symbol) -> bool:
    """Whether lhs = rhs for all real u, for expressions in e^u, e^{u/2} and tanh(u/2): rewritten in
    w = e^{u/2} both sides are rational functions of w, and their difference must cancel to 0."""
    w = sp.Symbol("w", positive=True)
    difference = (lhs - rhs).rewrite(sp.exp).subs(sp.exp(u / 2), w).subs(sp.exp(-u / 2), 1 / w).subs(sp.exp(u), w**2)
    return not difference.has(u) and sp.cancel(difference) == 0


def sigmoid_tanh_identity() -> tuple[sp.Expr, sp.Expr, bool]:
    """The identity behind `logistic_as_tanh` and whether it is proved: (1/(1 + e^u), (1 − tanh(u/2))/2, True)."""
    u = sp.Symbol("u", real=True)
    lhs, rhs = 1 / (1 + sp.exp(u)), logistic_as_tanh(u)
    return lhs, rhs, exp_identity_holds(lhs, rhs, u)


def _stable_rule(e: sp.Basic) -> sp.Basic:
    # 1 / (1 + e^u) = (1 - tanh(u/2)) / 2: the sigmoid without overflow
    if e.is_Pow and e.exp == -1 and e.base.is_Add and len(e.base.args) == 2 and sp.S.One in e.base.args:
        other = e.base.args[0] if e.base.args[1] == 1 else e.base.args[1]
        if isinstance(other, sp.exp):
            return logistic_as_tanh(other.args[0])
    # log(1 + e^u) = softplus(u)
    if isinstance(e, sp.log) and e.args[0].is_Add and len(e.args[0].args) == 2 and sp.S.One in e.args[0].args:
        other = e.args[0].args[0] if e.args[0].args[1] == 1 else e.args[0].args[1]
        if isinstance(other, sp.exp):
            return Softplus(other.args[0])
    return e


def stable_forms(expr: sp.Expr) -> sp.Expr:
    """Rewrite an expression so that evaluating it in floating point cannot overflow in exp."""
    return transform(expr, _stable_rule)


def stable_log_loss(per_unit: sp.Expr) -> sp.Expr:
    """Split logs of quotients and exponentials before evaluation: log(e^u / (1 + e^u)) → u − softplus(u)."""

    def together_logs(e):
        return sp.log(sp.together(e.args[0])) if isinstance(e, sp.log) else e

    expr = transform(per_unit, together_logs)
    expr = sp.expand_log(expr, force=True)
    return stable_forms(expr)


# --------------------------------------------------------------------------------------------------
# cheaper forms for generated code


def holds_arrays(expr: sp.Basic) -> bool:
    """True when a matrix-form expression mentions a vector or matrix quantity (not only scalars)."""
    return any(quantity_of(s.name) is not None for s in expr.free_symbols)


def _scalar_onto_left_rule(e: sp.Basic) -> sp.Basic:
    if not e.is_Mul:
        return e
    linear = [f for f in e.args if isinstance(f, (MatProd, RowSums, ColSums))]
    scalars = [f for f in e.args if not holds_arrays(f)]
    if len(linear) != 1 or len(linear) + len(scalars) != len(e.args):
        return e
    (operation,) = linear
    return operation.func(sp.Mul(*scalars) * operation.args[0], *operation.args[1:])


def scalar_onto_left_operand(expr: sp.Expr) -> sp.Expr:
    """c·(X Y) → (c·X) Y and c·(X 1) → (c·X) 1 for a scalar c: (Δ Aᵀ)/m → (Δ/m) Aᵀ, (Δ 1)/m → (Δ/m) 1.

    Linear algebra, not an approximation. In a weight gradient the left operand Δ is n × m and the
    product n × n_in, so scaling Δ costs 1/n_in of the product instead of 1/m of it (at batch 1 the
    division of the product by m would cost as much as the product itself), and the weight and
    bias gradients then share the one scaled Δ.
    """
    return transform(expr, _scalar_onto_left_rule)
