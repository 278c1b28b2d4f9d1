"""Inverted dropout: aᵢ = dᵢ xᵢ / (1 − p), with a mask d of zeros and ones (each entry 0 with
probability p) that the generated code draws afresh for every minibatch while training.

The derivation holds the mask fixed: it is an input of the layer like the data, not a parameter, so
∂aᵢ/∂x_q = [i = q] dᵢ/(1 − p) and the error of x is the error of a, masked and scaled. In evaluation
mode the generated code puts the mask's expectation 1 − p in place of the mask, so a = x: the same
formula, with no separate derivation needed. p is a symbol of the formulas (p⁽ˡ⁾) with the value the
network file gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sympy as sp

from derive.layers.base import LayerKind, Node, Option, entry_of, register
from derive.layers.normalise import same_axes, vector_input
from derive.notation import Q, Quantity, register_quantity, size

# the mask of a dropout layer: u⁽ˡ⁾ per sample, U⁽ˡ⁾ per minibatch (one column per sample); r and p
# are taken (a sample index, a parameter index), and D is the minibatch errors
register_quantity("mask", "u", None, 1, "sample", batch="Mask")
register_quantity("Mask", "U", "M", 2, "batch")


def probability(value) -> float:
    """A drop probability from a network file: a number with 0 ≤ p < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError
    return float(value)


def exact(p: float) -> sp.Rational:
    """p as the decimal the file wrote (0.1 is 1/10, not the nearest double)."""
    try:
        return sp.Rational(str(Decimal(repr(p))))
    except InvalidOperation:  # pragma: no cover - a float always has a decimal repr
        raise ValueError(p) from None


def drop_symbol(node: Node) -> sp.Symbol:
    """p⁽ˡ⁾_drop, the drop probability of the dropout layer l (printed with its name, as p is an index)."""
    from derive.notation import SCALAR_LATEX

    name = f"p_{node.layer.tag()}"
    SCALAR_LATEX.setdefault(name, rf"p_{{\mathrm{{drop}}}}^{{({node.layer.latex()})}}")
    return sp.Symbol(name, positive=True)


@register
@dataclass(frozen=True)
class Dropout(LayerKind):
    p: float = 0.5

    name = "dropout"
    output_kind = "a"
    summary = "a = d ⊙ x/(1 − p), a mask d of 0 and 1 drawn per minibatch (0 with probability p); option: p"
    options = {"p": Option("a number from 0 up to (not including) 1", probability, required=False)}
    constant_comment = "drop probability of a dropout layer"

    @classmethod
    def build(cls, values: dict) -> Dropout:
        return cls(values.get("p", 0.5))  # PyTorch's default

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def fit(self, input_units: tuple) -> Dropout:
        vector_input(self.name, input_units)
        return self

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        own, read = size(node.layer), size(node.inputs[0].layer)
        return {own: read} if own != read else {}

    def data_inputs(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("mask", node.layer),)

    def constants(self, node: Node) -> dict[sp.Symbol, sp.Rational]:
        return {drop_symbol(node): exact(self.p)}

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        from derive.notation import LayerRef

        l = LayerRef.symbolic()
        from derive.printing import latex

        return [(f"{Q('mask', l).latex()},\\ {Q('Mask', l).latex()}", "norm_notation.mask", {}),
                (latex(drop_symbol(node)), "norm_notation.p", {"p": repr(self.p)})]

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        r = entry_of(Q("mask", node.layer), unit, sample)
        return r * entry_of(node.inputs[0], unit, sample) / (1 - drop_symbol(node))
