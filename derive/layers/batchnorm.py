"""Batch normalisation in training mode (PyTorch's `batch_norm` with `training=True`): every unit is
normalised with the mean and the biased variance of its values over the samples of the minibatch,
zᵢₛ = γᵢ (xᵢₛ − μᵢ)/√(σᵢ² + ε) + βᵢ, μᵢ = (1/m) Σₜ xᵢₜ, σᵢ² = (1/m) Σₜ (xᵢₜ − μᵢ)².

Each output entry reads every sample of the minibatch, so the kind couples the samples: there is no
per-sample form, and the engine derives the minibatch form directly, every path through the batch
mean and the batch variance (the steps of `derive.layers.normalise`, over the samples); the compact
three-term form of the input error is proved equal to it entry by entry.

In evaluation mode the generated code uses running statistics instead (`derive.layers.runningstats`):
PyTorch's exponential average with momentum 0.1 and the unbiased running variance.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.layers.base import LayerKind, Node, register
from derive.layers.normalise import Affine, Centre, Scale, chain_of, same_axes, vector_input


@register
@dataclass(frozen=True)
class BatchNorm(LayerKind):
    name = "batchnorm"
    output_kind = "z"
    couples_samples = True
    summary = "z = γ ⊙ (x − batch mean)/√(batch variance + ε) + β, statistics per unit over the minibatch"

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def fit(self, input_units: tuple) -> BatchNorm:
        vector_input(self.name, input_units)
        return self

    def parts(self, node: Node) -> tuple[Node, ...]:
        return chain_of(node, (Centre(over_samples=True), Scale(over_samples=True), Affine(shift=True)))
