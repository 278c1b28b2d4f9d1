"""The workspace form of the generated code: the same numbers as `gradients`, and no allocation.

`gradients_into` must reproduce `gradients` bit for bit (float64) for every activation, loss and
depth of the catalog grid, at batch 1 (where products over the batch go through np.dot) and larger;
`sgd_step` must move the parameters by −lr·gradients; float32 must agree with float64 to 1e-4; and a
step must allocate no array (tracemalloc) and touch no new page (getrusage) once the workspace
exists. The checks are also shown to fail when the generated code is corrupted.
"""

from __future__ import annotations

import functools
import json
import re
import resource
import tracemalloc

import numpy as np
import pytest

from derive.run import model_sources
from derive.verify import load_package, workspace_check

from conftest import derivation_for
from test_verification import GRID, config_id

BIG = (784, 256, 128, 10)


@functools.lru_cache(maxsize=None)
def source_for(config) -> tuple[str, str]:
    """model.py and model_inplace.py."""
    layers, act, loss, out = config
    return model_sources(derivation_for(layers, act, loss, out), title="t", command="t")


def module_for(config):
    """The modules of model.py and model_inplace.py."""
    return load_package(*source_for(config))


def point(module, loss: str, batch: int, seed: int = 0, sizes=None, dtype=np.float64):
    """Parameters (with non-zero biases), inputs and targets that fit the loss."""
    rng = np.random.default_rng(seed)
    sizes = module.SIZES if sizes is None else sizes
    params = module.init_params(sizes, rng)
    for key in params:
        if key.startswith("b"):
            params[key] = 0.5 * rng.standard_normal(params[key].shape)
    X = rng.standard_normal((sizes[0], batch))
    if loss == "ce":
        Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], batch)]
    elif loss == "bce":
        Y = rng.integers(0, 2, size=(sizes[-1], batch)).astype(float)
    else:
        Y = rng.standard_normal((sizes[-1], batch))
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return {k: cast(v) for k, v in params.items()}, cast(X), cast(Y)


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_gradients_into_gives_exactly_the_numbers_of_gradients(config):
    module, inplace = module_for(config)
    for batch in (1, 2, 7):
        params, X, Y = point(module, config[2], batch)
        expected = module.gradients(params, X, Y)
        ws = inplace.Workspace(module.SIZES, batch, np.float64)
        for _ in range(2):  # the second call reuses every array of the workspace
            got = inplace.gradients_into(ws, params, X, Y)
            assert sorted(got) == sorted(expected)
            for key in expected:
                assert got[key].shape == expected[key].shape
                assert np.array_equal(got[key], expected[key]), (batch, key, np.max(np.abs(got[key] - expected[key])))


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_sgd_step_moves_every_parameter_by_minus_lr_times_the_gradient(config):
    module, inplace = module_for(config)
    for batch in (1, 5):
        params, X, Y = point(module, config[2], batch, seed=1)
        expected = {k: v - 0.05 * g for (k, v), g in zip(params.items(), module.gradients(params, X, Y).values())}
        stepped = {k: v.copy() for k, v in params.items()}
        arrays = {k: id(v) for k, v in stepped.items()}
        assert inplace.sgd_step(inplace.Workspace(module.SIZES, batch), stepped, X, Y, 0.05) is None
        assert {k: id(v) for k, v in stepped.items()} == arrays  # updated in place
        for key in params:
            np.testing.assert_allclose(stepped[key], expected[key], rtol=1e-13, atol=1e-15)
            assert not np.array_equal(stepped[key], params[key]) or not np.any(module.gradients(params, X, Y)[key])


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_float32_gradients_agree_with_float64_to_1e_4(config):
    module, inplace = module_for(config)
    params, X, Y = point(module, config[2], 16, seed=2)
    exact = module.gradients(params, X, Y)
    single = point(module, config[2], 16, seed=2, dtype=np.float32)
    ws = inplace.Workspace(module.SIZES, 16, np.float32)
    got = inplace.gradients_into(ws, *single)
    for key in exact:
        assert got[key].dtype == np.float32
        error = np.linalg.norm(got[key] - exact[key]) / max(np.linalg.norm(exact[key]), 1e-30)
        assert error <= 1e-4, (key, error)


def test_init_params_draws_the_same_network_in_both_precisions():
    module, inplace = module_for((2, "tanh", "mse", None))
    double = module.init_params(module.SIZES, np.random.default_rng(3))
    single = module.init_params(module.SIZES, np.random.default_rng(3), dtype=np.float32)
    for key in double:
        assert double[key].dtype == np.float64 and single[key].dtype == np.float32
        assert np.array_equal(single[key], double[key].astype(np.float32))


