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
from sympy.core.function import AppliedUndef

from derive.catalog import Activation
from derive.indexing import transform
from derive.matrixform import ColSums, MatProd, RowSums
from derive.nonsmooth import NON_SMOOTH, Kink, conventions_used, kink_convention, pieces
from derive.notation import A, Z, quantity_of

# --------------------------------------------------------------------------------------------------
# presentation helpers for small expressions


def normalise_signs(expr: sp.Expr) -> sp.Expr:
    """-a (a - 1) → a (1 - a): move a leading minus sign into a binomial factor."""
    return _minus_into_binomial(expr)


def _minus_into_binomial(term: sp.Expr, accept=lambda factor: True) -> sp.Expr:
    """-c · f · rest → c · (-f) · rest for the first sum f that `accept`s the sign; else the term."""
    if not term.is_Mul:
        return term
    coefficient, rest = term.as_coeff_Mul()
    if coefficient >= 0:
        return term
    factors = list(sp.Mul.make_args(rest))
    for n, factor in enumerate(factors):
        if factor.is_Add and accept(factor):
            factors[n] = -factor
            return -coefficient * sp.Mul(*factors)
    return term


def natural_signs(expr: sp.Expr) -> sp.Expr:
    """A displayed line with each term's minus sign moved into a binomial that then reads in its
    natural order: -(y - 1) [j = j'] / (1 - a) → (1 - y) [j = j'] / (1 - a) (SymPy distributes a
    minus sign into a sum of two terms, so the derivative of -(1 - y) log(1 - a) comes out as the
    first). Term by term, each flip checked to be equal by expanding that one term: no simplify."""
    if not expr.args or isinstance(expr, (sp.Indexed, sp.Idx)):
        return expr
    args = tuple(natural_signs(a) for a in expr.args)
    if args != expr.args:
        expr = expr.func(*args)
    if expr.is_Add:
        return sp.Add(*(_flipped(term) for term in expr.args))
    return _flipped(expr)


def _flipped(term: sp.Expr) -> sp.Expr:
    """-c · (y - 1) · rest → c · (1 - y) · rest, where the binomial has fewer minus signs flipped."""
    flipped = _minus_into_binomial(term, _reads_better_negated)
    if flipped is not term and sp.expand(flipped - term) != 0:  # never: the same term, its sign moved
        raise AssertionError(f"sign flip changed {term}")
    return flipped


def _reads_better_negated(binomial: sp.Add) -> bool:
    """y - 1 → 1 - y (fewer minus signs, or as many with a number in it); a - y stays."""
    minus = lambda add: sum(1 for a in add.args if a.could_extract_minus_sign())  # noqa: E731
    fewer, same = minus(-binomial) < minus(binomial), minus(-binomial) == minus(binomial)
    return fewer or (same and any(a.is_Number for a in binomial.args))


def simplest(*candidates: sp.Expr) -> sp.Expr:
    """The candidate with the fewest operations (ties: fewer powers, shorter text, then the first)."""
    scored = [(sp.count_ops(c), len(c.atoms(sp.Pow)), len(str(c)), n, c) for n, c in enumerate(candidates)]
    return min(scored, key=lambda t: t[:4])[4]


def tidy(expr: sp.Expr) -> sp.Expr:
    """A small local expression in its shortest common form: as is, cancelled or factored."""
    if not expr.is_Add and not any(p.exp.is_negative for p in expr.atoms(sp.Pow)):
        return normalise_signs(expr)  # a product without fractions: nothing to cancel or factor
    cancelled = sp.cancel(expr)  # once: the factored fraction starts from it too
    return simplest(expr, *_factored_fraction(expr, cancelled), normalise_signs(cancelled),
                    normalise_signs(sp.factor(expr)))


def _factored_fraction(expr: sp.Expr, cancelled: sp.Expr) -> tuple[sp.Expr, ...]:
    """(y − a)/(a² − a) → (a − y)/(a (1 − a)): the cancelled fraction with its denominator factored and
    its sign moved into a binomial factor, the form a textbook writes (checked equal, or left out)."""
    numerator, denominator = sp.fraction(cancelled)
    if denominator == 1:
        return ()
    factored = sp.factor(denominator)
    candidate = sp.Mul(-numerator, sp.Pow(normalise_signs(-factored), -1), evaluate=False)
    candidate = sp.Mul(*sp.Mul.make_args(candidate))
    return (candidate,) if sp.cancel(candidate - expr) == 0 else ()


# --------------------------------------------------------------------------------------------------
# derivatives of activations


