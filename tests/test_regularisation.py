"""--l2, --l1 and --penalise-bias: the penalty is derived, coded and verified, with one normalisation.

The loss of one sample is C = Σᵢ ℓ + R and the minibatch cost C̄ = (1/m) Σₛ Σᵢ ℓ + R: the penalty
is counted once per minibatch. Every check includes it, and each check fails when it is dropped.
"""

import dataclasses
import re

import numpy as np
import pytest

from conftest import generated
from derive.run import model_source
import sympy as sp

from derive.derivation import derive
from derive.errors import DeriveError
from derive.matrixform import MatProd, Tr
from derive.model import build_model, make_spec
from derive.notation import BATCH_SIZE, L1_STRENGTH, L2_STRENGTH, Q
from derive.verify import derivative_check, load_module, minibatch_check, symbolic_check

CONFIGS = [
    dict(l2="0.01"),
    dict(l1="0.003"),
    dict(l2="0.5", l1="0.25"),
    dict(l2="0.1", penalise_bias=True),
    dict(l1="0.2", penalise_bias=True),
]


@pytest.mark.parametrize("penalty", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("layers, act, loss", [(2, "tanh", "mse"), (3, "relu", "ce")])
def test_penalised_network_passes_every_check(penalty, layers, act, loss):
    outcome = generated(make_spec(layers, act, None, loss, **penalty))
    assert outcome.report.passed, [(c.name, c.figures) for c in outcome.report.checks if not c.passed]
    assert outcome.report.check("symbolic").figures["partials"] == layers * 6


def test_gradients_carry_the_derived_penalty_terms():
    d = derive(build_model(make_spec(2, "tanh", None, "mse", l2="0.01", l1="0.1")))
    W, A1, Delta = Q("W", 2).symbol, Q("A", 1).symbol, Q("Delta", 2).symbol
    expected = MatProd(Delta, Tr(A1)) / BATCH_SIZE + L2_STRENGTH * W + L1_STRENGTH * sp.sign(W)
    assert d.batch.results[Q("grad_W", 2)].matrix_rhs == expected
    assert d.batch.results[Q("grad_b", 2)].matrix_rhs.free_symbols.isdisjoint({L1_STRENGTH, L2_STRENGTH})  # biases free
    rules = [s.rule for s in d.sample.steps[Q("grad_W", 1)]]
    assert rules[0] == "penalty_split" and "penalty_definition" in rules and rules[-2:] == ["add_penalty", "matrix_form"]


def test_biases_are_penalised_only_when_asked():
    d = derive(build_model(make_spec(2, "tanh", None, "mse", l2="0.01", penalise_bias=True)))
    assert d.batch.results[Q("grad_b", 1)].matrix_rhs.has(L2_STRENGTH)


def test_penalty_is_counted_once_per_minibatch_in_code():
    """loss(X) − data loss equals R whatever the batch size; the gradient's penalty part too."""
    d = derive(build_model(make_spec(2, "tanh", None, "mse", l2="0.5")))
    plain = derive(build_model(make_spec(2, "tanh", None, "mse")))
    module, reference = module_for(d), module_for(plain)
    rng = np.random.default_rng(3)
    params = module.init_params((4, 5, 3), rng)
    penalty = 0.25 * sum(np.sum(params[k] ** 2) for k in ("W1", "W2"))
    for m in (1, 7):
        X, Y = rng.standard_normal((4, m)), rng.standard_normal((3, m))
        assert np.isclose(module.loss(params, X, Y) - reference.loss(params, X, Y), penalty)
        g, g0 = module.gradients(params, X, Y), reference.gradients(params, X, Y)
        assert np.allclose(g["W1"] - g0["W1"], 0.5 * params["W1"]) and np.allclose(g["b1"], g0["b1"])


def module_for(derivation, source=None):
    return load_module(source or model_source(derivation, title="t", command="t"))


def test_checks_fail_when_the_penalty_is_dropped():
    d = derive(build_model(make_spec(2, "tanh", None, "mse", l2="0.1")))
    source = model_source(d, title="t", command="t")
    broken = re.sub(r"(?m)^(    dW1 = .*?)( \+ W1\*L2_STRENGTH|W1\*L2_STRENGTH \+ )(.*)$", r"\1\3", source, count=1)
    assert broken != source
    assert derivative_check(d.model, module_for(d, source)).passed
    assert not derivative_check(d.model, module_for(d, broken)).passed
    for batch in (False, True):
        wrong = derive(build_model(make_spec(2, "tanh", None, "mse", l2="0.1")))
        results = (wrong.batch if batch else wrong.sample).results
        result = results[Q("grad_W", 1)]
        results[Q("grad_W", 1)] = dataclasses.replace(result, rhs=result.rhs.xreplace({L2_STRENGTH: 0}))
        assert not (minibatch_check(wrong) if batch else symbolic_check(wrong)).passed


def test_documents_state_the_normalisation_and_the_values():
    outcome = generated(make_spec(2, "tanh", None, "mse", l2="0.01", l1="0.002"))
    md = outcome.files["derivation.md"].decode()
    assert r"\lambda_{2} = 0.01" in md and r"\lambda_{1} = 0.002" in md
    assert "counted once, not once per sample" in md
    assert "--l2 0.01 --l1 0.002" in md
    source = outcome.files["model.py"].decode()
    assert "L2_STRENGTH = 0.01" in source and "L1_STRENGTH = 0.002" in source
    spec = __import__("json").loads(outcome.files["derivation.json"])["spec"]
    assert spec["l2"] == "0.01" and spec["l1"] == "0.002" and spec["penalise_bias"] is False


@pytest.mark.parametrize("kwargs, words", [
    (dict(l2="abc"), ["--l2", "'abc'", "not a number"]),
    (dict(l2="0"), ["--l2", "0 < λ"]),
    (dict(l1="-1"), ["--l1", "0 < λ"]),
    (dict(l2="1e9"), ["--l2", "≤ 1000"]),
    (dict(l2="nan"), ["--l2"]),
    (dict(penalise_bias=True), ["--penalise-bias", "--l2"]),
])
def test_bad_penalty_values(kwargs, words):
    with pytest.raises(DeriveError) as error:
        make_spec(2, "tanh", **kwargs)
    for word in words:
        assert word in str(error.value)
