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


def test_max_min_and_step_of_exact_numbers_are_sympys():
    """The exact fast paths (Python's comparison of ints and Fractions in `indexeval`, of SymPy
    rationals in `matrixform`) give SymPy's own Max, Min and Heaviside, ties and zeros included; a
    Float or a symbol still goes to SymPy."""
    import itertools
    import random

    import numpy as np

    from derive.matrixform import evaluate_matrix_form

    rng = random.Random(3)
    x = sp.IndexedBase("x")
    i, j = (sp.Idx(sp.Symbol(n, integer=True), (0, 1)) for n in "ij")
    numbers = [sp.Integer(0), sp.Rational(1, 2), sp.Rational(-1, 2), sp.Integer(3), sp.Rational(-7, 3)]
    numbers += [sp.Rational(rng.randint(-9, 9), rng.randint(1, 9)) for _ in range(6)]
    forms = [sp.Max(0, x[i]), sp.Min(x[i], x[j]), sp.Max(x[i], x[j], sp.Rational(1, 3)),
             sp.Heaviside(x[i], 0), sp.Heaviside(x[i]), sp.Heaviside(x[i], x[j])]
    checked = 0
    for a, b in itertools.product(numbers, repeat=2):
        point = {("x", (0,)): a, ("x", (1,)): b}
        exact = {k: Fraction(int(v.p), int(v.q)) for k, v in point.items()}
        for form in forms:
            expected = form.xreplace({x[i]: a, x[j]: b})
            got = evaluate(form, exact, {i: 0, j: 1})
            assert sp.srepr(got) == sp.srepr(expected), (form, a, b)
            checked += 1
        for func in (sp.Max, sp.Min):
            z = sp.Symbol("Z", real=True)
            arrays = {"Z": np.array([[a, b]], dtype=object)}
            got = evaluate_matrix_form(func(sp.Rational(1, 4), z), arrays)
            assert [sp.srepr(v) for v in got.ravel()] == [sp.srepr(func(sp.Rational(1, 4), v)) for v in (a, b)]
        step = evaluate_matrix_form(sp.Heaviside(sp.Symbol("Z", real=True), 0), {"Z": np.array([[a, b]], dtype=object)})
        assert [sp.srepr(v) for v in step.ravel()] == [sp.srepr(sp.Heaviside(v, 0)) for v in (a, b)]
    assert checked == len(numbers) ** 2 * len(forms)
    y = sp.Symbol("y")
    assert evaluate(sp.Max(0, x[i]), {("x", (0,)): sp.Float("0.25", 50)}, {i: 0}) == sp.Float("0.25", 50)
    assert evaluate(sp.Max(y, x[i]), {("x", (0,)): Fraction(1, 2)}, {i: 0}) == sp.Max(y, sp.Rational(1, 2))


def test_affine_guards_and_the_ranges_they_cut_are_sympys():
    """Comparisons of affine index expressions (rational coefficients, an index on both sides, every
    relation) are decided on one scaled integer gap, alone and in an And; a sum skips the terms its
    guards exclude, by floor division when the remainder is an int, for either sign of the slope. Each
    against SymPy deciding the same relation at the same ints, and against the sum written out."""
    import itertools
    import random

    i, j = (sp.Idx(sp.Symbol(name, integer=True), (0, 9)) for name in "ij")
    n = sp.Symbol("n", integer=True, positive=True)
    x = sp.IndexedBase("x")
    rng = random.Random(7)
    relations = (sp.Gt, sp.Ge, sp.Lt, sp.Le, sp.Eq, sp.Ne)
    coefficient = lambda: sp.Rational(rng.randint(-4, 4), rng.choice([1, 1, 2, 3]))  # noqa: E731
    for _ in range(80):
        sides = [coefficient() * i + coefficient() * n + coefficient(), coefficient() * j + coefficient() * i
                 + rng.randint(-3, 3)]
        relation = rng.choice(relations)(*sides)
        if relation in (sp.true, sp.false):
            continue
        other = (j <= n + 1)
        for values in itertools.product(range(-2, 3), range(-1, 2), (1, 3)):
            env = dict(zip((i, j, n), values))
            truth = relation.subs(env)
            assert evaluate(Iverson(relation), {}, env) == (1 if truth else 0), (relation, env)
            both = sp.And(relation, other)
            assert evaluate(Iverson(both), {}, env) == (1 if truth and other.subs(env) else 0), (both, env)
    values = {("x", (k,)): Fraction(k + 1, 3) for k in range(10)}
    for slope, offset, relation in itertools.product((1, 2, -1, -3), range(-5, 6, 2), (sp.Ge, sp.Gt, sp.Le, sp.Lt)):
        guarded = Iverson(relation(slope * i + offset - n, 0)) * x[i]
        for size in (1, 4):
            expected = sum((values[("x", (k,))] for k in range(10) if relation(slope * k + offset - size, 0)), Fraction(0))
            assert evaluate(sp.Sum(guarded, (i, 0, 9)), values, {n: size}) == expected, (slope, offset, relation, size)


def test_max_and_min_of_placeholders_are_sympys_own():
    """Max and Min with symbols among their arguments (a window written out over placeholders) are
    SymPy's evaluated Max and Min, object for object, whether they keep every argument (built without
    the pairwise comparisons) or drop some (a number below another, a positive symbol above 0,
    a repeated symbol, −∞)."""
    import random

    from derive.indexeval import _symbolic_extreme

    rng = random.Random(3)
    pool = [*sp.symbols("a b c d", real=True), sp.Symbol("p", positive=True), sp.Symbol("q", negative=True),
            sp.Symbol("r", nonnegative=True), sp.S.Zero, sp.S.One, sp.Rational(-1, 2), sp.Float(0.25, 50), -sp.oo]
    kept = dropped = 0
    for _ in range(400):
        args = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
        for func in (sp.Max, sp.Min):
            expected, got = func(*args), _symbolic_extreme(func, list(args))
            assert type(got) is type(expected) and sp.srepr(got) == sp.srepr(expected), (func, args)
            if isinstance(expected, func):
                assert got._argset == expected._argset
                kept += len(set(args)) == len(expected.args)
            dropped += not isinstance(expected, func) or len(set(args)) != len(expected.args)
    assert kept > 50 and dropped > 50
