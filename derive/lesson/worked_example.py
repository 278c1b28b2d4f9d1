"""A worked example: the network of the document with two units per layer, stated weights, one
sample, and every value of one training step computed from the derived formulas.

A student checks a derivation by redoing it with numbers. The values here are not computed by a
separate implementation: the engine's own index formulas (the forward rule of every node, every
named error, every parameter gradient) are evaluated in order at the stated point, exactly in
rational arithmetic when every function is rational and in 50-digit arithmetic otherwise
(`verify_symbolic.evaluate_pass`). One step of gradient descent follows, and the loss before and
after it. The tests compare these numbers with the generated model.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.backprop import COST_KEY
from derive.derivation import Derivation
from derive.matrixform import evaluate_index_form
from derive.nonsmooth import breakpoints
from derive.notation import LEARNING_RATE, PENALTY, Z, Quantity
from derive.verify_symbolic import (
    _formula,
    _point_digits,
    _parameter_entries,
    _parameters,
    _axis_entries,
    concrete_sizes,
    evaluate_pass,
    rational_model,
)

WIDTH = 2  # units per layer (every axis of every quantity)
DIGITS = 50  # working digits when a function is not rational
LEARNING_RATE_VALUE = sp.Rational(1, 2)  # large enough for the change to show at four decimals
# the stated weights and biases, in order: short decimals of both signs, none repeating within a layer
WEIGHTS = ("0.5", "-0.4", "0.3", "0.8", "-0.6", "0.2", "0.7", "-0.3", "0.4", "-0.5", "0.6", "0.1")
BIASES = ("0.1", "-0.2", "0.3", "-0.1")
INPUT = ("1.0", "-0.5")


@dataclass(frozen=True)
class WorkedExample:
    """Every number of one step on one sample, keyed by (engine label, index tuple)."""

    sizes: dict  # size symbol → 2
    point: dict  # the stated input x, target y and parameters
    values: dict  # the point plus every node output and every named error
    gradients: dict  # ∂C/∂θ for every parameter entry
    updated: dict  # θ − η ∂C/∂θ
    learning_rate: sp.Rational
    loss: sp.Expr  # C at the point
    loss_after: sp.Expr  # C after the step
    exact: bool  # rational arithmetic throughout


def _decimal(text: str) -> sp.Rational:
    return sp.Rational(text)


def _targets(derivation: Derivation, entries: list) -> list[sp.Rational]:
    """A one-hot target where the loss takes probabilities or 0/1 labels, (1, 0) for regression;
    (3/4, 1/4) where a target of 0 would leave the loss undefined (a user-written loss on (0, 1))."""
    if derivation.model.loss.target == "unit" or derivation.model.loss.name == "kl":
        first, rest = sp.Rational(3, 4), sp.Rational(1, 4) / max(len(entries) - 1, 1)
    else:
        first, rest = sp.S.One, sp.S.Zero
    return [first] + [rest] * (len(entries) - 1)


def stated_point(derivation: Derivation, shift: int = 0, reverse_input: bool = False) -> dict:
    """x, y and every parameter entry: weights and biases taken in turn from the stated lists, from
    `shift` on; the input as stated or in the other order."""
    model = derivation.model
    env = concrete_sizes(model, WIDTH, None)
    network = model.network
    point = {}
    inputs = _axis_entries(network.input_axes, env)
    stated_input = tuple(reversed(INPUT)) if reverse_input else INPUT
    for n, j in enumerate(inputs):
        point[("a_0", j)] = _decimal(stated_input[n % len(stated_input)])
    outputs = _axis_entries(network.loss_node.in_axes[0], env)
    for i, y in zip(outputs, _targets(derivation, outputs)):
        point[("y", i)] = y
    w = b = shift
    for node, param in _parameters(model):
        for idx in _parameter_entries(node, param, env):
            if param.rank >= 2:
                point[(param.label, idx)] = _decimal(WEIGHTS[w % len(WEIGHTS)])
                w += 1
            else:
                point[(param.label, idx)] = _decimal(BIASES[b % len(BIASES)])
                b += 1
    for node, mask in network.data_inputs:  # a dropout mask: keep the first unit, drop the next, …
        for n, i in enumerate(_axis_entries(node.out_axes, env)):
            point[(mask.label, i)] = sp.Integer(1 - n % 2)
    return point


PROBES = tuple(sp.Integer(z) for z in (-4, -1, 1, 4))  # where a flat part of an activation shows


def _flat_somewhere(activation) -> bool:
    """Does the activation have a part where its slope is exactly 0 (a relu for z < 0), so that a unit
    can pass no error back?"""
    slope = sp.diff(activation.expr, Z)
    return any(slope.subs(Z, z) == 0 for z in PROBES)


def _flat_hidden_inputs(derivation: Derivation, values: dict):
    """For each hidden layer whose activation is flat somewhere (a relu for z < 0): its number, the
    slope g′ and its pre-activations in unit order."""
    output = derivation.model.network.layers[-1].layer.number
    for node in derivation.model.network.layers:
        activation = getattr(node.kind, "activation", None)
        if node.layer.number == output or activation is None or activation.is_vector or not _flat_somewhere(activation):
            continue
        inputs = [v for _, v in sorted((idx, v) for (label, idx), v in values.items() if label == node.inputs[0].label)]
        yield node.layer.number, sp.diff(activation.expr, Z), inputs


def units_by_slope(derivation: Derivation, values: dict) -> dict[int, tuple[int, int]]:
    """For each hidden layer whose activation is flat somewhere: how many of its units are active
    (slope not 0 at their pre-activation: the error passes back) and how many inactive (slope 0)."""
    counts = {}
    for layer, slope, inputs in _flat_hidden_inputs(derivation, values):
        active = sum(1 for v in inputs if slope.subs(Z, v) != 0)
        counts[layer] = (active, len(inputs) - active)
    return counts


def inactive_units(derivation: Derivation, values: dict) -> list[tuple[int, int]]:
    """(layer, unit counted from 1) of every hidden unit whose activation has slope exactly 0 at its
    pre-activation: the units that pass no error back."""
    return [(layer, n + 1) for layer, slope, inputs in _flat_hidden_inputs(derivation, values)
            for n, v in enumerate(inputs) if slope.subs(Z, v) == 0]


def _rank(derivation: Derivation, values: dict) -> int:
    """How well a point suits the example where hidden units can be inactive, 0 best (review 23,
    defect 6). Best is one inactive unit, in the first hidden layer but not its unit 1: it shows an
    error stopped by a unit (the dead units of the section on learning) and stays off the paths of
    W⁽¹⁾₁₁ that the sum over paths follows (every unit after layer 1 is on them), so that no path and
    no error the exercises ask for is 0 for that reason alone. Next, no inactive unit; then any."""
    units = inactive_units(derivation, values)
    if not units:
        return 0 if not units_by_slope(derivation, values) else 1
    first = derivation.model.network.layers[0].layer.number
    return 0 if len(units) == 1 and units[0][0] == first and units[0][1] != 1 else 2


def _numbers(point: dict, exact: bool) -> dict:
    return point if exact else {k: sp.Float(v, DIGITS) for k, v in point.items()}


def _on_a_kink(derivation: Derivation, values: dict) -> bool:
    """Does an activation's input sit exactly on one of its kinks (where g′ is a convention)?"""
    for node in derivation.model.network.layers:
        activation = getattr(node.kind, "activation", None)
        if activation is None or activation.is_vector:
            continue
        kinks = {sp.S.Zero, *breakpoints(activation.expr)[0]}
        inputs = [v for (label, _), v in values.items() if label == node.inputs[0].label]
        if any(v in kinks for v in inputs):
            return True
    return False


