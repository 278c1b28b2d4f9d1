"""The einsum forms sgd_step computes another way (derive/batchedproducts.py): each recognised form,
evaluated as the generated code evaluates it (np.matmul on transposed or reshaped views, arrays kept
in the chosen memory order), equals np.einsum on random arrays; forms that do not fit are refused;
and an attention network's generated code uses them in sgd_step only, keeping gradients_into's
einsums (which must match `gradients` bit for bit) and passing every check."""

from __future__ import annotations

import numpy as np
import pytest

from derive.batchedproducts import (batch_first, batched_product, flat_product, matrix_view, scaled_by_sum,
                                    transpose_text)

SIZES = dict(zip("ijklmz", (2, 3, 4, 5, 6, 7)))


def operands(subscripts: str, rng) -> list[np.ndarray]:
    return [rng.standard_normal(tuple(SIZES[c] for c in spec)) for spec in subscripts.split("->")[0].split(",")]


def in_memory_order(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The same values, stored with these axes in this order (as the Workspace's _filled does)."""
    stored = np.empty([array.shape[a] for a in axes]).transpose(np.argsort(axes))
    stored[...] = array
    return stored


ATTENTION = ["ikml,ijml->ijkl", "imkl,ijml->ijkl", "ikml,ijml->ijkl", "imjl,imkl->ijkl", "imkl,imjl->ijkl"]


@pytest.mark.parametrize("subscripts", ATTENTION + ["ijk,ikl->ijl", "ikl,ijk->ijl", "iljk,ikml->ijml"])
def test_batched_products_equal_einsum(subscripts):
    rng = np.random.default_rng(0)
    plan = batched_product(subscripts)
    assert plan is not None
    arrays = operands(subscripts, rng)
    output = subscripts.split("->")[1]
    specs = subscripts.split("->")[0].split(",")
    arrays = [in_memory_order(a, batch_first(spec, plan.batch)) for a, spec in zip(arrays, specs)]
    want = np.einsum(subscripts, *arrays)
    out = in_memory_order(np.zeros(want.shape), batch_first(output, plan.batch))
    left, right = (arrays[1], arrays[0]) if plan.swap else (arrays[0], arrays[1])
    namespace = {"np": np, "A": left, "B": right, "out": out}
    exec(f"np.matmul(A{transpose_text(plan.left_axes)}, B{transpose_text(plan.right_axes)}, "
         f"out=out{transpose_text(plan.out_axes)})", namespace)
    assert np.allclose(out, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("subscripts", ["il,ljk->ijk", "li,ljk->ijk", "ilk,jlk->ij", "jlk,ilk->ij", "ljk,il->ijk",
                                        "ij,jk->ik"])
def test_flat_products_equal_einsum(subscripts):
    rng = np.random.default_rng(1)
    plan = flat_product(subscripts)
    assert plan is not None
    arrays = operands(subscripts, rng)
    want = np.einsum(subscripts, *arrays)
    out = np.zeros(want.shape)
    left, right = (arrays[1], arrays[0]) if plan.swap else (arrays[0], arrays[1])
    views = [matrix_view(a.ndim, split, transposed).format(name)
             for a, name, (split, transposed) in ((left, "A", plan.left), (right, "B", plan.right))]
    namespace = {"np": np, "A": left, "B": right, "out": out}
    exec(f"np.matmul({views[0]}, {views[1]}, out={matrix_view(out.ndim, plan.rows, False).format('out')})", namespace)
    assert np.allclose(out, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("subscripts, axes", [("ijkl,ijml,ijml->ijkl", (2,)),  # α ⊙ rowsum(dα ⊙ α)
                                              ("jk,ijk,ljk,ljk->ijk", (0,))])  # 1/σ ⊙ x̂ ⊙ Σ(x̂ ⊙ dx̂)
def test_scaled_by_sum_equals_einsum(subscripts, axes):
    rng = np.random.default_rng(2)
    summed = scaled_by_sum(subscripts)
    assert summed == axes
    *factors, b, c = operands(subscripts, rng)
    got = np.add.reduce(b * c, axis=summed, keepdims=True)
    for factor in reversed(factors):
        got = factor * got
    assert np.allclose(got, np.einsum(subscripts, *factors, b, c), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("subscripts", [
    "ikm,mjl->ijkl",  # a projection: no batch index, and the output interleaves the operands' indices
    "ilm,ljmk->ijk",  # two summed indices, not adjacent in the second operand
    "ij,ij->ij",  # nothing summed
    "ij,ijk->ik",  # a stack of matrix-vector products (no free index in the first operand)
    "ijk,ijk->i",  # two summed indices and no free one in either operand
    "ii,ij->ij",  # a repeated index
    "ij,jk,kl->il",  # three operands
    "kj,ijk,ljk,ljk->ijk",  # a factor whose indices are not the output's last ones
])
def test_other_forms_are_refused(subscripts):
    assert batched_product(subscripts) is None
    assert flat_product(subscripts) is None
    assert scaled_by_sum(subscripts) is None


def test_attention_uses_them_in_sgd_step_only_and_passes_every_check():
    from dataclasses import replace

    from derive.netfile import parse_network
    from derive.run import generate

    network = {"input": [4, 3], "loss": "mse", "layers": [
        {"kind": "layernorm"}, {"kind": "attention", "heads": 2, "causal": True},
        {"kind": "add", "from": "input", "name": "h"}, {"kind": "linear", "units": 6, "activation": "gelu"},
        {"kind": "linear", "units": 4}, {"kind": "add", "from": "h"}, {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"}]}
    out = generate(replace(parse_network(network, "block.toml", text="(in the test)"), formats=("py",)))
    assert out.report.passed and "workspace" in {c.name for c in out.report.checks if c.ran}
    source = out.files["model_inplace.py"].decode()
    into, step = source.split("def gradients_into(")[1].split("def train(")[0].split("def sgd_step(")
    assert "np.matmul(" not in into and "axes=(0, 3, 1, 2))" in source
    assert step.count("np.matmul(") >= 6 and "np.add.reduce(" in step and "scratch=ws.erf_work" in step
