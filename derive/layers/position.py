"""Learned positional embeddings: z[c, j] = x[c, j] + P[c, j], one learned vector per position j of a
sequence [features, tokens], added to the token there (attention alone does not know the order of
the tokens). The table P has the shape of one sample, (E, T); PyTorch's `nn.Embedding(T, E)` holds
its transpose: `P = embedding.weight.detach().numpy().T`. It starts at 0 (a bias, not a weight).
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.errors import DeriveError
from derive.layers.base import LayerKind, Node, entry_of, register
from derive.notation import Axis, Q, Quantity, register_quantity

register_quantity("Epos", r"P_{\mathrm{pos}}", "Epos", 2, "param", gradient="grad_Epos")
register_quantity("grad_Epos", r"P_{\mathrm{pos}}", "dEpos", 2, "param")


@register
@dataclass(frozen=True)
class Position(LayerKind):
    name = "position"
    output_kind = "z"
    summary = "z[c, j] = x[c, j] + P[c, j], a learned vector per position of a sequence; option: activation"

    def fit(self, input_units: tuple) -> Position:
        shape = input_units[0]
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise DeriveError(f"position reads a sequence [features, tokens], not the shape "
                              f"{list(shape) if isinstance(shape, tuple) else shape}")
        return self

    def output_axes(self, node: Node, input_axes):
        return (Axis("c", node.layer), Axis("w", node.layer))

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def size_facts(self, node: Node):
        return {own.size: read.size for own, read in zip(node.out_axes, node.in_axes[0]) if own.size != read.size}

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("Epos", node.layer),)

    def parameter_axes(self, node: Node, param: Quantity):
        return tuple(node.in_axes[0])

    def entry(self, node: Node, unit, sample):
        return entry_of(node.inputs[0], unit, sample) + Q("Epos", node.layer).base[tuple(unit)]
