"""Kronecker-delta collapse and guard discharge, the index calculus everything rests on."""

import sympy as sp

from derive.indexing import collapse, holds_over_index_ranges
from derive.notation import LayerRef, Q, index


def test_collapse_weight_derivative_of_dense_vjp():
    l, prev = LayerRef(2), LayerRef(1)
    i, j, p, q = index("i", l), index("j", prev), index("p", l), index("q", prev)
    W, a, d = Q("W", 2).base, Q("a", 1).base, Q("delta", 2).base
    z_i = sp.Sum(W[i, j] * a[j], (j, j.lower, j.upper))
    vjp = sp.Sum(d[i] * z_i, (i, i.lower, i.upper))
    assert collapse(sp.diff(vjp, W[p, q])) == d[p] * a[q]
    assert collapse(sp.diff(vjp, a[q])) == sp.Sum(W[i, q] * d[i], (i, i.lower, i.upper))


def test_collapse_refuses_mismatched_ranges():
    """δ_{iq} with q running over a different layer must not collapse Σ_i."""
    i, q = index("i", LayerRef(2)), index("q", LayerRef(1))
    x = Q("a", 2).base
    expr = sp.Sum(sp.KroneckerDelta(i, q) * x[i], (i, i.lower, i.upper))
    assert collapse(expr) == expr


def test_guards_are_discharged_only_when_true_over_the_range():
    n = sp.Symbol("n_1", integer=True, positive=True)
    q = index("q", LayerRef(1))
    assert holds_over_index_ranges(n >= q + 1)
    assert not holds_over_index_ranges(n >= q + 2)
    assert holds_over_index_ranges(sp.And(q >= 0, q <= n - 1))


def test_distributes_to_reach_a_kronecker_delta_inside_a_factor():
    l = LayerRef(3)
    i, q = index("i", l), index("q", l)
    a, g = Q("a", 3).base, Q("grad_a", 3).base
    expr = sp.Sum(g[i] * a[i] * (sp.KroneckerDelta(i, q) - a[q]), (i, i.lower, i.upper))
    out = collapse(expr)
    assert out == g[q] * a[q] - a[q] * sp.Sum(g[i] * a[i], (i, i.lower, i.upper))
