"""A layer kind defined here, in the test, and registered: a network using it is derived, verified,
coded and documented with no edit to derive/. The kind is bilinear, zᵢ = Σⱼ Σₖ Tᵢⱼₖ uⱼ uₖ, with a
parameter of rank 3: none of its derivatives is a matrix product, so the engine's einsum fallback
carries them from the index form to the code."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import sympy as sp

from derive.layers import LayerKind, Node, entry_of, register
from derive.layers.base import Option, whole_number
from derive.model import build_model
from derive.netfile import parse_network
from derive.notation import LayerRef, Q, Quantity, register_quantity
from derive.ops import Einsum
from derive.run import generate
from derive.verify import load_module

register_quantity("T", "T", "T", 3, "param", gradient="grad_T")
register_quantity("grad_T", "T", "dT", 3, "param")


@register
@dataclass(frozen=True)
class Bilinear(LayerKind):
    units_out: int = 1

    name = "bilinear"
    output_kind = "z"
    summary = "z_i = Σ_j Σ_k T_ijk u_j u_k"
    options = {"units": Option("a whole number from 1 to 100", whole_number(1, 100))}

    @classmethod
    def build(cls, values):
        return cls(values["units"])

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("T", node.layer),)

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[LayerRef, ...]:
        return (node.layer, node.inputs[0].layer, node.inputs[0].layer)

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        return {Q("T", node.layer): node.inputs[0]}

    def units(self, node: Node, input_units: tuple[int, ...]) -> int:
        return self.units_out

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        j, k = node.in_index("j"), node.in_index("k")
        T = Q("T", node.layer).base
        u = node.inputs[0]
        return sp.Sum(T[unit, j, k] * entry_of(u, j, sample) * entry_of(u, k, sample),
                      (j, j.lower, j.upper), (k, k.lower, k.upper))


NETWORK = {
    "input": 3,
    "loss": "mse",
    "layers": [
        {"kind": "dense", "units": 4, "activation": "tanh"},
        {"kind": "bilinear", "units": 3, "activation": "sigmoid"},
        {"kind": "dense", "units": 2, "activation": "identity"},
    ],
}


@pytest.fixture(scope="module")
def outcome():
    spec = parse_network(NETWORK, "toy.toml", text="(in the test)")
    return generate(replace(spec, formats=("md", "tex", "py", "json", "html")))


def test_the_kind_is_derived_with_einsum_where_no_matrix_form_fits(outcome):
    batch = outcome.derivation.batch.results
    assert isinstance(batch[Q("z", 2)].matrix_rhs, Einsum)
    assert batch[Q("grad_T", 2)].matrix_rhs.has(Einsum)
    assert batch[Q("delta", 1)].matrix_rhs.has(Einsum)  # ∂z⁽²⁾/∂a⁽¹⁾ carried into the error of layer 1
    assert all(r.recognition_proved for r in batch.values())


def test_every_check_passes(outcome):
    assert outcome.report.passed
    ran = {c.name for c in outcome.report.checks if c.ran}
    assert {"symbolic", "minibatch", "derivatives", "workspace"} <= ran
    assert outcome.report.check("symbolic").figures["per_node"].keys() >= {"z_2"}


def test_generated_code_runs_and_calls_einsum(outcome):
    source = outcome.files["model.py"].decode()
    assert "np.einsum(" in source
    module = load_module(source)
    params = module.init_params(module.SIZES, np.random.default_rng(0))
    assert params["T2"].shape == (3, 4, 4)
    grads = module.gradients(params, np.ones((3, 5)), np.zeros((2, 5)))
    assert grads["T2"].shape == (3, 4, 4)


def test_documents_show_the_kind_its_derivation_and_its_einsum(outcome):
    import json

    markdown = outcome.files["derivation.md"].decode()
    assert "bilinear" in markdown  # the kind's own name, as the catalog has no words for it
    assert r"\operatorname{einsum}" in markdown  # the formula with no matrix product, and its notation row
    assert "T^{(2)}_{ijk}" in markdown  # its forward rule at index level
    tex = outcome.files["derivation.tex"].decode()
    assert r"\begin{document}" in tex and "bilinear" in tex
    data = json.loads(outcome.files["derivation.json"])
    assert [n["kind"] for n in data["spec"]["nodes"]] == ["dense", "activation", "bilinear", "activation", "dense",
                                                           "activation"]
    assert "steps" in data and data["verification"]["passed"]
