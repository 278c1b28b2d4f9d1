"""Residual sum: a⁽ˡ⁾ᵢ = uᵢ + vᵢ, the sum of the previous output u and an earlier output v (the skip
connection). When the two sizes differ, v is first projected by a learned matrix P⁽ˡ⁾ with no bias:
a⁽ˡ⁾ᵢ = uᵢ + Σⱼ P⁽ˡ⁾ᵢⱼ vⱼ.

Its local derivatives are 1 along both inputs (or P along the projected one), so the error of its
output reaches both paths unchanged: the quantity the skip starts from is read twice, and the engine
adds the errors of its two paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.layers.base import LayerKind, Node, entry_of, norm_symbol, register
from derive.notation import Axis, LayerRef, Q, Quantity, register_quantity, size

register_quantity("P", "P", "P", 2, "param", gradient="grad_P")
register_quantity("grad_P", "P", "dP", 2, "param")


@register
@dataclass(frozen=True)
class Add(LayerKind):
    project: bool = False  # the skip input has another size: multiply it by P⁽ˡ⁾ first

    name = "add"
    output_kind = "a"
    inputs = 2
    summary = "a = u + v, the previous output plus the output named by `from` (projected if sizes differ)"

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("P", node.layer),) if self.project else ()

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[LayerRef, ...]:
        return (node.layer, node.inputs[1].layer)

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        return {Q("P", node.layer): node.inputs[1]} if self.project else {}

    def error_gain(self, node: Node, k: int, slope) -> sp.Expr:
        """The output's error reaches both inputs unchanged, or through Pᵀ along the projected one."""
        return norm_symbol(Q("P", node.layer)) if k == 1 and self.project else sp.S.One

    def fit(self, input_units: tuple[int, ...]) -> Add:
        if isinstance(input_units[0], tuple) and input_units[1] != input_units[0]:
            from derive.errors import DeriveError

            raise DeriveError(f"a sum of outputs with several axes needs them of one shape, not "
                              f"{list(input_units[0])} and {list(input_units[1])}")
        return Add(project=input_units[1] != input_units[0])

    def output_axes(self, node: Node, input_axes):
        return tuple(Axis(axis.role, node.layer, axis.extent) for axis in input_axes[0])

    def output_shape(self, node: Node, input_shapes):
        """The shape of what it reads (a vector of units, or a sequence [features, tokens])."""
        return input_shapes[0]

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        if len(node.in_axes[0]) > 1:  # two sequences (features, tokens) of one shape, axis by axis
            facts = {}
            for own, u, v in zip(node.out_axes, *node.in_axes):
                facts.update({a.size: u.size for a in (own, v) if a.size != u.size})
            return facts
        u, v = (size(q.layer) for q in node.inputs)
        facts = {size(node.layer): u}
        if not self.project:
            facts[v] = u
        return facts

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        u = entry_of(node.inputs[0], unit, sample)
        if not self.project:
            return u + entry_of(node.inputs[1], unit, sample)
        j = node.in_index("j", 1)
        P = Q("P", node.layer).base
        return u + sp.Sum(P[unit, j] * entry_of(node.inputs[1], j, sample), (j, j.lower, j.upper))