@dataclass(frozen=True)
class ActivationDerivative:
    """g′ as SymPy computed it, the conventions used at kinks, and g′ in terms of a = g(z)."""

    activation: Activation
    computed: sp.Expr  # sympy.diff(g(z), z), untouched
    derivative: sp.Expr  # the same, with the kink conventions applied (used in formulas and code)
    in_terms_of_output: sp.Expr | None  # h with g′(z) = h(g(z)), proved; None if none was found
    proof: str | None  # how the identity was proved: "cancel" or "simplify"
    kink_convention: bool  # True when a convention changed the derivative (a step's value at 0 …)
    branch_form: sp.Expr | None = None  # piecewise g: g′ branch by branch, in terms of a where proved
    branch_proofs: tuple[str, ...] = ()  # how each rewritten branch was proved
    conventions: tuple[str, ...] = ()  # which kink conventions the derivative relies on
    pieces: tuple = ()  # (lower, upper, g′ on the piece) for non-smooth g
    kinks: tuple[Kink, ...] = ()  # where g′ jumps: one-sided limits and the value used
    kinks_located: bool = True  # False when some switching point could not be solved for

    @property
    def used(self) -> sp.Expr:
        """The form the formulas and the code use."""
        if self.in_terms_of_output is not None:
            return self.in_terms_of_output
        if self.branch_form is not None:
            return self.branch_form
        return self.derivative

    @property
    def rule(self) -> str | None:
        """The message-catalog key of the step that puts `used` into a derivation (None: no rewrite)."""
        if self.in_terms_of_output is not None:
            return "derivative_in_terms_of_output"
        if self.branch_form is not None:
            return "derivative_branches_in_terms_of_output"
        if self.kink_convention:
            return "kink_convention"
        return None

    @property
    def smooth(self) -> bool:
        return not self.computed.has(*NON_SMOOTH) and not self.activation.expr.has(*NON_SMOOTH)


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
    with np.errstate(all="ignore"):
        basis = np.vander(gs, degree + 1, increasing=True)
    if not np.all(np.isfinite(basis)):  # g^k beyond float64 (exp(300 z) at z = 1.9): no fit to make
        return None
    coefficients, *_ = np.linalg.lstsq(basis, gps, rcond=None)
    if np.max(np.abs(basis @ coefficients - gps)) > 1e-9:
        return None
    rational = [sp.nsimplify(round(c, 9), rational=True, tolerance=1e-9) for c in coefficients]
    return sp.Add(*[c * A**k for k, c in enumerate(rational)])


# functions a readable form may use: each has a NumPy counterpart (erfinv or LambertW would not)
_PRINTABLE = (sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.tanh, sp.sinh, sp.cosh, sp.atan)


MAX_INVERSE_COEFFICIENT = 12  # numerators and denominators of g's coefficients, for `solve`


def _inverse_candidate(g: sp.Expr, gp: sp.Expr) -> sp.Expr | None:
    """Substitute z = g⁻¹(a) into g′(z) when g is a chain of functions of one z with small
    coefficients (so that `solve` is quick) and SymPy finds a unique inverse.

    `solve` writes exp(c·z) = a with c = p/q as a polynomial of degree |p|·q in exp(z/q) and checks
    every root: exp(300 z) took minutes. A bound on the coefficients keeps the search short on every
    machine alike (a time limit would make the documents depend on the machine's speed)."""
    if sum(1 for e in sp.preorder_traversal(g) if e == Z) != 1 or sp.count_ops(g) > 12:
        return None
    if any(max(abs(r.p), r.q) > MAX_INVERSE_COEFFICIENT for r in g.atoms(sp.Rational)):
        return None
    try:
        solutions = sp.solve(sp.Eq(A, g), Z)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if len(solutions) != 1:
        return None
    candidate = sp.simplify(gp.xreplace({Z: solutions[0]}))
    if candidate.has(Z) or any(not isinstance(f, _PRINTABLE) for f in candidate.atoms(sp.Function)):
        return None
    return candidate


def _output_form(g: sp.Expr, gp: sp.Expr) -> tuple[sp.Expr | None, str | None]:
    """h with g′ = h(g), proved exactly, or (None, None). The cheap polynomial fit first."""
    for finder in (_polynomial_candidate, _inverse_candidate):
        candidate = finder(g, gp)
        if candidate is None or candidate.has(Z):
            continue
        proof = _proves_identity(candidate.xreplace({A: g}), gp)
        if proof:
            return tidy(candidate), proof
    return None, None