# --------------------------------------------------------------------------------------------------
# no allocation, no page faults


ALLOCATION_CONFIGS = [(3, "sigmoid", "ce", None), (2, "relu", "mse", None), (2, "tanh", "bce", None), (3, "tanh", "mse", "softmax")]


def peak_growth(step, steps: int) -> int:
    """Bytes by which tracemalloc's peak rises above the memory in use when `steps` steps start."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(steps):
            step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


@pytest.mark.parametrize("config", ALLOCATION_CONFIGS, ids=config_id)
def test_a_step_in_workspace_form_allocates_no_array(config):
    """tracemalloc's peak stays flat over 50 steps, and what it sees does not grow with the batch:
    the one transient allocation is NumPy's fixed-size iteration buffer (np.getbufsize() entries)
    that a broadcasting operation such as the bias add uses and frees within the call."""
    module, inplace = module_for(config)
    sizes = (100, 60, 48, 48)[: config[0]] + (48,)
    growth = {}
    for batch in (64, 256):
        params, X, Y = point(module, config[2], batch, sizes=sizes)
        ws = inplace.Workspace(sizes, batch)
        for name, step in (
            ("gradients_into", lambda: inplace.gradients_into(ws, params, X, Y)),
            ("sgd_step", lambda: inplace.sgd_step(ws, params, X, Y, 1e-3)),
        ):
            for _ in range(3):  # warm-up: NumPy's and Python's own caches
                step()
            first, fifty = peak_growth(step, 10), peak_growth(step, 50)
            assert fifty <= first + 64, (name, first, fifty)  # flat: no growth with the number of steps
            growth[name, batch] = fifty
        growth["gradients", batch] = peak_growth(lambda: module.gradients(params, X, Y), 2)
    smallest = sizes[-1] * 256 * 8  # the smallest (n, m) array at batch 256: 96 kB
    iteration_buffer = np.getbufsize() * 8 + 4096
    for name in ("gradients_into", "sgd_step"):  # bounded by the buffer, however large the arrays
        assert max(growth[name, 64], growth[name, 256]) <= iteration_buffer < smallest, growth
    # the measurement does see arrays: the plain form allocates every result anew, batch-sized
    assert growth["gradients", 256] > 3 * growth["gradients", 64] > 3 * smallest / 4


def test_a_training_step_touches_no_new_page_at_mnist_size():
    """No minor page fault in 20 steps. The best of three trials counts: a stray fault from the rest
    of the test process (heap trimming after an earlier test) must not fail this test, while an
    array allocated per step would fault in every trial."""
    module, inplace = module_for((3, "sigmoid", "ce", None))
    for batch in (1, 128):
        params, X, Y = point(module, "ce", batch, sizes=BIG)
        ws = inplace.Workspace(BIG, batch)
        for _ in range(3):
            inplace.sgd_step(ws, params, X, Y, 1e-3)
            inplace.gradients_into(ws, params, X, Y)
        trials = []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(20):
                inplace.sgd_step(ws, params, X, Y, 1e-3)
                inplace.gradients_into(ws, params, X, Y)
            trials.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        assert min(trials) == 0, (batch, trials)


# --------------------------------------------------------------------------------------------------
# what the generated code does and does not do


def body_of(source: str, name: str) -> str:
    return re.search(rf"^def {name}\(.*?(?=^def |\Z)", source, flags=re.S | re.M).group(0)


def test_products_over_the_batch_use_np_dot_at_batch_one_only():
    module, inplace = module_for((3, "sigmoid", "ce", None))
    assert inplace.Workspace(BIG, 1).mm_m is np.dot
    assert inplace.Workspace(BIG, 2).mm_m is np.matmul
    assert inplace.Workspace(BIG, 2).mm_n0 is np.matmul
    assert inplace.Workspace((784, 1, 128, 10), 2).mm_n1 is np.dot  # a one-unit layer: inner dimension 1


def test_no_gradient_with_respect_to_the_input_and_no_recomputed_activation():
    plain_source, source = source_for((3, "sigmoid", "ce", None))
    for name in ("gradients_into", "sgd_step"):
        body = body_of(source, name)
        assert "W1.T" not in body  # W1ᵀ Δ1 would be the gradient with respect to X: not computed
        assert len(re.findall(r"^ +np\.tanh\(", body, flags=re.M)) == 2  # two hidden sigmoids, once each
        assert "np.logaddexp" not in body and "np.exp(" in body
    plain = body_of(plain_source, "gradients")
    assert "A2*(1 - A2)" in plain  # the derived σ′ = a(1 − a), reused from the forward pass


def test_workspace_refuses_data_it_was_not_built_for():
    module, inplace = module_for((2, "tanh", "mse", None))
    params, X, Y = point(module, "mse", 4)
    ws = inplace.Workspace(module.SIZES, 4)
    with pytest.raises(ValueError, match=r"batch 4"):
        inplace.gradients_into(ws, params, X[:, :3], Y[:, :3])
    with pytest.raises(TypeError, match="float64"):
        inplace.gradients_into(ws, params, X.astype(np.float32), Y.astype(np.float32))
    with pytest.raises(TypeError, match="W1"):
        inplace.sgd_step(ws, {**params, "W1": params["W1"].astype(np.float32)}, X, Y, 0.1)
    with pytest.raises(ValueError, match="sizes"):
        inplace.Workspace((4, 5), 4)
    with pytest.raises(TypeError, match="floating-point"):
        inplace.Workspace(module.SIZES, 4, np.int64)


def test_gradients_into_returns_the_workspace_arrays_and_overwrites_them():
    module, inplace = module_for((2, "relu", "ce", None))
    ws = inplace.Workspace(module.SIZES, 3)
    first = inplace.gradients_into(ws, *point(module, "ce", 3, seed=4))
    kept = {k: v.copy() for k, v in first.items()}
    second = inplace.gradients_into(ws, *point(module, "ce", 3, seed=5))
    assert first is second is ws.grads
    assert any(not np.array_equal(kept[k], second[k]) for k in kept)


def test_workspace_check_fails_when_the_workspace_code_is_wrong():
    config = (2, "sigmoid", "mse", None)
    d = derivation_for(*config[:3])
    model, source = source_for(config)
    assert workspace_check(d.model, *load_package(model, source)).passed
    body = body_of(source, "gradients_into")
    wrong = body.replace("np.add(Z1, b1, out=Z1)", "np.subtract(Z1, b1, out=Z1)", 1)
    assert wrong != body
    check = workspace_check(d.model, *load_package(model, source.replace(body, wrong)))
    assert not check.passed and not check.figures["exact"]
    # an sgd_step with the wrong sign is caught too
    body = body_of(source, "sgd_step")
    wrong = body.replace("lr = float(lr)", "lr = -float(lr)")
    assert not workspace_check(d.model, *load_package(model, source.replace(body, wrong))).passed


def test_the_documents_describe_the_workspace_form_and_its_check_in_every_format():
    from derive.model import make_spec
    from derive.run import generate

    files = generate(make_spec(2, "sigmoid", None, "ce", formats="md,tex,html,json", detail="full")).files  # generator notes: full
    md, tex, html = (files[f"derivation.{ext}"].decode() for ext in ("md", "tex", "html"))
    assert "**workspace form**" in md and "**Workspace form.** `gradients_into` gave exactly" in md
    assert r"\textbf{workspace form}" in tex and r"\texttt{np.tanh}" in tex
    assert r"\textbackslash{}texttt" not in tex  # prose inserted into prose is not converted twice
    assert "&lt;math" not in html and "workspace form" in html
    checks = {c["name"]: c for c in json.loads(files["derivation.json"])["verification"]["checks"]}
    assert checks["workspace"]["ran"] and checks["workspace"]["passed"] and checks["workspace"]["figures"]["exact"]


@pytest.mark.parametrize("config", [(2, "tanh", "mse", None), (3, "relu", "ce", None)], ids=config_id)
def test_train_of_the_workspace_form_follows_the_same_path_as_the_lesson_train(config):
    """model.py's `train` calls `gradients`, model_inplace.py's calls `gradients_into` on the same
    minibatches: since their numbers are the same bit for bit, so are the parameters and the history
    after two epochs (the last minibatch of an epoch smaller, so two workspaces)."""
    module, inplace = module_for(config)
    params, X, Y = point(module, config[2], 23, seed=6)
    mine, fast = ({k: v.copy() for k, v in params.items()} for _ in range(2))
    plain = module.train(mine, X, Y, epochs=2, batch_size=5, rng=np.random.default_rng(7), quiet=True, lr=0.3)
    quick = inplace.train(fast, X, Y, epochs=2, batch_size=5, rng=np.random.default_rng(7), quiet=True, lr=0.3)
    assert plain == quick and plain["loss"][1] < plain["loss"][0]
    assert all(np.array_equal(mine[k], fast[k]) for k in params) and not np.array_equal(mine["W1"], params["W1"])
