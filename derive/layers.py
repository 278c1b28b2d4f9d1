"""Layers as local forward rules at index level.

A layer only says how one entry of its output is computed from its inputs (zᵢ = Σⱼ Wᵢⱼ aⱼ + bᵢ,
aᵢ = g(zᵢ), …). Everything backward is obtained from that rule by the chain-rule machinery in
`backprop`, which differentiates it with SymPy. A layer may add a `readable` hook that rewrites its
local derivative into a nicer proved form (σ′ = a(1 − a), the softmax Jacobian in terms of a).

Every entry function takes `batch`: False gives the per-sample vector form (indices like zᵢ),
True the minibatch form with a sample index (Zᵢₛ, one column per sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.catalog import Activation, Loss
from derive.notation import BATCH_SIZE, PENALTY, A, LayerRef, Q, Quantity, Z, index, sample_index
from derive.rewrite import activation_derivative, softmax_in_terms_of_output


def entry_of(quantity: Quantity, unit: sp.Idx, sample: sp.Idx | None) -> sp.Indexed:
    """One entry of a per-sample vector (sample None) or of a minibatch matrix."""
    base = quantity.base
    return base[unit] if sample is None else base[unit, sample]


def _sample_kind(kind: str, batch: bool) -> str:
    return {"z": "Z", "a": "A", "delta": "Delta", "y": "Y", "x": "X", "grad_a": "grad_A"}[kind] if batch else kind


@dataclass(frozen=True)
class Dense:
    """z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾."""

    layer: LayerRef

    @property
    def previous(self) -> LayerRef:
        return self.layer.shifted(-1)

    def output(self, batch: bool) -> Quantity:
        return Q(_sample_kind("z", batch), self.layer)

    def input(self, batch: bool) -> Quantity:
        return Q(_sample_kind("a", batch), self.previous)

    @property
    def weight(self) -> Quantity:
        return Q("W", self.layer)

    @property
    def bias(self) -> Quantity:
        return Q("b", self.layer)

    def out_index(self, name: str = "i") -> sp.Idx:
        return index(name, self.layer)

    def in_index(self, name: str = "j") -> sp.Idx:
        return index(name, self.previous)

    def entry(self, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        j = self.in_index("j")
        W, b = self.weight.base, self.bias.base
        return sp.Sum(W[unit, j] * entry_of(self.input(sample is not None), j, sample), (j, j.lower, j.upper)) + b[unit]


@dataclass(frozen=True)
class ActivationLayer:
    """a⁽ˡ⁾ = g(z⁽ˡ⁾): element-wise, or softmax over the units of the layer."""

    layer: LayerRef
    activation: Activation

    def output(self, batch: bool) -> Quantity:
        return Q(_sample_kind("a", batch), self.layer)

    def input(self, batch: bool) -> Quantity:
        return Q(_sample_kind("z", batch), self.layer)

    def out_index(self, name: str = "i") -> sp.Idx:
        return index(name, self.layer)

    def entry(self, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        z = self.input(sample is not None)
        if self.activation.is_softmax:
            return sp.exp(entry_of(z, unit, sample)) / self.softmax_normaliser(sample)
        if self.activation.is_log_softmax:
            return entry_of(z, unit, sample) - sp.log(self.softmax_normaliser(sample))
        return self.activation.entry(entry_of(z, unit, sample))

    def softmax_normaliser(self, sample: sp.Idx | None) -> sp.Sum:
        k = index("k", self.layer)
        return sp.Sum(sp.exp(entry_of(self.input(sample is not None), k, sample)), (k, k.lower, k.upper))

    def readable(self, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        """Rewrite a derivative of this layer in terms of its output a, if a proved form exists.

        Returns the rewritten expression and the rule that justifies it, or None.
        """
        a, z = self.output(sample is not None), self.input(sample is not None)
        if self.activation.is_vector:
            log = self.activation.is_log_softmax
            rewritten = softmax_in_terms_of_output(expr, z.base, a.base, self.softmax_normaliser(sample), log=log)
            return rewritten, "log_softmax_output" if log else "softmax_output"
        d = activation_derivative(self.activation)
        if d.rule is None:
            return None
        replacements = {}
        for entry in sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key):
            if entry.base != z.base:
                continue
            computed = d.computed.xreplace({Z: entry})
            replacements[computed] = d.used.xreplace({Z: entry, A: a.base[entry.indices]})
        if not replacements:
            return None
        rewritten = expr
        for computed, new in replacements.items():
            factors = list(sp.Mul.make_args(rewritten))
            if computed in factors:  # a factor as such (1/piecewise would not cancel)
                factors.remove(computed)
                coefficient = sp.Mul(*factors)
            else:
                coefficient = sp.cancel(rewritten / computed)
            if coefficient.has(*[e for e in computed.atoms(sp.Indexed)]):
                return None
            if sp.expand(coefficient * computed - rewritten) != 0:
                return None
            rewritten = coefficient * new
        return rewritten, d.rule


@dataclass(frozen=True)
class LossLayer:
    """C = Σᵢ ℓ(aᵢ⁽ᴸ⁾, yᵢ) for one sample; the minibatch cost is the mean over the samples."""

    layer: LayerRef  # the output layer L
    loss: Loss
    regularised: bool = False  # the cost of a sample also holds the penalty R (see `regularisation`)

    def input(self, batch: bool) -> Quantity:
        return Q(_sample_kind("a", batch), self.layer)

    def target(self, batch: bool) -> Quantity:
        return Q(_sample_kind("y", batch), None)

    def unit_index(self, name: str = "i") -> sp.Idx:
        return index(name, self.layer)

    def per_unit(self, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        batch = sample is not None
        return self.loss.entry(entry_of(self.input(batch), unit, sample), entry_of(self.target(batch), unit, sample))

    def sample_cost(self, sample: sp.Idx | None = None) -> sp.Expr:
        """C (or C_s for column s of a minibatch) = Σᵢ ℓ(aᵢ, yᵢ)."""
        i = self.unit_index()
        data = sp.Sum(self.per_unit(i, sample), (i, i.lower, i.upper))
        return data + PENALTY if self.regularised else data

    def batch_cost(self) -> sp.Expr:
        """C̄ = (1/m) Σₜ Cₜ (with a penalty: the mean of the data terms plus R, counted once)."""
        t = sample_index("t")
        i = self.unit_index()
        data = sp.Sum(self.per_unit(i, t), (i, i.lower, i.upper), (t, t.lower, t.upper)) / BATCH_SIZE
        if self.regularised:
            return data + PENALTY
        return sp.Sum(self.sample_cost(t), (t, t.lower, t.upper)) / BATCH_SIZE