def _branch_form(g: sp.Expr) -> tuple[sp.Expr | None, tuple[str, ...]]:
    """For a piecewise g: g′ branch by branch, each branch in terms of a where an identity is proved.

    The conditions stay in z (they say which branch applies); a branch's identity holds wherever
    that branch's formula does, so proving it for the branch formula suffices.
    """
    folded = sp.piecewise_fold(g)
    if not isinstance(folded, sp.Piecewise):
        return None, ()
    branches, proofs, changed = [], [], False
    for branch, condition in folded.args:
        gp = sp.diff(branch, Z)
        h, proof = _output_form(branch, gp) if gp.has(Z) else (None, None)
        if h is not None:
            branches.append((h, condition))
            proofs.append(proof)
            changed = True
        else:
            branches.append((gp, condition))
    return (sp.Piecewise(*branches), tuple(proofs)) if changed else (None, ())


@lru_cache(maxsize=None)
def activation_derivative(activation: Activation) -> ActivationDerivative:
    """Differentiate an element-wise activation and look for g′ as a function of its output."""
    g = activation.expr
    computed = sp.diff(g, Z)
    derivative = kink_convention(computed)
    h, proof = None, None
    abstract = bool(computed.atoms(AppliedUndef))  # a general g(z): its derivative is g′(z), nothing more
    if abstract:
        return ActivationDerivative(activation, computed, derivative, None, None, False)
    if computed.has(Z) and not computed.has(*NON_SMOOTH) and not g.has(*NON_SMOOTH):
        h, proof = _output_form(g, computed)
    if h is not None or not (g.has(*NON_SMOOTH) or computed.has(*NON_SMOOTH)):
        return ActivationDerivative(activation, computed, derivative, h, proof, derivative != computed)
    branch_form, branch_proofs = _branch_form(g) if g.has(sp.Piecewise) else (None, ())
    segments, kinks, located = pieces(g, derivative)
    return ActivationDerivative(
        activation, computed, derivative, None, None, derivative != computed,
        branch_form=branch_form, branch_proofs=branch_proofs, conventions=conventions_used(computed),
        pieces=tuple(segments), kinks=tuple(kinks), kinks_located=located,
    )


# --------------------------------------------------------------------------------------------------
# softmax and targets


def softmax_in_terms_of_output(
    expr: sp.Expr, z_base: sp.IndexedBase, a_base: sp.IndexedBase, normaliser: sp.Sum, log: bool = False
) -> sp.Expr:
    """Replace exp(z_x) / Σ_k exp(z_k) by a_x everywhere (the definition of the softmax output);
    with `log`, by exp(a_x) (the log-softmax output is a_x = z_x − log Σ_k exp(z_k))."""
    s = sp.Dummy("S", positive=True)
    expr = expr.xreplace({normaliser: s})

    def rule(e):
        if isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == z_base:
            output = a_base[e.args[0].indices]
            return (sp.exp(output) if log else output) * s
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


class Expm1(sp.Function):
    """eˣ − 1, accurate for small x (NumPy: expm1)."""

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


@lru_cache(maxsize=None)
def exp_identity_holds(lhs: sp.Expr, rhs: sp.Expr, u: sp.Symbol, rewrite: bool = True) -> bool:
    """Whether lhs = rhs for all real u, for expressions in e^u, e^{u/2} and tanh(u/2): rewritten in
    w = e^{u/2} both sides are rational functions of w, and their difference must cancel to 0
    (memoised: every document format states the same identities). Without `rewrite`, tanh and the
    like are not written in exponentials first, so only expressions already in e^u can be equal (the
    sigmoid's steps in e^{-z} are printed only for an activation written that way)."""
    w = sp.Symbol("w", positive=True)
    difference = (lhs - rhs).rewrite(sp.exp) if rewrite else lhs - rhs
    difference = difference.subs(sp.exp(u / 2), w).subs(sp.exp(-u / 2), 1 / w).subs(sp.exp(u), w**2)
    if difference.has(u):
        return False
    # over one denominator, the difference is 0 exactly when its numerator expands to 0: a quarter of
    # the time of `cancel`'s gcd, and where it finds no 0, `cancel` decides as before
    return sp.expand(sp.numer(sp.together(difference))) == 0 or sp.cancel(difference) == 0


def sigmoid_tanh_identity() -> tuple[sp.Expr, sp.Expr, bool]:
    """The identity behind `logistic_as_tanh` and whether it is proved: (1/(1 + e^u), (1 − tanh(u/2))/2, True)."""
    u = sp.Symbol("u", real=True)
    lhs, rhs = 1 / (1 + sp.exp(u)), logistic_as_tanh(u)
    return lhs, rhs, exp_identity_holds(lhs, rhs, u)


