"""The LSTM cell of PyTorch's `nn.LSTM`, as nodes the engine differentiates one by one:

    zᵢ = W_ii x + b_ii + W_hi h[τ−1] + b_hi    i = σ(zᵢ)        (input gate)
    z_f = W_if x + b_if + W_hf h[τ−1] + b_hf   f = σ(z_f)       (forget gate)
    z_g = W_ig x + b_ig + W_hg h[τ−1] + b_hg   g = tanh(z_g)    (cell candidate)
    z_o = W_io x + b_io + W_ho h[τ−1] + b_ho   o = σ(z_o)       (output gate)
    c[τ] = f ⊙ [τ ≥ 1] c[τ−1] + i ⊙ g                          (cell state)
    h[τ] = o ⊙ tanh(c[τ])                                       (the layer's output a⁽ˡ⁾)

Each gate is its own pre-activation node (the Elman cell's rule with the gate's weights) and its
own activation node, so the engine derives the gates' errors with σ′ = σ(1 − σ) and tanh′ = 1 − tanh²
in terms of the gate values, and the cell state reads itself at the previous step (a delayed input)
as the state h does: its error has two paths, dc[τ] = dh ⊙ o ⊙ (1 − tanh² c) + dc[τ+1] ⊙ f[τ+1],
from the rule alone. The generated code stacks the four gates' weights in PyTorch's order i, f, g,
o: weight_ih (4H, n) = [W_ii; W_if; W_ig; W_io], weight_hh (4H, H), bias_ih, bias_hh (4H,).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.indexing import Iverson
from derive.layers.activation import Elementwise
from derive.layers.base import LayerKind, Node, entry_of
from derive.layers.recurrent import RNNCell, sequence_axes
from derive.notation import Axis, Q, Quantity, register_quantity

GATES = "ifgo"  # PyTorch's order of the stacked gate weights
GATE_NAMES = {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate"}
# how the gates' values print: Γ for the sigmoid gates and c̃ for the candidate (Ng's notation; Zhang
# et al.'s Dive into Deep Learning writes C̃ too), since PyTorch's i and g are the index and the activation
GATE_LATEX = {"i": (r"\Gamma_{\mathrm{i}}", r"\mathbf{\Gamma}_{\mathrm{i}}"), "f": (r"\Gamma_{\mathrm{f}}", r"\mathbf{\Gamma}_{\mathrm{f}}"),
              "g": (r"\tilde{c}", r"\tilde{C}"), "o": (r"\Gamma_{\mathrm{o}}", r"\mathbf{\Gamma}_{\mathrm{o}}")}

def register_gate(gate: str, value_code: str, value_latex: str, batch_latex: str) -> None:
    """The quantities of one gate: its four parameters (W_i·, W_h·, b_i·, b_h·, PyTorch's names, the
    labels upright so that their letters are not read as indices), its pre-activation z_· and its
    value (printed as `value_latex`: PyTorch's i and g would be the unit index and the activation
    function), per sample and per minibatch, and their derivatives."""
    for w, latex in (("W_i", r"W_{\mathrm{i%s}}"), ("W_h", r"W_{\mathrm{h%s}}"), ("b_i", r"b_{\mathrm{i%s}}"),
                     ("b_h", r"b_{\mathrm{h%s}}")):
        kind, rank = w + gate, (2 if w.startswith("W") else 1)
        register_quantity(kind, "{" + latex % gate + "}", kind, rank, "param", gradient="grad_" + kind)
        register_quantity("grad_" + kind, "{" + latex % gate + "}", "d" + kind, rank, "param")
    for kind, batch, latex, batch_latex, code in (
            ("z" + gate, "Z" + gate, r"z_{\mathrm{%s}}" % gate, r"Z_{\mathrm{%s}}" % gate, "Z" + gate),
            ("g" + gate, "G" + gate.upper(), value_latex, batch_latex, value_code)):
        register_quantity(kind, "{" + latex + "}", None, 1, "sample", batch=batch, gradient="grad_" + kind)
        register_quantity(batch, "{" + batch_latex + "}", code, 2, "batch", gradient="grad_" + batch)
        register_quantity("grad_" + kind, "{" + latex + "}", None, 1, "sample", batch="grad_" + batch, derivative=True)
        register_quantity("grad_" + batch, "{" + batch_latex + "}", "d" + code, 2, "batch", derivative=True)


for _g in GATES:
    register_gate(_g, _g.upper(), *GATE_LATEX[_g])
register_quantity("cell", "c", None, 1, "sample", batch="Cell", gradient="grad_cell")
register_quantity("Cell", "C", "C", 2, "batch", gradient="grad_Cell")
register_quantity("grad_cell", "c", None, 1, "sample", batch="grad_Cell", derivative=True)
register_quantity("grad_Cell", "C", "dC", 2, "batch", derivative=True)


@dataclass(frozen=True)
class GatePre(RNNCell):
    """One gate's pre-activation: the Elman cell's rule with the gate's own four parameters."""

    gate: str = "i"

    name = "lstm_gate"

    @property
    def output_kind(self) -> str:  # noqa: D401 - one quantity per gate
        return "z" + self.gate

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return tuple(Q(w + self.gate, node.layer) for w in ("W_i", "W_h", "b_i", "b_h"))


