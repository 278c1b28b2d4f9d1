"""Index-level calculus helpers: collapsing Kronecker-delta sums and discharging range guards.

SymPy differentiates an `Indexed` entry by another to a `KroneckerDelta`, but its `.doit()` leaves
nested sums uncollapsed and wraps results in `Piecewise` guards such as `n >= q + 1` that hold by
construction (every index stays inside its range). These helpers finish the job, and they only do
steps that are valid: a sum collapses on δ_{iq} only when q runs over exactly the range of i, and a
guard is dropped only when it is proved true over the whole index range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from itertools import islice, product

import sympy as sp

# sizes that are equal by construction in the network being derived (the sum of two outputs has
# the size of both): n₃ → n₂. Guards and ranges are compared after these replacements.
_SIZE_FACTS: ContextVar[Mapping[sp.Symbol, sp.Expr]] = ContextVar("size_facts", default={})


@contextmanager
def assume_sizes(facts: Mapping[sp.Symbol, sp.Expr]) -> Iterator[None]:
    """Within the block, treat each size symbol of `facts` as equal to its value."""
    token = _SIZE_FACTS.set(dict(facts))
    try:
        yield
    finally:
        _SIZE_FACTS.reset(token)


class Iverson(sp.Function):
    """[P]: 1 where the condition P on index values holds, else 0 (the Iverson bracket). A guard of
    the index calculus (a collapse over indices of other ranges, a stride's divisibility) is written
    as this factor rather than as a Piecewise, which SymPy's sums would fold into every term; with
    concrete indices it evaluates to 1 or 0."""

    nargs = 1

    @classmethod
    def eval(cls, condition):
        if condition is sp.true:
            return sp.S.One
        if condition is sp.false:
            return sp.S.Zero
        return None

    def _derive_latex(self, printer, **_):
        return rf"\left[{printer._print(self.args[0])}\right]"


def _known(expr: sp.Basic) -> sp.Basic:
    facts = _SIZE_FACTS.get()
    return expr.xreplace(facts) if facts else expr


def transform(expr: sp.Basic, rule: Callable[[sp.Basic], sp.Basic]) -> sp.Basic:
    """Apply `rule` bottom-up to every node of `expr` (children first)."""
    if not expr.args or isinstance(expr, (sp.Idx, sp.IndexedBase, sp.Symbol, sp.Number)):
        return rule(expr)
    new_args = tuple(transform(arg, rule) for arg in expr.args)
    if new_args != expr.args:
        expr = expr.func(*new_args)
    return rule(expr)


# --------------------------------------------------------------------------------------------------
# guards


def holds_over_index_ranges(condition: sp.Basic) -> bool:
    """True when `condition` holds for every value of the indices it mentions.

    The guards SymPy produces are conjunctions of linear inequalities in the indices, which hold on a
    box of index values exactly when they hold at its corners, so the corners are checked.
    """
    if condition is sp.true:
        return True
    if condition is sp.false:
        return False
    facts = _SIZE_FACTS.get()
    return _holds_over_index_ranges(condition, frozenset(facts.items()) if facts else frozenset())


@lru_cache(maxsize=4096)
def _holds_over_index_ranges(condition: sp.Basic, facts: frozenset) -> bool:
    """`holds_over_index_ranges` under the size facts `facts` (the cache key: a derivation asks about
    the same guards again and again). At each corner the cheap sufficient test comes first; SymPy's
    `simplify`, which is slow, only when that test does not settle it."""
    indices = sorted(condition.atoms(sp.Idx), key=sp.default_sort_key)
    for corner in product(*[(i.lower, i.upper) for i in indices]):
        value = _known(condition.xreplace(dict(zip(indices, corner))))
        if value is sp.true or value is not sp.false and _settled_without_simplify(value):
            continue
        if value is not sp.false and _refuted(value):
            return False  # false for some sizes: simplify could not have proved it
        value = value.simplify() if value not in (sp.true, sp.false) else value
        if value is not sp.true and not _nonnegative_polynomial(value):
            return False
    return True


_TRIAL_SIZES = (1, 2, 3, 7)


def _refuted(condition: sp.Basic) -> bool:
    """Whether `condition`, in sizes that are positive whole numbers, is false for some of them (tried
    at a few small values). Such a condition is not true for every size, so SymPy's `simplify`, slow
    on the guards of a pooling layer (w₃/2 − 1/2 ≤ w₄ − 1), cannot prove it and need not be asked."""
    symbols = sorted(condition.free_symbols, key=sp.default_sort_key)
    if not symbols or not all(x.is_integer and x.is_positive for x in symbols):
        return False
    for values in islice(product(_TRIAL_SIZES, repeat=len(symbols)), 64):
        if condition.xreplace(dict(zip(symbols, map(sp.Integer, values)))) is sp.false:
            return True
    return False


def _settled_without_simplify(condition: sp.Basic) -> bool:
    try:
        return _nonnegative_polynomial(condition)
    except sp.PolynomialError:  # a part that is no polynomial (Mod): left to simplify
        return False


def _nonnegative_polynomial(condition: sp.Basic) -> bool:
    """A conjunction of inequalities between polynomials in positive whole sizes that each hold
    because, written in t = size − 1 ≥ 0, the difference has only non-negative coefficients (a
    flattened position c·h·w + … is at most n − 1 where n = c·h·w)."""
    parts = condition.args if isinstance(condition, sp.And) else (condition,)
    for part in parts:
        if part is sp.true:
            continue
        if not isinstance(part, (sp.GreaterThan, sp.LessThan, sp.StrictGreaterThan, sp.StrictLessThan)):
            return False
        big, small = (part.lhs, part.rhs) if isinstance(part, (sp.GreaterThan, sp.StrictGreaterThan)) else (part.rhs, part.lhs)
        if isinstance(part, (sp.StrictGreaterThan, sp.StrictLessThan)):
            gap = big - small - 1
        else:
            gap = big - small
        symbols = sorted(gap.free_symbols, key=sp.default_sort_key)
        if not symbols or not all(x.is_integer and x.is_positive for x in symbols):
            return False
        shifted = sp.expand(gap.xreplace({x: x + 1 for x in symbols}))
        poly = sp.Poly(shifted, *symbols)
        if any(coefficient < 0 for coefficient in poly.coeffs()):
            return False
    return True


def is_index_guard(condition: sp.Basic) -> bool:
    """A condition on index values only (m >= q + 1), as opposed to one on the values of quantities
    (z_i > 0 in a piecewise activation), which is part of the function and must be kept."""
    if condition in (sp.true, sp.false):
        return True
    if condition.atoms(sp.Indexed):
        return False
    return bool(condition.atoms(sp.Idx)) and all(s.is_integer for s in condition.free_symbols)


def _discharge(expr: sp.Basic) -> sp.Basic:
    if isinstance(expr, Iverson):
        condition = expr.args[0]
        if holds_over_index_ranges(condition):
            return sp.S.One
        if isinstance(condition, sp.core.relational.Relational) and holds_over_index_ranges(condition.negated):
            return sp.S.Zero
        return expr
    if not isinstance(expr, sp.Piecewise):
        return expr
    if not all(is_index_guard(condition) for _, condition in expr.args):
        return expr  # a genuine piecewise function, keep it
    kept = []
    for branch, condition in expr.args:
        if holds_over_index_ranges(condition):
            if not kept:
                return branch
            kept.append((branch, True))
            break
        if isinstance(condition, sp.core.relational.Relational) and holds_over_index_ranges(condition.negated):
            continue  # never true over the index ranges: the branch is dropped
        kept.append((branch, condition))
    if len(kept) == len(expr.args):
        return expr
    return sp.Piecewise(*kept) if kept else sp.S.Zero


def factor_piecewise(expr: sp.Basic) -> sp.Basic:
    """Piecewise((u p, c), (u q, True)) → u Piecewise((p, c), (q, True)) for every factor u that all
    branches share: SymPy's sums push a common factor into the branches; this takes it out again."""
    if not isinstance(expr, sp.Piecewise):
        return expr
    common = None
    for branch, _ in expr.args:
        found = set(sp.Mul.make_args(branch)) - {sp.S.One, sp.S.NegativeOne}
        common = found if common is None else common & found
    common = {f for f in common or () if not f.is_number}
    if not common:
        return expr
    factor = sp.Mul(*sorted(common, key=sp.default_sort_key))
    return factor * sp.Piecewise(*[(branch / factor, condition) for branch, condition in expr.args])


def factor_delta(expr: sp.Basic) -> sp.Basic:
    """u δ_iq + v δ_iq → δ_iq (u + v): SymPy's derivative of a compound activation arrives term by
    term; keeping g′ as one factor lets the result read (Wᵀδ) ⊙ g′(z)."""
    if not expr.is_Add:
        return expr
    common = None
    for term in expr.args:
        found = {f for f in sp.Mul.make_args(term) if isinstance(f, sp.KroneckerDelta)}
        common = found if common is None else common & found
        if not common:
            return expr
    delta = sp.Mul(*sorted(common, key=sp.default_sort_key))
    return delta * sp.Add(*[term / delta for term in expr.args])


def _common_delta(expr: sp.Basic) -> sp.Basic:
    """Piecewise((u δ_iq, c), (v δ_iq, True)) → δ_iq Piecewise((u, c), (v, True)) (every common δ).

    SymPy differentiates a piecewise function branch by branch, so every branch carries the same
    Kronecker delta; factoring it out lets the sum collapse. Valid because each branch equals
    δ_iq times its cofactor (a branch equal to 0 has cofactor 0).
    """
    if not isinstance(expr, sp.Piecewise):
        return expr
    deltas = None
    for branch, _ in expr.args:
        if branch == 0:
            continue
        found = {f for f in sp.Mul.make_args(branch) if isinstance(f, sp.KroneckerDelta)}
        deltas = found if deltas is None else deltas & found
        if not deltas:
            return expr
    if not deltas:
        return expr
    delta = sp.Mul(*sorted(deltas, key=sp.default_sort_key))
    branches = [((branch / delta) if branch != 0 else branch, condition) for branch, condition in expr.args]
    return delta * sp.Piecewise(*branches)


def discharge_guards(expr: sp.Basic) -> sp.Basic:
    """Replace every index-range Piecewise guard that is true by construction with its branch."""
    return transform(expr, _discharge)


# --------------------------------------------------------------------------------------------------
# sums


def _same_range(i: sp.Idx, x: sp.Basic) -> bool:
    return isinstance(x, sp.Idx) and _known(x.lower) == _known(i.lower) and _known(x.upper) == _known(i.upper)


def _affine_solution(delta: sp.KroneckerDelta, i: sp.Idx) -> tuple[sp.Expr, sp.Integer] | None:
    """For δ(α·i + β, γ) with α a non-zero integer and γ free of i: the value α·i + β must take
    (γ − β) and α, so that i = (γ − β)/α where α divides it. None for other deltas."""
    left, right = delta.args
    if right.has(i) and not left.has(i):
        left, right = right, left
    if right.has(i) or not left.has(i):
        return None
    alpha = sp.diff(left, i)
    if not (alpha.is_Integer and alpha != 0) or (left - alpha * i).has(i):
        return None
    return right - (left - alpha * i), alpha


def _collapse_affine(factors, delta: sp.KroneckerDelta, i: sp.Idx, lo: sp.Expr, hi: sp.Expr) -> sp.Expr | None:
    """Σ_{i=lo}^{hi} δ(α i + β, γ) f(i) = f((γ − β)/α), where (γ − β)/α is a whole number in
    [lo, hi], else 0. The conditions become a guard unless they hold over every index value (a
    sum over exactly the range of the other index); SymPy's own summation ignores the integrality
    (Σ_k w_k δ(2i + k, 1) gives a term δ_{1/2}), which is why this is done here."""
    found = _affine_solution(delta, i)
    if found is None:
        return None
    numerator, alpha = found
    point = numerator / alpha
    rest = sp.Mul(*[g for g in factors if g is not delta]).xreplace({i: point})
    conditions = []
    if abs(alpha) != 1:
        conditions.append(sp.Eq(sp.Mod(numerator, alpha), 0))
    for bound in (sp.Ge(point, lo), sp.Le(point, hi)):
        if not holds_over_index_ranges(bound):
            conditions.append(bound)
    if not conditions:
        return rest
    return Iverson(sp.And(*conditions)) * rest


def _limit_index(limit) -> sp.Idx:
    return limit[0]


def _collapse_sum(expr: sp.Basic) -> sp.Basic:
    if not isinstance(expr, sp.Sum):
        return expr
    if len(expr.limits) == 1:
        return _collapse_one(expr)
    if expr.function.is_Add:  # term by term: each may collapse on another index
        return sp.Add(*[_collapse_sum(sp.Sum(term, *expr.limits)) for term in expr.function.args])
    # several limits: collapse the innermost that a Kronecker delta removes, then the rest (SymPy
    # merges nested sums into one with several limits, so a sum that stays is left as it is)
    for k, limit in enumerate(expr.limits):
        one = _collapse_one(sp.Sum(expr.function, limit))
        if not _sums_over(one, limit[0]):
            rest = expr.limits[:k] + expr.limits[k + 1:]
            return _collapse_sum(sp.Sum(one, *rest))
    return expr


def _sums_over(expr: sp.Basic, i: sp.Basic) -> bool:
    return any(i in (limit[0] for limit in s.limits) for s in expr.atoms(sp.Sum))


def _collapse_one(expr: sp.Sum) -> sp.Basic:
    (i, lo, hi) = expr.limits[0]
    f = expr.function
    if f == 0:
        return sp.S.Zero
    if f.is_Add:
        return sp.Add(*[_collapse_one(sp.Sum(term, (i, lo, hi))) for term in f.args])
    if not f.has(i):
        return f * (hi - lo + 1)
    factors = sp.Mul.make_args(_common_delta(f))  # Sum() folds a factored δ back into a Piecewise
    if any(g.is_Add and g.has(sp.KroneckerDelta) for g in factors):
        distributed = sp.expand_mul(f)
        if distributed != f:
            return _collapse_one(sp.Sum(distributed, (i, lo, hi)))  # distribute to reach the δ
    for factor in factors:
        if isinstance(factor, sp.KroneckerDelta) and i in factor.args:
            other = factor.args[1] if factor.args[0] == i else factor.args[0]
            if _same_range(i, other) and not other == i:
                rest = sp.Mul(*[g for g in factors if g is not factor])
                return rest.xreplace({i: other})
    for factor in factors:
        if isinstance(factor, sp.KroneckerDelta) and factor.has(i):
            collapsed = _collapse_affine(factors, factor, i, lo, hi)
            if collapsed is not None:
                return collapsed
    constant = [g for g in factors if not g.has(i)]
    if constant:
        varying = [g for g in factors if g.has(i)]
        return sp.Mul(*constant) * sp.Sum(sp.Mul(*varying), (i, lo, hi))
    return expr


def collapse(expr: sp.Basic) -> sp.Basic:
    """Discharge guards and collapse Kronecker-delta sums until nothing changes."""
    previous = None
    while expr != previous:
        previous = expr
        expr = discharge_guards(expr)
        if expr.has(sp.Piecewise):
            expr = transform(expr, _common_delta)
        expr = transform(expr, _collapse_sum)
    return expr


def free_indices(expr: sp.Basic) -> set[sp.Idx]:
    """Indices of `expr` that are not bound by a sum."""
    return set(_free_indices(expr))


@lru_cache(maxsize=4096)
def _free_indices(expr: sp.Basic) -> frozenset[sp.Idx]:
    """`free_indices`, memoised: the chain rule, the collapse of sums and the matrix recognition ask
    it of the same expressions again and again (a twentieth of a derivation when not memoised)."""
    bound: set[sp.Idx] = set()
    for s in expr.atoms(sp.Sum):
        bound.update(_limit_index(lim) for lim in s.limits)
    return frozenset(i for i in expr.atoms(sp.Idx) if i not in bound or _occurs_free(expr, i))


def _occurs_free(expr: sp.Basic, i: sp.Idx) -> bool:
    if isinstance(expr, sp.Sum) and any(_limit_index(lim) == i for lim in expr.limits):
        return False
    if expr == i:
        return True
    return any(_occurs_free(arg, i) for arg in expr.args)


def sum_over(expr: sp.Expr, i: sp.Idx) -> sp.Sum:
    """Σ_i expr over the full range of i."""
    return sp.Sum(expr, (i, i.lower, i.upper))
