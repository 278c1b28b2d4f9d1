"""Dense (fully connected) layer: z⁽ˡ⁾ᵢ = Σⱼ W⁽ˡ⁾ᵢⱼ aⱼ + b⁽ˡ⁾ᵢ, the input a being whatever it reads."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.layers.base import LayerKind, Node, Option, entry_of, norm_symbol, pure_entry, register, whole_number
from derive.notation import LayerRef, Q, Quantity


@register
@dataclass(frozen=True)
class Dense(LayerKind):
    units_out: int | None = None  # its number of units (None: given by the network's sizes)

    name = "dense"
    output_kind = "z"
    summary = "z = W a + b; options: units (required), activation"
    options = {"units": Option("a whole number from 1 to 100000", whole_number(1, 100_000))}

    @classmethod
    def build(cls, values: dict) -> Dense:
        return cls(values["units"])

    def fit(self, input_units: tuple) -> Dense:
        """A dense layer reads a vector of units: an image or a sequence is refused in one line."""
        if isinstance(input_units[0], tuple):
            from derive.errors import DeriveError

            raise DeriveError(f"dense reads a vector of units, but its input has the shape {list(input_units[0])}; "
                              f"put a flatten layer before it (or use linear, for each token of a sequence)")
        return self

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("W", node.layer), Q("b", node.layer))

    def error_gain(self, node: Node, k: int, slope) -> sp.Expr:
        """∂C/∂a = Wᵀδ: each entry a weighted sum of the errors, at most the largest column sum of |W|."""
        return norm_symbol(Q("W", node.layer))

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[LayerRef, ...]:
        return (node.layer, node.inputs[0].layer) if param.kind == "W" else (node.layer,)

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        return {Q("W", node.layer): node.inputs[0]}

    def units(self, node: Node, input_units: tuple[int, ...]) -> int:
        return self.units_out

    @pure_entry
    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        j = node.in_index("j")
        W, b = (p.base for p in self.parameters(node))
        return sp.Sum(W[unit, j] * entry_of(node.inputs[0], j, sample), (j, j.lower, j.upper)) + b[unit]
