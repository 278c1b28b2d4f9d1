"""The generated model.py of a convolutional network against PyTorch: the same weights (kernels are
PyTorch's (F, C, kh, kw), the dense weight PyTorch's Linear weight after nn.Flatten), the same
loss and gradients (max pooling padded, with PyTorch's −∞); the workspace form in float32 and float64, and
no allocation after its first step; train() on images."""

from __future__ import annotations


import numpy as np
import pytest

from derive.model import build_model
from derive.netfile import parse_network
from derive.run import generate
from derive.verify import load_files, load_module
from conftest import torch_or_skip_module
from test_workspace import peak_growth

torch = torch_or_skip_module()

NETWORK = {
    "input": [2, 9, 8],
    "loss": "cross_entropy",
    "layers": [
        {"kind": "conv2d", "channels": 3, "kernel": [3, 2], "stride": 2, "padding": 1, "activation": "relu"},
        {"kind": "max_pool2d", "kernel": 2, "stride": 1, "padding": 1},
        {"kind": "conv2d", "channels": 4, "kernel": 2, "dilation": 2, "padding": 2, "activation": "tanh"},
        {"kind": "avg_pool2d", "kernel": 2, "padding": 1},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3, "activation": "softmax"},
    ],
}


@pytest.fixture(scope="module")
def package():
    """(model.py's module, model_inplace.py's module), and the network."""
    spec = parse_network(NETWORK, "torch_cnn.toml", formats=("py",))
    outcome = generate(spec)
    assert outcome.report.passed
    return load_files(outcome.files, "cnn_torch_model"), build_model(spec)


@pytest.fixture(scope="module")
def generated(package):
    (module, _), model = package
    return module, model


@pytest.fixture(scope="module")
def inplace(package):
    return package[0][1]


def _torch_net():
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, (3, 2), stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2, stride=1, padding=1),
        torch.nn.Conv2d(3, 4, 2, dilation=2, padding=2), torch.nn.Tanh(),
        torch.nn.AvgPool2d(2, padding=1),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(3),
    ).double()


def test_loss_and_gradients_equal_pytorchs(generated):
    module, model = generated
    rng = np.random.default_rng(0)
    params = module.init_params(module.SIZES, rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # biases not zero
    m = 5
    X = rng.standard_normal((2, 9, 8, m))
    labels = rng.integers(0, 3, size=m)
    Y = np.eye(3)[:, labels]
    net = _torch_net()
    xt = torch.tensor(np.moveaxis(X, -1, 0))  # the README's one-line conversion: (m, C, H, W) ↔ (C, H, W, m)
    net(xt)  # materialise the lazy layer
    with torch.no_grad():
        for layer, key in ((net[0], "1"), (net[3], "3"), (net[7], "6")):
            layer.weight.copy_(torch.tensor(params[("K" if key != "6" else "W") + key]))
            layer.bias.copy_(torch.tensor(params["b" + key].ravel()))
    out = net(xt)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor(labels))
    loss.backward()
    assert module.loss(params, X, Y) == pytest.approx(loss.item(), rel=1e-12)
    grads = module.gradients(params, X, Y)
    for layer, key in ((net[0], "1"), (net[3], "3"), (net[7], "6")):
        name = ("K" if key != "6" else "W") + key
        np.testing.assert_allclose(grads[name], layer.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(grads["b" + key].ravel(), layer.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workspace_form_in_both_precisions(generated, inplace, dtype):
    module, _ = generated
    rng = np.random.default_rng(1)
    params = module.init_params(module.SIZES, rng, dtype=dtype)
    X = rng.standard_normal((2, 9, 8, 4)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[:, rng.integers(0, 3, size=4)]
    ws = inplace.Workspace(module.SIZES, 4, dtype)
    grads = inplace.gradients_into(ws, params, X, Y)
    plain = module.gradients(params, X, Y)
    for key in params:
        assert grads[key].dtype == dtype and grads[key].shape == params[key].shape
        np.testing.assert_array_equal(grads[key], plain[key])  # the same operations in the same order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_workspace_step_after_the_first_allocates_no_array(generated, inplace, dtype):
    """The window operations keep their work arrays (padded inputs, im2col columns, max pooling's
    first maxima, col2im totals) in the Workspace: the first step makes them, and later steps
    allocate nothing that grows with the batch — only NumPy's fixed-size iteration buffers
    (np.getbufsize() entries per operand of an operation on strided views, freed within the call)
    and small Python objects. The measurement does see arrays: the first step of a new Workspace
    and the plain `gradients` allocate several times the first convolution's im2col columns."""
    module, _ = generated
    itemsize = np.dtype(dtype).itemsize
    bound = 3 * np.getbufsize() * itemsize + 16384  # three buffered operands, and the call's Python objects
    later = {}
    for m in (256, 1024):
        rng = np.random.default_rng(3)
        params = module.init_params(module.SIZES, rng, dtype=dtype)
        X = rng.standard_normal((2, 9, 8, m)).astype(dtype)
        Y = np.eye(3, dtype=dtype)[:, rng.integers(0, 3, size=m)]
        ws = inplace.Workspace(module.SIZES, m, dtype)
        first = peak_growth(lambda: inplace.sgd_step(ws, params, X, Y, 1e-3), 1)
        inplace.gradients_into(ws, params, X, Y)
        later[m] = max(peak_growth(lambda: inplace.sgd_step(ws, params, X, Y, 1e-3), 10),
                       peak_growth(lambda: inplace.gradients_into(ws, params, X, Y), 10))
        plain = peak_growth(lambda: module.gradients(params, X, Y), 1)
        cols = 2 * 3 * 2 * 5 * 5 * m * itemsize  # the first convolution's im2col columns
        assert first > 4 * cols and plain > 4 * cols, (m, first, plain, cols)
    assert later[1024] <= later[256] + 4096, later  # nothing that grows with the batch
    assert later[1024] <= bound < 2 * 3 * 2 * 5 * 5 * 1024 * itemsize, (later, bound)


def test_train_runs_on_images(generated):
    module, _ = generated
    rng = np.random.default_rng(2)
    params = module.init_params(module.SIZES, rng)
    X = rng.standard_normal((2, 9, 8, 12))
    Y = np.eye(3)[:, rng.integers(0, 3, size=12)]
    history = module.train(params, X, Y, epochs=3, batch_size=5, rng=rng, quiet=True)
    assert len(history["loss"]) == 3 and all(np.isfinite(history["loss"]))


# Overlapping, padded pooling windows (stride < kernel) end to end: the first network is the one of
# issue 10 whose proof failed (the pooled error was given one row too many: the proof's arrays then
# took the ranges of the indices that read them, not the quantity's size); the second has a dilated
# max pool and an average pool of stride 2, both padded.
OVERLAPPING = {
    "issue": {"input": [1, 5, 5], "loss": "cross_entropy", "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 3, "padding": 1, "activation": "relu"},
        {"kind": "max_pool2d", "kernel": 3, "stride": 1, "padding": 1},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3, "activation": "softmax"}]},
    "dilated": {"input": [2, 7, 6], "loss": "cross_entropy", "layers": [
        {"kind": "conv2d", "channels": 3, "kernel": 2, "activation": "relu"},
        {"kind": "max_pool2d", "kernel": 2, "stride": 1, "padding": 1, "dilation": 2},
        {"kind": "avg_pool2d", "kernel": 3, "stride": 2, "padding": 1},
        {"kind": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3, "activation": "softmax"}]},
    # windows one entry wide: 1×2 after relu (pooled before it in the training step), 2×1 padded and
    # overlapping, a 1×2 average of stride 1 padded on the long axis, a 2×1 max dilated along it
    "narrow": {"input": [2, 6, 7], "loss": "cross_entropy", "layers": [
        {"kind": "conv2d", "channels": 3, "kernel": 2, "activation": "relu"},
        {"kind": "max_pool2d", "kernel": [1, 2]},
        {"kind": "max_pool2d", "kernel": [2, 1], "stride": 1, "padding": [1, 0]},
        {"kind": "avg_pool2d", "kernel": [1, 2], "stride": 1, "padding": [0, 1]},
        {"kind": "max_pool2d", "kernel": [2, 1], "stride": [2, 1], "dilation": [2, 1]},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3, "activation": "softmax"}]},
}


