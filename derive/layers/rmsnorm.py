"""RMS normalisation over the features of each sample (PyTorch's `rms_norm` with
`normalized_shape = (n,)` and a weight): zᵢ = γᵢ xᵢ/√((1/n) Σₖ xₖ² + ε), no centring and no shift.

It is two of the steps of `derive.layers.normalise` (scale, then scale with γ), each derived by the
engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.layers.base import LayerKind, Node, register
from derive.layers.normalise import Affine, Scale, chain_of, same_axes, vector_input


@register
@dataclass(frozen=True)
class RMSNorm(LayerKind):
    name = "rmsnorm"
    output_kind = "z"
    summary = "z = γ ⊙ x/√(mean of x² + ε) over the features of each sample; option: activation"

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def output_shape(self, node: Node, input_shapes):
        """The shape of what it reads: a vector of units, or a sequence [features, tokens]."""
        return input_shapes[0]

    def fit(self, input_units: tuple) -> RMSNorm:
        vector_input(self.name, input_units, sequences=True)
        return self

    def parts(self, node: Node) -> tuple[Node, ...]:
        return chain_of(node, (Scale(), Affine(shift=False)))
