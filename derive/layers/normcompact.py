"""The compact three-term form of a normalisation's input error, proved equal to what the engine
derived.

The engine derives the error of the input x of a normalisation along every path, one step at a time:
through the centring (∂C/∂xⱼ = ∂C/∂x̃ⱼ − (1/n) Σᵢ ∂C/∂x̃ᵢ, the path through the mean) and through
the scaling (∂C/∂x̃ⱼ = (gⱼ − x̂ⱼ (1/n) Σᵢ gᵢ x̂ᵢ)/σ̂, the path through the variance), where g = ∂C/∂x̂.
Put together and using Σᵢ x̂ᵢ = 0 (x̂ is centred), this is the form people remember:

    ∂C/∂xⱼ = (1/σ̂) (gⱼ − (1/n) Σᵢ gᵢ − x̂ⱼ (1/n) Σᵢ gᵢ x̂ᵢ).

Here the engine proves that: both sides are written down to the input x and the error g (x̂ = x̃/σ̂,
x̃ = x − μ, σ̂ of x̃) and evaluated entry by entry at concrete sizes with random rational entries, in
exact arithmetic (ε stays a symbol), for every entry; only then is the compact form added to the
derivation, as a step after the engine's own result. `axis` is the index the statistics run over:
the features of one sample (layer normalisation) or the samples of the minibatch (batch
normalisation); the form is the same.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import sympy as sp

from derive.layers.base import Node
from derive.layers.normalise import Scale, root_mean_square
from derive.matrixform import NotRecognised, evaluate_index_form, to_matrix_form
from derive.notation import index, sample_index

PROOF_SIZE = 3  # the number of entries the statistics run over in the proof


def compact_error(g: sp.IndexedBase, xhat: sp.IndexedBase, sigma: Callable[[tuple], sp.Expr],
                  at: tuple, axis: int, running: sp.Idx) -> sp.Expr:
    """(1/σ̂)(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) at the entry `at`, the means over position `axis`
    (`running` is the summation index that replaces it)."""
    other = tuple(running if d == axis else i for d, i in enumerate(at))
    n = running.upper + 1
    limits = (running, running.lower, running.upper)
    return (g[at] - sp.Sum(g[other], limits) / n - xhat[at] * sp.Sum(g[other] * xhat[other], limits) / n) / sigma(at)


def proved_equal(engine: sp.Expr, compact: sp.Expr, free: tuple[sp.Idx, ...], down_to_input: Callable[[sp.Expr], sp.Expr],
                 *, seed: int = 0) -> bool:
    """Both forms written down to the input and the upstream error, then compared entry by entry at
    concrete sizes with random rational entries, exactly."""
    left, right = down_to_input(engine), down_to_input(compact)
    rng = random.Random(seed)
    sizes = {}
    for expr in (left, right, sp.Tuple(*free)):
        for i in expr.atoms(sp.Idx):
            for s in i.upper.free_symbols:
                sizes.setdefault(s, PROOF_SIZE)
    values: dict = {}
    for entry in sorted((left + right).atoms(sp.Indexed), key=sp.default_sort_key):
        label = str(entry.base.label)
        ranges = [int((i.upper + 1).xreplace(sizes)) for i in entry.indices]
        for pos in itertools.product(*[range(r) for r in ranges]):
            if (label, pos) not in values:
                values[(label, pos)] = sp.Rational(rng.randint(-9, 9), rng.randint(1, 9))
    for pos in itertools.product(*[range(int((i.upper + 1).xreplace(sizes))) for i in free]):
        env = {**sizes, **dict(zip(free, pos))}
        a, b = evaluate_index_form(left, values, env), evaluate_index_form(right, values, env)
        if sp.expand(a - b) != 0:
            numerator, _ = sp.fraction(sp.together(a - b))
            if sp.expand(numerator) != 0:
                return False
    return True


def matrix_form(compact: sp.Expr, free: tuple[sp.Idx, ...]) -> sp.Expr | None:
    try:
        return to_matrix_form(compact, free)
    except NotRecognised:
        return None


def replace_entries(expr: sp.Expr, base: sp.IndexedBase, value: Callable[[tuple], sp.Expr]) -> sp.Expr:
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: value(tuple(e.indices)))


def compact_steps(centre: Node, network, result, batch: bool) -> list:
    """After the engine's error of the input x of a centring followed by a scaling: the compact
    three-term form, added as two steps (index form and array form) once `normcompact.proved_equal`
    has shown it equal to the engine's result entry by entry; nothing when it is not (the engine's
    own form stands) or when x has no named error."""
    from derive.backprop import Step
    from derive.matrixform import entries_agree

    x = centre.inputs[0]
    if x.gradient not in result.results or x.gradient.batched(batch) is None:
        return []
    scalers = [n for n, _ in network.consumers.get(centre.output, ()) if isinstance(n.kind, Scale)]
    if len(scalers) != 1 or centre.output.gradient not in result.results:
        return []
    scale = scalers[0]
    engine_result = result.results[x.gradient]
    free = tuple(engine_result.lhs.indices)
    grad_u = result.results[centre.output.gradient]
    grad_u_free = tuple(grad_u.lhs.indices)
    engine = replace_entries(engine_result.rhs, grad_u.lhs.base,
                             lambda idx: grad_u.rhs.xreplace(dict(zip(grad_u_free, idx))))

    sequence = len(scale.in_axes[0]) > 1  # [features, tokens]: the statistics of each token

    def sigma(at):
        if sequence:
            return root_mean_square(scale, at[-1] if batch else None, tuple(at[:2]))
        return root_mean_square(scale, at[1] if batch else None, at[0])

    axis = 1 if centre.kind.over_samples else 0  # the index the statistics run over
    g, xhat = scale.output.gradient.batched(batch).base, scale.out(batch).base
    running = sample_index("t") if axis else (scale.out_axes[0].index("i") if sequence else index("i", scale.layer))
    compact = compact_error(g, xhat, sigma, free, axis, running)
    u_base, x_base = centre.out(batch).base, centre.input(batch).base
    r = sample_index("w") if axis else (centre.in_axes[0][0].index("r") if sequence else centre.in_index("r"))

    def mean_of_x(idx):
        other = tuple(r if d == axis else i for d, i in enumerate(idx))
        return sp.Sum(x_base[other], (r, r.lower, r.upper)) / (r.upper + 1)

    def down(expr):
        expr = replace_entries(expr, xhat, lambda idx: u_base[idx] / sigma(idx))
        return replace_entries(expr, u_base, lambda idx: x_base[idx] - mean_of_x(idx))

    if not proved_equal(engine, compact, free, down):
        return []
    steps = [Step(engine_result.lhs, compact, "compact_form_proved")]
    matrix = matrix_form(compact, free)
    if matrix is not None and entries_agree(compact, matrix, free):
        steps.append(Step(engine_result.matrix_lhs, matrix, "matrix_form", matrix=True))
    return steps


__all__ = ["compact_error", "compact_steps", "proved_equal", "matrix_form", "replace_entries"]
