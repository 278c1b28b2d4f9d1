"""Layer normalisation over the features of each sample (PyTorch's `layer_norm` with
`normalized_shape = (n,)`): zᵢ = γᵢ (xᵢ − μ)/√(σ² + ε) + βᵢ with μ and σ² the mean and the biased
variance of the n features of the sample.

It is built from the steps of `derive.layers.normalise` (centre, scale, scale and shift), so the
engine derives the path through the mean and the path through the variance each on its own; the
compact three-term form of the input error is proved equal to what the engine derived in
`derive.layers.normcompact`.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.layers.base import LayerKind, Node, register
from derive.layers.normalise import Affine, Centre, Scale, chain_of, same_axes, vector_input


@register
@dataclass(frozen=True)
class LayerNorm(LayerKind):
    name = "layernorm"
    output_kind = "z"
    summary = "z = γ ⊙ (x − mean)/√(variance + ε) + β over the features of each sample; option: activation"

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def output_shape(self, node: Node, input_shapes):
        """The shape of what it reads: a vector of units, or a sequence [features, tokens]."""
        return input_shapes[0]

    def fit(self, input_units: tuple) -> LayerNorm:
        vector_input(self.name, input_units, sequences=True)
        return self

    def parts(self, node: Node) -> tuple[Node, ...]:
        return chain_of(node, (Centre(), Scale(), Affine(shift=True)))
