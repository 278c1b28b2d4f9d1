"""Small concrete sizes that satisfy the output-size formulas of windows (convolution, pooling).

The proofs evaluate formulas at small sizes: every axis 2 long (or 3) in a network of vectors. A
window ties the size of its output to that of its input, ⌊(h + 2P − d(k − 1) − 1)/s⌋ + 1, so the
sizes are chosen here: walking the network backwards, each window asks of its input the smallest
size that gives the output its requested size (and, for max pooling, no window of padding only);
walking forwards, each output is then computed from its input by the formula. Sizes that a flatten makes a product (n = c·h·w) follow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import sympy as sp


def _windows(network):
    """Per window axis: (input size, output size, kernel, stride, padding, dilation, whether a window
    must hold an input entry — max pooling's, whose maximum over padding only would be −∞)."""
    for node in network.layers:
        sizes = getattr(node.kind, "window_sizes", None)
        if sizes is not None:
            refused = getattr(node.kind, "refuses_windows_of_padding", False)
            yield from ((*axis, refused) for axis in sizes(node))


def _has_window_of_padding(n: int, k: int, s: int, p: int, d: int) -> bool:
    windows = (n + 2 * p - d * (k - 1) - 1) // s + 1
    return any(not any(0 <= s * i + d * q - p < n for q in range(k)) for i in range(max(windows, 0)))


def consistent_sizes(network, env: Mapping, target: int = 2) -> dict:
    """`env` with the spatial sizes of every window's input and output made consistent."""
    env = dict(env)
    free_sizes, windows = _network_sizes(network, target)
    for size in free_sizes:
        if size not in env:
            env[size] = target
    if not windows:
        return _products(network, env)
    facts = network.size_facts
    known = lambda s: facts.get(s, s) if isinstance(facts.get(s, s), sp.Symbol) else s  # noqa: E731
    need: dict = {}
    for inp, out, k, s, p, d, refused in reversed(windows):
        want = max(need.get(known(out), target), 1)
        n = max(need.get(known(inp), 1), (want - 1) * s + d * (k - 1) + 1 - 2 * p, 1)
        while refused and _has_window_of_padding(n, k, s, p, d):  # e.g. k 2, d 2, padding 1 over 1 entry
            n += 1
        need[known(inp)] = n
    fixed: dict = {}
    for inp, out, k, s, p, d, _ in windows:
        i = known(inp)
        if i not in fixed:
            fixed[i] = max(need.get(i, target), target if i not in need else need[i])
        fixed[known(out)] = (fixed[i] + 2 * p - d * (k - 1) - 1) // s + 1
    for symbol in list(env) + [w[0] for w in windows] + [w[1] for w in windows]:
        if known(symbol) in fixed:
            env[symbol] = fixed[known(symbol)]
    return _products(network, env)


_SIZES: dict = {}


def _network_sizes(network, target: int) -> tuple[tuple, list]:
    """The sizes of every axis the nodes read or compute that has no fixed extent (in node order,
    each once) and the network's windows: what `consistent_sizes` needs of the network, found once
    per network (every proof of a matrix form asks, so walking the whole network each time made a
    deep network's proofs grow with the square of its depth). Only the last network's are kept."""
    key = (id(network), target)
    if key not in _SIZES or _SIZES[key][0] is not network:
        free_sizes: dict = {}
        for node in network.layers:
            for axis in [*node.out_axes, *(a for group in node.in_axes for a in group)]:
                if axis.extent is None:
                    free_sizes.setdefault(axis.size, target)
        _SIZES.clear()
        _SIZES[key] = (network, tuple(free_sizes), list(_windows(network)))
    return _SIZES[key][1], _SIZES[key][2]


def _products(network, env: dict) -> dict:
    for a, b in network.size_facts.items():
        if not isinstance(b, sp.Symbol):
            env[a] = b.xreplace(env)
    return env


def quantity_shapes(network) -> dict[str, tuple]:
    """The sizes of the axes of every quantity a node reads or computes, by engine label (a_0, Z_2 …),
    of the gradient of each (grad_a_2 is shaped like a_2) and of convolution kernels: the arrays of a
    proof take these, not the ranges of the indices that read them. Those ranges can be too long or
    too short: an overlapping, padded pooling window's error is read at positions up to i + p, one
    past the pooled output, which the window helpers cannot line up with the input; a 4 × 4 kernel
    padded by 2 over a 1 × 1 input is read only at offsets up to 2."""
    shapes = {}
    for node in network.layers:
        for q, axes in [*zip(node.inputs, node.in_axes), (node.output, node.out_axes)]:
            sizes = tuple(a.size for a in axes)
            for label, shape in ((q.label, sizes), (q.batched(True).label, (*sizes, "batch"))):
                shapes[label] = shapes["grad_" + label] = shape
        if getattr(node.kind, "window_sizes", None) is not None:  # a convolution's kernel: kh × kw whole, even
            for param in node.kind.parameters(node):  # where a small input reads only some of its offsets
                shapes[param.label] = tuple(a.size for a in node.kind.parameter_axes(node, param))
    return shapes


_NETWORK: ContextVar = ContextVar("window_network", default=None)


@contextmanager
def network_sizes(network) -> Iterator[None]:
    """Within the block, proofs take their concrete sizes from this network's windows."""
    token = _NETWORK.set(network)
    try:
        yield
    finally:
        _NETWORK.reset(token)


# the kinds of a network of dense layers, element-wise or vector activations and residual sums: none
# of their formulas is a convolution's, a pooling's, a flatten's or a position mean (`convforms`)
_PLAIN_KINDS = frozenset({"dense", "activation", "softmax", "log_softmax", "loss", "add"})
_PLAIN: list = [None, False]  # the last network asked about, and the answer


def window_forms_possible() -> bool:
    """Whether a formula of the network being derived may be one of `convforms`: not for a network of
    plain kinds only, where trying those recognisers on every formula took a fifth of its matrix
    forms; with no network known (a formula on its own), always."""
    network = _NETWORK.get()
    if network is None:
        return True
    if _PLAIN[0] is not network:
        _PLAIN[:] = [network, all(node.kind.name in _PLAIN_KINDS for node in network.nodes)]
    return not _PLAIN[1]


def fix_sizes(env: dict) -> dict:
    network = _NETWORK.get()
    return env if network is None else consistent_sizes(network, env)


def shape_of_label(label: str) -> tuple | None:
    network = _NETWORK.get()
    if network is None:
        return None
    return quantity_shapes_cached(network).get(label)


_CACHE: dict = {}


def quantity_shapes_cached(network) -> dict:
    key = id(network)
    if key not in _CACHE or _CACHE[key][0] is not network:
        _CACHE.clear()
        _CACHE[key] = (network, quantity_shapes(network))
    return _CACHE[key][1]


def size_values(network) -> dict:
    """Every size symbol of the network (n_3, c_1, h_1 …) → its value, from the network's sizes (per
    layer, a number of units or a shape) and the axes of each layer's last output."""
    from derive.notation import LayerRef, Q

    values = {}
    for layer, entry in enumerate(network.sizes):
        if layer == 0:
            axes = network.axes_of(Q("a", 0))
        else:
            nodes = [node for node in network.layers if node.layer == LayerRef(layer)]
            if not nodes:
                continue
            axes = nodes[-1].out_axes
        for axis, value in zip(axes, entry if isinstance(entry, tuple) else (entry,)):
            if axis.extent is None:
                values[axis.size] = value
    for node in network.layers:  # sizes inside a layer (a convolution's output before its pooling)
        for inp, out, k, s, p, d in getattr(node.kind, "window_sizes", lambda node: [])(node):
            if inp in values and out not in values:
                values[out] = (values[inp] + 2 * p - d * (k - 1) - 1) // s + 1
    for symbol, known in network.size_facts.items():  # sizes inside a layer equal to another (attention's keys)
        if symbol not in values and isinstance(known, sp.Symbol) and known in values:
            values[symbol] = values[known]
    return values
