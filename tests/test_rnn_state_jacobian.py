"""The one-step Jacobian of the LSTM's (h, c) and the GRU's h, derived from the cells' rules: checked
against PyTorch's autograd on nn.LSTMCell / nn.GRUCell and against SymPy on the cell written out."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp

from derive.derivation import backward_pass
from derive.render import render
from derive.rnn import build_rnn, make_rnn_spec
from derive.rnn_run import model_context
from derive.rnn_state_jacobian import derive_blocks, one_step, state_jacobian, step_values
from derive.rnn_verify import load_module

torch = pytest.importorskip("torch")


@lru_cache(maxsize=None)
def derived(cell: str, hidden: int = 3, inputs: int = 2):
    model = build_rnn(make_rnn_spec(cell=cell, hidden=hidden, inputs=inputs))
    batch = backward_pass(model.network, True)
    code = model_context(model, batch, title="t", command="c", version="v")
    return model, load_module(render("model_rnn.py.j2", code)), derive_blocks(model)[1]


def _torch_case(cell: str, H: int, n: int, seed: int = 3):
    """A torch cell with random weights, the same weights as model.py's params, a two-step sequence."""
    torch.manual_seed(seed)
    net = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(n, H).double()
    params = {f"{name}_l0": p.detach().numpy().copy() for name, p in net.named_parameters()}
    X = np.random.default_rng(seed).standard_normal((2, n, 1))
    return net, params, X


def _derived_J(cell: str, blocks, model, module, params, X):
    H = model.spec.hidden
    values, prev, nxt, tau = step_values(model, module, params, X, 1)
    return one_step(blocks, values, prev, nxt, tau, H)[0]


def _torch_J(cell: str, net, params, X, model, module):
    forward = module.forward({**params, **{k: v for k, v in module.init_params(np.random.default_rng(0)).items()
                                           if k.startswith("head")}}, X)
    x = torch.tensor(X[1, :, 0])
    h0 = torch.tensor(forward["A1"][0, :, 0])
    if cell == "gru":
        return torch.autograd.functional.jacobian(lambda h: net(x, h), h0).numpy()
    c0 = torch.tensor(forward["C1"][0, :, 0])
    H = h0.shape[0]

    def step(state):
        h, c = net(x, (state[:H], state[H:]))
        return torch.cat([h, c])

    return torch.autograd.functional.jacobian(step, torch.cat([h0, c0])).numpy()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_derived_jacobian_equals_torch_autograd_of_one_cell_step(cell):
    model, module, blocks = derived(cell)
    net, params, X = _torch_case(cell, 3, 2)
    full = {**module.init_params(np.random.default_rng(0)), **params}
    ours = _derived_J(cell, blocks, model, module, full, X)
    theirs = _torch_J(cell, net, params, X, model, module)
    assert ours.shape == ((2 if cell == "lstm" else 1) * 3,) * 2
    assert np.max(np.abs(ours - theirs)) < 1e-12
    assert np.max(np.abs(theirs)) > 1e-2  # not trivially zero


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_wrong_block_is_caught(cell):
    """Swap one gate for its complement in the last block's self-loop term (f ↦ 1 − f, z ↦ 1 − z):
    the comparison with torch fails."""
    model, module, blocks = derived(cell)
    last = blocks[-1]
    (u, M), *rest = [t for t in last.terms if isinstance(t[1], sp.KroneckerDelta)] + [t for t in last.terms
                                                                                      if not isinstance(t[1], sp.KroneckerDelta)]
    wrong = replace(last, terms=((1 - u, M), *rest))
    net, params, X = _torch_case(cell, 3, 2)
    full = {**module.init_params(np.random.default_rng(0)), **params}
    ours = _derived_J(cell, (*blocks[:-1], wrong), model, module, full, X)
    theirs = _torch_J(cell, net, params, X, model, module)
    assert np.max(np.abs(ours - theirs)) > 1e-3


def _written_out(cell: str, H: int, n: int, rng):
    """The cell written out with SymPy at concrete sizes (PyTorch's documented equations), the previous
    state as symbols, the weights and input as numbers: the new state, the symbols, their values."""
    gates = 4 if cell == "lstm" else 3
    W = rng.standard_normal((gates * H, n)) / 2
    U = rng.standard_normal((gates * H, H)) / 2
    b, d = rng.standard_normal(gates * H) / 2, rng.standard_normal(gates * H) / 2
    x = rng.standard_normal(n)
    h = sp.symbols(f"h0:{H}")
    c = sp.symbols(f"c0:{H}")
    sig = lambda v: 1 / (1 + sp.exp(-v))  # noqa: E731
    pre = [sum(sp.Float(W[r, j]) * x[j] for j in range(n)) + b[r] for r in range(gates * H)]
    hid = [sum(sp.Float(U[r, k]) * h[k] for k in range(H)) + d[r] for r in range(gates * H)]
    if cell == "lstm":
        i_, f_, g_, o_ = ([pre[s * H + u] + hid[s * H + u] for u in range(H)] for s in range(4))
        c1 = [sig(f_[u]) * c[u] + sig(i_[u]) * sp.tanh(g_[u]) for u in range(H)]
        h1 = [sig(o_[u]) * sp.tanh(c1[u]) for u in range(H)]
        new, old = h1 + c1, list(h) + list(c)
    else:
        r_ = [sig(pre[u] + hid[u]) for u in range(H)]
        z_ = [sig(pre[H + u] + hid[H + u]) for u in range(H)]
        n_ = [sp.tanh(pre[2 * H + u] + r_[u] * hid[2 * H + u]) for u in range(H)]
        new, old = [(1 - z_[u]) * n_[u] + z_[u] * h[u] for u in range(H)], list(h)
    params = {"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b, "bias_hh_l0": d}
    return new, old, params, x


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_every_entry_equals_sympy_diff_of_the_cell_written_out(cell):
    H, n = 2, 2
    model, module, blocks = derived(cell, hidden=H, inputs=n)
    rng = np.random.default_rng(7)
    new, old, params, x = _written_out(cell, H, n, rng)
    X = np.stack([rng.standard_normal((n, 1)), x[:, None]])
    full = {**module.init_params(np.random.default_rng(0)), **params}
    forward = module.forward(full, X)  # the previous state: model.py's after the first step
    state = np.concatenate([forward["A1"][0, :, 0]] + ([forward["C1"][0, :, 0]] if cell == "lstm" else []))
    at = dict(zip(old, state))
    written = np.array([[float(sp.diff(e, s).subs(at)) for s in old] for e in new])
    values, prev, nxt, tau = step_values(model, module, full, X, 1)
    ours = one_step(blocks, values, prev, nxt, tau, H)[0]
    assert np.max(np.abs(ours - written)) < 1e-12


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_measured_norms_are_below_the_bound_and_deterministic(cell):
    model, module, _ = derived(cell)
    a, b = state_jacobian(model, module), state_jacobian(model, module)
    assert a == b
    for k, norm, bound, loop in a.measured:
        assert 0 < norm <= bound * (1 + 1e-12)
