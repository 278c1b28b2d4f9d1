"""Backpropagation over a network graph: every node's local rule glued by the chain rule.

The walk is the backward pass itself. The loss gives ∂C/∂a⁽ᴸ⁾; then, node by node from the last,
each node turns the error of its output into the gradients of its parameters and into the errors
of its inputs. An error that several formulas read gets a name (δ⁽ˡ⁾ = ∂C/∂z⁽ˡ⁾, or ∂C/∂a where
two paths meet and their terms are added); any other is substituted where it is used. The same
walk over the nodes of a general layer l gives the recursion the documents show before the
layer-by-layer formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from derive.backprop import (
    COST_KEY,
    Flow,
    Pass,
    Result,
    Step,
    forward_result,
    gradient_through,
    inline_flow,
    loss_equation,
    loss_gradient,
    named_gradient,
    parameter_gradients,
    update_rule,
)
from derive.indexing import assume_sizes
from derive.layers import Dense, Node, activation_kind
from derive.model import Model
from derive.network import Network
from derive.notation import LayerRef, Q, Quantity
from derive.rewrite import ActivationDerivative, activation_derivative


@dataclass
class Derivation:
    model: Model
    sample: Pass
    batch: Pass
    general: Pass | None  # the hidden-layer recursion and gradients for a symbolic layer l (per sample)
    updates: dict[str, list[Step]] = field(default_factory=dict)
    general_forward: tuple[Result, Result] | None = None  # z⁽ˡ⁾ of a general layer l: per sample, minibatch
    activation_derivatives: tuple[ActivationDerivative, ...] = ()
    general_batch: Pass | None = None  # the parameter gradients of the general layer l per minibatch

    def passes(self) -> list[Pass]:
        return [p for p in (self.sample, self.batch, self.general, self.general_batch) if p is not None]


def walk(network: Network, nodes: tuple[Node, ...], flows: dict[Quantity, Flow], batch: bool, out: Pass,
         *, probability_targets: bool = False, parameters: bool = True) -> None:
    """The backward pass over `nodes` (forward order; walked in reverse), given the flows of ∂C/∂q of
    the quantities they produce; records every named error and parameter gradient in `out`."""
    uses: dict[Quantity, list[tuple[Node, int, Flow]]] = {}
    for q, node, k in network.delayed_uses:  # a recurrence: the reading node's error is a name, used at t + 1
        if node in nodes:
            uses.setdefault(q, []).append((node, k, Flow()))
    for node in reversed(nodes):
        flow = flows[node.output]
        if parameters:
            for param, steps, result in parameter_gradients(node, batch, network.penalty):
                out.add(param.gradient, steps, result)
        for k, u in enumerate(node.inputs):
            if not network.needs_gradient(u) or k in node.kind.delayed:
                continue
            uses.setdefault(u, []).append((node, k, flow))
            if len(uses[u]) < len(network.consumers[u]):
                continue  # other paths reach u from nodes not walked yet
            named = network.named_gradient(u)
            steps, value, lhs = gradient_through(uses.pop(u), batch, named=named,
                                                 probability_targets=probability_targets)
            if named:
                out.add(u.gradient, steps, named_gradient(u, steps, value, lhs, batch))
                flows[u] = Flow()
            else:
                flows[u] = inline_flow(steps, value, lhs, batch)


def backward_pass(network: Network, batch: bool, *, probability_targets: bool = False) -> Pass:
    """Forward equations, the cost, ∂C/∂a⁽ᴸ⁾ and every error and gradient of the network."""
    from derive.windowsizes import network_sizes

    with assume_sizes(network.size_facts), network_sizes(network):
        return _backward_pass(network, batch, probability_targets=probability_targets)


def _backward_pass(network: Network, batch: bool, *, probability_targets: bool) -> Pass:
    result = Pass(batch)
    for node in network.layers:
        result.results[node.output] = forward_result(node, batch)
    result.results[COST_KEY] = loss_equation(network.loss_node, batch)
    steps, flow, grad = loss_gradient(network.loss_node, batch)
    result.add(network.output.gradient, steps, grad)
    walk(network, network.layers, {network.output: flow}, batch, result, probability_targets=probability_targets)
    for node in network.layers:  # compact forms a kind proves equal to what the walk derived
        for key, steps in node.kind.proved_steps(node, network, result, batch).items():
            result.steps[key] = [*result.steps[key], *steps]
    return result


def _probability_targets(model: Model) -> bool:
    return model.loss.target == "probability"


def general_layer(model: Model) -> tuple[Network, tuple[Node, ...]] | None:
    """A hidden layer l of the chain, between the layers l − 1 and l + 1 (when every hidden layer has
    the same activation): the nodes whose walk gives δ⁽ˡ⁾ from δ⁽ˡ⁺¹⁾ and the gradients of layer l."""
    activation = model.uniform_hidden_activation
    if activation is None:
        return None
    l = LayerRef.symbolic()
    above = l.shifted(1)
    nodes = (
        Node(Dense(), l, (Q("a", l.shifted(-1)),)),
        Node(activation_kind(activation), l, (Q("z", l),)),
        Node(Dense(), above, (Q("a", l),)),
    )
    return Network(nodes, (), model.penalty, fragment=True), nodes


def _general(model: Model, batch: bool) -> Pass | None:
    """The recursion for a hidden layer l (per sample) or its parameter gradients (per minibatch)."""
    found = general_layer(model)
    if found is None:
        return None
    network, nodes = found
    result = Pass(batch)
    if batch:
        for param, steps, grad in parameter_gradients(nodes[0], True, model.penalty):
            result.add(param.gradient, steps, grad)
        return result
    walk(network, nodes[1:], {nodes[-1].output: Flow()}, False, result, parameters=False)
    for param, steps, grad in parameter_gradients(nodes[0], False, model.penalty):
        result.add(param.gradient, steps, grad)
    return result


def _updates(model: Model, batch: Pass, general: Pass | None) -> dict[str, list[Step]]:
    updates = {}
    for node in model.network.layers:
        if node.parameters:  # the nodes of one layer (an attention layer's projections) share its entry
            updates.setdefault(node.layer.tag(), []).extend(
                update_rule([(p, batch.results[p.gradient]) for p in node.parameters]))
    if general is not None:
        l = LayerRef.symbolic()
        updates["l"] = update_rule([(p, general.results[p.gradient]) for p in (Q("W", l), Q("b", l))])
    return updates


def derive_minibatch(model: Model) -> tuple[Pass, Pass | None, Pass | None, dict[str, list[Step]]]:
    """The minibatch pass, the general layer l and the update rules: the half of a derivation that
    does not need the other (`derive.run` computes it in a second process)."""
    batch = backward_pass(model.network, True, probability_targets=_probability_targets(model))
    general = _general(model, False)
    general_batch = _general(model, True)
    return batch, general, general_batch, _updates(model, batch, general_batch)


def derive_sample(model: Model) -> tuple[Pass, tuple[Result, Result], tuple[ActivationDerivative, ...]]:
    """The per-sample pass, the general layer's forward rule and the activations' derivatives. A
    network that couples the samples of a minibatch has no per-sample form: its pass is the
    minibatch pass (and the documents say so)."""
    coupled = model.network.couples_samples
    sample = backward_pass(model.network, coupled, probability_targets=_probability_targets(model))
    general_dense = Node(Dense(), LayerRef.symbolic(), (Q("a", LayerRef.symbolic(-1)),))
    general_forward = (forward_result(general_dense, False), forward_result(general_dense, True))
    elementwise = dict.fromkeys(a for a in model.activations if not a.is_vector)
    return sample, general_forward, tuple(activation_derivative(a) for a in elementwise)


def assemble(model: Model, sample_half: tuple, minibatch_half: tuple) -> Derivation:
    sample, general_forward, derivatives = sample_half
    batch, general, general_batch, updates = minibatch_half
    return Derivation(model, sample, batch, general, updates=updates, activation_derivatives=derivatives,
                      general_forward=general_forward, general_batch=general_batch)


def derive(model: Model) -> Derivation:
    """Derive everything, in this process."""
    return assemble(model, derive_sample(model), derive_minibatch(model))