def _loss(derivation: Derivation, values: dict, env: dict) -> sp.Expr:
    """C at the point: the derived cost of one sample, with the penalty R added entry by entry."""
    model = derivation.model
    cost = derivation.sample.results[COST_KEY].rhs
    value = evaluate_index_form(_formula(cost.xreplace({PENALTY: 0}), _point_digits(values)), values, env)
    if model.penalty is not None:
        terms = [model.penalty.term(values[(param.label, idx)]) for node, param in _parameters(model)
                 if model.penalty.covers(param) for idx in _parameter_entries(node, param, env)]
        value += sp.Add(*terms).xreplace(model.penalty.strengths)
    return value


def _step(derivation: Derivation, point: dict, gradients: dict, rate: sp.Rational) -> dict:
    """θ − η ∂C/∂θ for every entry, from the derived update rule (one sample, so C̄ = C)."""
    updated = dict(point)
    for rule in derivation.updates.values():
        for step in rule:
            if step.rule != "gradient_descent":
                continue
            param = step.lhs
            label = param.name
            for (name, idx), grad in gradients.items():
                if name == label:
                    gradient = next(a for a in step.rhs.atoms(sp.Derivative))
                    value = step.rhs.xreplace({gradient: grad, LEARNING_RATE: rate, param: point[(name, idx)]})
                    updated[(name, idx)] = value
    return updated


LARGEST = 10**6  # a value beyond this is no example to check by hand (a typed exp(exp(z)))


def worked_example(derivation: Derivation) -> WorkedExample | None:
    """The example for this derivation (its network at width 2), or None where its values are not
    finite real numbers of a readable size."""
    model = derivation.model
    if model.network.couples_samples:  # a worked example follows one sample; here no formula does
        return None
    env = concrete_sizes(model, WIDTH, None)
    exact = rational_model(model)
    # the stated values from each shift on, with the input as stated and then in the other order:
    # the first assignment that misses every kink and ranks best (`_rank`; with no activation that is
    # flat somewhere, such as the sigmoid, every assignment ranks 0 and the first one is taken)
    chosen, best = None, None
    for reverse_input in (False, True):
        for shift in range(len(WEIGHTS)):
            point = stated_point(derivation, shift, reverse_input)
            values, gradients = evaluate_pass(derivation, False, _numbers(point, exact), env)
            if _on_a_kink(derivation, values):
                continue
            rank = _rank(derivation, values)
            if best is None or rank < best:
                chosen, best = (point, values, gradients), rank
            if rank == 0:
                break
        if best == 0:
            break
    if chosen is not None:
        point, values, gradients = chosen
    loss = _loss(derivation, values, env)
    updated = _step(derivation, _numbers(point, exact), gradients, LEARNING_RATE_VALUE)
    after, _ = evaluate_pass(derivation, False, updated, env)
    example = WorkedExample(env, point, values, gradients, updated, LEARNING_RATE_VALUE, loss,
                            _loss(derivation, after, env), exact)
    numbers = [*values.values(), *gradients.values(), *updated.values(), example.loss, example.loss_after]
    if not all(_readable(v) for v in numbers):
        return None
    return example


def _readable(value: sp.Expr) -> bool:
    number = complex(sp.N(value, 20))
    return number.imag == 0 and abs(number.real) < LARGEST


def entries(example: WorkedExample, quantity: Quantity, table: str = "values") -> list[tuple[tuple[int, ...], sp.Expr]]:
    """The entries of one quantity, in index order, from the example's `values`, `gradients` or `updated`."""
    found = getattr(example, table)
    return sorted(((idx, v) for (label, idx), v in found.items() if label == quantity.label), key=lambda e: e[0])


__all__ = ["WorkedExample", "worked_example", "entries", "stated_point", "units_by_slope", "inactive_units", "WIDTH"]
