"""`numberops.combine` gives what SymPy's own `*` and `+` give, left to right: value, type and precision."""

import random
from fractions import Fraction

import sympy as sp

from derive.numberops import combine


def _draw(rng: random.Random):
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randint(-5, 5)
    if kind == 1:
        return Fraction(rng.randint(-9, 9), rng.randint(1, 9))
    if kind == 2:
        return sp.Rational(rng.randint(-9, 9), rng.randint(1, 9))
    if kind == 3:
        return sp.Integer(rng.randint(-3, 3))
    digits = rng.choice((15, 50, 60))
    value = sp.Rational(rng.randint(-999, 999), rng.randint(1, 999))
    if kind == 4:  # a value and its negative, so that sums cancel to an exact zero now and then
        return sp.Float(rng.choice((1, -1)) * sp.Rational(1, 3), digits)
    return sp.Float(value, digits)


def _sympy(numbers, multiply):
    out = sp.S.One if multiply else sp.S.Zero
    for x in numbers:
        x = sp.Integer(x) if type(x) is int else sp.Rational(x.numerator, x.denominator) if type(x) is Fraction else x
        out = out * x if multiply else out + x
    return out


def test_products_and_sums_equal_sympys_own_bit_for_bit():
    rng = random.Random(7)
    floats = zeros = 0
    for _ in range(20000):
        numbers = [_draw(rng) for _ in range(rng.randint(1, 5))]
        for multiply in (True, False):
            expected, got = _sympy(numbers, multiply), combine(numbers, multiply)
            assert type(got) is type(expected), (numbers, multiply, got, expected)
            if isinstance(expected, sp.Float):
                floats += 1
                assert (got._mpf_, got._prec) == (expected._mpf_, expected._prec), (numbers, multiply)
            else:
                zeros += expected == 0 and any(isinstance(x, sp.Float) for x in numbers)
                assert got == expected, (numbers, multiply)
    assert floats > 10000 and zeros > 100  # both kinds of result were met, exact zeros of Floats too


def test_what_is_not_a_finite_number_is_left_to_sympy():
    x = sp.Symbol("x")
    assert combine([sp.Float(2, 50), sp.oo], True) == sp.oo
    assert combine([sp.Float("inf", 50), 2], True) == _sympy([sp.Float("inf", 50), 2], True)
    assert combine([Fraction(1, 2), x], False) == x + sp.Rational(1, 2)
