"""A network as a directed acyclic graph of layer nodes, ending in its loss.

Nodes are kept in forward (topological) order; each reads quantities produced by earlier nodes or
the input a⁽⁰⁾ = x. The derivation walks the graph backwards: a quantity read by several nodes
gets the sum of the errors of all its paths. A chain (the MLP) is the common case.
"""

from __future__ import annotations

import sympy as sp

from dataclasses import dataclass
from functools import cached_property

from derive.layers import Node
from derive.notation import LayerRef, Q, Quantity
from derive.layers.penalty import Penalty

INPUT = Q("a", 0)


@dataclass(frozen=True)
class Network:
    nodes: tuple[Node, ...]  # forward order; the loss node last
    sizes: tuple[int, ...]  # units of layers 0 … N (the nodes of one layer share its size)
    penalty: Penalty | None = None
    fragment: bool = False  # a part of a network (the general layer l): no loss, inputs from outside

    def __post_init__(self):
        if self.fragment:
            return
        known = {INPUT}
        computed = {node.output for node in self.nodes[:-1]}
        for node in self.nodes[:-1]:
            missing = [q for k, q in enumerate(node.inputs)
                       if q not in known and not (k in node.kind.delayed and q in computed)]
            if missing:
                raise ValueError(f"node {node.output.label} reads {missing[0].label} before it is computed")
            if node.output in known:
                raise ValueError(f"two nodes compute {node.output.label}")
            known.add(node.output)

    @property
    def loss_node(self) -> Node:
        return self.nodes[-1]

    @property
    def layers(self) -> tuple[Node, ...]:
        """Every node but the loss."""
        return self.nodes if self.fragment else self.nodes[:-1]

    @property
    def output(self) -> Quantity:
        """The quantity the loss reads."""
        return self.loss_node.inputs[0]

    @property
    def input_axes(self):
        """The axes of the input x, as the nodes that read it see them."""
        for node in self.nodes:
            for k, q in enumerate(node.inputs):
                if q == INPUT:
                    return node.in_axes[k]
        raise ValueError("no node reads the input")

    @cached_property
    def producers(self) -> dict[Quantity, Node]:
        return {node.output: node for node in self.layers}

    @cached_property
    def consumers(self) -> dict[Quantity, tuple[tuple[Node, int], ...]]:
        """For each quantity, the nodes that read it and at which input position, in forward order."""
        out: dict[Quantity, list[tuple[Node, int]]] = {}
        for node in self.nodes:
            for k, q in enumerate(node.inputs):
                out.setdefault(q, []).append((node, k))
        return {q: tuple(v) for q, v in out.items()}

    def needs_gradient(self, q: Quantity) -> bool:
        """Whether ∂C/∂q is needed: q is computed by a node (the input x needs none; in a fragment,
        every input it reads from outside is computed somewhere)."""
        return q in self.producers or (self.fragment and q != INPUT)

    def gradient_uses(self, q: Quantity) -> int:
        """How many formulas read ∂C/∂q: one per input of its producer that needs a gradient and one
        per parameter. Used more than once (or reached along several paths), it gets a name."""
        node = self.producers.get(q)
        if node is None:  # produced outside a fragment: as in a chain, by a dense layer
            return 2
        return sum(self.needs_gradient(p) for p in node.inputs) + len(node.parameters)

    @cached_property
    def delayed_uses(self) -> tuple[tuple[Quantity, Node, int], ...]:
        """The inputs read at the previous time step: (quantity, the node reading it, the position)."""
        return tuple((q, node, k) for node in self.layers for k, q in enumerate(node.inputs) if k in node.kind.delayed)

    def named_gradient(self, q: Quantity) -> bool:
        """∂C/∂q gets its own symbol (δ for a pre-activation) instead of being substituted where it is
        used: when several formulas read it, or several paths reach it."""
        producer = self.producers.get(q)
        if producer is not None and (producer.kind.names_output_error or getattr(producer.kind, "names_error", False)):
            return True  # pooling reads its input's error whole; a normalisation names it
        if any(node.kind.names_input_error for node, _ in self.consumers.get(q, ())):
            return True
        if producer is not None and producer.parameters:  # its parameters' gradients read δ by name (a
            return True  # one-parameter layer on the input x: a bias-free convolution, a positional embedding)
        return self.gradient_uses(q) > 1 or len(self.consumers.get(q, ())) > 1

    @cached_property
    def size_facts(self) -> dict:
        """Size symbols equal by construction, each mapped to one representative (see
        `indexing.assume_sizes`)."""
        parent: dict = {}

        def root(x):
            while x in parent:
                x = parent[x]
            return x

        products = {}  # a size that is a product of others (a flatten's n = c·h·w): no union, a value
        for node in self.layers:
            for a, b in node.kind.size_facts(node).items():
                if not isinstance(b, sp.Symbol):
                    products[a] = b
                    continue
                ra, rb = root(a), root(b)
                if ra != rb:
                    low, high = sorted((ra, rb), key=lambda s: (len(s.name), s.name))
                    parent[high] = low
        facts = {x: root(x) for x in parent}
        facts.update({a: b.xreplace(facts) for a, b in products.items()})
        return facts

    @cached_property
    def couples_samples(self) -> bool:
        """Some node reads other samples of the minibatch (batch normalisation): no per-sample form."""
        return any(node.kind.couples_samples for node in self.layers)

    @cached_property
    def data_inputs(self) -> tuple[tuple[Node, Quantity], ...]:
        """The arrays its nodes read that the derivation holds fixed (dropout masks), with their nodes."""
        return tuple((node, q) for node in self.layers for q in node.kind.data_inputs(node))

    @cached_property
    def constants(self) -> dict:
        """Symbols of the formulas that stand for fixed numbers (dropout's p⁽ˡ⁾), with their values."""
        out = {}
        for node in self.layers:
            out.update(node.kind.constants(node))
        return out

    def dim_name(self, layer: int) -> str:
        """The name generated code gives a layer's size: n3, or the name of the layer whose size it
        equals by construction."""
        from derive.notation import size

        return self.symbol_dim(size(LayerRef(layer)))

    def symbol_dim(self, symbol) -> str:
        """The code name of a size symbol (n_3 → n3, c_2 → c2), through the sizes equal by construction."""
        known = self.size_facts.get(symbol, symbol)
        role, _, tag = (known if isinstance(known, sp.Symbol) else symbol).name.partition("_")
        return role + tag

    def axis_dim(self, axis) -> str | int:
        """An axis's size in generated code: a layer size's name, or a fixed extent."""
        return axis.extent if axis.extent is not None else self.symbol_dim(axis.size)

    def axes_of(self, q: Quantity):
        """The axes of a per-sample quantity: the input's, or those its producer gives its output."""
        q = Quantity({"A": "a", "Z": "z", "X": "x"}.get(q.kind, q.kind), q.layer)
        if q == INPUT:
            return self.input_axes
        return self.producers[q].out_axes

    def owner(self, param: Quantity) -> Node:
        """The node a parameter belongs to."""
        for node in self.layers:
            if param in node.parameters:
                return node
        raise KeyError(param.label)

    def size_of(self, layer: LayerRef) -> int:
        return self.sizes[layer.number]
