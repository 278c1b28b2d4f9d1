"""Batch normalisation in training mode (PyTorch's `batch_norm` with `training=True`): every unit is
normalised with the mean and the biased variance of its values over the samples of the minibatch,
zᵢₛ = γᵢ (xᵢₛ − μᵢ)/√(σᵢ² + ε) + βᵢ, μᵢ = (1/m) Σₜ xᵢₜ, σᵢ² = (1/m) Σₜ (xᵢₜ − μᵢ)².

Each output entry reads every sample of the minibatch, so the kind couples the samples: there is no
per-sample form, and the engine derives the minibatch form directly, every path through the batch
mean and the batch variance (the steps of `derive.layers.normalise`, over the samples); the compact
three-term form of the input error is proved equal to it entry by entry.

After a convolution (channels × rows × columns, or channels × positions) each channel is normalised
with the mean and the variance of its values over the samples and every position, as BatchNorm2d
(BatchNorm1d on a 1-D signal): the same steps, whose statistics sum over the positions as well.

In evaluation mode the generated code uses running statistics instead (`derive.layers.runningstats`):
PyTorch's exponential average with momentum 0.1 and the unbiased running variance.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.layers.base import LayerKind, Node, register
from derive.layers.normalise import Affine, Centre, Scale, chain_of, same_axes


@register
@dataclass(frozen=True)
class BatchNorm(LayerKind):
    name = "batchnorm"
    output_kind = "z"
    couples_samples = True
    summary = ("z = γ ⊙ (x − batch mean)/√(batch variance + ε) + β, statistics per unit over the minibatch "
               "(after a convolution: per channel, over the minibatch and the positions)")

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def fit(self, input_units: tuple) -> BatchNorm:
        """Every shape a network file allows: a vector of units (statistics per unit), or channels ×
        positions or channels × rows × columns (statistics per channel, over the positions too)."""
        return self

    def parts(self, node: Node) -> tuple[Node, ...]:
        return chain_of(node, (Centre(over_samples=True), Scale(over_samples=True), Affine(shift=True)))
