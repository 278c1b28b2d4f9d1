"""What the generated functions check about their arguments, and where they read sizes from.

Every array the generated code is given has a shape made of named sizes (n0, c1, m) and fixed
extents: X the input's axes then the samples, each parameter the axes its kind gives it, Y the
output's axes then the samples. The generated `_check_inputs` binds each name where it first
appears (X first, then the parameters in order, then Y) and compares every shape with straight-line
code, a few comparisons per array; only when one fails does `_mismatch` walk the same order to say
which array is wrong and why. This module plans both as plain data for `templates/model.py.j2`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.derivation import Derivation
from derive.notation import Q, Quantity
from derive.workspace import BATCH, quantity_shape

Dims = tuple  # of size names (str) and fixed extents (int)


@dataclass(frozen=True)
class InputCheck:
    x_dims: Dims
    y_dims: Dims
    parameters: tuple[tuple[str, Dims], ...]  # (code name, dims) in the order init_params makes them
    fast: tuple[str, ...]  # the body of `_check_inputs`' try block: sets `ok`
    targets_sum_to_one: bool = False  # Y's columns must each sum to 1 (the derivation assumed it)


def _parameters(derivation: Derivation) -> list[Quantity]:
    return [p for node in derivation.model.network.layers for p in node.parameters]


def plan_input_check(derivation: Derivation) -> InputCheck:
    network = derivation.model.network
    x_dims, y_dims = quantity_shape(Q("X"), network), quantity_shape(Q("Y"), network)
    parameters = tuple((q.code(), quantity_shape(q, network)) for q in _parameters(derivation))
    bound: set[str] = set()
    lines: list[str] = []

    def shape_test(array: str, dims: Dims) -> str:
        for axis, dim in enumerate(dims):
            if isinstance(dim, str) and dim not in bound:
                index = -1 if dim == BATCH else axis
                lines.append(f"{dim} = {array}.shape[{index}]")
                bound.add(dim)
        comma = "," if len(dims) == 1 else ""
        return f"{array}.shape == ({', '.join(str(d) for d in dims)}{comma})"

    tests = [shape_test("X", x_dims), f"{BATCH} >= 1", 'X.dtype.kind in "biuf"']
    lines.append(f"ok = {' and '.join(tests)}")
    for name, dims in parameters:
        lines.append(f'{name} = params["{name}"]')
        lines.append(f'ok = ok and {shape_test(name, dims)} and {name}.dtype.kind == "f"')
    for symbol, product in network.size_facts.items():  # an output that is a flatten's (n = c·w): from its factors
        dim = network.symbol_dim(symbol)
        if dim in y_dims and dim not in bound and not isinstance(product, sp.Symbol) and product.is_Mul:
            factors = [network.symbol_dim(f) if isinstance(f, sp.Symbol) else str(f) for f in product.args]
            if all(f in bound or f.isdigit() for f in factors):
                lines.append(f"{dim} = {' * '.join(sorted(factors))}")
                bound.add(dim)
    y_test = shape_test("Y", y_dims)  # binds nothing new unless the output's size is nowhere else
    lines.append(f'ok = ok and (Y is ... or ({y_test} and Y.dtype.kind in "biuf"))')
    sums_to_one = assumes_targets_sum_to_one(derivation)
    if sums_to_one:  # the derived output error holds only for such targets: wrong Y must not pass silently
        axes = tuple(range(len(y_dims) - 1))  # every axis but the samples'
        lines.append(f"ok = ok and (Y is ... or bool(np.all(np.abs(Y.sum(axis={axes}) - 1) <= {TARGET_SUM_TOLERANCE})))")
    return InputCheck(x_dims, y_dims, parameters, tuple(lines), sums_to_one)


TARGET_SUM_TOLERANCE = "1e-5"  # of each sample's target sum: float32 one-hot and smoothed labels over many classes pass


def assumes_targets_sum_to_one(derivation: Derivation) -> bool:
    """Whether a derived formula used Σ_j y_j = 1 (softmax with cross entropy: δ = a − y), which the
    generated code must then ask of its targets."""
    return any(step.rule == "targets_sum_to_one" for p in derivation.passes() for steps in p.steps.values()
               for step in steps)


def size_source(derivation: Derivation, symbol: sp.Symbol) -> str:
    """An expression that reads a size (n_3, c_1) off the arrays the generated code is given: the
    shape of the first parameter with an axis of that size (sizes equal by construction count as
    one), else the targets' or the input's."""
    network = derivation.model.network
    wanted = network.symbol_dim(symbol)
    for q in _parameters(derivation):
        for axis, dim in enumerate(quantity_shape(q, network)):
            if dim == wanted:
                return f'params["{q.code()}"].shape[{axis}]'
    product = network.size_facts.get(symbol)
    if product is not None and not isinstance(product, sp.Symbol) and product.is_Mul:  # a flatten's n = c·w
        return " * ".join(size_source(derivation, factor) for factor in sorted(product.args, key=str))
    for array in ("Y", "X"):
        dims = quantity_shape(Q(array), network)
        if wanted in dims:
            return f"{array}.shape[{dims.index(wanted)}]"
    for node in network.layers:  # a window's output size: from its input's by the output-size formula
        for inp, out, k, s, p, d in getattr(node.kind, "window_sizes", lambda node: [])(node):
            if network.symbol_dim(out) == wanted:
                return f"({size_source(derivation, inp)} + {2 * p - d * (k - 1) - 1}) // {s} + 1"
    raise ValueError(f"no array the generated code is given has an axis of size {symbol}")


def is_size_symbol(derivation: Derivation, symbol: sp.Symbol) -> bool:
    """Whether a free symbol of a formula is the size of an axis of the network (n_3, c_1, w_2)."""
    network = derivation.model.network
    wanted = network.symbol_dim(symbol)
    arrays = [*(quantity_shape(q, network) for q in _parameters(derivation)),
              quantity_shape(Q("X"), network), quantity_shape(Q("Y"), network)]
    if symbol.is_integer is True and wanted != BATCH and any(wanted in dims for dims in arrays):
        return True
    axes = {network.axis_dim(a) for node in network.layers for a in node.out_axes}  # a window's output size
    return symbol.is_integer is True and wanted != BATCH and wanted in axes