class Erf(sp.Function):
    """The error function in generated code, where NumPy has none (see codegen's `_erf` helper)."""

    nargs = 1
    is_real = True


def _one_plus_exp(e: sp.Basic) -> sp.Expr | None:
    """u when e is 1 + eᵘ."""
    if e.is_Add and len(e.args) == 2 and sp.S.One in e.args:
        other = e.args[0] if e.args[1] == 1 else e.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _clamped(branch: sp.Expr, variable: sp.Symbol, bound: sp.Expr, below: bool) -> sp.Expr:
    """A branch evaluated only where variable ≤ bound (below) or ≥ bound: clamping the variable to
    that side changes nothing where the branch is selected, and keeps exp finite where it is not
    (np.where evaluates both branches)."""
    if not branch.has(sp.exp, sp.sinh, sp.cosh, Expm1):
        return branch
    return branch.xreplace({variable: (sp.Min if below else sp.Max)(variable, bound)})


def _clamp_piecewise(e: sp.Piecewise) -> sp.Expr:
    if len(e.args) != 2 or e.args[1][1] != sp.true:
        return e
    (first, condition), (second, _) = e.args
    if not isinstance(condition, (sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan, sp.LessThan)):
        return e
    variable, bound = condition.lhs, condition.rhs
    if not (variable.is_Symbol and bound.is_number):
        return e
    first_below = isinstance(condition, (sp.StrictLessThan, sp.LessThan))
    return sp.Piecewise((_clamped(first, variable, bound, first_below), condition),
                        (_clamped(second, variable, bound, not first_below), True))


def _stable_rule(e: sp.Basic) -> sp.Basic:
    """One rewrite, applied bottom-up; each is an identity (or exact where it is used)."""
    # (1 + eᵘ)^(−k) = e^{−k softplus(u)}: the sigmoid and its powers without overflow (a lone
    # sigmoid becomes the tanh form afterwards, see _sigmoids_as_tanh)
    if e.is_Pow and e.exp.is_number and e.exp.is_negative:
        u = _one_plus_exp(e.base)
        if u is not None:
            return sp.exp(e.exp * Softplus(u))
    # 1/cosh(u)ᵏ = (2 e^{−|u|} / (1 + e^{−2|u|}))ᵏ: no cosh(1000) = inf on the way to 0
    if e.is_Pow and isinstance(e.base, sp.cosh) and e.exp.is_number and e.exp.is_negative:
        u = sp.Abs(e.base.args[0])
        return stable_forms((2 * sp.exp(-u) / (1 + sp.exp(-2 * u))) ** (-e.exp))
    # log(1 + eᵘ) = softplus(u)
    if isinstance(e, sp.log):
        u = _one_plus_exp(e.args[0])
        if u is not None:
            return Softplus(u)
        # log cosh u = |u| + softplus(−2|u|) − log 2
        if isinstance(e.args[0], sp.cosh):
            u = e.args[0].args[0]
            return sp.Abs(u) + Softplus(-2 * sp.Abs(u)) - sp.log(2)
    # eᵘ − 1 = expm1(u), exact for small u; 1 − eᵘ = −expm1(u)
    if e.is_Add and len(e.args) == 2 and (sp.S.One in e.args or sp.S.NegativeOne in e.args):
        constant, other = (e.args if e.args[0] in (1, -1) else e.args[::-1])
        if isinstance(other, sp.exp) and constant == -1:
            return Expm1(other.args[0])
        if other.is_Mul and len(other.args) == 2 and other.args[0] == -1 and isinstance(other.args[1], sp.exp) and constant == 1:
            return -Expm1(other.args[1].args[0])
    # eᵃ eᵇ = e^{a+b}: one exponential, so a huge factor never meets a tiny one (inf · 0); and
    # (u + eᵛ) eʷ = u eʷ + e^{v+w}: an exponential inside a sum is merged with the one outside
    if e.is_Mul:
        exps = [f for f in e.args if isinstance(f, sp.exp)]
        rest = [f for f in e.args if not isinstance(f, sp.exp)]
        if len(exps) > 1:
            return _stable_rule(sp.Mul(*rest) * sp.exp(sp.Add(*[f.args[0] for f in exps])))
        sums = [f for f in rest if f.is_Add and any(isinstance(t, sp.exp) or (t.is_Mul and t.has(sp.exp))
                                                   for t in f.args)]
        if exps and sums:
            others = [f for f in e.args if f is not sums[0]]
            return sp.Add(*[_stable_rule(sp.Mul(term, *others)) for term in sums[0].args])
    if isinstance(e, sp.erf):
        return Erf(e.args[0])
    if isinstance(e, sp.Piecewise):
        return _clamp_piecewise(e)
    return e


