"""The error of a convolution's input in three forms, each derived or stated and then proved equal
entry by entry by the engine at small sizes.

1. The scatter form, derived: the chain rule over the layer's rule (`backprop.chain_rule`), the
   Kronecker sums collapsed over the affine indices s·i + d·p − P (the stride's divisibility kept as
   an Iverson bracket): every output whose window read x[c, u, v] sends back its error times the
   kernel entry that multiplied it.
2. The full correlation: the error dilated by the stride (s − 1 zeros between entries), padded by
   d(k − 1), correlated with the kernel rotated by 180° (K[f, c, k − 1 − p, …], input and output
   channels swapped), the first P rows and columns cropped. Stated here as an index form and proved
   equal to (1).
3. The im2col matrix form: Kᵀ applied to the error column by column, then col2im (an accumulating
   strided add per kernel offset). The recognised operation of (1), proved equal to (1).

Each comparison evaluates both sides at every entry with exact rational values (random error and
kernel), at the network's small sizes (`windowsizes`) and, for stride > 1, also at sizes where the
stride does not divide the span (the last rows that no window reaches get no error).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.backprop import chain_rule
from derive.indexing import Iverson
from derive.layers import Node
from derive.matrixform import entries_agree, evaluate_index_form
from derive.notation import Q


@dataclass(frozen=True)
class InputErrorForms:
    node: Node
    scatter: sp.Expr  # index form (free c, u, v)
    full: sp.Expr  # index form of the full correlation
    im2col: sp.Expr  # matrix form
    free: tuple
    scatter_steps: tuple
    full_proved: bool
    im2col_proved: bool
    entries: int  # entries compared
    sizes: dict  # the concrete sizes of the comparison


def _error_base(node: Node) -> sp.IndexedBase:
    return node.output.gradient.base


def scatter_form(node: Node) -> tuple[sp.Expr, tuple, tuple]:
    """∂C/∂x[c, u, v] = Σ_f Σ_i Σ_j δ[f, i, j] ∂z[f, i, j]/∂x[c, u, v], collapsed by the engine."""
    target_indices = node.in_indices(0, "target")
    target = node.inputs[0].base[target_indices]
    delta = _error_base(node)
    lhs = sp.Derivative(sp.Symbol("C", real=True), target)
    out = node.out_indices("out")
    steps, value = chain_rule(lhs, lambda *idx: delta[idx], node.output,
                              lambda *idx: node.call_entry(idx, None), out, target)
    return value, target_indices, tuple(steps)


def full_correlation_form(node: Node) -> sp.Expr:
    """Σ_f Σ_p Σ_q δ̃[f, u + P + d·p − d(kh − 1), …] K[f, c, kh − 1 − p, …], where δ̃ is the error
    dilated by the stride: δ̃[f, x] = δ[f, x/s] when s divides x and 0 ≤ x/s < (output size), else 0."""
    kind = node.kind
    c, *positions = node.in_indices(0, "target")
    f = node.out_indices("out")[0]
    offsets = [a.index(letter) for a, letter in zip(kind.kernel_axes(node), ("p", "q"))]
    out_axes = node.out_axes[1:]
    reads, guards = [], []
    for u, p, k, s, pad, d, axis in zip(positions, offsets, kind.kernel, kind.stride, kind.padding, kind.dilation, out_axes):
        x = u + pad + d * p - d * (k - 1)
        condition = [x >= 0, x <= s * (axis.size - 1)]
        if s > 1:
            condition.append(sp.Eq(sp.Mod(x, s), 0))
        guards.append(Iverson(sp.And(*condition)))
        reads.append(x / s)
    K = Q("K", node.layer).base
    rotated = K[(f, c, *[k - 1 - p for k, p in zip(kind.kernel, offsets)])]
    term = sp.Mul(*guards) * _error_base(node)[(f, *reads)] * rotated
    return sp.Sum(term, (f, f.lower, f.upper), *[(p, p.lower, p.upper) for p in offsets])


def _values(expressions, env, rng) -> dict:
    values = {}
    for expr in expressions:
        for entry in expr.atoms(sp.Indexed):
            label = str(entry.base.label)
            if any(k[0] == label for k in values):
                continue
    return values


def _compare_index_forms(left: sp.Expr, right: sp.Expr, free: tuple, node: Node, env: dict, seed: int) -> tuple[bool, int]:
    """Both index forms at every entry of the input, exact random values for δ and K."""
    rng = random.Random(seed)
    sizes = {a.size: env[a.size] for a in node.out_axes if a.size in env}
    values = {}
    delta = _error_base(node)
    out_shape = [int(a.size.xreplace(env)) for a in node.out_axes]
    for idx in np.ndindex(*out_shape):
        values[(str(delta.label), tuple(idx))] = sp.Rational(rng.randint(-9, 9), rng.randint(1, 9))
    K = Q("K", node.layer)
    from derive.backprop import parameter_axes

    k_shape = [int(a.size.xreplace(env)) for a in parameter_axes(node, K)]
    for idx in np.ndindex(*k_shape):
        values[(K.label, tuple(idx))] = sp.Rational(rng.randint(-9, 9), rng.randint(1, 9))
    in_shape = [int(a.size.xreplace(env)) for a in node.in_axes[0]]
    count = 0
    for idx in np.ndindex(*in_shape):
        point = {**env, **dict(zip(free, idx))}
        if evaluate_index_form(left, values, point) != evaluate_index_form(right, values, point):
            return False, count
        count += 1
    del sizes
    return True, count


def prove(node: Node, network) -> InputErrorForms:
    """The three forms for one convolution node, each proved equal to the scatter form."""
    from derive.convforms import recognise
    from derive.indexing import assume_sizes
    from derive.matrixform import to_matrix_form
    from derive.verify_symbolic import concrete_sizes
    from derive.windowsizes import consistent_sizes, network_sizes

    with assume_sizes(network.size_facts), network_sizes(network):
        scatter, free, steps = scatter_form(node)
        full = full_correlation_form(node)
        im2col = recognise(scatter, free, to_matrix_form)
        im2col_proved = im2col is not None and entries_agree(scatter, im2col, free)
        total, agreed = 0, True
        envs = [consistent_sizes(network, {}, 2), consistent_sizes(network, {}, 3)]
        for n, env in enumerate(envs):
            ok, count = _compare_index_forms(scatter, full, free, node, env, seed=n)
            agreed &= ok
            total += count
    return InputErrorForms(node, scatter, full, im2col, free, steps, bool(agreed), bool(im2col_proved), total,
                           envs[0])


def conv_nodes(network) -> list[Node]:
    return [node for node in network.layers if hasattr(node.kind, "window_sizes") and node.kind.parameters(node)]
