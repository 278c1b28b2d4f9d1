"""The two readable forms of attention's softmax over the keys, each proved before it is used.

1. The local derivative in terms of the output. The engine differentiates the rule
   α[h,j,u] = M[j,u] e^{s[h,j,u]} / Σ_w M[j,w] e^{s[h,j,w]} and collapses the Kronecker sums; what it
   finds is rewritten as [h = g][j = v] α[h,j,u] ([u = k] − α[h,j,k]) (the full Jacobian, not only
   its diagonal), and used only if putting the definition of α back gives the engine's expression
   again (the difference expands to 0 in exact arithmetic). The causal mask needs no term of its
   own: a masked weight is 0, so its row and column of the Jacobian vanish.

2. The score error people remember: dS = A ⊙ (dA − rowsum(dA ⊙ A)), the row sum over the keys. It is
   compared with the engine's score error entry by entry, both written down to the scores and the
   error of the weights (α replaced by its definition), at concrete sizes with random rational
   entries, exactly (`normcompact.proved_equal`); only then is it added as a step after the engine's
   result, in index form and as whole arrays.
"""

from __future__ import annotations

import sympy as sp

from derive.layers.base import Node


def _split_deltas(expr: sp.Expr) -> tuple[list[sp.KroneckerDelta], sp.Expr]:
    factors = sp.Mul.make_args(expr)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    return deltas, sp.Mul(*[f for f in factors if not isinstance(f, sp.KroneckerDelta)])


def _definition(node: Node, batch: bool):
    """α entries → their rule in terms of the scores."""
    alpha = node.out(batch).base

    def value(idx):
        return node.kind.entry(node, tuple(idx[:3]), idx[3] if batch else None)

    return alpha, value


def _replace(expr: sp.Expr, base, value) -> sp.Expr:
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: value(tuple(e.indices)))


def jacobian_in_terms_of_output(node: Node, expr: sp.Expr, sample) -> sp.Expr | None:
    """∂α[h,j,u]/∂s[g,v,k] as [h = g][j = v] α[h,j,u]([u = k] − α[h,j,k]) (and [s = t] per minibatch)
    when that is proved equal to `expr`; otherwise None."""
    batch = sample is not None
    deltas, rest = _split_deltas(expr)
    h, j, u = node.out_indices("out")
    g, v, k = node.in_indices(0, "target")
    pairs = {frozenset(d.args) for d in deltas}
    if not {frozenset((h, g)), frozenset((j, v))} <= pairs:
        return None
    alpha, value = _definition(node, batch)
    at = lambda *idx: alpha[(*idx, sample) if batch else idx]  # noqa: E731
    core = at(h, j, u) * (sp.KroneckerDelta(u, k) - at(h, j, k))
    if sp.expand(_replace(core, alpha, value) - rest) != 0:
        return None
    return sp.Mul(*deltas) * core


def score_error_steps(node: Node, result, batch: bool) -> list:
    """The compact score error, as an index step and an array step after the engine's result, once
    proved equal to it; nothing when the proof fails (the engine's form stands)."""
    from derive.attnops import KeySum
    from derive.backprop import Step
    from derive.layers.normcompact import proved_equal
    from derive.matrixform import entries_agree

    scores = node.inputs[0]
    if scores.gradient not in result.results or node.output.gradient not in result.results:
        return []
    engine = result.results[scores.gradient]
    free = tuple(engine.lhs.indices)
    g, v, k = free[:3]
    alpha = node.out(batch).base
    grad_alpha = node.output.gradient.batched(batch).base
    rest = tuple(free[3:])
    u = node.out_indices("out")[2]
    u = sp.Idx(sp.Symbol("u", integer=True), (k.lower, k.upper)) if u == k else u
    compact = alpha[free] * (grad_alpha[free] - sp.Sum(grad_alpha[(g, v, u, *rest)] * alpha[(g, v, u, *rest)],
                                                       (u, u.lower, u.upper)))
    _, value = _definition(node, batch)

    def down(expr):
        return _replace(expr, alpha, value)

    if not proved_equal(engine.rhs, compact, free, down):
        return []
    steps = [Step(engine.lhs, compact, "attention_score_error_proved")]
    A, dA = node.out(batch).symbol, node.output.gradient.batched(batch).symbol
    matrix = A * (dA - KeySum(dA * A, sp.Integer(batch)))
    if entries_agree(compact, matrix, free):
        steps.append(Step(engine.matrix_lhs, matrix, "matrix_form", matrix=True))
    return steps


__all__ = ["jacobian_in_terms_of_output", "score_error_steps"]