@dataclass(frozen=True)
class GateValue(Elementwise):
    """A gate's value: σ or tanh of its pre-activation, entry by entry (σ′ = σ(1 − σ) read off the value)."""

    gate: str = "i"

    @property
    def output_kind(self) -> str:
        return "g" + self.gate


@dataclass(frozen=True)
class CellState(LayerKind):
    """c[τ, q] = f[τ, q] [τ ≥ 1] c[τ − 1, q] + i[τ, q] g[τ, q]; reads (f, i, g, c), c at the previous step."""

    name = "lstm_cell_state"
    output_kind = "cell"
    inputs = 4
    delayed = frozenset({3})

    def output_axes(self, node: Node, input_axes) -> tuple[Axis, ...]:
        return sequence_axes(node)

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, q = unit
        f, i, g, c = node.inputs
        return (entry_of(f, (tau, q), sample) * Iverson(tau >= 1) * entry_of(c, (tau - 1, q), sample)
                + entry_of(i, (tau, q), sample) * entry_of(g, (tau, q), sample))


@dataclass(frozen=True)
class HiddenState(LayerKind):
    """h[τ, q] = o[τ, q] tanh(c[τ, q]): the LSTM layer's output (a⁽ˡ⁾, read by the next layer)."""

    name = "lstm_hidden"
    output_kind = "a"
    inputs = 2

    def output_axes(self, node: Node, input_axes) -> tuple[Axis, ...]:
        return sequence_axes(node)

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, q = unit
        o, c = node.inputs
        return entry_of(o, (tau, q), sample) * sp.tanh(entry_of(c, (tau, q), sample))


def lstm_layer(layer, below: Quantity, below_axes, hidden: int, sigmoid, tanh) -> list[Node]:
    """The nodes of LSTM layer `layer` reading `below` (a sequence): four gates' pre-activations and
    values, the cell state, the output h = a⁽ˡ⁾."""
    own = (Axis("t", layer), Axis("n", layer))
    nodes = []
    for g in GATES:
        pre = Node(GatePre(hidden, g), layer, (below, Q("a", layer)), (below_axes, own))
        nodes.append(pre)
    for g in GATES:
        pre = nodes[GATES.index(g)]
        nodes.append(Node(GateValue(tanh if g == "g" else sigmoid, g), layer, (pre.output,), (own,)))
    nodes.append(Node(CellState(), layer, (Q("gf", layer), Q("gi", layer), Q("gg", layer), Q("cell", layer)),
                      (own, own, own, own)))
    nodes.append(Node(HiddenState(), layer, (Q("go", layer), Q("cell", layer)), (own, own)))
    return nodes
