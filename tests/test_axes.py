"""Quantities with several axes: an input of channels × positions, a 1×1 convolution ("mix") and a
mean over positions, both defined here as layer kinds, then a dense layer and a loss. The engine
derives the network over index tuples, recognises what einsum and broadcasting express, and proves
every matrix form entry by entry; the symbolic check expands each node's own rule."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.layers import LayerKind, Node, entry_of, register
from derive.layers.base import Option, whole_number
from derive.model import build_model
from derive.netfile import parse_network
from derive.notation import Axis, Q, Quantity, register_quantity
from derive.ops import Einsum, Place
from derive.run import derive_in_parallel

register_quantity("M", "M", "M", 2, "param", gradient="grad_M")
register_quantity("grad_M", "M", "dM", 2, "param")


@register
@dataclass(frozen=True)
class Mix(LayerKind):
    """z[f, x] = Σ_c M[f, c] u[c, x] + b[f]: a 1×1 convolution over positions."""

    channels: int = 1
    name = "mix"
    output_kind = "z"
    options = {"channels": Option("a whole number from 1 to 100", whole_number(1, 100))}

    @classmethod
    def build(cls, values):
        return cls(values["channels"])

    def parameters(self, node):
        return (Q("M", node.layer), Q("b", node.layer))

    def parameter_axes(self, node, param):
        own = Axis("c", node.layer)
        return (own, node.in_axes[0][0]) if param.kind == "M" else (own,)

    def weights(self, node):
        return {Q("M", node.layer): node.inputs[0]}

    def output_axes(self, node, input_axes):
        return (Axis("c", node.layer), Axis("w", node.layer))

    def output_shape(self, node, input_shapes):
        return (self.channels, input_shapes[0][1])

    def size_facts(self, node):
        return {Axis("w", node.layer).size: node.in_axes[0][1].size}

    def entry(self, node, unit, sample):
        f, x = unit
        c = node.in_axes[0][0].index("c")
        M, b = Q("M", node.layer).base, Q("b", node.layer).base
        return sp.Sum(M[f, c] * entry_of(node.inputs[0], (c, x), sample), (c, c.lower, c.upper)) + b[f]


@register
@dataclass(frozen=True)
class MeanOverPositions(LayerKind):
    """a[c] = (1/w) Σ_x u[c, x]: global average pooling of a signal."""

    name = "mean_over_positions"
    output_kind = "a"

    def output_axes(self, node, input_axes):
        return (Axis("n", node.layer),)

    def output_shape(self, node, input_shapes):
        return (input_shapes[0][0],)

    def size_facts(self, node):
        return {Axis("n", node.layer).size: node.in_axes[0][0].size}

    def entry(self, node, unit, sample):
        x = node.in_axes[0][1].index("x")
        width = node.in_axes[0][1].size
        return sp.Sum(entry_of(node.inputs[0], (unit, x), sample), (x, x.lower, x.upper)) / width


NETWORK = {
    "input": [2, 5],
    "loss": "mse",
    "layers": [
        {"kind": "mix", "channels": 3, "activation": "tanh"},
        {"kind": "mean_over_positions"},
        {"kind": "dense", "units": 2, "activation": "identity"},
    ],
}


def test_shapes_and_axes_propagate():
    model = build_model(parse_network(NETWORK, "axes.toml"))
    assert model.network.sizes == ((2, 5), (3, 5), 3, 2)
    mix = model.network.layers[0]
    assert [a.role for a in mix.in_axes[0]] == ["c", "w"] and [a.role for a in mix.out_axes] == ["c", "w"]


def test_derived_over_index_tuples_with_einsum_and_broadcast():
    d = derive_in_parallel(build_model(parse_network(NETWORK, "axes.toml")))
    forward = d.batch.results[Q("z", 1)].matrix_rhs  # rank 3: (channel, position, sample)
    assert forward.has(Einsum) and forward.has(Place)  # M contracted with U, the bias placed at axis 0
    error = d.sample.results[Q("delta", 1)]  # the error of the mix layer, (f, position)
    assert len(error.free) == 2 and error.recognition_proved
    grad = d.batch.results[Q("grad_M", 1)]
    assert grad.recognition_proved and grad.matrix_rhs.has(Einsum)
    assert all(r.recognition_proved for p in d.passes() for r in p.results.values())


def test_symbolic_check_expands_each_rule_over_its_axes():
    from derive.verify_symbolic import minibatch_check, symbolic_check

    d = derive_in_parallel(build_model(parse_network(NETWORK, "axes.toml")))
    symbolic = symbolic_check(d)
    assert symbolic.passed and symbolic.ran
    assert symbolic.figures["partials"] == 2 * 2 + 2 + 2 * 2 + 2  # M (2×2), b, W (2×2), b at width 2
    assert minibatch_check(d).passed