def _hyperbolic_quotient(e: sp.Basic) -> sp.Basic:
    """sinh u · cosh(u)ᵖ = tanh u · cosh(u)^{p+1} for p < 0 (SymPy's derivatives of log cosh and
    sech): finite for every u, where sinh u and cosh u alone overflow."""
    if not e.is_Mul:
        return e
    for f in e.args:
        if isinstance(f, sp.sinh):
            u = f.args[0]
            for g in e.args:
                if g.is_Pow and g.base == sp.cosh(u) and g.exp.is_number and g.exp.is_negative:
                    rest = [h for h in e.args if h is not f and h is not g]
                    return sp.Mul(*rest) * sp.tanh(u) * sp.cosh(u) ** (g.exp + 1)
    return e


def _sigmoid_argument(e: sp.Basic) -> sp.Expr | None:
    """u when e is e^{−softplus(u)} = 1/(1 + eᵘ)."""
    if isinstance(e, sp.exp):
        arg = e.args[0]
        if arg.is_Mul and len(arg.args) == 2 and arg.args[0] == -1 and isinstance(arg.args[1], Softplus):
            return arg.args[1].args[0]
    return None


def _sigmoids_as_tanh(e: sp.Basic) -> sp.Basic:
    """e^{−softplus(u)} → (1 − tanh(u/2))/2 (NumPy's tanh is vectorised, logaddexp is not), except
    where the factor shares a product with another exponential: there the single merged exponential
    is what keeps a huge factor from meeting a tiny one (inf · 0)."""
    u = _sigmoid_argument(e)
    if u is not None:
        return logistic_as_tanh(u)
    if not e.args or isinstance(e, (sp.Idx, sp.Indexed, sp.Symbol, sp.Number)):
        return e
    if e.is_Mul:
        args = []
        for f in e.args:
            shared = _sigmoid_argument(f) is not None and any(g is not f and g.has(sp.exp) for g in e.args)
            args.append(f if shared else _sigmoids_as_tanh(f))
        return sp.Mul(*args)
    return e.func(*[_sigmoids_as_tanh(a) for a in e.args])


def stable_forms(expr: sp.Expr) -> sp.Expr:
    """Rewrite an expression so that evaluating it in floating point cannot overflow in exp."""
    return _sigmoids_as_tanh(transform(transform(expr, _hyperbolic_quotient), _stable_rule))


class XLogX(sp.Function):
    """x log x, taken as 0 at x = 0 (its limit): the y log y of a divergence with one-hot targets."""

    nargs = 1
    is_real = True


def stable_log_loss(per_unit: sp.Expr) -> sp.Expr:
    """Split logs of quotients and exponentials before evaluation: log(e^u / (1 + e^u)) → u − softplus(u)."""

    def together_logs(e):
        return sp.log(sp.together(e.args[0])) if isinstance(e, sp.log) else e

    def x_log_x(e):
        if e.is_Mul and len(e.args) == 2:
            x, other = e.args if isinstance(e.args[1], sp.log) else e.args[::-1]
            if isinstance(other, sp.log) and other.args[0] == x:
                return XLogX(x)
        return e

    expr = transform(per_unit, together_logs)
    expr = sp.expand_log(expr, force=True)
    expanded = sp.expand_mul(expr)
    with_xlogx = transform(expanded, x_log_x)
    if with_xlogx != expanded:  # y log(y/a): multiply out only to reach the y log y term
        expr = with_xlogx
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


def softmax_stable(expr: sp.Expr) -> sp.Expr:
    """The derived softmax output exp(X) ⊙ 1/(1ᵀ exp(X)) → Softmax(X), evaluated with the column
    maximum subtracted (see rewrite.softmax_shifted); the log-softmax X − log(1ᵀ exp(X)) → X − lse(X).
    Either way no exp can overflow."""
    for e in sp.preorder_traversal(expr):
        if isinstance(e, sp.log) and isinstance(e.args[0], ColSums) and isinstance(e.args[0].args[0], sp.exp):
            return expr.xreplace({e: LogSumExp(e.args[0].args[0].args[0])})
    for e in sp.preorder_traversal(expr):
        if isinstance(e, ColSums) and isinstance(e.args[0], sp.exp):
            return Softmax(e.args[0].args[0])
    return expr
