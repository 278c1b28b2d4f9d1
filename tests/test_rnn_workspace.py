"""The workspace form of a recurrent model.py (`Workspace`, `gradients_into`): the numbers of
`gradients` in float64 and float32, PyTorch's stacked layout used as one product per step, and no
allocation per step (tracemalloc's peak stays flat and does not grow with the arrays). The
comparison with PyTorch itself is in test_rnn_torch.py."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pytest

from derive.derivation import backward_pass
from derive.inplace import package_sources
from derive.rnn import build_rnn, make_rnn_spec
from derive.rnn_run import TEMPLATES, model_context
from derive.verify import load_package
from test_workspace import peak_growth


@lru_cache(maxsize=None)
def sources(cell: str, output: str = "all", layers: int = 1, loss: str = "mse") -> tuple[str, str]:
    """model.py and model_inplace.py."""
    model = build_rnn(make_rnn_spec(cell=cell, output=output, layers=layers, loss=loss))
    return package_sources(*TEMPLATES, model_context(model, backward_pass(model.network, True), title="t",
                                                     command="derive rnn", version="test"))


def source(*args) -> str:
    """model_inplace.py, the workspace form."""
    return sources(*args)[1]


def modules(*args, inplace: str | None = None):
    """The modules of model.py and model_inplace.py (or of `inplace`, a changed copy)."""
    plain, fast = sources(*args)
    return load_package(plain, fast if inplace is None else inplace)


def point(module, T, n, H, K, m, output="all", dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = module.init_params(rng, inputs=n, hidden=H, units=K, dtype=dtype)
    X = rng.standard_normal((T, n, m)).astype(dtype)
    Y = rng.standard_normal((T, K, m) if output != "last" else (K, m)).astype(dtype)
    return params, X, Y


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("cell, output, layers", [("lstm", "all", 1), ("lstm", "last", 2), ("rnn", "mean", 2),
                                                   ("gru", "all", 2)])
def test_gradients_into_gives_the_numbers_of_gradients(cell, output, layers, dtype, tolerance):
    module, inplace = modules(cell, output, layers)
    params, X, Y = point(module, 5, 3, 4, 2, 3, output, dtype)
    expected = module.gradients(params, X, Y)
    ws = inplace.Workspace(3, 5, dtype, inputs=3, hidden=4, units=2)
    got = inplace.gradients_into(ws, params, X, Y)
    for name, value in expected.items():
        assert got[name].dtype == dtype and got[name].shape == value.shape
        scale = float(np.max(np.abs(value)))
        assert float(np.max(np.abs(got[name] - value))) <= tolerance * scale, name


def test_a_piecewise_error_is_one_marked_allocating_expression_and_gives_the_same_numbers():
    text = source("lstm", "all", 1, "huber:1.0")
    body = text[text.index("def gradients_into"):]
    assert body.count("# no in-place form: allocates") == 1
    module, inplace = modules("lstm", "all", 1, "huber:1.0", inplace=text)
    params, X, Y = point(module, 5, 3, 4, 2, 3)
    expected = module.gradients(params, X, Y)
    got = inplace.gradients_into(inplace.Workspace(3, 5, inputs=3, hidden=4, units=2), params, X, Y)
    assert max(float(np.max(np.abs(got[k] - expected[k]) / np.max(np.abs(expected[k])))) for k in expected) < 1e-12


def test_the_lstm_step_uses_the_stacked_gate_arrays():
    """One (4H, ·) product on weight_hh per step and one on weight_ih for all steps, not one per gate."""
    text = source("lstm")
    body = "\n".join(line for line in text[text.index("def gradients_into"):].splitlines()
                     if not line.strip().startswith("#"))  # the code, without the derived statements quoted
    assert "# if t >= 1: Zi1[t] += (W_hi1 @ A1[t - 1])" in text  # … which each group of calls quotes
    assert "np.matmul(W_hh1, A1[t - 1], " in body  # one (4H, H) product per step
    assert "np.matmul(W_ih1, A0[0:T], " in body  # the input side of every step, before the loop
    assert "np.matmul(_steps(dZgates1_cols, 0, T), _steps(A0_cols, 0, T).T, out=dW_ih1)" in body  # all steps at once
    assert "W_ii1" not in body and "W_hi1" not in body
    assert body.count("for t in range(T)") == 1


def _accumulation(text: str) -> str:
    """The backward loop's line that adds the next step's share into dA1[t] (its operands in either order)."""
    found = re.findall(r"^ +np\.add\((?:dA1\[t\], ws\.t\d+|ws\.t\d+, dA1\[t\]), out=dA1\[t\]\)\n", text, re.M)
    assert len(found) == 1, found
    return found[0]


def test_a_corrupted_workspace_step_is_caught():
    """The comparison above fails when one statement of the backward loop is dropped."""
    text = source("lstm")
    line = _accumulation(text)
    module, inplace = modules("lstm", inplace=text.replace(line, "", 1))
    params, X, Y = point(module, 5, 3, 4, 2, 3)
    expected = module.gradients(params, X, Y)
    got = inplace.gradients_into(inplace.Workspace(3, 5, inputs=3, hidden=4, units=2), params, X, Y)
    assert max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected) > 1e-6


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_a_step_in_workspace_form_allocates_no_array(cell):
    """tracemalloc's peak stays flat over 20 steps and does not grow with the batch: what remains is
    Python's small objects (the views of one step) and NumPy's fixed-size iteration buffer, which
    broadcasting operations (the bias add) and the layout copies use within the call."""
    module, inplace = modules(cell)
    growth = {}
    for m in (64, 256):
        params, X, Y = point(module, 8, 24, 32, 4, m)
        ws = inplace.Workspace(m, 8, inputs=24, hidden=32, units=4)
        step = lambda: inplace.gradients_into(ws, params, X, Y)  # noqa: E731
        for _ in range(3):
            step()
        first, twenty = peak_growth(step, 5), peak_growth(step, 20)
        assert twenty <= first + 256, (first, twenty)
        growth["into", m] = twenty
        growth["plain", m] = peak_growth(lambda: module.gradients(params, X, Y), 2)
    sequence = 8 * 32 * 256 * 8  # one (T, H, m) sequence at batch 256: 512 kB
    assert max(growth["into", 64], growth["into", 256]) <= np.getbufsize() * 8 + 4096 < sequence, growth
    assert growth["plain", 256] > 3 * growth["plain", 64] > sequence / 2  # the measurement does see arrays


def test_a_workspace_refuses_arrays_of_another_shape_or_dtype():
    module, inplace = modules("rnn")
    params, X, Y = point(module, 4, 3, 4, 2, 5)
    ws = inplace.Workspace(5, 4, inputs=3, hidden=4, units=2)
    with pytest.raises(ValueError, match=r"X and Y must have shapes \(4, 3, 5\)"):
        inplace.gradients_into(ws, params, X[:, :, :2], Y[:, :, :2])
    with pytest.raises(ValueError, match="params\\['weight_ih_l0'\\] must be float64"):
        inplace.gradients_into(ws, {**params, "weight_ih_l0": params["weight_ih_l0"].astype(np.float32)}, X, Y)
    with pytest.raises(TypeError, match="dtype must be np.float32 or np.float64"):
        inplace.Workspace(5, 4, np.int64)


def test_every_run_checks_the_workspace_form():
    """derive rnn's check of the generated code compares gradients_into with gradients (float64 and
    float32) and fails on a workspace form with one statement dropped."""
    from derive.rnn_verify import derivative_check

    model = build_rnn(make_rnn_spec(cell="lstm", output="all"))
    good = derivative_check(model, *modules("lstm"))
    assert good.passed and float(good.figures["workspace_error"]) <= 1e-12
    assert float(good.figures["float32_error"]) <= 1e-4
    text = source("lstm").replace(_accumulation(source("lstm")), "", 1)
    assert not derivative_check(model, *modules("lstm", inplace=text)).passed
