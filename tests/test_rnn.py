"""`derive rnn`: the Elman cell's backpropagation through time derived at a symbolic step, checked
against direct differentiation of the unrolled loss, printed as loops over the steps and checked by
finite differences; the command line, its documents and its refusals."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

from derive.cli import main
from derive.derivation import backward_pass
from derive.indexing import Iverson
from derive.notation import Q
from derive.render import render
from derive.rnn import build_rnn, make_rnn_spec
from derive.rnn_run import model_context
from derive.rnn_verify import derivative_check, load_module, minibatch_check, symbolic_check

SHAPES = [dict(), dict(output="all"), dict(layers=2), dict(act="relu", output="all"),
          dict(loss="bce", output="all"), dict(loss="huber:1"), dict(output="mean", act="relu")]


@lru_cache(maxsize=None)
def derived(**choices):
    model = build_rnn(make_rnn_spec(**choices))
    return model, backward_pass(model.network, False), backward_pass(model.network, True)


def source(model, batch) -> str:
    return render("model_rnn.py.j2", model_context(model, batch, title="t", command="derive rnn", version="test"))


# ---- the derivation at a symbolic step


def test_the_error_of_the_state_has_the_two_paths_and_reads_the_next_step():
    model, sample, _ = derived()
    steps = sample.steps[Q("grad_a", 1)]
    assert any(s.rule == "chain_rule_paths" for s in steps)
    result = sample.results[Q("grad_a", 1)]
    r = result.free[0]
    terms = sp.Add.make_args(result.rhs)
    assert len(terms) == 2  # the path through the head at the last step, and through the next step
    delta = Q("delta", 1).base
    later = [e for e in result.rhs.atoms(sp.Indexed) if e.base == delta]
    assert later and all(e.indices[0] == r + 1 for e in later)
    guards = result.rhs.atoms(Iverson)
    assert any(g.args[0] == (r + 1 <= sp.Symbol("t_1", integer=True, positive=True) - 1) for g in guards)
    assert result.rhs.atoms(sp.KroneckerDelta)  # the loss path exists only at the last step


@pytest.mark.parametrize("kind", ["W_ih", "W_hh", "b_ih", "b_hh"])
def test_a_shared_weight_has_a_sum_over_the_steps(kind):
    _, sample, _ = derived()
    rhs = sample.results[Q("grad_" + kind, 1)].rhs
    assert any(str(lim[0]) == "tau" for s in rhs.atoms(sp.Sum) for lim in s.limits)


@pytest.mark.parametrize("choices", SHAPES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_symbolic_and_minibatch_checks(choices):
    model, sample, batch = derived(**choices)
    check = symbolic_check(model, sample)
    assert check.passed, check.figures
    assert check.figures["partials"] == sum(
        int(np.prod([2] * p.rank)) for node in model.network.layers for p in node.parameters)
    assert minibatch_check(model, sample, batch).passed


def test_the_symbolic_check_catches_a_dropped_next_step_error():
    """Replace ∂C/∂h by its first path only (the classic bug): direct differentiation disagrees."""
    model, sample, _ = derived()
    key = Q("grad_a", 1)
    result = sample.results[key]
    loss_path = [t for t in sp.Add.make_args(result.rhs) if t.has(sp.KroneckerDelta)][0]
    broken = replace(sample, results={**sample.results, key: replace(result, rhs=loss_path)})
    assert not symbolic_check(model, broken).passed


# ---- the generated code


@pytest.mark.parametrize("choices", SHAPES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_generated_code_matches_finite_differences(choices):
    model, _, batch = derived(**choices)
    check = derivative_check(model, load_module(source(model, batch)))
    assert check.passed, check.figures
    assert check.figures["partials"] > 0


def test_the_code_loops_over_the_steps_only():
    model, _, batch = derived(layers=2, output="all")
    text = source(model, batch).split('if __name__ == "__main__":')[0]
    import re

    loops = [line.strip() for line in text.splitlines() if re.fullmatch(r"\s*for \w+ in .*:", line)]
    # one loop forward over the steps, one backward, in gradients (gradients_into, with the same two,
    # is in model_inplace.py); clip_gradients and sgd_step loop over the parameter arrays (update too,
    # over their keys and arrays), train over epochs and minibatches
    steps = ["for t in range(T):", "for t in reversed(range(T)):"]
    assert loops == steps + [
        "for g in grads.values():", "for name in params:", "for _ in range(epochs):",
        "for start in range(0, m, batch_size):"]
    assert "if t + 1 <= T - 1 and carry:" in text and "if t >= 1:" in text


def test_the_finite_difference_check_catches_a_wrong_gradient():
    model, _, batch = derived()
    text = source(model, batch).replace("dW_hh1 += ", "dW_hh1 -= ")
    assert "dW_hh1 -= " in text
    assert not derivative_check(model, load_module(text)).passed


def test_parameters_have_pytorch_names_and_shapes():
    model, _, batch = derived(layers=2)
    module = load_module(source(model, batch))
    params = module.init_params(np.random.default_rng(0), inputs=3, hidden=5, units=2)
    assert {k: v.shape for k, v in params.items()} == {
        "weight_ih_l0": (5, 3), "weight_hh_l0": (5, 5), "bias_ih_l0": (5,), "bias_hh_l0": (5,),
        "weight_ih_l1": (5, 5), "weight_hh_l1": (5, 5), "bias_ih_l1": (5,), "bias_hh_l1": (5,),
        "head_weight": (2, 5), "head_bias": (2,)}
    X = np.random.default_rng(1).standard_normal((4, 3, 6))
    grads = module.gradients(params, X, np.zeros((2, 6)))
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in params.items()}


def test_one_step_sequences_work():
    model, _, batch = derived(output="all")
    module = load_module(source(model, batch))
    params = module.init_params()
    X, Y = np.ones((1, 3, 2)), np.zeros((1, 2, 2))
    assert np.isfinite(module.loss(params, X, Y))
    assert all(np.all(np.isfinite(g)) for g in module.gradients(params, X, Y).values())


# ---- the command line


def test_cli_writes_the_files_and_reports(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["rnn", "--output", "all", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["derivation.json", "derivation.md", "derivation.tex", "model.py",
                                                        "model_inplace.py", "network.svg"]
    assert "verification passed" in result.output
    md = (out / "derivation.md").read_text()
    assert "Backpropagation through time" in md and r"\delta^{(1)}_{r + 1,i}" in md


def test_cli_is_deterministic_and_speaks_chinese(tmp_path):
    runs = []
    for n in range(2):
        out = tmp_path / f"zh{n}"
        assert CliRunner().invoke(main, ["rnn", "--lang", "zh", "--format", "md,py", "--out", str(out)]).exit_code == 0
        runs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert runs[0] == runs[1]
    assert "随时间反向传播" in runs[0]["derivation.md"].decode()


@pytest.mark.parametrize("args, words", [
    (["--cell", "transformer"], "--cell"),
    (["--cell", "gru", "--act", "relu"], "--act"),
    (["--cell", "lstm", "--act", "relu"], "--act"),
    (["--cell", "elman"], "--cell"),
    (["--hidden", "0"], "--hidden"),
    (["--steps", "x"], "--steps"),
    (["--layers", "4"], "--layers"),
    (["--output", "every"], "--output"),
    (["--act", "sigmoid"], "--act"),
    (["--loss", "ce"], "--loss"),
    (["--out-act", "softmax"], "--out-act"),
    (["--loss", "bce", "--out-act", "identity"], "bce"),
    (["--format", "ipynb"], "--format"),
    (["--lang", "fr"], "--lang"),
    (["--optimizer", "adamx"], "--optimizer"),
    (["--optimizer", "adam:beta1=2"], "beta1"),
    (["--optimizer", "sgd:momentum=0.9"], "momentum"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, words):
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["rnn", *args, "--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("derive: error: ") and words in lines[0]
    assert not out.exists()


# ---- the LSTM


def test_lstm_cell_error_has_the_output_path_and_the_cell_path():
    """dc[r] = dh[r] ⊙ o[r] ⊙ (1 − tanh² c[r]) + [r + 1 ≤ T − 1] dc[r + 1] ⊙ f[r + 1], from the rule."""
    _, sample, _ = derived(cell="lstm")
    result = sample.results[Q("grad_cell", 1)]
    r, q = result.free
    c, o, f, dc, dh = (Q(k, 1).base for k in ("cell", "go", "gf", "grad_cell", "grad_a"))
    output_path = (1 - sp.tanh(c[r, q]) ** 2) * o[r, q] * dh[r, q]
    T = sp.Symbol("t_1", integer=True, positive=True)
    cell_path = f[r + 1, q] * dc[r + 1, q] * Iverson(r + 1 <= T - 1)
    assert sp.expand(result.rhs - output_path - cell_path) == 0
    assert any(s.rule == "chain_rule_paths" for s in sample.steps[Q("grad_cell", 1)])


@pytest.mark.parametrize("gate, local", [("i", lambda v: v * (1 - v)), ("f", lambda v: v * (1 - v)),
                                         ("o", lambda v: v * (1 - v)), ("g", lambda v: 1 - v ** 2)])
def test_lstm_gate_derivatives_are_in_terms_of_the_gate_values(gate, local):
    _, sample, _ = derived(cell="lstm")
    result = sample.results[Q("grad_z" + gate, 1)]
    r, q = result.free
    value = Q("g" + gate, 1).base[r, q]
    assert not result.rhs.has(sp.exp)
    assert sp.expand(result.rhs - local(value) * sp.cancel(result.rhs / local(value))) == 0
    assert not sp.cancel(result.rhs / local(value)).has(Q("z" + gate, 1).base)


def test_lstm_checks():
    model, sample, batch = derived(cell="lstm", output="all")
    symbolic = symbolic_check(model, sample)
    assert symbolic.passed and symbolic.figures["partials"] == 16 * 3 + 6  # 4 gates × (2 matrices 2×2, 2 biases), head
    assert minibatch_check(model, sample, batch).passed
    assert derivative_check(model, load_module(source(model, batch))).passed


def test_lstm_parameters_are_stacked_in_pytorch_order():
    model, _, batch = derived(cell="lstm")
    text = source(model, batch)
    assert '"weight_ih_l0": np.concatenate([dW_ii1, dW_if1, dW_ig1, dW_io1])' in text
    module = load_module(text)
    params = module.init_params(np.random.default_rng(0), inputs=3, hidden=5, units=2)
    assert params["weight_ih_l0"].shape == (20, 3) and params["weight_hh_l0"].shape == (20, 5)
    assert params["bias_ih_l0"].shape == (20,)


# ---- the GRU


def test_gru_reset_gate_is_applied_after_the_hidden_product():
    """PyTorch's form: the reset gate's error is ∂C/∂z_n times the whole bracket W_hn h[r−1] + b_hn."""
    _, sample, _ = derived(cell="gru")
    result = sample.results[Q("grad_zr", 1)]
    r, q = result.free
    bracket = [f for f in sp.Mul.make_args(result.rhs) if f.is_Add and f.has(Q("b_hn", 1).base)]
    assert len(bracket) == 1 and bracket[0].has(Q("W_hn", 1).base) and bracket[0].has(sp.Sum)
    value = Q("gr", 1).base[r, q]
    assert sp.expand(result.rhs - value * (1 - value) * Q("grad_zn", 1).base[r, q] * bracket[0]) == 0


def test_gru_state_error_has_the_direct_path_through_the_update_gate():
    _, sample, _ = derived(cell="gru")
    result = sample.results[Q("grad_a", 1)]
    r, q = result.free
    dh, z = Q("grad_a", 1).base, Q("gz", 1).base
    assert any(t.has(dh[r + 1, q]) and t.has(z[r + 1, q]) for t in sp.Add.make_args(result.rhs))
    assert any(t.has(Q("W_hn", 1).base) and t.has(Q("gr", 1).base) for t in sp.Add.make_args(result.rhs))


def test_gru_checks():
    model, sample, batch = derived(cell="gru", output="all")
    assert symbolic_check(model, sample).passed
    assert minibatch_check(model, sample, batch).passed
    assert derivative_check(model, load_module(source(model, batch))).passed
    assert '"weight_ih_l0": np.concatenate([dW_ir1, dW_iz1, dW_in1])' in source(model, batch)


# ---- how far an error travels; clipping


def test_one_step_jacobian_is_derived_and_bounds_hold():
    from derive.rnn_jacobian import jacobian, one_step

    model, _, batch = derived()
    lhs, computed, rhs = one_step(model)
    i = lhs.args[0].indices[1]
    tau, q = lhs.variables[0].indices
    assert sp.expand(rhs - (1 - Q("a", 1).base[tau + 1, i] ** 2) * Q("W_hh", 1).base[i, q]) == 0
    module = load_module(source(model, batch))
    jac = jacobian(model, module)
    assert jac.gamma == pytest.approx(1.0)
    bounds = dict(jac.bounds)
    assert jac.measured and all(value <= bounds[k] * (1 + 1e-12) for k, value in jac.measured)
    # the derived entries against finite differences of one step of the cell, written out here
    params = module.init_params(np.random.default_rng(0))
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params["bias_ih_l0"] + params["bias_hh_l0"]
    x, h = np.random.default_rng(3).standard_normal(3), np.random.default_rng(4).standard_normal(4)
    step = lambda h: np.tanh(W_ih @ x + W_hh @ h + b)  # noqa: E731
    eps = 1e-6
    numeric = np.stack([(step(h + eps * e) - step(h - eps * e)) / (2 * eps) for e in np.eye(4)], axis=1)
    derived_jacobian = (1 - step(h) ** 2)[:, None] * W_hh
    assert np.max(np.abs(numeric - derived_jacobian)) < 1e-8


def test_clip_gradients_matches_torch():
    torch = pytest.importorskip("torch")
    model, _, batch = derived()
    module = load_module(source(model, batch))
    params = module.init_params(np.random.default_rng(0))
    X, Y = np.random.default_rng(1).standard_normal((5, 3, 4)), 10 * np.ones((2, 4))
    grads = module.gradients(params, X, Y)
    tensors = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    for k, t in tensors.items():
        t.grad = torch.tensor(grads[k].copy())
    expected_norm = float(torch.nn.utils.clip_grad_norm_(list(tensors.values()), 0.5))
    norm = module.clip_gradients(grads, 0.5)
    assert norm == pytest.approx(expected_norm, rel=1e-12) and norm > 0.5
    assert all(np.allclose(grads[k], tensors[k].grad.numpy(), rtol=1e-12, atol=0) for k in grads)


def test_html_and_pdf(tmp_path):
    import shutil

    from conftest import need

    need(shutil.which("pdflatex") is not None, "pdflatex")
    out = tmp_path / "formats"
    result = CliRunner().invoke(main, ["rnn", "--format", "html,pdf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "derivation.pdf").read_bytes().startswith(b"%PDF")
    assert "<math" in (out / "derivation.html").read_text()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_stays_float32(cell):
    model, _, batch = derived(cell=cell, output="all")
    module = load_module(source(model, batch))
    rng = np.random.default_rng(0)
    params64 = module.init_params(rng)
    params32 = {k: v.astype(np.float32) for k, v in params64.items()}
    X, Y = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 2, 5))
    g64 = module.gradients(params64, X, Y)
    g32 = module.gradients(params32, X.astype(np.float32), Y.astype(np.float32))
    for k in g64:
        assert g32[k].dtype == np.float32, k
        assert np.allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5), k
    assert module.init_params(dtype=np.float32)["weight_hh_l0"].dtype == np.float32


def test_train_lowers_the_loss():
    model, _, batch = derived(cell="gru", output="all")
    module = load_module(source(model, batch))
    rng = np.random.default_rng(2)
    params = module.init_params(rng)
    X = rng.standard_normal((5, 3, 64))
    Y = np.tanh(X[:, :2] + X[:, 1:3])  # a target the network can fit
    before = module.loss(params, X, Y)
    history = module.train(params, X, Y, epochs=20, lr=0.2, batch_size=16, max_norm=5.0)
    assert len(history) == 20 and history[-1] < 0.5 * before


@pytest.mark.parametrize("cell, gate", [("lstm", "gf"), ("gru", "gz")])
def test_gated_self_loop_is_the_gate(cell, gate):
    """The last block of the state's Jacobian (∂c/∂c, or ∂h/∂h for the GRU) has the gate alone on its
    diagonal term; the product of the gates over k steps shrinks with k at the initial weights."""
    from derive.rnn_state_jacobian import state_jacobian

    model, _, batch = derived(cell=cell)
    jac = state_jacobian(model, load_module(source(model, batch)))
    block = jac.blocks[-1]
    i = block.lhs.args[0].indices[1]
    tau, q = block.lhs.variables[0].indices
    diagonal = [u for u, M in block.terms if M == sp.KroneckerDelta(i, q)]
    assert len(diagonal) == 1 and sp.expand(diagonal[0] - Q(gate, 1).base[tau + 1, i]) == 0
    loops = [loop for _, _, _, loop in jac.measured]
    assert all(0 < b < a < 1 for a, b in zip(loops, loops[1:]))


# ---- the notation: every symbol in a table, one meaning each


@pytest.mark.parametrize("cell, lang, output", [("rnn", "en", "last"), ("rnn", "zh", "all"), ("lstm", "en", "last"),
                                                ("gru", "zh", "last")])
def test_every_symbol_of_the_document_is_in_a_table_with_one_meaning(cell, lang, output):
    """The check the gallery's documents get (tests/test_lesson.py), on documents built now: the
    gates print as Γ and the candidates with a tilde, so PyTorch's i (the unit index), g (the
    activation), r (the step) and z (the pre-activation) keep one meaning each. The slow symbolic
    check is left out of the verification section (its sentence has no formula)."""
    from test_lesson import math_segments, notation_problems

    from derive.rnn_document import build_rnn_document
    from derive.rnn_jacobian import jacobian
    from derive.rnn_state_jacobian import state_jacobian

    model, sample, batch = derived(cell=cell, output=output)
    code = model_context(model, batch, title="t", command="derive rnn", version="test")
    module = load_module(render("model_rnn.py.j2", code))
    checks = [minibatch_check(model, sample, batch), derivative_check(model, module)]
    jac = jacobian(model, module) if cell == "rnn" else state_jacobian(model, module)
    doc = build_rnn_document(model, sample, checks, code, command="derive rnn", fmt="tex", lang=lang, jacobian=jac)
    tex = render("derivation.tex.j2", {"doc": doc})
    assert notation_problems(tex) == []
    formulas = "\n".join(math_segments(tex))
    assert r"\Gamma" in formulas if cell != "rnn" else r"W_{\mathrm{hh}}" in formulas
    # no gate printed with PyTorch's letter: {i}^{(1)}, {g}^{(1)}, {r}^{(1)}, {z}^{(1)}, {n}^{(1)}
    assert not re.search(r"\{[ifgornz]\}\^\{\(", formulas)


# ---- the optimizer (--optimizer, as for derive mlp)


def optimized(optimizer: str, **choices):
    """The generated module of a network with `optimizer`, and the optimizer's derivation."""
    from derive.catalog.optimizers import resolve_optimizer
    from derive.training import derive_training

    model, _, batch = derived(**choices)
    training = derive_training(resolve_optimizer(optimizer))
    context = model_context(model, batch, training, title="t", command="c", version="v")
    return load_module(render("model_rnn.py.j2", context)), training


