"""BP1 and BP2 in their general form, derived by the engine itself.

The document's own derivation uses this network's activation and loss, so its results are an
instance. Here the same walk (`derivation.walk`, the same rules and the same matrix-form check) runs
on a layer whose activation is a general function g, with derivative g′ and nothing known about it,
and whose upstream ∂C/∂a is left as a symbol: what comes out is δ⁽ᴸ⁾ = ∂C/∂a⁽ᴸ⁾ ⊙ g′(z⁽ᴸ⁾) and
δ⁽ˡ⁾ = ((W⁽ˡ⁺¹⁾)ᵀ δ⁽ˡ⁺¹⁾) ⊙ g′(z⁽ˡ⁾), for any element-wise activation and any loss. A softmax output
(a vector activation) is derived with its own function and a general loss: δ = (diag(a) − a aᵀ) ∂C/∂a.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from derive.backprop import Flow, Result, Step
from derive.catalog.activations import Activation
from derive.notation import Z, LayerRef, Q

G_PRIME = sp.Function("g'")


class g(sp.Function):  # noqa: N801  (printed as g)
    """A general activation: its derivative is g′, and nothing else is known about it."""

    nargs = 1

    def fdiff(self, argindex=1):
        return G_PRIME(self.args[0])

    def _latex(self, printer):
        return "g(" + printer._print(self.args[0]) + ")"


GENERAL = Activation("general", "general activation", g(Z))


@dataclass(frozen=True)
class GeneralForm:
    steps: tuple[Step, ...]
    result: Result


@dataclass(frozen=True)
class GeneralForms:
    output: GeneralForm  # δ of an output layer l with any loss (its ∂C/∂a kept as a symbol)
    hidden: GeneralForm | None  # δ of a hidden layer l, for any element-wise activation
    vector: bool  # the output form is that of this network's vector activation (softmax), not of g


def _walk(nodes, start) -> GeneralForm:
    from derive.derivation import Pass, walk
    from derive.network import Network

    network = Network(tuple(nodes), (), None, fragment=True)
    result = Pass(False)
    walk(network, tuple(nodes[1:]) if len(nodes) > 1 else tuple(nodes), {start: Flow()}, False, result,
         parameters=False)
    key = Q("delta", LayerRef.symbolic())
    return GeneralForm(tuple(result.steps[key]), result.results[key])


@lru_cache(maxsize=None)
def _forms(output_activation: Activation | None) -> GeneralForms:
    from derive.layers import Dense, Node, activation_kind

    l = LayerRef.symbolic()
    act = output_activation if output_activation is not None else GENERAL
    out_node = Node(activation_kind(act), l, (Q("z", l),))
    output = _walk((out_node,), out_node.output)
    hidden_nodes = (Node(Dense(), l, (Q("a", l.shifted(-1)),)), Node(activation_kind(GENERAL), l, (Q("z", l),)),
                    Node(Dense(), l.shifted(1), (Q("a", l),)))
    hidden = _walk(hidden_nodes, hidden_nodes[-1].output)
    return GeneralForms(output, hidden, output_activation is not None)


def general_forms(derivation) -> GeneralForms | None:
    """The general BP1 and BP2 for an MLP: an element-wise output gets g, a softmax output its own
    function; None for an output the general walk does not cover (log-softmax)."""
    output = derivation.model.activations[-1]
    if output.is_vector and not output.is_softmax:
        return None
    return _forms(output if output.is_vector else None)


def elementwise_forms() -> GeneralForms:
    """The general BP1 of an element-wise output, ∂C/∂a ⊙ g′(z), derived whatever this network's output is
    (a softmax document lists it beneath its Jacobian form)."""
    return _forms(None)


__all__ = ["GeneralForms", "GeneralForm", "general_forms", "elementwise_forms", "GENERAL"]
