"""A recurrence: a node that reads its own layer's output at the previous time step. The engine
derives backpropagation through time from the rule alone: the error of h⁽ᵗ⁾ is the sum of the path
through the loss and the path through the next step's pre-activation (a Kronecker sum over time that
collapses with its range guard), and a shared weight's gradient is a sum over the steps."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.catalog import resolve_activation, resolve_loss
from derive.derivation import backward_pass
from derive.indexing import Iverson
from derive.layers import Dense, LayerKind, LossKind, Node, activation_kind, entry_of, register
from derive.network import Network
from derive.notation import Axis, LayerRef, Q, register_quantity

register_quantity("U", "U", "U", 2, "param", gradient="grad_U")
register_quantity("grad_U", "U", "dU", 2, "param")
register_quantity("V", "V", "V", 2, "param", gradient="grad_V")
register_quantity("grad_V", "V", "dV", 2, "param")


@register
@dataclass(frozen=True)
class ElmanStep(LayerKind):
    """z[τ, i] = Σ_j U[i, j] x[τ, j] + [τ ≥ 1] Σ_j V[i, j] h[τ − 1, j] + b[i]."""

    units: int = 1
    name = "elman_step_test"
    output_kind = "z"
    inputs = 2
    delayed = frozenset({1})

    def parameters(self, node):
        return (Q("U", node.layer), Q("V", node.layer), Q("b", node.layer))

    def parameter_axes(self, node, param):
        own = Axis("n", node.layer)
        return {"U": (own, node.in_axes[0][1]), "V": (own, own), "b": (own,)}[param.kind]

    def output_axes(self, node, input_axes):
        return (Axis("t", node.layer), Axis("n", node.layer))

    def size_facts(self, node):
        return {Axis("t", node.layer).size: node.in_axes[0][0].size}

    def entry(self, node, unit, sample):
        tau, i = unit
        j, k = node.in_axes[0][1].index("j"), Axis("n", node.layer).index("k")
        U, V, b = (p.base for p in self.parameters(node))
        x, h = node.inputs
        return (sp.Sum(U[i, j] * entry_of(x, (tau, j), sample), (j, j.lower, j.upper))
                + Iverson(tau >= 1) * sp.Sum(V[i, k] * entry_of(h, (tau - 1, k), sample), (k, k.lower, k.upper))
                + b[i])


@register
@dataclass(frozen=True)
class LastStep(LayerKind):
    """a[i] = h[T − 1, i]: the output of the last step."""

    name = "last_step_test"
    output_kind = "a"

    def output_axes(self, node, input_axes):
        return (Axis("n", node.layer),)

    def size_facts(self, node):
        return {Axis("n", node.layer).size: node.in_axes[0][1].size}

    def entry(self, node, unit, sample):
        steps = node.in_axes[0][0].size
        return entry_of(node.inputs[0], (steps - 1, unit), sample)


def network() -> Network:
    L = LayerRef
    x_axes = (Axis("t", L(0)), Axis("n", L(0)))
    h_axes = (Axis("t", L(1)), Axis("n", L(1)))
    cell = Node(ElmanStep(3), L(1), (Q("a", 0), Q("a", 1)), (x_axes, h_axes))
    act = Node(activation_kind(resolve_activation("tanh")), L(1), (Q("z", 1),), (cell.out_axes,))
    last = Node(LastStep(), L(2), (Q("a", 1),), (act.out_axes,))
    head = Node(Dense(2), L(3), (Q("a", 2),))
    out = Node(activation_kind(resolve_activation("identity")), L(3), (Q("z", 3),))
    loss = Node(LossKind(resolve_loss("mse")), L(3), (Q("a", 3),))
    return Network((cell, act, last, head, out, loss), (None, None, None, 2))


def test_backpropagation_through_time_is_derived_from_the_rule():
    net = network()
    p = backward_pass(net, False)
    grad_h = p.results[Q("grad_a", 1)]  # ∂C/∂h[r, q]: two paths, the last step's and the next step's
    assert any(s.rule == "chain_rule_paths" for s in p.steps[Q("grad_a", 1)])
    r, q = grad_h.free
    delta = Q("delta", 1).base
    assert grad_h.rhs.has(delta[r + 1, grad_h.rhs.atoms(sp.Idx).pop()] if False else delta)
    shifted = [e for e in grad_h.rhs.atoms(sp.Indexed) if e.base == delta]
    assert shifted and all(e.indices[0] == r + 1 for e in shifted)  # the error of the next step
    assert grad_h.rhs.has(Iverson)  # … which exists only before the last step
    grad_V = p.results[Q("grad_V", 1)]  # a shared weight: a sum over the steps
    assert any(isinstance(s, sp.Sum) and any(str(lim[0]) == "tau" for lim in s.limits) for s in grad_V.rhs.atoms(sp.Sum))
