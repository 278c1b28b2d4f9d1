"""Convolutional networks: the kinds' forward rules at index level, the backward derived by the
engine, the window operations recognised and proved, the generated code checked against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.errors import DeriveError
from derive.model import build_model
from derive.netfile import NetFileError, parse_network
from derive.notation import Q
from derive.run import derive_in_parallel

STRIDED = {  # stride 2, zero padding 1, dilation 2: the cases hand derivations get wrong
    "input": [1, 6, 5],
    "loss": "mse",
    "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 2, "activation": "tanh"},
        {"kind": "conv2d", "channels": 2, "kernel": [2, 2], "stride": 2, "padding": 1, "dilation": 2,
         "activation": "tanh"},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"},
    ],
}


def _derive(network):
    return derive_in_parallel(build_model(parse_network(network, "cnn.toml")))


def test_the_engine_derives_the_scatter_form_with_the_stride_as_divisibility():
    d = _derive(STRIDED)
    error = d.sample.results[Q("delta", 1)]
    assert error.recognition_proved and error.matrix_rhs is not None
    forward = d.sample.results[Q("z", 1)].rhs
    assert "Iverson" in str(d.sample.results[Q("z", 2)].rhs)  # the padding guard of the rule
    scatter = d.sample.results[Q("delta", 1)].rhs
    assert "Mod" in str(scatter)  # the stride: only inputs at a multiple of 2 from a window's start
    assert "Col2imConv" in str(d.sample.results[Q("delta", 1)].matrix_rhs)
    grad = d.sample.results[Q("grad_K", 2)]
    assert grad.recognition_proved and "KernelGrad" in str(grad.matrix_rhs)
    assert all(r.recognition_proved for p in d.passes() for r in p.results.values() if r.matrix_rhs is not None)


def test_symbolic_check_at_tiny_sizes_with_stride_padding_and_dilation():
    from derive.verify_symbolic import minibatch_check, symbolic_check

    d = _derive(STRIDED)
    symbolic = symbolic_check(d)
    assert symbolic.ran and symbolic.passed
    assert symbolic.figures["partials"] >= 2 * 1 * 2 * 2 + 2  # every kernel entry and bias at least
    assert minibatch_check(d).passed


def test_a_wrong_window_claim_fails_its_entry_check():
    """The proof can fail: the forward rule of a stride-2 convolution is not the stride-1 operation."""
    from derive.convops import Im2colConv, geometry_text
    from derive.matrixform import entries_agree
    from derive.windowsizes import network_sizes

    model = build_model(parse_network(STRIDED, "cnn.toml"))
    d = _derive(STRIDED)
    result = d.sample.results[Q("z", 2)]
    right = result.matrix_rhs
    conv = next(a for a in sp.preorder_traversal(right) if isinstance(a, Im2colConv))
    wrong = right.xreplace({conv: Im2colConv(conv.args[0], conv.args[1], geometry_text((2, 2), (1, 1), (1, 1), (2, 2)),
                                             *conv.args[3:])})
    with network_sizes(model.network):
        assert entries_agree(result.rhs, right, result.free)
        try:
            agreed = entries_agree(result.rhs, wrong, result.free)
        except (ValueError, IndexError):  # shapes that cannot even be compared: the claim fails too
            agreed = False
    assert not agreed


def test_max_pooling_routes_the_error_to_the_first_maximum():
    """The derived error of a max-pooling layer at a window with two equal maxima: only the first
    (row-major) receives the error, as PyTorch's max_pool2d."""
    network = {"input": [1, 2, 2], "loss": "mse", "layers": [
        {"kind": "max_pool2d", "kernel": 2}, {"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "identity"}]}
    model = build_model(parse_network(network, "pool.toml"))
    d = derive_in_parallel(model)
    # ∂C/∂x is not computed (the input needs none); the routing is the local derivative of the pool
    pool = model.network.layers[0]
    rule = pool.call_entry(tuple(pool.out_indices("out")), None)
    x = [Q("a", 0).base[0, u, v] for u in range(2) for v in range(2)]
    rule = rule.xreplace({i: 0 for i in pool.out_indices("out")})
    values = {x[0]: 1, x[1]: 3, x[2]: 3, x[3]: 0}
    routed = [sp.diff(rule, e).xreplace(values).doit() for e in x]
    assert routed == [0, 1, 0, 0]
    assert rule.xreplace(values).doit() == 3
    assert d.sample.results[Q("a", 1)].recognition_proved


def test_a_padded_position_never_wins_the_maximum():
    """Max pooling with padding: the rule of the corner window (one row and one column of padding)
    at inputs that are all negative. Were padding a 0, it would be the maximum; as PyTorch's −∞ it
    never is: the output is the largest real entry and the error goes to it."""
    from derive.layers.firstmax import FirstMaxInside

    network = {"input": [1, 3, 3], "loss": "mse", "layers": [
        {"kind": "max_pool2d", "kernel": 2, "padding": 1}, {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"}]}
    model = build_model(parse_network(network, "pool.toml"))
    pool = model.network.layers[0]
    rule = pool.call_entry(tuple(pool.out_indices("out")), None)
    assert rule.has(FirstMaxInside)
    corner = rule.xreplace({i: 0 for i in pool.out_indices("out")})
    x = Q("a", 0).base
    values = {x[0, u, v]: -1 - u - v for u in range(3) for v in range(3)}  # x[0, 0, 0] = -1 is the largest
    assert corner.xreplace(values).doit() == -1
    assert [sp.diff(corner, x[0, 0, 0]).xreplace(values).doit(), sp.diff(corner, x[0, 0, 1]).xreplace(values).doit()] == [1, 0]
    assert FirstMaxInside(sp.Integer(1), sp.S.Zero, sp.S.One, sp.S.Zero, sp.Integer(-5)) == 1  # the padded 0 loses
    assert FirstMaxInside(sp.Integer(0), sp.S.Zero, sp.S.One, sp.S.Zero, sp.Integer(-5)) == 0


@pytest.mark.parametrize("layer, message", [
    ({"kind": "conv2d", "channels": 2, "kernel": 9}, "window spans 9 entries along an axis of 8"),
    ({"kind": "max_pool2d", "kernel": 3, "stride": 1}, None),
    ({"kind": "max_pool2d", "kernel": 3, "stride": 1, "padding": 1}, None),
    ({"kind": "max_pool2d", "kernel": 3, "stride": 1, "padding": 2}, "padding 2 is more than half the window 3"),
    ({"kind": "max_pool2d", "kernel": 2, "stride": 1, "padding": 2, "dilation": 3},
     "max_pool2d padding 2 is more than half the kernel 2 (PyTorch's rule); accepted: 0 to 1"),
    ({"kind": "max_pool2d", "kernel": 2, "stride": 1, "padding": 1, "dilation": 9},
     "max_pool2d window 0 along axis 1 holds only padding"),
    ({"kind": "conv2d", "channels": 2, "kernel": 5, "dilation": 2}, "window spans 9"),
])
def test_output_sizes_are_checked_up_front_naming_the_layer(layer, message):
    network = {"input": [1, 8, 8], "loss": "mse", "layers": [layer, {"kind": "flatten"}, {"kind": "dense", "units": 2}]}
    if message is None:
        build_model(parse_network(network, "net.toml"))
        return
    with pytest.raises(NetFileError) as error:
        build_model(parse_network(network, "net.toml"))
    text = str(error.value)
    assert "\n" not in text and "layers[1] (kind " in text and message in text


def test_a_window_layer_after_a_vector_is_refused():
    network = {"input": 6, "loss": "mse", "layers": [{"kind": "conv2d", "channels": 2, "kernel": 3}]}
    with pytest.raises(DeriveError, match="layers\\[1\\].*image"):
        build_model(parse_network(network, "net.toml"))


def test_conv1d_is_the_same_rule_over_one_axis():
    network = {"input": [2, 9], "loss": "mse", "layers": [
        {"kind": "conv1d", "channels": 3, "kernel": 3, "stride": 2, "padding": 1, "activation": "tanh"},
        {"kind": "global_avg_pool"}, {"kind": "dense", "units": 2, "activation": "identity"}]}
    model = build_model(parse_network(network, "c1.toml"))
    assert model.network.sizes == ((2, 9), (3, 5), 3, 2)
    d = derive_in_parallel(model)
    assert d.sample.results[Q("delta", 1)].recognition_proved
    from derive.verify_symbolic import symbolic_check

    assert symbolic_check(d).passed


def test_conv1d_takes_one_number_per_setting():
    network = {"input": [2, 9], "loss": "mse", "layers": [
        {"kind": "conv1d", "channels": 2, "kernel": [3, 2]}, {"kind": "flatten"}, {"kind": "dense", "units": 2}]}
    with pytest.raises(NetFileError, match=r"layers\[1\] \(kind 'conv1d'\): kernel = \[3, 2\]; expected a whole number"):
        build_model(parse_network(network, "c1.toml"))


def test_dilated_max_pooling_is_derived_and_its_code_checked():
    """A max-pooling window with dilation 2 (`maxpool 2 s1 d2`): the same rule with the window's
    entries spaced out; the derived routing, the generated code and its workspace form pass every
    check of the tool, and the code's gradients equal PyTorch's."""
    from conftest import optional_torch
    from derive.cnn import network_text
    from derive.run import generate
    import tomllib

    text = network_text("2x7x6", "conv 2 k2 tanh, maxpool 2 s1 d2, flatten, dense 3 softmax", "cross_entropy",
                        "derive cnn")
    assert "dilation = 2" in text
    spec = parse_network(tomllib.loads(text), "derive cnn", text=text, formats=("py",))
    outcome = generate(spec)
    assert outcome.report.passed
    assert outcome.report.check("derivatives").ran and outcome.report.check("workspace").ran
    assert outcome.derivation.sample.results[Q("a", 2)].recognition_proved
    torch = optional_torch()
    if torch is None:
        return
    from derive.verify import load_module

    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(0)
    sizes = outcome.derivation.model.network.sizes
    assert sizes == ((2, 7, 6), (2, 6, 5), (2, 4, 3), 24, 3)
    params = module.init_params(sizes, rng)
    X = rng.standard_normal((2, 7, 6, 4))
    Y = np.eye(3)[:, rng.integers(0, 3, size=4)]
    grads = module.gradients(params, X, Y)
    x = torch.tensor(np.moveaxis(X, -1, 0))
    K = torch.tensor(params["K1"], requires_grad=True)
    b = torch.tensor(params["b1"].ravel(), requires_grad=True)
    W = torch.tensor(params["W4"], requires_grad=True)
    c = torch.tensor(params["b4"].ravel(), requires_grad=True)
    a = torch.nn.functional.max_pool2d(torch.tanh(torch.nn.functional.conv2d(x, K, b)), 2, stride=1, dilation=2)
    logits = a.flatten(1) @ W.T + c
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(Y.argmax(axis=0)))
    loss.backward()
    np.testing.assert_allclose(grads["K1"], K.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["W4"], W.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_the_notation_table_names_the_window_operations_the_formulas_use():
    """conv_notation reads the operations off the printed formulas, once per derivation (both
    documents of a run ask): max pooling's rows appear only where a max pooling is derived, and the
    answer does not change when it is asked again or for a second derivation."""
    from derive.present import Text
    from derive.present_conv import conv_notation

    text = Text("en", "md")
    pooled = dict(STRIDED, layers=[*STRIDED["layers"][:2], {"kind": "max_pool2d", "kernel": 2},
                                   *STRIDED["layers"][2:]])
    plain, pooling = _derive(STRIDED), _derive(pooled)
    symbols = lambda d: [symbol for symbol, _ in conv_notation(d, text)]  # noqa: E731
    assert r"\operatorname{maxpool}" in symbols(pooling) and r"\operatorname{maxpool}" not in symbols(plain)
    assert r"\operatorname{route}_{\max}" in symbols(pooling)
    assert r"\operatorname{fold}" in symbols(plain) and r"\operatorname{fold}" in symbols(pooling)
    assert symbols(plain) == symbols(plain) and symbols(pooling) == symbols(pooling)
    # the answer is remembered for the last derivation only: a process that derives many networks (the
    # gallery) does not keep the earlier ones alive
    import gc
    import weakref

    from derive import present_conv

    assert present_conv._LAST[0] is pooling
    symbols(plain)
    earlier = weakref.ref(pooling)
    del pooling
    gc.collect()
    assert present_conv._LAST[0] is plain and earlier() is None
