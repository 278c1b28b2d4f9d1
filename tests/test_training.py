"""The training derivations: the update rule, and what SymPy derives about each optimizer, checked
against the definitions they come from (recurrences iterated step by step with exact rationals)."""

from __future__ import annotations

import random

import pytest
import sympy as sp

from derive.catalog.optimizers import (
    ALPHA,
    BETA1,
    BETA2,
    DAMPENING,
    EPS,
    INITIAL_ACCUMULATOR,
    LR_DECAY,
    MOMENTUM,
    OPTIMIZERS,
    WEIGHT_DECAY,
    resolve_optimizer,
)
from derive.notation import LEARNING_RATE as eta
from derive.training import STEP as t, derive_training, minibatch_update, proximal_update
from derive.notation import GRADIENT as g, THETA, THETA_NEXT, FULL_GRAD, GRAD_ENTRY, Expectation, timed


def facts(name, text=None):
    training = derive_training(resolve_optimizer(text or name))
    return {f.key: f for f in training.facts}


def final(fact, rule):
    return [s for s in fact.steps if s.rule == rule][-1].rhs


def test_gradient_descent_is_the_minimiser_of_the_proximal_model():
    steps = {s.rule: s for s in proximal_update()}
    q = steps["stationarity"].lhs.indices[0]
    assert steps["stationarity"].rhs == timed(THETA)[q] - eta * timed(GRAD_ENTRY)[q]
    assert steps["convexity"].rhs == 1 / eta
    assert steps["vector_form"].rhs == THETA - eta * FULL_GRAD and steps["vector_form"].lhs == THETA_NEXT


def test_the_minibatch_gradient_is_unbiased():
    last = minibatch_update()[-1]
    assert last.lhs.func is Expectation and last.rhs == FULL_GRAD


def _iterate(recurrence, initial, steps, values):
    """x_t for t = 1…steps by iterating x_t = recurrence(x_{t-1}, t) with exact numbers."""
    x, out = initial, []
    for step in range(1, steps + 1):
        x = sp.nsimplify(recurrence(x, step).xreplace(values))
        out.append(x)
    return out


@pytest.mark.parametrize("mu, tau", [(sp.Rational(9, 10), 0), (sp.Rational(1, 2), sp.Rational(3, 10))])
def test_momentum_closed_form_equals_the_iterated_buffer(mu, tau):
    fact = facts("momentum", f"momentum:momentum={float(mu)},dampening={float(tau)}")["momentum_sum"]
    closed = final(fact, "geometric_series")
    values = {MOMENTUM: mu, DAMPENING: tau, g: sp.Rational(3, 7)}
    iterated = _iterate(lambda b, step: g if step == 1 else MOMENTUM * b + (1 - DAMPENING) * g, 0, 8, values)
    for step, b in enumerate(iterated, start=1):
        assert closed.xreplace(values).xreplace({t: step}) == b
    assert final(fact, "steady_state") == g * (1 - DAMPENING) / (1 - MOMENTUM)
    assert fact.figures["value"] == ("10" if mu == sp.Rational(9, 10) else "1.4")


def test_momentum_unrolled_sum_has_the_weights_of_the_recurrence():
    fact = facts("momentum")["momentum_sum"]
    unrolled = final(fact, "unrolled_momentum")
    rng = random.Random(3)
    grads = {k: sp.Rational(rng.randint(-9, 9), 7) for k in range(1, 7)}
    values = {MOMENTUM: sp.Rational(4, 5), DAMPENING: sp.Rational(1, 4)}
    buffer = 0
    for step in range(1, 7):
        buffer = grads[1] if step == 1 else values[MOMENTUM] * buffer + (1 - values[DAMPENING]) * grads[step]
        evaluated = unrolled.xreplace({t: step}).xreplace(values).doit()
        evaluated = evaluated.xreplace({timed(g)[k]: v for k, v in grads.items()})
        assert sp.nsimplify(evaluated) == buffer


