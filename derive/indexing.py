"""Index-level calculus helpers: collapsing Kronecker-delta sums and discharging range guards.

SymPy differentiates an `Indexed` entry by another to a `KroneckerDelta`, but its `.doit()` leaves
nested sums uncollapsed and wraps results in `Piecewise` guards such as `n >= q + 1` that hold by
construction (every index stays inside its range). These helpers finish the job, and they only do
steps that are valid: a sum collapses on δ_{iq} only when q runs over exactly the range of i, and a
guard is dropped only when it is proved true over the whole index range.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import sympy as sp


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
    indices = sorted(condition.atoms(sp.Idx), key=sp.default_sort_key)
    for corner in product(*[(i.lower, i.upper) for i in indices]):
        value = condition.xreplace(dict(zip(indices, corner)))
        value = value.simplify() if value not in (sp.true, sp.false) else value
        if value is not sp.true:
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
    if not isinstance(expr, sp.Piecewise):
        return expr
    if not all(is_index_guard(condition) for _, condition in expr.args):
        return expr  # a genuine piecewise function, keep it
    for branch, condition in expr.args:
        if holds_over_index_ranges(condition):
            return branch
        if not (condition.atoms(sp.Idx)):
            break
    return expr


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
    return isinstance(x, sp.Idx) and x.lower == i.lower and x.upper == i.upper


def _limit_index(limit) -> sp.Idx:
    return limit[0]


def _collapse_sum(expr: sp.Basic) -> sp.Basic:
    if not isinstance(expr, sp.Sum):
        return expr
    if len(expr.limits) > 1:  # nest, innermost first
        inner = _collapse_sum(sp.Sum(expr.function, expr.limits[0]))
        return _collapse_sum(sp.Sum(inner, *expr.limits[1:])) if len(expr.limits) > 2 else _collapse_sum(
            sp.Sum(inner, expr.limits[1])
        )
    (i, lo, hi) = expr.limits[0]
    f = expr.function
    if f == 0:
        return sp.S.Zero
    if f.is_Add:
        return sp.Add(*[_collapse_sum(sp.Sum(term, (i, lo, hi))) for term in f.args])
    if not f.has(i):
        return f * (hi - lo + 1)
    factors = sp.Mul.make_args(_common_delta(f))  # Sum() folds a factored δ back into a Piecewise
    if any(g.is_Add and g.has(sp.KroneckerDelta) for g in factors):
        return _collapse_sum(sp.Sum(sp.expand_mul(f), (i, lo, hi)))  # distribute to reach the δ
    for factor in factors:
        if isinstance(factor, sp.KroneckerDelta) and i in factor.args:
            other = factor.args[1] if factor.args[0] == i else factor.args[0]
            if _same_range(i, other) and not other == i:
                rest = sp.Mul(*[g for g in factors if g is not factor])
                return rest.xreplace({i: other})
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
    bound: set[sp.Idx] = set()
    for s in expr.atoms(sp.Sum):
        bound.update(_limit_index(lim) for lim in s.limits)
    return {i for i in expr.atoms(sp.Idx) if i not in bound or _occurs_free(expr, i)}


def _occurs_free(expr: sp.Basic, i: sp.Idx) -> bool:
    if isinstance(expr, sp.Sum) and any(_limit_index(lim) == i for lim in expr.limits):
        return False
    if expr == i:
        return True
    return any(_occurs_free(arg, i) for arg in expr.args)


def sum_over(expr: sp.Expr, i: sp.Idx) -> sp.Sum:
    """Σ_i expr over the full range of i."""
    return sp.Sum(expr, (i, i.lower, i.upper))
