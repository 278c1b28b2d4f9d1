"""All four kinds in one network with a skip connection: dense → layer normalisation (tanh) → dense →
batch normalisation (relu) → dropout → sum with the layer-normalised output → RMS normalisation →
dense with softmax and cross entropy. Derived, verified, and equal to the same network written in
PyTorch (F.layer_norm, F.batch_norm, F.dropout with torch's own mask, F.rms_norm) with the same
weights; network files that put a normalisation or dropout where it cannot go are refused in one
line, writing nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from derive.netfile import NetFileError, parse_network
from derive.run import generate
from derive.verify import load_module
from conftest import NO_TORCH, optional_torch

torch = optional_torch()

NETWORK = {"input": 5, "loss": "ce", "layers": [
    {"kind": "dense", "units": 6},
    {"kind": "layernorm", "activation": "tanh", "name": "h"},
    {"kind": "dense", "units": 6},
    {"kind": "batchnorm", "activation": "relu"},
    {"kind": "dropout", "p": 0.3},
    {"kind": "add", "from": "h"},
    {"kind": "rmsnorm"},
    {"kind": "dense", "units": 3, "activation": "softmax"}]}


@pytest.fixture(scope="module")
def outcome():
    return generate(replace(parse_network(NETWORK, "all.toml", text="(in the test)"), formats=("md", "py")))


def test_every_check_passes(outcome):
    assert outcome.report.passed
    assert {"derivatives", "workspace", "stability", "training_loop"} <= {c.name for c in outcome.report.checks if c.ran}


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
def test_gradients_equal_pytorch(outcome):
    import torch.nn.functional as F

    module = load_module(outcome.files["model.py"].decode())
    rng = np.random.default_rng(8)
    for m in (4, 11):
        params = module.init_params(module.SIZES, rng)
        params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
        X = rng.standard_normal((5, m))
        Y = np.eye(3)[:, rng.integers(0, 3, size=m)]
        t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
        x = torch.tensor(X.T)
        a2 = torch.tanh(F.layer_norm(x @ t["W1"].T + t["b1"][:, 0], (6,), t["gamma2"][:, 0], t["beta2"][:, 0], eps=1e-5))
        z4 = F.batch_norm(a2 @ t["W3"].T + t["b3"][:, 0], None, None, t["gamma4"][:, 0], t["beta4"][:, 0],
                          training=True, eps=1e-5)
        torch.manual_seed(m)
        kept = F.dropout(torch.ones((m, 6), dtype=torch.float64), 0.3, training=True)
        torch.manual_seed(m)
        a5 = F.dropout(torch.relu(z4), 0.3, training=True)
        z7 = F.rms_norm(a5 + a2, (6,), t["gamma7"][:, 0], eps=1e-5)
        logp = torch.log_softmax(z7 @ t["W8"].T + t["b8"][:, 0], dim=1)
        loss = -(torch.tensor(Y.T) * logp).sum() / m
        loss.backward()
        module.dropout_mode("fixed", masks={"M5": (kept != 0).numpy().astype(float).T})
        try:
            assert module.loss(params, X, Y) == pytest.approx(float(loss.detach()), rel=1e-12)
            grads = module.gradients(params, X, Y)
        finally:
            module.dropout_mode("eval")
        scale = max(float(v.grad.abs().max()) for v in t.values())
        for key, v in t.items():
            np.testing.assert_allclose(grads[key], v.grad.numpy(), rtol=1e-9, atol=1e-12 * scale)


# layernorm and rmsnorm also read a sequence [features, tokens] (attention, issue 12), not an image;
# batchnorm reads every shape a network file allows (per channel after a convolution: test_batchnorm_conv)
@pytest.mark.parametrize("kind, shape, accepted", [("layernorm", [1, 2, 5], "units or a sequence [features, tokens]"),
                                                   ("rmsnorm", [1, 2, 5], "units or a sequence [features, tokens]"),
                                                   ("dropout", [2, 5], "dropout reads a vector of units")])
def test_a_multi_axis_input_is_refused_in_one_line(kind, shape, accepted, tmp_path, capsys):
    from derive.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(f'input = {shape}\nloss = "mse"\n\n[[layers]]\nkind = "{kind}"\n\n[[layers]]\nkind = "dense"\nunits = 2\n')
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["net", str(path), "--out", str(out)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and f"but its input has the shape {shape}" in message
    assert f"(kind {kind!r})" in message and accepted in message  # (the middle of a long line is elided)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_a_dense_layer_after_a_sequence_is_refused_in_one_line(kind, tmp_path, capsys):
    from derive.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(f'input = [2, 5]\nloss = "mse"\n\n[[layers]]\nkind = "{kind}"\n\n[[layers]]\nkind = "dense"\nunits = 2\n')
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["net", str(path), "--out", str(out)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "dense reads a vector of units, but its input has the shape [2, 5]" in message
    assert not out.exists()


def test_dropout_p_defaults_to_pytorchs():
    spec = parse_network({"input": 2, "layers": [{"kind": "dropout"}, {"kind": "dense", "units": 1}]}, "d.toml")
    from derive.model import build_model

    node = build_model(spec).network.layers[0]
    assert node.kind.p == 0.5
    with pytest.raises(NetFileError, match="layers\\[1\\] \\(kind 'batchnorm'\\): unknown key 'p'"):
        parse_network({"input": 2, "layers": [{"kind": "batchnorm", "p": 0.1}]}, "d.toml")


EDGE_CASES = {
    "layernorm reads the input": [{"kind": "layernorm"}, {"kind": "dense", "units": 2, "activation": "identity"}],
    "batchnorm reads the input": [{"kind": "batchnorm", "activation": "tanh"},
                                  {"kind": "dense", "units": 2, "activation": "identity"}],
    "dropout last": [{"kind": "dense", "units": 3, "activation": "tanh"}, {"kind": "dropout", "p": 0.5}],
    "two batchnorms": [{"kind": "dense", "units": 3}, {"kind": "batchnorm", "activation": "relu"},
                       {"kind": "dense", "units": 3}, {"kind": "batchnorm"},
                       {"kind": "dense", "units": 2, "activation": "identity"}],
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_placements_derive_and_verify(name):
    out = generate(replace(parse_network({"input": 3, "loss": "mse", "layers": EDGE_CASES[name]}, "edge.toml", text=""),
                           formats=("py",)))
    assert out.report.passed, [c.name for c in out.report.checks if not c.passed]
