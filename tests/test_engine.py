"""The δ-form the engine derives: known closed forms, and results SymPy must reproduce."""

import pytest
import sympy as sp

from derive.notation import LayerRef, Q, index, sample_index

from conftest import derivation_for


def entries(layer, batch=False):
    q = index("q", LayerRef(layer))
    if batch:
        s = sample_index("s")
        return Q("A", layer).base[q, s], Q("Y").base[q, s], Q("Z", layer).base[q, s]
    return Q("a", layer).base[q], Q("y").base[q], Q("z", layer).base[q]


@pytest.mark.parametrize("layers, act, loss", [(3, "relu", "ce"), (2, "tanh", "bce"), (1, "identity", "ce")])
@pytest.mark.parametrize("batch", [False, True])
def test_log_losses_collapse_to_a_minus_y(layers, act, loss, batch):
    d = derivation_for(layers, act, loss)
    a, y, _ = entries(layers, batch)
    result = (d.batch if batch else d.sample).results[Q("delta", layers)]
    assert sp.expand(result.rhs - (a - y)) == 0
    rules = [s.rule for s in (d.batch if batch else d.sample).steps[Q("delta", layers)]]
    if loss == "ce":
        assert "targets_sum_to_one" in rules
    else:
        assert "algebra" in rules


def test_sigmoid_mse_output_error():
    d = derivation_for(3, "sigmoid", "mse")
    a, y, _ = entries(3)
    assert sp.expand(d.sample.results[Q("delta", 3)].rhs - (a - y) * a * (1 - a)) == 0


def test_hidden_recursion_uses_transpose_and_output_form():
    d = derivation_for(3, "tanh", "mse")
    q, i = index("q", LayerRef(2)), index("i", LayerRef(3))
    a2 = Q("a", 2).base[q]
    expected = sp.Sum(Q("W", 3).base[i, q] * Q("delta", 3).base[i], (i, i.lower, i.upper)) * (1 - a2**2)
    assert sp.expand(d.sample.results[Q("delta", 2)].rhs - expected) == 0


def test_relu_recursion_is_a_step_function_of_z():
    d = derivation_for(2, "relu", "mse")
    q = index("q", LayerRef(1))
    assert d.sample.results[Q("delta", 1)].rhs.has(sp.Heaviside(Q("z", 1).base[q], 0))


def test_minibatch_gradients_average_over_samples():
    from derive.matrixform import MatProd, RowSums, Tr
    from derive.notation import BATCH_SIZE

    d = derivation_for(2, "sigmoid", "mse")
    assert d.batch.results[Q("grad_W", 2)].matrix_rhs == MatProd(Q("Delta", 2).symbol, Tr(Q("A", 1).symbol)) / BATCH_SIZE
    assert d.batch.results[Q("grad_b", 1)].matrix_rhs == RowSums(Q("Delta", 1).symbol) / BATCH_SIZE


def test_general_layer_derivation_exists_for_uniform_hidden_layers():
    d = derivation_for(3, "sigmoid", "mse")
    assert d.general is not None and set(d.general.results) >= {Q(k, LayerRef.symbolic()) for k in ("delta", "grad_W", "grad_b")}
    assert derivation_for(1, "sigmoid", "mse").general is None


def test_every_step_names_a_rule_with_prose():
    from derive.present import messages

    rules = set(messages("en")["rule"])
    d = derivation_for(3, "relu", "ce")
    for p in d.passes():
        for steps in p.steps.values():
            assert {s.rule for s in steps} <= rules


def test_a_quantity_kind_may_not_take_the_name_of_an_axis_size():
    """c_2 names the channels of layer 2: a quantity kind "c" (the LSTM's cell state once was)
    made code generation print a convolution's channel count as that quantity."""
    import derive.layers.gru  # noqa: F401 - the recurrent cells' quantities, the LSTM's cell state among them
    from derive import notation
    from derive.layers import KINDS

    for name in KINDS:  # every kind's module imported (a built-in kind's on its first lookup)
        KINDS[name]

    assert notation.quantity_of("c_2") is None
    with pytest.raises(ValueError, match="axis size"):
        notation.register_quantity("c", "c", None, 1, "sample")
