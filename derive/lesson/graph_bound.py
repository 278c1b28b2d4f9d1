"""The bound on the error reaching layer 1 of a network that is not a chain, where one can be stated:
walked back from the output's error, each node scales the largest error by at most its gain (a dense
layer ‖W‖₁, an element-wise activation its largest slope, a sum 1 along each input), and where paths
meet their bounds add. A node that states no gain (a normalisation, attention, a convolution, a
dropout mask) stops it: then there is no bound, rather than the chain's bound, which would be false.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.layers.base import norm_symbol
from derive.notation import Q


@dataclass(frozen=True)
class ErrorBound:
    """max|δ⁽¹⁾| ≤ factor · max|δ⁽ᴸ⁾|: `factor`, one term per way back, in the norms (`names`: their
    LaTeX) and the slopes' numbers."""

    factor: sp.Expr
    names: dict  # norm symbol → its LaTeX, ‖W⁽ˡ⁾‖₁
    output: int  # L, the layer of the output's pre-activation


def error_bound(derivation, slopes) -> ErrorBound | None:
    """The bound for this network, or None where a node on a way back states no gain, the output is
    not an activation of a pre-activation, or layer 1 has no pre-activation error."""
    network = derivation.model.network
    largest = {layer: bound.bound for layer, bound in slopes.layers}
    last = network.producers[network.output]
    if getattr(last.kind, "activation", None) is None or Q("delta", 1) not in derivation.sample.results:
        return None
    bounds = {last.inputs[0]: sp.S.One}
    for node in reversed(network.layers):
        if node is last or node.output not in bounds:
            continue
        for k, read in enumerate(node.inputs):
            gain = node.kind.error_gain(node, k, largest.get(node.layer.number))
            if gain is None:
                return None
            bounds[read] = bounds.get(read, sp.S.Zero) + gain * bounds[node.output]
    factor = bounds.get(Q("z", 1))
    if factor is None:
        return None
    names = {norm_symbol(p): rf"\lVert {p.latex()} \rVert_1" for node in network.layers for p in node.parameters}
    return ErrorBound(sp.expand(factor), names, last.layer.number)  # one term per way back


__all__ = ["ErrorBound", "error_bound"]
