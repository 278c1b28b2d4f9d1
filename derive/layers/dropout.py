"""Inverted dropout: aᵢ = rᵢ xᵢ / (1 − p), with a mask r of zeros and ones (each entry 0 with
probability p) that the generated code draws afresh for every minibatch while training.

The derivation holds the mask fixed: it is an input of the layer like the data, not a parameter, so
∂aᵢ/∂x_q = [i = q] rᵢ/(1 − p) and the error of x is the error of a, masked and scaled. In evaluation
mode the generated code puts the mask's expectation 1 − p in place of the mask, so a = x: the same
formula, with no separate derivation needed. p is a symbol of the formulas (p⁽ˡ⁾) with the value the
network file gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sympy as sp

from derive.layers.base import LayerKind, Node, Option, entry_of, register
from derive.layers.normalise import _same_axes
from derive.notation import Q, Quantity, register_quantity, size

# the mask of a dropout layer: r⁽ˡ⁾ per sample, R⁽ˡ⁾ per minibatch (one column per sample)
register_quantity("mask", "r", None, 1, "sample", batch="Mask")
register_quantity("Mask", "R", "M", 2, "batch")


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
    """p⁽ˡ⁾, the drop probability of the dropout layer l."""
    return sp.Symbol(f"p_{node.layer.tag()}", positive=True)


@register
@dataclass(frozen=True)
class Dropout(LayerKind):
    p: float = 0.5

    name = "dropout"
    output_kind = "a"
    summary = "a = r ⊙ x/(1 − p), a mask r of 0 and 1 drawn per minibatch (0 with probability p); option: p"
    options = {"p": Option("a number from 0 up to (not including) 1", probability)}

    @classmethod
    def build(cls, values: dict) -> Dropout:
        return cls(values["p"])

    def output_axes(self, node: Node, input_axes):
        return _same_axes(node, input_axes)

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        own, read = size(node.layer), size(node.inputs[0].layer)
        return {own: read} if own != read else {}

    def data_inputs(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("mask", node.layer),)

    def constants(self, node: Node) -> dict[sp.Symbol, sp.Rational]:
        return {drop_symbol(node): exact(self.p)}

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        r = entry_of(Q("mask", node.layer), unit, sample)
        return r * entry_of(node.inputs[0], unit, sample) / (1 - drop_symbol(node))