def _torch_layers(network):
    """The PyTorch network a network file of conv2d, pooling, flatten and dense layers describes."""
    channels, layers = network["input"][0], []
    for layer in network["layers"]:
        kind, window = layer["kind"], {k: layer[k] for k in ("stride", "padding", "dilation") if k in layer}
        if kind == "conv2d":
            layers.append(torch.nn.Conv2d(channels, layer["channels"], layer["kernel"], **window))
            channels = layer["channels"]
        elif kind == "max_pool2d":
            layers.append(torch.nn.MaxPool2d(layer["kernel"], **window))
        elif kind == "avg_pool2d":
            layers.append(torch.nn.AvgPool2d(layer["kernel"], **window))  # zero padding counted, as ours
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            layers.append(torch.nn.LazyLinear(layer["units"]))
        layers.append({"relu": torch.nn.ReLU(), None: torch.nn.Identity(), "softmax": torch.nn.Identity()}[
            layer.get("activation")])
    return torch.nn.Sequential(*layers).double()


@pytest.mark.parametrize("name", sorted(OVERLAPPING))
def test_overlapping_padded_pooling_equals_pytorch(name):
    network = OVERLAPPING[name]
    outcome = generate(parse_network(network, f"{name}.toml", formats=("py",)))
    assert outcome.report.passed
    module = load_module(outcome.files["model.py"].decode(), f"cnn_overlap_{name}")
    rng = np.random.default_rng(4)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in module.init_params(module.SIZES, rng).items()}
    m = 4
    X = rng.integers(-3, 3, size=(*network["input"], m)).astype(float)  # few values: ties in the windows
    labels = rng.integers(0, 3, size=m)
    net = _torch_layers(network)
    xt = torch.tensor(np.moveaxis(X, -1, 0))
    net(xt)  # materialise the lazy layer
    weighted = {str(i + 1): net[2 * i] for i, layer in enumerate(network["layers"])
                if layer["kind"] in ("conv2d", "dense")}
    with torch.no_grad():
        for key, layer in weighted.items():
            layer.weight.copy_(torch.tensor(params[("K" if isinstance(layer, torch.nn.Conv2d) else "W") + key]))
            layer.bias.copy_(torch.tensor(params["b" + key].ravel()))
    loss = torch.nn.functional.cross_entropy(net(xt), torch.tensor(labels))
    loss.backward()
    assert module.loss(params, X, np.eye(3)[:, labels]) == pytest.approx(loss.item(), rel=1e-12)
    grads = module.gradients(params, X, np.eye(3)[:, labels])
    for key, layer in weighted.items():
        name = ("K" if isinstance(layer, torch.nn.Conv2d) else "W") + key
        np.testing.assert_allclose(grads[name], layer.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(grads["b" + key].ravel(), layer.bias.grad.numpy(), rtol=1e-10, atol=1e-13)