@pytest.mark.parametrize("optimizer", ["adam:weight_decay=0.01", "rmsprop:centered=true", "nesterov", "adagrad"])
def test_update_of_the_generated_code_is_the_optimizer_and_torch_optim(optimizer):
    """`update` in model.py equals the optimizer's equations in 30-digit arithmetic (the check every
    run makes), and five steps on a GRU network's parameters, with its gradients, equal torch.optim's."""
    from conftest import torch_or_skip_module

    from derive.verify_training import optimizer_check

    module, training = optimized(optimizer, cell="gru")
    check = optimizer_check(training, module)
    assert check.passed and check.figures["optimizer"] == training.optimizer.name
    torch = torch_or_skip_module()
    opt, values = training.optimizer, training.values
    rng = np.random.default_rng(4)
    params = module.init_params(rng)
    X, Y = rng.standard_normal((4, 3, 5)), rng.standard_normal((2, 5))
    mirror = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    reference = eval(opt.torch_class, {"torch": torch})(list(mirror.values()), **opt.torch_kwargs(values))  # noqa: S307
    state = module.init_state(params, **{h.name: values[h.name] for h in opt.hypers if h.init_only})
    for _ in range(5):  # the network's gradients at the current parameters, the same for both
        grads = module.gradients(params, X, Y)
        module.update(params, grads, state)
        for key, tensor in mirror.items():
            tensor.grad = torch.tensor(grads[key], dtype=torch.float64)
        reference.step()
        for key, tensor in mirror.items():
            theirs = tensor.detach().numpy()
            assert np.max(np.abs(params[key] - theirs) / np.maximum(np.abs(theirs), 1e-300)) <= 1e-12, (optimizer, key)


