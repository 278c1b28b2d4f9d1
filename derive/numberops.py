"""Left-to-right products and sums of numbers, with the very results SymPy's operators give.

The 50-digit checks (the minibatch check, the symbolic check's evaluation of the derived formulas)
combine SymPy Floats with exact rationals hundreds of thousands of times. Each `Float * Rational`
in SymPy passes a sympify decorator, a type dispatch and a conversion before the one mpmath
operation that does the arithmetic. Here the same mpmath operations are called directly, in the
same order, with the same precisions and rounding: `Float ∘ Float` works at the larger of the two
precisions, `Float ∘ rational` converts the rational at the Float's precision, exact numbers are
combined exactly until a Float comes, and an exact zero result falls back to exact arithmetic, as
SymPy's `Float._new` turns it into the Integer 0. The tests compare both ways on random mixes.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp
from mpmath.libmp import from_int, from_rational, mpf_add, mpf_mul, round_nearest

_ZERO = (0, 0, 0, 0)  # mpmath's zero
_EXACT = (int, Fraction, sp.Rational)


def _as_mpf(x, prec: int):
    """An exact number at `prec` bits, as SymPy's `_as_mpf_op` converts it."""
    if type(x) is int:
        return from_int(x, prec, round_nearest)
    if type(x) is Fraction:
        if x.denominator == 1:
            return from_int(x.numerator, prec, round_nearest)
        return from_rational(x.numerator, x.denominator, prec, round_nearest)
    if x.is_Integer:
        return from_int(int(x.p), prec, round_nearest)
    return from_rational(int(x.p), int(x.q), prec, round_nearest)


def _fraction(x):
    if isinstance(x, sp.Rational):
        return int(x.p) if x.is_Integer else Fraction(int(x.p), int(x.q))
    return x


def _special(x) -> bool:
    """A Float that is not a finite nonzero number (inf, nan): left to SymPy."""
    _, man, _, bc = x._mpf_
    return not man and bc


def combine(numbers, multiply: bool):
    """The product (or sum) of finite numbers (Python ints and Fractions, SymPy Rationals and
    Floats) taken left to right, as SymPy's `*` (or `+`) from 1 (or 0) would give it."""
    operation = mpf_mul if multiply else mpf_add
    exact = 1 if multiply else 0  # the value while no Float has come (or after an exact zero)
    mpf, prec = None, 0
    for x in numbers:
        if isinstance(x, sp.Float):
            if _special(x):
                return _sympy_way(numbers, multiply)
            if mpf is None:
                mpf, prec = operation(x._mpf_, _as_mpf(exact, x._prec), x._prec, round_nearest), x._prec
            else:
                prec = max(prec, x._prec)
                mpf = operation(mpf, x._mpf_, prec, round_nearest)
        elif isinstance(x, _EXACT):
            if mpf is None:
                exact = exact * _fraction(x) if multiply else exact + _fraction(x)
                continue
            mpf = operation(mpf, _as_mpf(x, prec), prec, round_nearest)
        else:
            return _sympy_way(numbers, multiply)
        if mpf == _ZERO:  # SymPy's Float._new gives the Integer 0 here; exact from then on
            mpf, exact = None, 0
    if mpf is None:
        if type(exact) is Fraction and exact.denominator == 1:
            exact = exact.numerator
        return sp.Integer(exact) if type(exact) is int else sp.Rational(exact.numerator, exact.denominator)
    return sp.Float._new(mpf, prec)


def _sympy_way(numbers, multiply: bool):
    out = sp.S.One if multiply else sp.S.Zero
    for x in numbers:
        x = sp.Integer(x) if type(x) is int else sp.Rational(x.numerator, x.denominator) if type(x) is Fraction else x
        out = out * x if multiply else out + x
    return out
