"""The GRU cell of PyTorch's `nn.GRU`, as nodes the engine differentiates one by one:

    z_r = W_ir x + b_ir + W_hr h[τ−1] + b_hr               r = σ(z_r)      (reset gate)
    z_z = W_iz x + b_iz + W_hz h[τ−1] + b_hz               z = σ(z_z)      (update gate)
    z_n = W_in x + b_in + r ⊙ (W_hn h[τ−1] + b_hn)          n = tanh(z_n)   (candidate)
    h[τ] = (1 − z) ⊙ n + z ⊙ [τ ≥ 1] h[τ−1]                               (the layer's output a⁽ˡ⁾)

PyTorch applies the reset gate after the hidden product, r ⊙ (W_hn h + b_hn); Cho et al. (2014)
apply it before, W_hn (r ⊙ h), which gives a different candidate and different gradients (with
r inside the product the error of r goes through W_hnᵀ). PyTorch's form is derived here so that
weights move to and from `nn.GRU` unchanged; its stacked order is r, z, n: weight_ih (3H, n),
weight_hh (3H, H), bias_ih, bias_hh (3H,).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.indexing import Iverson
from derive.layers.base import LayerKind, Node, entry_of
from derive.layers.lstm import GatePre, GateValue, register_gate
from derive.layers.recurrent import sequence_axes
from derive.notation import Axis, Q, Quantity

GATES = "rzn"  # PyTorch's order of the stacked gate weights
# printed Γ_r, Γ_z and h̃: PyTorch's r, z and n are the second step index, the pre-activation and a size
for _g, _code, _latex in (("r", "R", (r"\Gamma_{\mathrm{r}}", r"\mathbf{\Gamma}_{\mathrm{r}}")),
                          ("z", "Zgate", (r"\Gamma_{\mathrm{z}}", r"\mathbf{\Gamma}_{\mathrm{z}}")),
                          ("n", "N", (r"\tilde{h}", r"\tilde{H}"))):
    register_gate(_g, _code, *_latex)


@dataclass(frozen=True)
class CandidatePre(GatePre):
    """z_n[τ, i] = Σⱼ W_in[i, j] x[τ, j] + b_in[i] + r[τ, i] ([τ ≥ 1] Σₖ W_hn[i, k] h[τ − 1, k] + b_hn[i]);
    reads (x, h, r), h at the previous step."""

    name = "gru_candidate"
    inputs = 3

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, i = unit
        j, k = node.in_axes[0][1].index("j"), node.in_axes[1][1].index("k")
        W_in, W_hn, b_in, b_hn = (p.base for p in self.parameters(node))
        x, h, r = node.inputs
        hidden = Iverson(tau >= 1) * sp.Sum(W_hn[i, k] * entry_of(h, (tau - 1, k), sample), (k, k.lower, k.upper))
        return (sp.Sum(W_in[i, j] * entry_of(x, (tau, j), sample), (j, j.lower, j.upper)) + b_in[i]
                + entry_of(r, (tau, i), sample) * (hidden + b_hn[i]))


@dataclass(frozen=True)
class GRUHidden(LayerKind):
    """h[τ, i] = (1 − z[τ, i]) n[τ, i] + z[τ, i] [τ ≥ 1] h[τ − 1, i]; reads (z, n, h), h at the previous step."""

    name = "gru_hidden"
    output_kind = "a"
    inputs = 3
    delayed = frozenset({2})

    def output_axes(self, node: Node, input_axes) -> tuple[Axis, ...]:
        return sequence_axes(node)

    def entry(self, node: Node, unit, sample) -> sp.Expr:
        tau, i = unit
        z, n = (entry_of(q, (tau, i), sample) for q in node.inputs[:2])
        h = entry_of(node.inputs[2], (tau - 1, i), sample)
        return (1 - z) * n + z * Iverson(tau >= 1) * h


def gru_layer(layer, below: Quantity, below_axes, hidden: int, sigmoid, tanh) -> list[Node]:
    """The nodes of GRU layer `layer` reading `below`: the reset and update gates, the candidate
    (reading the reset gate's value), and h = a⁽ˡ⁾."""
    own = (Axis("t", layer), Axis("n", layer))
    h = Q("a", layer)
    r_pre = Node(GatePre(hidden, "r"), layer, (below, h), (below_axes, own))
    z_pre = Node(GatePre(hidden, "z"), layer, (below, h), (below_axes, own))
    r = Node(GateValue(sigmoid, "r"), layer, (r_pre.output,), (own,))
    z = Node(GateValue(sigmoid, "z"), layer, (z_pre.output,), (own,))
    n_pre = Node(CandidatePre(hidden, "n"), layer, (below, h, r.output), (below_axes, own, own))
    n = Node(GateValue(tanh, "n"), layer, (n_pre.output,), (own,))
    out = Node(GRUHidden(), layer, (z.output, n.output, h), (own, own, own))
    return [r_pre, z_pre, r, z, n_pre, n, out]