def test_the_update_check_can_fail():
    """A generated update with a wrong sign fails the check that every run makes."""
    from derive.verify_training import optimizer_check

    module, training = optimized("adam")
    right = module.update

    def wrong(params, grads, state, **hyper):
        right(params, {k: -g for k, g in grads.items()}, state, **hyper)

    module.update = wrong
    assert not optimizer_check(training, module).passed


def test_train_takes_the_steps_of_update():
    """train() with one minibatch per epoch is gradients, then update with the optimizer's state."""
    module, _ = optimized("adam:lr=0.01")
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((5, 3, 8)), rng.standard_normal((2, 8))
    trained, by_hand = module.init_params(), module.init_params()
    history = module.train(trained, X, Y, epochs=3, batch_size=8, rng=np.random.default_rng(0))
    state = module.init_state(by_hand)
    for _ in range(3):
        module.update(by_hand, module.gradients(by_hand, X, Y), state)
    for key in trained:  # the same steps; the shuffled columns only change the order of the sums over samples
        assert np.allclose(trained[key], by_hand[key], rtol=1e-12, atol=1e-15), key
    assert len(history) == 3 and history[-1] == pytest.approx(module.loss(by_hand, X, Y), rel=1e-12)
    assert "lr=0.01" in str(__import__("inspect").signature(module.update))


