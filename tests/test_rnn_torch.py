"""The generated model.py of `derive rnn` against PyTorch's nn.RNN / nn.LSTM / nn.GRU and nn.Linear
autograd, with the same weights moved unchanged (PyTorch's names and shapes, the gates stacked in
PyTorch's orders i, f, g, o and r, z, n), on random configurations: 1–2 stacked layers, 1–6 steps, tanh and relu Elman
cells, the output at the last step or at every step, 1–4 samples.
Layouts: ours (T, n, m) with the samples last, PyTorch's (T, m, n)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from conftest import torch_or_skip_module
from derive.derivation import backward_pass
from derive.render import render
from derive.rnn import build_rnn, make_rnn_spec
from derive.inplace import package_sources
from derive.rnn_run import TEMPLATES, model_context
from derive.rnn_verify import load_module
from derive.verify import load_package

torch = torch_or_skip_module()

TOLERANCE = 1e-10


@lru_cache(maxsize=None)
def generated(layers: int, output: str, act: str, cell: str = "rnn"):
    """model.py and model_inplace.py (None without a workspace form) for a network shape (their
    formulas do not depend on the sizes), as modules."""
    model = build_rnn(make_rnn_spec(cell=cell, layers=layers, output=output, act=act))
    return load_package(*package_sources(*TEMPLATES, model_context(model, backward_pass(model.network, True), title="t",
                                                                    command="derive rnn", version="test")))


def _configurations(count: int, seed: int, cell: str = "rnn") -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        act = ("tanh", "relu")[(k // 4) % 2] if cell == "rnn" else "tanh"
        out.append(dict(cell=cell, layers=1 + k % 2, output=("last", "all", "mean")[(k // 2) % 3], act=act,
                        steps=int(rng.integers(1, 7)), n=int(rng.integers(1, 5)), H=int(rng.integers(1, 6)),
                        K=int(rng.integers(1, 4)), m=int(rng.integers(1, 5)), seed=int(rng.integers(1 << 30))))
    return out


CONFIGURATIONS = _configurations(24, 0)
LSTM_CONFIGURATIONS = _configurations(20, 1, "lstm")
GRU_CONFIGURATIONS = _configurations(20, 2, "gru")


def _torch_loss(params: dict, X: np.ndarray, Y: np.ndarray, c: dict):
    if c["cell"] in ("lstm", "gru"):
        module = torch.nn.LSTM if c["cell"] == "lstm" else torch.nn.GRU
        rnn = module(c["n"], c["H"], num_layers=c["layers"], dtype=torch.float64)
    else:
        rnn = torch.nn.RNN(c["n"], c["H"], num_layers=c["layers"], nonlinearity=c["act"], dtype=torch.float64)
    head = torch.nn.Linear(c["H"], c["K"], dtype=torch.float64)
    rnn.load_state_dict({k: torch.tensor(v) for k, v in params.items() if not k.startswith("head_")})
    head.load_state_dict({"weight": torch.tensor(params["head_weight"]), "bias": torch.tensor(params["head_bias"])})
    out, _ = rnn(torch.tensor(X.transpose(0, 2, 1)))  # (T, m, H); h0 = 0 (and c0 = 0)
    m = X.shape[-1]
    if c["output"] == "last":
        prediction, target = head(out[-1]), torch.tensor(Y.T)
    else:
        prediction, target = head(out), torch.tensor(Y.transpose(0, 2, 1))
    loss = 0.5 * ((prediction - target) ** 2).sum() / m / (X.shape[0] if c["output"] == "mean" else 1)
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    grads["head_weight"], grads["head_bias"] = head.weight.grad.numpy(), head.bias.grad.numpy()
    return float(loss.detach()), grads


def largest_difference(c: dict) -> float:
    module, inplace = generated(c["layers"], c["output"], c["act"], c["cell"])
    rng = np.random.default_rng(c["seed"])
    params = module.init_params(rng, inputs=c["n"], hidden=c["H"], units=c["K"])
    X = rng.standard_normal((c["steps"], c["n"], c["m"]))
    Y = rng.standard_normal((c["steps"], c["K"], c["m"]) if c["output"] != "last" else (c["K"], c["m"]))
    loss, grads = module.loss(params, X, Y), module.gradients(params, X, Y)
    expected_loss, expected = _torch_loss(params, X, Y, c)
    assert sorted(grads) == sorted(expected)
    worst = abs(loss - expected_loss)
    for name, value in expected.items():
        assert grads[name].shape == value.shape, name
        worst = max(worst, float(np.max(np.abs(grads[name] - value))))
    return max(worst, _workspace_difference(inplace, params, X, Y, expected))


def _workspace_difference(inplace, params, X, Y, expected, truncate=None) -> float:
    """gradients_into (the workspace form, where the cell has one) against PyTorch's gradients,
    called twice on one workspace so that a value left over from the first call would show."""
    if inplace is None:
        return 0.0
    T, n, m = X.shape
    ws = inplace.Workspace(m, T, inputs=n, hidden=params["weight_hh_l0"].shape[1], units=params["head_bias"].shape[0])
    inplace.gradients_into(ws, params, X, Y, truncate=truncate)
    got = inplace.gradients_into(ws, params, X, Y, truncate=truncate)
    assert sorted(got) == sorted(expected)
    return max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected)


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=lambda c: "L{layers}-{output}-{act}-T{steps}".format(**c))
def test_generated_rnn_matches_torch(c):
    assert largest_difference(c) < TOLERANCE


@pytest.mark.parametrize("c", LSTM_CONFIGURATIONS, ids=lambda c: "L{layers}-{output}-T{steps}".format(**c))
def test_generated_lstm_matches_torch(c):
    assert largest_difference(c) < TOLERANCE


@pytest.mark.parametrize("c", GRU_CONFIGURATIONS, ids=lambda c: "L{layers}-{output}-T{steps}".format(**c))
def test_generated_gru_matches_torch(c):
    assert largest_difference(c) < TOLERANCE


def test_configurations_cover_the_brief():
    assert {c["layers"] for c in CONFIGURATIONS} == {1, 2}
    assert {c["output"] for c in CONFIGURATIONS} == {"last", "all", "mean"}
    assert min(c["steps"] for c in CONFIGURATIONS) == 1 and max(c["steps"] for c in CONFIGURATIONS) == 6


def test_a_dropped_next_step_error_is_caught():
    """The comparison can fail: the same model without the error from the next step (the classic
    bug) differs from PyTorch as soon as there are two steps."""
    c = dict(cell="rnn", layers=1, output="last", act="tanh", steps=3, n=2, H=3, K=2, m=2, seed=5)
    model = build_rnn(make_rnn_spec())
    context = model_context(model, backward_pass(model.network, True), title="t", command="c", version="v")
    for block in context["backward"]:
        block["statements"] = [s for s in block["statements"] if "t + 1" not in s["guard"]]
    broken = load_module(render("model_rnn.py.j2", context))
    rng = np.random.default_rng(c["seed"])
    params = broken.init_params(rng, inputs=2, hidden=3, units=2)
    X, Y = rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 2))
    _, expected = _torch_loss(params, X, Y, c)
    got = broken.gradients(params, X, Y)
    assert np.max(np.abs(got["weight_hh_l0"] - expected["weight_hh_l0"])) > 1e-3


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("steps, truncate", [(5, 2), (6, 3), (4, 1), (3, 5)])
def test_truncated_bptt_matches_torch_with_the_state_detached_between_chunks(cell, steps, truncate):
    """gradients(..., truncate=k) against PyTorch running the sequence in chunks of k steps with the
    state (and the LSTM's cell) detached between them: the same numbers; and, for k < T, not the
    full gradient."""
    n, H, K, m = 2, 3, 2, 3
    module, inplace = generated(1, "all", "tanh", cell)
    rng = np.random.default_rng(steps * 10 + truncate)
    params = module.init_params(rng, inputs=n, hidden=H, units=K)
    X, Y = rng.standard_normal((steps, n, m)), rng.standard_normal((steps, K, m))
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn, head = kind(n, H, dtype=torch.float64), torch.nn.Linear(H, K, dtype=torch.float64)
    rnn.load_state_dict({k: torch.tensor(v) for k, v in params.items() if not k.startswith("head_")})
    head.load_state_dict({"weight": torch.tensor(params["head_weight"]), "bias": torch.tensor(params["head_bias"])})
    x, state, outs = torch.tensor(X.transpose(0, 2, 1)), None, []
    for start in range(0, steps, truncate):
        out, state = rnn(x[start:start + truncate], state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        outs.append(out)
    loss = 0.5 * ((head(torch.cat(outs)) - torch.tensor(Y.transpose(0, 2, 1))) ** 2).sum() / m
    loss.backward()
    expected = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    expected |= {"head_weight": head.weight.grad.numpy(), "head_bias": head.bias.grad.numpy()}
    got = module.gradients(params, X, Y, truncate=truncate)
    assert max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected) < TOLERANCE
    assert _workspace_difference(inplace, params, X, Y, expected, truncate) < TOLERANCE
    full = module.gradients(params, X, Y)
    differs = max(float(np.max(np.abs(full[k] - got[k]))) for k in full) > 1e-6
    assert differs == (truncate < steps)
