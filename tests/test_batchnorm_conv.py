"""Batch normalisation after a convolution, per channel over the samples and the positions (PyTorch's
BatchNorm2d, and BatchNorm1d on channels × positions): the engine's derivation passes every check, the
generated gradients equal PyTorch's F.batch_norm on random configurations, and the running statistics
(momentum 0.1, unbiased variance over m·h·w values) and evaluation mode equal nn.BatchNorm2d's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from derive.model import make_net_spec
from derive.netfile import parse_network
from derive.run import generate
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()
needs_torch = pytest.mark.skipif(torch is None, reason=NO_TORCH)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cnn_batchnorm.toml"


def network(shape, channels, kernel, act, conv="conv2d") -> dict:
    return {"input": list(shape), "loss": "mse", "layers": [
        {"kind": conv, "channels": channels, "kernel": kernel},
        {"kind": "batchnorm", "activation": act},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2, "activation": "identity"}]}


def module_for(data: dict):
    out = generate(replace(parse_network(data, "bn.toml", text="(in the test)"), formats=("py",)))
    assert out.report.passed
    return load_module(out.files["model.py"].decode())


def torch_loss(params, X, Y, act, conv):
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(np.moveaxis(X, -1, 0))  # (m, channels, positions …), PyTorch's layout
    h = getattr(F, conv)(x, t["K1"], t["b1"][:, 0])
    h = act(F.batch_norm(h, None, None, t["gamma2"][:, 0], t["beta2"][:, 0], training=True, eps=1e-5))
    out = h.reshape(h.shape[0], -1) @ t["W4"].T + t["b4"][:, 0]
    loss = ((out - torch.tensor(Y.T)) ** 2).sum(dim=1).mean() / 2
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


@needs_torch
@pytest.mark.parametrize("shape, channels, kernel, act, conv", [
    ((1, 4, 4), 2, 3, "tanh", "conv2d"),
    ((2, 5, 4), 3, [2, 3], "identity", "conv2d"),
    ((2, 6), 2, 3, "sigmoid", "conv1d"),
])
def test_gradients_equal_pytorch_batch_norm_per_channel(shape, channels, kernel, act, conv):
    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda h: h}
    module = module_for(network(shape, channels, kernel, act, conv))
    rng = np.random.default_rng(7)
    for m in (1, 3):
        params = module.init_params(module.SIZES, rng)
        params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
        X, Y = rng.standard_normal((*shape, m)), rng.standard_normal((2, m))
        expected_loss, expected = torch_loss(params, X, Y, acts[act], conv)
        assert module.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-12)
        grads = module.gradients(params, X, Y)
        scale = max(np.max(np.abs(g)) for g in expected.values())
        for key in expected:
            np.testing.assert_allclose(grads[key], expected[key], rtol=1e-9, atol=1e-12 * scale, err_msg=key)
        assert np.max(np.abs(grads["b1"])) <= 1e-12 * scale  # the channel mean removes the conv's bias


@pytest.fixture(scope="module")
def example():
    out = generate(make_net_spec(str(EXAMPLE), formats="py,md,tex"))
    assert out.report.passed
    return out


def test_the_example_derives_the_statistics_per_channel(example):
    """The centring subtracts the mean of the entry's channel f over every sample, row and column; the
    evaluation mode is stated per channel."""
    md = example.files["derivation.md"].decode()
    assert (r"\tilde{X}^{(2)}_{fijs} &= Z^{(1)}_{fijs} - \frac{1}{h_{1} m w_{1}} \sum_{s'} \sum_{v'} \sum_{u'} "
            r"Z^{(1)}_{fu'v's'}") in md
    # evaluation mode as stated: running variance unbiased over the m·h·w values of a channel, not m
    assert r"\frac{h_{1} m w_{1}}{h_{1} m w_{1} - 1}\sigma_c^2" in md and r"\frac{m}{m-1}" not in md


def test_every_symbol_of_the_example_has_one_row(example):
    from test_lesson import notation_problems

    assert notation_problems(example.files["derivation.tex"].decode()) == []


@needs_torch
def test_running_statistics_and_evaluation_mode_equal_batchnorm2d(example):
    module = load_module(example.files["model.py"].decode())
    rng = np.random.default_rng(3)
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    conv = torch.nn.Conv2d(1, 2, 3).double()
    norm = torch.nn.BatchNorm2d(2, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(params["K1"]))
        conv.bias.copy_(torch.tensor(params["b1"][:, 0]))
        norm.weight.copy_(torch.tensor(params["gamma2"][:, 0]))
        norm.bias.copy_(torch.tensor(params["beta2"][:, 0]))
    running = module.init_running(module.SIZES)
    norm.train()
    for m in (4, 2, 6):
        X = rng.standard_normal((1, 5, 5, m))
        module.update_running(running, params, X)
        with torch.no_grad():
            norm(conv(torch.tensor(np.moveaxis(X, -1, 0))))
    np.testing.assert_allclose(running["running_mean2"].ravel(), norm.running_mean.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(running["running_var2"].ravel(), norm.running_var.numpy(), rtol=1e-13, atol=1e-15)
    norm.eval()
    X = rng.standard_normal((1, 5, 5, 3))
    with torch.no_grad():
        h = torch.relu(norm(conv(torch.tensor(np.moveaxis(X, -1, 0))))).mean(dim=(2, 3))
        expected = torch.softmax(h @ torch.tensor(params["W4"]).T + torch.tensor(params["b4"][:, 0]), 1).numpy().T
    np.testing.assert_allclose(module.predict(params, running, X), expected, rtol=1e-12, atol=1e-14)
