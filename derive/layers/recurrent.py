"""Recurrent layers over sequences: the Elman cell, the last step of a sequence, a dense head per step.

Every quantity of a sequence has the time axis first (entry [τ, i], per minibatch [τ, i, s]: the
sample index last, as everywhere). The Elman cell is PyTorch's `nn.RNN` written for one entry,

    z⁽ˡ⁾[τ, i] = Σⱼ W_ih[i, j] x[τ, j] + b_ih[i] + [τ ≥ 1] Σₖ W_hh[i, k] h⁽ˡ⁾[τ − 1, k] + b_hh[i],

its output h = g(z) given by the activation node that follows it, and h⁽ˡ⁾ read at the previous step
(the `delayed` input: the engine adds the path through the next step itself, so backpropagation
through time comes out of the chain rule, see `derive.derivation.walk`). The state before the first
step is zero, which is PyTorch's default h₀; the bracket [τ ≥ 1] says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.indexing import Iverson
from derive.layers.base import LayerKind, Node, entry_of
from derive.layers.loss import LossKind
from derive.notation import Axis, Q, Quantity, register_quantity

# braced, so that an entry's indices are a subscript of the group: {W_{hh}}^{(1)}_{ik}; the labels
# upright, so that the i of "input" is not read as the unit index i
for _kind, _latex in (("W_ih", r"{W_{\mathrm{ih}}}"), ("W_hh", r"{W_{\mathrm{hh}}}"), ("b_ih", r"{b_{\mathrm{ih}}}"),
                      ("b_hh", r"{b_{\mathrm{hh}}}")):
    _rank = 2 if _kind.startswith("W") else 1
    register_quantity(_kind, _latex, _kind, _rank, "param", gradient="grad_" + _kind)
    register_quantity("grad_" + _kind, _latex, "d" + _kind, _rank, "param")


def time_axis(node: Node, k: int = 0) -> Axis:
    """The time axis of the node's k-th input (a sequence's axes are (time, units))."""
    return node.in_axes[k][0]


def sequence_axes(node: Node) -> tuple[Axis, Axis]:
    """The axes of a recurrent layer's quantities: its steps, then its units."""
    return (Axis("t", node.layer), Axis("n", node.layer))


class OverSteps:
    """A kind whose output has a row per step of its first input (a cell, a head at every step)."""

    def output_axes(self, node: Node, input_axes) -> tuple[Axis, ...]:
        return sequence_axes(node)

    def size_facts(self, node: Node) -> dict:
        return {Axis("t", node.layer).size: time_axis(node).size}


@dataclass(frozen=True)
class RNNCell(OverSteps, LayerKind):
    """The pre-activation of PyTorch's Elman cell; its inputs are the sequence below and its own
    layer's output h (read at the previous step)."""

    hidden: int = 1

    name = "rnn_cell"
    output_kind = "z"
    inputs = 2
    delayed = frozenset({1})
    summary = "z[t] = W_ih x[t] + b_ih + W_hh h[t-1] + b_hh (PyTorch's nn.RNN); options: hidden"

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return tuple(Q(kind, node.layer) for kind in ("W_ih", "W_hh", "b_ih", "b_hh"))

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[Axis, ...]:
        """By position in `parameters`: W_ih (units, input units), W_hh (units, state units), two biases."""
        own = Axis("n", node.layer)
        position = self.parameters(node).index(param)
        return ((own, node.in_axes[0][1]), (own, node.in_axes[1][1]), (own,), (own,))[position]

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        W_ih, W_hh, _, _ = self.parameters(node)
        return {W_ih: node.inputs[0], W_hh: node.inputs[1]}

    def units(self, node: Node, input_units: tuple[int, ...]) -> int:
        return self.hidden

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, i = unit
        j, k = node.in_axes[0][1].index("j"), node.in_axes[1][1].index("k")
        W_ih, W_hh, b_ih, b_hh = (p.base for p in self.parameters(node))
        x, h = node.inputs
        return (sp.Sum(W_ih[i, j] * entry_of(x, (tau, j), sample), (j, j.lower, j.upper)) + b_ih[i]
                + Iverson(tau >= 1) * sp.Sum(W_hh[i, k] * entry_of(h, (tau - 1, k), sample), (k, k.lower, k.upper))
                + b_hh[i])


@dataclass(frozen=True)
class LastStep(LayerKind):
    """a[i] = h[T − 1, i]: the output of a sequence's last step (a many-to-one network)."""

    name = "last_step"
    output_kind = "a"
    summary = "the output of the last step of a sequence"

    def output_axes(self, node: Node, input_axes) -> tuple[Axis, ...]:
        return (Axis("n", node.layer),)

    def size_facts(self, node: Node) -> dict:
        return {Axis("n", node.layer).size: node.in_axes[0][1].size}

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        return entry_of(node.inputs[0], (time_axis(node).size - 1, unit), sample)


@dataclass(frozen=True)
class StepMeanLoss(LossKind):
    """The loss of a sequence averaged over its steps: C = (1/T) Σ_τ Σᵢ ℓ(a[τ, i], y[τ, i]), T the
    length of the time axis of what it reads. Only the per-entry term changes; the engine
    differentiates it like any loss."""

    name = "step_mean_loss"

    def per_unit(self, node: Node, unit, sample) -> sp.Expr:
        return super().per_unit(node, unit, sample) / node.in_axes[0][0].size


@dataclass(frozen=True)
class StepDense(OverSteps, LayerKind):
    """z[τ, i] = Σⱼ W[i, j] h[τ, j] + b[i]: one dense layer applied at every step (its weights
    shared by the steps, as `nn.Linear` on PyTorch's (T, m, H) output)."""

    units_out: int = 1

    name = "step_dense"
    output_kind = "z"
    summary = "z[t] = W h[t] + b at every step"

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("W", node.layer), Q("b", node.layer))

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[Axis, ...]:
        own = Axis("n", node.layer)
        return (own, node.in_axes[0][1]) if param.kind == "W" else (own,)

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        return {Q("W", node.layer): node.inputs[0]}

    def units(self, node: Node, input_units: tuple[int, ...]) -> int:
        return self.units_out

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, i = unit
        j = node.in_axes[0][1].index("j")
        W, b = (p.base for p in self.parameters(node))
        return sp.Sum(W[i, j] * entry_of(node.inputs[0], (tau, j), sample), (j, j.lower, j.upper)) + b[i]
