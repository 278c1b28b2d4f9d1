"""A linear map applied to every token of a sequence (PyTorch's `nn.Linear` on the last axis of a
(batch, tokens, features) tensor): z[f, j] = Σ_c W[f, c] x[c, j] + b[f].

A sequence is stored [features, tokens] (the sample index last), so the weight is `nn.Linear`'s
`weight` as it is, (out, in), and the bias its `bias` as a column. The position-wise MLP of a
transformer block is two of these with an activation between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import DeriveError
from derive.layers.base import LayerKind, Node, Option, entry_of, register, whole_number
from derive.notation import Axis, Q, Quantity


@register
@dataclass(frozen=True)
class Linear(LayerKind):
    units: int = 1

    name = "linear"
    output_kind = "z"
    summary = "z[f, j] = Σ_c W[f, c] x[c, j] + b[f] for every token j of a sequence; options: units, activation"
    options = {"units": Option("a whole number of output features from 1 to 100000", whole_number(1, 100_000))}

    def fit(self, input_units: tuple) -> Linear:
        shape = input_units[0]
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise DeriveError(f"linear reads a sequence [features, tokens], not the shape "
                              f"{list(shape) if isinstance(shape, tuple) else shape}; use dense for a vector of units")
        return self

    def output_axes(self, node: Node, input_axes):
        return (Axis("c", node.layer), Axis("w", node.layer))

    def output_shape(self, node: Node, input_shapes):
        return (self.units, input_shapes[0][1])

    def size_facts(self, node: Node):
        own, read = Axis("w", node.layer).size, node.in_axes[0][1].size
        return {own: read} if own != read else {}

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return Q("W", node.layer), Q("b", node.layer)

    def parameter_axes(self, node: Node, param: Quantity):
        own = Axis("c", node.layer)
        return (own, node.in_axes[0][0]) if param.kind == "W" else (own,)

    def weights(self, node: Node):
        return {Q("W", node.layer): node.inputs[0]}

    def fans(self, node: Node) -> tuple[sp.Expr, sp.Expr]:
        """Fan-in: the features of a token; fan-out: the units."""
        return node.in_axes[0][0].size, Axis("c", node.layer).size

    def entry(self, node: Node, unit, sample):
        f, j = unit
        c = node.in_axes[0][0].index("c")
        W, b = Q("W", node.layer).base, Q("b", node.layer).base
        return sp.Sum(W[f, c] * entry_of(node.inputs[0], (c, j), sample), (c, c.lower, c.upper)) + b[f]
