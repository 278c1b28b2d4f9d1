"""The loss: C = Σᵢ ℓ(aᵢ, yᵢ) over the output units of one sample (plus the penalty R, if any); the
cost of a minibatch is the mean over its samples. It is the last node of every network: it reads
the network's output and the targets y, and its output is the scalar the derivation differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.catalog import Loss
from derive.layers.base import LayerKind, Node, entry_of, register
from derive.notation import BATCH_SIZE, PENALTY, Q, Quantity, sample_index


@register
@dataclass(frozen=True)
class LossKind(LayerKind):
    loss: Loss
    regularised: bool = False  # the cost of a sample also holds the penalty R (see `layers.penalty`)

    name = "loss"
    output_kind = "cost"
    summary = "the loss C = Σ ℓ(a, y) (set by the network's `loss` key, not as a layer)"

    def target(self, batch: bool) -> Quantity:
        return Q("y").batched(batch)

    def per_unit(self, node: Node, unit, sample: sp.Idx | None) -> sp.Expr:
        return self.loss.entry(entry_of(node.inputs[0], unit, sample), entry_of(self.target(False), unit, sample))

    def _units(self, node: Node) -> tuple[sp.Idx | tuple, list]:
        """The index (or indices) of one output entry and the limits that sum over all of them."""
        i = node.in_indices(0, "out")
        return (i[0] if len(i) == 1 else i), [(x, x.lower, x.upper) for x in i]

    def sample_cost(self, node: Node, sample: sp.Idx | None = None) -> sp.Expr:
        """C (or C_s for column s of a minibatch) = Σᵢ ℓ(aᵢ, yᵢ)."""
        i, limits = self._units(node)
        data = sp.Sum(self.per_unit(node, i, sample), *limits)
        return data + PENALTY if self.regularised else data

    def batch_cost(self, node: Node) -> sp.Expr:
        """C̄ = (1/m) Σₜ Cₜ (with a penalty: the mean of the data terms plus R, counted once)."""
        t = sample_index("t")
        i, limits = self._units(node)
        data = sp.Sum(self.per_unit(node, i, t), *limits, (t, t.lower, t.upper)) / BATCH_SIZE
        if self.regularised:
            return data + PENALTY
        return sp.Sum(self.sample_cost(node, t), (t, t.lower, t.upper)) / BATCH_SIZE
