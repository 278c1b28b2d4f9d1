"""Activation layers: aᵢ = g(zᵢ) entry by entry, and the vector activations softmax and log-softmax,
whose every output depends on every input of the layer (aᵢ = e^{zᵢ} / Σₖ e^{zₖ}).

The element-wise kind offers the readable form of g′ that `rewrite.activation_derivative` proves
(σ′ = a(1 − a)); the vector kinds rewrite their Jacobian in terms of their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.catalog import Activation
from derive.layers.base import LayerKind, Node, Option, entry_of, pure_entry, register
from derive.notation import A, Axis, Z, index
from derive.matrixform import RowBroadcast
from derive.rewrite import LogSumExp, activation_derivative, softmax_in_terms_of_output, softmax_stable


@dataclass(frozen=True)
class _ActivationKind(LayerKind):
    activation: Activation  # the catalog entry (or a user-written one)

    output_kind = "a"

    def output_axes(self, node: Node, input_axes):
        """The axes of what it reads (units, or channels and positions), numbered by its own layer."""
        return tuple(Axis(axis.role, node.layer, axis.extent) for axis in input_axes[0])

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        """A standalone activation layer has the size of what it reads."""
        return {own.size: read.size for own, read in zip(node.out_axes, node.in_axes[0]) if own.size != read.size}


@register
@dataclass(frozen=True)
class Elementwise(_ActivationKind):
    """aᵢ = g(zᵢ)."""

    name = "activation"
    summary = "a = g(input) entry by entry; option: function (a catalog name or an expression in z)"
    options = {"function": Option("an activation of `derive list` or an expression in z", str)}

    @classmethod
    def build(cls, values: dict) -> _ActivationKind:
        from derive.catalog import resolve_activation

        return activation_kind(resolve_activation(values["function"], option="function"))

    @pure_entry
    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        return self.activation.entry(entry_of(node.inputs[0], unit, sample))

    def error_gain(self, node: Node, k: int, slope) -> sp.Expr | None:
        """δ = g′(z) ⊙ ∂C/∂a: at most the largest slope (None when the slope is unbounded or unknown)."""
        return slope

    def log_stable_output(self, inp: sp.Symbol) -> sp.Expr:
        return self.activation.entry(inp)

    def readable(self, node: Node, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        """g′(z) rewritten in terms of the output a where a proved form exists."""
        a, z = node.out(sample is not None), node.input(sample is not None)
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
class _VectorKind(_ActivationKind):
    log = False

    def normaliser(self, node: Node, sample: sp.Idx | None) -> sp.Sum:
        k = index("k", node.layer)
        return sp.Sum(sp.exp(entry_of(node.inputs[0], k, sample)), (k, k.lower, k.upper))

    def readable(self, node: Node, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        a, z = node.out(sample is not None), node.input(sample is not None)
        rewritten = softmax_in_terms_of_output(expr, z.base, a.base, self.normaliser(node, sample), log=self.log)
        return rewritten, "log_softmax_output" if self.log else "softmax_output"

    def code_form(self, expr: sp.Expr) -> sp.Expr:
        return softmax_stable(expr)


@register
@dataclass(frozen=True)
class Softmax(_VectorKind):
    """aᵢ = e^{zᵢ} / Σₖ e^{zₖ}."""

    name = "softmax"
    summary = "a = softmax(input) over the units of the layer"

    @classmethod
    def build(cls, values: dict) -> Softmax:
        from derive.catalog import resolve_activation

        return cls(resolve_activation("softmax"))

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        return sp.exp(entry_of(node.inputs[0], unit, sample)) / self.normaliser(node, sample)

    def log_stable_output(self, inp: sp.Symbol) -> sp.Expr:
        return sp.exp(inp - RowBroadcast(LogSumExp(inp)))


@register
@dataclass(frozen=True)
class LogSoftmax(_VectorKind):
    """aᵢ = zᵢ − log Σₖ e^{zₖ}."""

    name = "log_softmax"
    log = True
    summary = "a = log softmax(input) over the units of the layer"

    @classmethod
    def build(cls, values: dict) -> LogSoftmax:
        from derive.catalog import resolve_activation

        return cls(resolve_activation("log_softmax"))

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        return entry_of(node.inputs[0], unit, sample) - sp.log(self.normaliser(node, sample))

    def log_stable_output(self, inp: sp.Symbol) -> sp.Expr:
        return inp - RowBroadcast(LogSumExp(inp))


def activation_kind(activation: Activation) -> _ActivationKind:
    """The layer kind that applies a catalog activation: element-wise, softmax or log-softmax."""
    if activation.is_softmax:
        return Softmax(activation)
    if activation.is_log_softmax:
        return LogSoftmax(activation)
    return Elementwise(activation)
