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


def test_collapse_over_a_different_range_keeps_the_range_as_a_guard():
    """δ_{iq} with q running over another layer: Σ_i collapses to x_q only where q is in i's range."""
    i, q = index("i", LayerRef(2)), index("q", LayerRef(1))
    x = Q("a", 2).base
    expr = sp.Sum(sp.KroneckerDelta(i, q) * x[i], (i, i.lower, i.upper))
    assert collapse(expr) == sp.Piecewise((x[q], q <= i.upper), (0, True))


def test_collapse_over_equal_sizes_needs_no_guard():
    """Sizes equal by construction (a residual sum) collapse as one range."""
    from derive.indexing import assume_sizes
    from derive.notation import size

    i, q = index("i", LayerRef(2)), index("q", LayerRef(1))
    x = Q("a", 2).base
    expr = sp.Sum(sp.KroneckerDelta(i, q) * x[i], (i, i.lower, i.upper))
    with assume_sizes({size(LayerRef(2)): size(LayerRef(1))}):
        assert collapse(expr) == x[q]


def test_strided_collapse_keeps_integrality():
    """z_i = Σ_k w_k a_{2i+k}: ∂/∂a_1 sums δ(2i + k, 1); only i = 0, k = 1 contributes. SymPy's own
    summation gives the extra term w_0 δ_{1/2}; the collapse carries the divisibility condition."""
    n, K = sp.Symbol("n", integer=True, positive=True), 2
    i = sp.Idx(sp.Symbol("i", integer=True), (0, n - 1))
    k = sp.Idx(sp.Symbol("k", integer=True), (0, K - 1))
    w, a, d = sp.IndexedBase("w"), sp.IndexedBase("a"), sp.IndexedBase("d")
    vjp = sp.Sum(d[i] * sp.Sum(w[k] * a[2 * i + k], (k, 0, K - 1)), (i, 0, n - 1))
    local = collapse(sp.diff(vjp, a[1]))
    values = {n: 3}
    got = local.xreplace(values).doit()
    assert sp.expand(got - d[0] * w[1]) == 0


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


def test_a_rule_summing_over_the_target_letter_is_renamed_before_differentiating():
    """sympy#21891: d/da_q of Σ_q W_iq a_q gives Σ_q W_iq (wrong); the engine renames the dummy."""
    from derive.backprop import fresh_dummies

    l, prev = LayerRef(2), LayerRef(1)
    i, q = index("i", l), index("q", prev)
    W, a = Q("W", 2).base, Q("a", 1).base
    rule = sp.Sum(W[i, q] * a[q], (q, q.lower, q.upper))
    assert sp.diff(rule, a[q]) != W[i, q]  # SymPy's own answer, wrong
    renamed = fresh_dummies(rule, {q})
    assert collapse(sp.diff(renamed, a[q])) == W[i, q]
