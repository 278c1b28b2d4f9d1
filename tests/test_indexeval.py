"""derive.indexeval: compiled index forms give exactly the values of the interpreter they replace
(`matrixform.evaluate_index_form`), for every formula of a derivation, at exact and at 50-digit
points, and the guards, strides and sums behave as the index calculus says."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from derive.indexeval import evaluate
from derive.indexing import Iverson
from derive.matrixform import evaluate_index_form
from derive.model import build_model, make_spec
from derive.netfile import parse_network
from derive.derivation import derive
from derive.verify_symbolic import (SYMBOLIC_WIDTH, concrete_sizes, coupled_samples, evaluate_pass,
                                    symbolic_point)


def _every_formula_agrees(derivation, values, batch, env):
    computed, _ = evaluate_pass(derivation, batch, values, env)
    checked = 0
    for result in (derivation.batch if batch else derivation.sample).results.values():
        if result.free is None:
            continue
        for idx in __import__("numpy").ndindex(*[int((i.upper + 1).xreplace(env)) for i in result.free]):
            point = {**env, **dict(zip(result.free, idx))}
            try:
                old = evaluate_index_form(result.rhs, computed, point)
            except KeyError:  # a formula of a quantity the pass does not evaluate
                break
            assert evaluate(result.rhs, computed, point) == old
            checked += 1
    return checked


@pytest.mark.parametrize("digits", [None, 50])
def test_a_network_with_windows_evaluates_as_before(digits):
    model = build_model(parse_network({"input": [1, 5, 4], "loss": "mse", "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 2, "stride": 2, "padding": 1, "activation": "tanh"},
        {"kind": "avg_pool2d", "kernel": 2, "stride": 1},
        {"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "identity"}]}, "eval.toml"))
    derivation = derive(model)
    values = symbolic_point(model)
    if digits:
        values = {k: sp.Float(v, digits) for k, v in values.items()}
    env = concrete_sizes(model, SYMBOLIC_WIDTH, coupled_samples(model))
    assert _every_formula_agrees(derivation, values, False, env) > 20


def test_an_mlp_evaluates_as_before():
    model = build_model(make_spec(3, "tanh", None, "mse"))
    derivation = derive(model)
    values = {k: sp.Float(v, 50) for k, v in symbolic_point(model).items()}
    env = concrete_sizes(model, SYMBOLIC_WIDTH, None)
    assert _every_formula_agrees(derivation, values, False, env) > 10


def test_guards_strides_and_sums():
    i = sp.Idx(sp.Symbol("i", integer=True), (0, 3))
    n = sp.Symbol("n", integer=True, positive=True)
    x = sp.IndexedBase("x")
    guarded = Iverson(sp.And(sp.Eq(sp.Mod(i, 2), 0), i <= n - 1)) * x[i / 2]
    values = {("x", (0,)): Fraction(1, 3), ("x", (1,)): Fraction(5, 7)}
    assert evaluate(guarded, values, {i: 2, n: 4}) == sp.Rational(5, 7)
    assert evaluate(guarded, values, {i: 1, n: 4}) == 0  # x[1/2] is never read
    assert evaluate(guarded, values, {i: 2, n: 2}) == 0
    total = sp.Sum(guarded, (i, 0, 3))
    assert evaluate(total, values, {n: 4}) == sp.Rational(1, 3) + sp.Rational(5, 7)
    assert evaluate(total / n, values, {n: 4}) == (sp.Rational(1, 3) + sp.Rational(5, 7)) / 4  # 1/n exact
    assert evaluate(x[i] * sp.tanh(x[i]), {("x", (0,)): sp.Rational(1, 2)}, {i: 0}) == sp.tanh(sp.Rational(1, 2)) / 2