@pytest.mark.parametrize("name, decay", [("adam", BETA1), ("adamw", BETA1)])
def test_adam_bias_correction_sums_the_geometric_series(name, decay):
    fact = facts(name)["adam_bias_correction"]
    series = [s for s in fact.steps if s.rule == "geometric_series"]
    assert series[0].rhs == (1 - BETA1**t) * Expectation(g)
    assert series[1].rhs == (1 - BETA2**t) * Expectation(g**2)
    corrected = [s for s in fact.steps if s.rule == "bias_corrected"]
    assert [s.rhs for s in corrected] == [Expectation(g), Expectation(g**2)]
    # the moving average iterated from 0 with a constant gradient is (1 - β₁ᵗ) g
    values = {BETA1: sp.Rational(9, 10), g: sp.Rational(2, 3)}
    iterated = _iterate(lambda m, step: BETA1 * m + (1 - BETA1) * g, 0, 6, values)
    for step, m in enumerate(iterated, start=1):
        assert ((1 - BETA1**t) * g).xreplace(values).xreplace({t: step}) == m


def test_adam_first_step_moves_by_eta():
    step = final(facts("adam")["adam_first_step"], "real_square_root")
    g1 = timed(g)[1]
    assert step == timed(THETA)[0] - eta * g1 / (sp.Abs(g1) + EPS)


def test_rmsprop_first_step_factor():
    fact = facts("rmsprop")["rmsprop_average"]
    assert final(fact, "geometric_series") == g**2 * (1 - ALPHA**t)
    assert final(fact, "first_step_size") == eta / sp.sqrt(1 - ALPHA)
    assert fact.figures["factor"] == "10"  # 1/√(1 − 0.99)


def test_adagrad_sum_and_step():
    fact = facts("adagrad")["adagrad_sum"]
    assert final(fact, "constant_gradient_rsolve") == INITIAL_ACCUMULATOR + t * g**2
    limit = final(fact, "effective_step_limit")
    assert sp.simplify(limit - eta / (sp.sqrt(t) * (1 + (t - 1) * LR_DECAY))) == 0


def test_adamw_decay_without_gradient():
    fact = facts("adamw")["decoupled_weight_decay"]
    assert final(fact, "rsolve") == timed(THETA)[0] * (1 - eta * WEIGHT_DECAY) ** t
    assert fact.figures["factor"] == "0.99999"


def test_weight_decay_is_the_gradient_of_the_l2_penalty():
    steps = facts("sgd")["weight_decay"].steps
    collapsed = [s for s in steps if s.rule == "kronecker_collapse"][0]
    q = collapsed.lhs.variables[0].indices[0]
    assert sp.expand(collapsed.rhs - WEIGHT_DECAY * timed(THETA)[q]).has(sp.Derivative)
    assert not collapsed.rhs.has(sp.KroneckerDelta, sp.Sum)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_document_equations_use_the_chosen_variant(name):
    training = derive_training(resolve_optimizer(name))
    text = " ".join(str(s.rhs) for s in training.equations)
    assert "centered" not in text and "amsgrad" not in text  # flags are substituted in the documents
    assert training.equations[-1].lhs == timed(THETA)[t]


def _rules(steps):
    return {s.rule for s in steps}


def test_every_rule_of_the_training_derivations_has_prose():
    from derive.initialisation import activation_scale, derive_initialisation
    from derive.catalog import ACTIVATIONS, resolve_activation
    from derive.model import build_model, make_spec
    from derive.present import messages

    prose = messages("en")["training_rule"]
    used = set()
    for name in OPTIMIZERS:
        training = derive_training(resolve_optimizer(name))
        used |= _rules(training.update_steps) | _rules(training.minibatch_steps)
        for fact in training.facts:
            used |= _rules(fact.steps)
            assert f"{fact.key}_title" in messages("en")["optimizer_fact"]
    init = derive_initialisation(build_model(make_spec(2, "relu")))
    used |= _rules(init.forward) | _rules(init.backward) | _rules(init.conditions) | _rules(init.input_steps)
    for name in ACTIVATIONS:
        activation = resolve_activation(name)  # parameters bound to their defaults
        if not activation.is_vector:
            used |= _rules(activation_scale(activation).steps)
    from test_initialisation import SELU

    used |= _rules(activation_scale(SELU).steps)
    missing = used - set(prose)
    assert not missing, missing
