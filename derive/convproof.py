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

Each comparison evaluates both sides at every entry with exact whole numbers (random error and
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
from derive.indexeval import compiled
from derive.matrixform import entries_agree
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
    sizes: dict  # the first concrete sizes of the comparison
    size_sets: int  # how many sets of sizes were compared


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


def _compare_index_forms(left: sp.Expr, right: sp.Expr, free: tuple, node: Node, env: dict, seed: int) -> tuple[bool, int]:
    """Both index forms at every entry of the input, random whole numbers for δ and K.

    Both forms are linear in δ and in K, so random integers (-99…99) test them as strongly as random
    fractions, and Python's integer arithmetic keeps the comparison exact and fast."""
    from derive.backprop import parameter_axes

    rng = random.Random(seed)
    values = {}
    delta = str(_error_base(node).label)
    for idx in np.ndindex(*[int(a.size.xreplace(env)) for a in node.out_axes]):
        values[(delta, tuple(idx))] = rng.randint(-99, 99)
    K = Q("K", node.layer)
    for idx in np.ndindex(*[int(a.size.xreplace(env)) for a in parameter_axes(node, K)]):
        values[(K.label, tuple(idx))] = rng.randint(-99, 99)
    in_shape = [int(a.size.xreplace(env)) for a in node.in_axes[0]]
    left_fn, right_fn = compiled(left), compiled(right)
    count = 0
    point = dict(env)
    for idx in np.ndindex(*in_shape):
        point.update(zip(free, idx))
        if left_fn(values, point) != right_fn(values, point):
            return False, count
        count += 1
    return True, count


def prove(node: Node, network) -> InputErrorForms:
    """The three forms for one convolution node, each proved equal to the scatter form (once per
    process: every document format of a run quotes the same proof)."""
    key = (id(network), node)
    if key not in _PROVED or _PROVED[key][0] is not network:
        _PROVED[key] = (network, _prove(node, network))
    return _PROVED[key][1]


_PROVED: dict = {}


def _prove(node: Node, network) -> InputErrorForms:
    from derive.convforms import recognise
    from derive.indexing import assume_sizes
    from derive.matrixform import to_matrix_form
    from derive.windowsizes import network_sizes

    with assume_sizes(network.size_facts), network_sizes(network):
        scatter, free, steps = scatter_form(node)
        full = full_correlation_form(node)
        im2col = recognise(scatter, free, to_matrix_form)
        im2col_proved = im2col is not None and entries_agree(scatter, im2col, free)
        total, agreed = 0, True
        envs = proof_sizes(node, network)
        for n, env in enumerate(envs):
            ok, count = _compare_index_forms(scatter, full, free, node, env, seed=n)
            agreed &= ok
            total += count
    return InputErrorForms(node, scatter, full, im2col, free, steps, bool(agreed), bool(im2col_proved), total,
                           envs[0], len(envs))


IN_CHANNELS, OUT_CHANNELS = 2, 3  # unequal, so that swapped channel axes cannot agree by their sizes


def _axis_lengths(k: int, s: int, p: int, d: int) -> list[tuple[int, int]]:
    """(input, output) lengths of one spatial axis for the comparison: outputs of 2, 3 and k + 1
    positions (at k + 1 some input entry is reached by every kernel offset, away from the borders),
    and for a stride s > 1 every input length that gives such an output (the last s − 1 rows, which
    no window may reach)."""
    from derive.layers.conv import output_extent

    out = []
    for target in sorted({2, 3, k + 1}):
        shortest = max((target - 1) * s + d * (k - 1) + 1 - 2 * p, 1)
        for length in range(shortest, shortest + s):
            pair = (length, output_extent(length, k, s, p, d))
            if pair[1] >= 1 and pair not in out:
                out.append(pair)
    return out


def proof_sizes(node: Node, network) -> list[dict]:
    """Sets of concrete sizes for comparing the forms of one convolution: its own input and output
    axes only (the forms read nothing else), per spatial axis the lengths of `_axis_lengths` taken
    side by side (the shorter list repeats its last length), and one non-square set for an image."""
    axes = node.kind.window_sizes(node)
    lengths = [_axis_lengths(k, s, p, d) for _, _, k, s, p, d in axes]
    rows = max(len(options) for options in lengths)
    picks = [[options[min(n, len(options) - 1)] for options in lengths] for n in range(rows)]
    if len(lengths) == 2:
        picks.append([lengths[0][0], lengths[1][-1]])
    channels = {node.in_axes[0][0].size: IN_CHANNELS, node.out_axes[0].size: OUT_CHANNELS}
    envs = []
    for pick in picks:
        env = dict(channels)
        for (inp, out, *_), (length, extent) in zip(axes, pick):
            env[inp], env[out] = length, extent
        for a, b in network.size_facts.items():  # sizes equal by construction read either name
            if isinstance(b, sp.Symbol):
                if a in env:
                    env.setdefault(b, env[a])
                if b in env:
                    env.setdefault(a, env[b])
        envs.append(env)
    return envs


def conv_nodes(network) -> list[Node]:
    return [node for node in network.layers if hasattr(node.kind, "window_sizes") and node.kind.parameters(node)]
