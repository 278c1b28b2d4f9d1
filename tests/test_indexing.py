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
    from derive.indexing import Iverson

    assert collapse(expr) == Iverson(q <= i.upper) * x[q]
    assert collapse(expr).xreplace({q: 0}) == x[0]  # with concrete indices the guard evaluates


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


def test_a_guard_false_at_small_sizes_is_refused_without_simplify(monkeypatch):
    """A size relation such as w/2 − 1/2 ≤ v − 1 is false for some positive sizes (w = 3, v = 1):
    it is refused without asking SymPy's slow simplify, and a true one is still accepted."""
    w, v = (sp.Symbol(name, integer=True, positive=True) for name in ("w_9", "v_9"))
    asked = []
    original = sp.Basic.simplify
    monkeypatch.setattr(sp.Basic, "simplify", lambda self, *a, **k: asked.append(self) or original(self, *a, **k))
    assert not holds_over_index_ranges(w / 2 - sp.Rational(1, 2) <= v - 1)
    assert not asked
    assert holds_over_index_ranges(2 * w + v >= 3)


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


def test_convolution_with_stride_and_padding_collapses_to_the_scatter_form():
    """z[f,i,j] = Σ_c Σ_p Σ_q K[f,c,p,q] a[c, 2i+p−1, 2j+q−1] with zero padding 1 (a guard on the
    input's range): ∂/∂a[c,u,v] keeps the sum over the outputs whose windows hold (u, v), and the
    guards say which; the padding guard itself holds for every input index and is discharged."""
    from derive.indexing import Iverson

    def I(name, hi):  # noqa: E743
        return sp.Idx(sp.Symbol(name, integer=True), (0, hi - 1))

    C0, H0, W0, F, H1, W1 = sp.symbols("c_0 h_0 w_0 c_1 h_1 w_1", integer=True, positive=True)
    a, K, d = sp.IndexedBase("a_0"), sp.IndexedBase("K_1"), sp.IndexedBase("delta_1")
    f, i, j, c = I("f", F), I("i", H1), I("j", W1), I("c", C0)
    p, q = I("p", 3), I("q", 3)
    r, t = 2 * i + p - 1, 2 * j + q - 1
    z = sp.Sum(Iverson(sp.And(r >= 0, r <= H0 - 1, t >= 0, t <= W0 - 1)) * K[f, c, p, q] * a[c, r, t],
               (c, 0, C0 - 1), (p, 0, 2), (q, 0, 2))
    c2, u, v = I("c2", C0), I("u", H0), I("v", W0)
    grad = collapse(sp.Sum(d[f, i, j] * collapse(sp.diff(z, a[c2, u, v])), (f, 0, F - 1), (i, 0, H1 - 1), (j, 0, W1 - 1)))
    assert not grad.has(sp.KroneckerDelta) and grad.has(K[f, c2, u + 1 - 2 * i, v + 1 - 2 * j])
    # against the definition at concrete sizes: a 5×5 input, 3×3 output, loops over every entry
    import random

    rng = random.Random(0)
    sizes = {C0: 2, H0: 5, W0: 5, F: 2, H1: 3, W1: 3}
    Kv = {(ff, cc, pp, qq): rng.randint(-5, 5) for ff in range(2) for cc in range(2) for pp in range(3) for qq in range(3)}
    dv = {(ff, ii, jj): rng.randint(-5, 5) for ff in range(2) for ii in range(3) for jj in range(3)}
    for cc, uu, vv in [(0, 0, 0), (1, 2, 3), (0, 4, 4), (1, 1, 0)]:
        expected = sum(Kv[ff, cc, pp, qq] * dv[ff, ii, jj] for ff in range(2) for ii in range(3) for jj in range(3)
                       for pp in range(3) for qq in range(3) if 2 * ii + pp - 1 == uu and 2 * jj + qq - 1 == vv)
        from derive.matrixform import evaluate_index_form

        values = {("K_1", k): sp.Integer(v_) for k, v_ in Kv.items()} | {("delta_1", k): sp.Integer(v_) for k, v_ in dv.items()}
        value = evaluate_index_form(grad, values, {**sizes, c2: cc, u: uu, v: vv})
        assert value == expected