def test_cli_optimizer_names_the_folder_and_the_document(tmp_path):
    out = tmp_path / "adam"
    result = CliRunner().invoke(main, ["rnn", "--optimizer", "adam:lr=0.01", "--format", "md,py", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "adam update equals its equations over 3 steps" in result.output
    md = (out / "derivation.md").read_text()
    assert "torch.optim.Adam" in md and "--optimizer adam:lr=0.01" in md
    assert make_rnn_spec(optimizer="adam:lr=0.01").slug() == "rnn-rnn-last-L1-tanh-identity-mse-adam-lr0.01"
    assert make_rnn_spec(optimizer="sgd").slug() == "rnn-rnn-last-L1-tanh-identity-mse"


# ---- recurrent layers in network files (derive net)


def test_the_lstm_network_file_derives_verifies_and_is_derive_rnns_network(tmp_path):
    """examples/lstm_sequence.toml goes through `derive net` to the pipeline of `derive rnn`: every
    check passes, and its model.py is the one `derive rnn` prints for the same choices (all but the
    header that names the command)."""
    from pathlib import Path

    from derive.rnn import RNNSpec

    example = Path(__file__).resolve().parent.parent / "examples" / "lstm_sequence.toml"
    out = tmp_path / "net"
    result = CliRunner().invoke(main, ["net", str(example), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verification passed" in result.output and "adam update equals its equations" in result.output
    same = make_rnn_spec(cell="lstm", inputs=3, hidden=4, steps=4, output="all", units=2, optimizer="adam:lr=0.01")
    model = build_rnn(same)
    expected = render("model_rnn.py.j2", model_context(model, backward_pass(model.network, True), title="t",
                                                        command="c", version="v"))
    written = (out / "model.py").read_text()
    body = lambda text: text.split("\nimport numpy as np\n", 1)[1]  # noqa: E731 - after the docstring naming the command
    assert body(written) == body(expected)
    assert f"derive net {example}" in (out / "derivation.md").read_text()
    spec = __import__("derive.model", fromlist=["make_net_spec"]).make_net_spec(str(example))
    assert isinstance(spec, RNNSpec) and spec.slug() == "net-lstm_sequence-adam-lr0.01"


NET_HEAD = 'input = 3\n[[layers]]\nkind = "dense"\nunits = 2\n'


@pytest.mark.parametrize("text, words", [
    ('input = 3\n[[layers]]\nkind = "lstm"\nunits = 4\n', "nothing after the recurrent layers"),
    ('input = 3\n[[layers]]\nkind = "dense"\nunits = 4\n[[layers]]\nkind = "gru"\nunits = 4\n' + NET_HEAD[10:],
     "layers[1] has kind 'dense' before a recurrent layer"),
    ('input = 3\n[[layers]]\nkind = "lstm"\nunits = 4\n[[layers]]\nkind = "gru"\nunits = 4\n' + NET_HEAD[10:],
     "kind 'gru' after kind 'lstm'"),
    ('input = 3\n[[layers]]\nkind = "rnn"\nunits = 4\n[[layers]]\nkind = "rnn"\nunits = 5\n' + NET_HEAD[10:],
     "units = 5 after units = 4"),
    ('input = 3\n[[layers]]\nkind = "rnn"\nunits = 4\noutput = "all"\n[[layers]]\nkind = "rnn"\nunits = 4\n'
     + NET_HEAD[10:], "output and steps go on the last recurrent layer"),
    ('input = 3\n[[layers]]\nkind = "rnn"\nunits = 4\nactivation = "sigmoid"\n' + NET_HEAD[10:],
     "activation of the recurrent layers: 'sigmoid'"),
    ('input = 3\n[[layers]]\nkind = "lstm"\nunits = 4\n[[layers]]\nkind = "dense"\nunits = 2\n'
     '[[layers]]\nkind = "dense"\nunits = 2\n', "and 1 more after the recurrent layers"),
    ('input = 3\nl2 = 0.1\n[[layers]]\nkind = "rnn"\nunits = 4\n' + NET_HEAD[10:], "'l2' is not available"),
    ('input = [3, 5]\n[[layers]]\nkind = "rnn"\nunits = 4\n' + NET_HEAD[10:], "expected a whole number"),
    ('input = 3\n[[layers]]\nkind = "rnn"\nunits = 4\nname = "h"\n' + NET_HEAD[10:], "unknown key 'name'"),
    ('input = 3\n[[layers]]\nkind = "rnn"\nunits = 4\noutput = "first"\n' + NET_HEAD[10:], "output: 'first'"),
])
def test_a_recurrent_network_file_outside_derive_rnns_shapes_is_one_line(tmp_path, text, words):
    path = tmp_path / "net.toml"
    path.write_text(text)
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["net", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("derive: error: ") and str(path) in lines[0], lines
    assert words in lines[0], lines[0]
    assert not out.exists()
