"""Index forms compiled once into Python closures, then evaluated at many concrete entries.

`matrixform.evaluate_index_form` interprets a SymPy index expression from the top for every entry
it is asked about: each visit re-dispatches on the node type, copies the index environment for each
term of a sum and adds exact numbers through SymPy. The proofs evaluate the same few formulas at
thousands of entries (every input entry of a convolution, every entry of every formula at the
check's sizes), so that interpretation dominated a convolutional run. Here each formula is walked
once (`compiled`, cached by expression) into a tree of closures that read one mutable environment;
index arithmetic (s·i + d·p − P, the stride's Mod, the guards) runs on Python ints and Fractions,
and values that are Python ints or Fractions are combined by Python's exact arithmetic.

The results are the same as `evaluate_index_form`'s, exactly: numbers given as SymPy objects are
combined by SymPy in the same order and grouping (a sum term by term, a product of all its factors
at once), functions are applied to SymPy arguments, and `evaluate` returns SymPy numbers. Only the
bookkeeping is faster. Callers that control their random values (the convolution proofs) pass
Python ints or Fractions, which is exact and many times faster than SymPy's Rational.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from functools import lru_cache

import sympy as sp

from derive.indexing import Iverson
from derive.numberops import combine

_PY = (int, Fraction)
_MISSING = object()
_SLOTS: dict = {}


def _slot(symbol) -> int:
    """One small int per symbol or index across every compiled form, the key the closures read the
    environment by. SymPy builds equal indices as distinct objects (a sum's limit, the same index
    in its body), and a dictionary lookup by a distinct equal object compares their trees; even by
    the identical object it calls SymPy's hash, a Python method. An int's hash and comparison cost
    nothing: the compiled forms look indices up hundreds of thousands of times per run."""
    return _SLOTS.setdefault(symbol, len(_SLOTS))


def to_sympy(x):
    """A Python int or Fraction as SymPy's number; anything else as it is."""
    if type(x) is int:
        return sp.Integer(x)
    if type(x) is Fraction:
        return sp.Rational(x.numerator, x.denominator)
    if x is True:
        return sp.true
    if x is False:
        return sp.false
    return x


def evaluate(expr: sp.Basic, values: Mapping, env: Mapping):
    """`expr` at the concrete indices of `env` (Idx or size symbol → int), reading array entries from
    `values` ((label, index tuple) → number): `matrixform.evaluate_index_form`, compiled."""
    return to_sympy(compiled(expr)(values, env))


def evaluate_raw(expr: sp.Basic, values: Mapping, env: Mapping):
    """As `evaluate`, but Python ints and Fractions come back as they are (for callers that compare
    many entries and convert nothing)."""
    return compiled(expr)(values, env)


@lru_cache(maxsize=4096)
def compiled(expr: sp.Basic) -> Callable:
    """fn(values, env) → the value of `expr` (`env` is not changed).

    The symbols of `expr` are looked up in `env` once per call and copied into a dictionary keyed by
    their slots (`_slot`), the ints the closures read by."""
    inner = _value(expr)
    symbols = tuple((s, _slot(s)) for s in sorted(expr.atoms(sp.Idx, sp.Symbol), key=sp.default_sort_key))

    def run(values, env):
        local = {}
        for symbol, slot in symbols:
            value = env.get(symbol, _MISSING)
            if value is not _MISSING:
                local[slot] = value
        return inner(values, local)

    return run


# --------------------------------------------------------------------------------------------------
# index arithmetic: Python ints and Fractions where the symbols have values


def _from_env(expr):
    slot = _slot(expr)

    def read(values, env):
        value = env.get(slot, _MISSING)
        if value is _MISSING:
            return expr
        if type(value) is int:
            return value
        return _as_index(value) if isinstance(value, sp.Basic) else int(value)

    return read


def _index(expr: sp.Basic) -> Callable:
    """An index expression as fn(values, env) → int or Fraction (SymPy where symbols are unknown)."""
    if isinstance(expr, sp.Integer):
        constant = int(expr)
        return lambda values, env: constant
    if isinstance(expr, sp.Rational):
        constant = Fraction(int(expr.p), int(expr.q))
        return lambda values, env: constant
    if isinstance(expr, (sp.Idx, sp.Symbol)):
        return _from_env(expr)
    affine = _affine(expr)
    if affine is not None:
        return affine
    if expr.is_Add or expr.is_Mul or isinstance(expr, sp.Mod):
        parts = [_index(a) for a in expr.args]
        kind = "add" if expr.is_Add else "mul" if expr.is_Mul else "mod"
        func = expr.func

        def combine(values, env):
            got = [p(values, env) for p in parts]
            if all(isinstance(g, _PY) for g in got):
                if kind == "add":
                    return sum(got)
                if kind == "mod":
                    return got[0] % got[1]
                out = 1
                for g in got:
                    out *= g
                return out.numerator if type(out) is Fraction and out.denominator == 1 else out
            return _as_index(func(*[to_sympy(g) for g in got]))

        return combine
    value = _value(expr)
    return lambda values, env: _as_index(to_sympy(value(values, env)))


def _affine(expr: sp.Basic) -> Callable | None:
    """c₀ + Σ cₖ·iₖ with rational c (s·i + d·p − P, x/s) as one closure over ints; None otherwise."""
    if not expr.is_Add and not expr.is_Mul:
        return None
    terms: dict = {}
    for term in sp.Add.make_args(expr):
        coefficient, rest = term.as_coeff_Mul()
        if rest == 1:
            terms[None] = terms.get(None, 0) + coefficient
        elif isinstance(rest, (sp.Idx, sp.Symbol)) and coefficient.is_Rational:
            terms[rest] = terms.get(rest, 0) + coefficient
        else:
            return None
    if any(not sp.sympify(c).is_Rational for c in terms.values()):
        return None
    number = lambda c: int(c) if c.is_Integer else Fraction(int(c.p), int(c.q))  # noqa: E731
    constant = number(sp.sympify(terms.pop(None, 0)))
    pairs = tuple((_slot(symbol), number(sp.sympify(c))) for symbol, c in terms.items())
    fallback = _generic_index(expr)

    def affine(values, env):
        total = constant
        for slot, c in pairs:
            value = env.get(slot, _MISSING)
            if type(value) is not int:
                return fallback(values, env)
            total += c * value
        return total.numerator if type(total) is Fraction and total.denominator == 1 else total

    return affine


def _generic_index(expr: sp.Basic) -> Callable:
    parts = [_index(a) for a in expr.args]
    func = expr.func

    def combine(values, env):
        return _as_index(func(*[to_sympy(p(values, env)) for p in parts]))

    return combine


def _as_index(value):
    if isinstance(value, sp.Basic):
        if value.is_Integer:
            return int(value)
        if value.is_Rational:
            return Fraction(int(value.p), int(value.q))
    return value


_COMPARE = {sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
            sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
            sp.Equality: lambda a, b: a == b, sp.Unequality: lambda a, b: a != b}


def _condition(expr: sp.Basic) -> Callable:
    """A guard as fn(values, env) → True or False (a SymPy relation where symbols are unknown)."""
    if expr is sp.true or expr is sp.false:
        constant = expr is sp.true
        return lambda values, env: constant
    if isinstance(expr, (sp.And, sp.Or)):
        parts = [_condition(a) for a in expr.args]
        if isinstance(expr, sp.And):
            def every(values, env):
                for p in parts:
                    if p(values, env) is not True:
                        return False
                return True

            gaps = [_gap(a) if type(a) in _COMPARE else None for a in expr.args]
            if all(g is not None for g in gaps):
                return _linear_conjunction(gaps, every)
            return every

        def some(values, env):
            for p in parts:
                if p(values, env) is True:
                    return True
            return False

        return some
    if isinstance(expr, sp.Not):
        inner = _condition(expr.args[0])
        return lambda values, env: inner(values, env) is not True
    if type(expr) in _COMPARE:
        compare, func = _COMPARE[type(expr)], expr.func
        lhs, rhs = (_index(side) for side in expr.args)
        gap = _gap(expr)

        def relation(values, env):
            left, right = lhs(values, env), rhs(values, env)
            if isinstance(left, _PY) and isinstance(right, _PY):
                return compare(left, right)
            found = func(to_sympy(left), to_sympy(right))
            return True if found is sp.true else False if found is sp.false else found

        if gap is None:
            return relation
        return _linear_relation(gap, relation)
    value = _value(expr)
    return lambda values, env: (lambda v: True if v is sp.true else False if v is sp.false else v)(value(values, env))


_SIGN_TEST = {sp.StrictGreaterThan: 0, sp.GreaterThan: 1, sp.StrictLessThan: 2, sp.LessThan: 3,
              sp.Equality: 4, sp.Unequality: 5}


def _terms(expr: sp.Basic) -> tuple | None:
    """An index expression as (constant, ((slot, coefficient), …)) with exact rational numbers when it
    is c₀ + Σ cₖ·iₖ (as `_affine` reads it, a lone index or a number included); None otherwise."""
    number = lambda c: int(c) if c.is_Integer else Fraction(int(c.p), int(c.q))  # noqa: E731
    if expr.is_Rational:
        return number(expr), ()
    if isinstance(expr, (sp.Idx, sp.Symbol)):
        return 0, ((_slot(expr), 1),)
    if not expr.is_Add and not expr.is_Mul:
        return None
    constant, pairs = 0, []
    for term in sp.Add.make_args(expr):
        coefficient, rest = term.as_coeff_Mul()
        if not coefficient.is_Rational:
            return None
        if rest == 1:
            constant += number(coefficient)
        elif isinstance(rest, (sp.Idx, sp.Symbol)):
            pairs.append((_slot(rest), number(coefficient)))
        else:
            return None
    return constant, tuple(pairs)


def _gap(relation: sp.Basic) -> tuple | None:
    """A comparison of two affine index expressions as (test, constant, pairs): left − right as one
    affine form (every index of both sides kept, none cancelled, so that it is evaluated exactly when
    both sides are) and the test of its sign that the comparison is; None if a side is not affine."""
    left, right = (_terms(side) for side in relation.args)
    if left is None or right is None:
        return None
    pairs = left[1] + tuple((slot, -c) for slot, c in right[1])
    constant = left[0] - right[0]
    # scaled by the positive common denominator of its coefficients: the same sign, in ints
    scale = math.lcm(*(c.denominator for c in (constant, *(c for _, c in pairs))))
    return (_SIGN_TEST[type(relation)], int(constant * scale),
            tuple((slot, int(c * scale)) for slot, c in pairs))


def _gap_holds(gap: tuple, env) -> bool | None:
    """Whether the comparison holds where every index of it is an int in `env`; None where one is not
    (the caller then evaluates it the general way). Exact: a > b exactly when a − b > 0."""
    test, total, pairs = gap
    for slot, c in pairs:
        value = env.get(slot, _MISSING)
        if type(value) is not int:
            return None
        total += c * value
    return (total > 0 if test == 0 else total >= 0 if test == 1 else total < 0 if test == 2 else
            total <= 0 if test == 3 else total == 0 if test == 4 else total != 0)


def _linear_relation(gap: tuple, general: Callable) -> Callable:
    """One comparison of affine sides, decided on its gap without a closure per side: the guards of
    every window are such comparisons, asked hundreds of thousands of times per run."""

    def relation(values, env):
        holds = _gap_holds(gap, env)
        return general(values, env) if holds is None else holds

    return relation


def _linear_conjunction(gaps: list, general: Callable) -> Callable:
    """An And of comparisons of affine sides (a window's guard: every index of it in range), each
    decided on its gap in turn; where an index is not an int the general evaluation answers."""

    def every(values, env):
        for gap in gaps:
            holds = _gap_holds(gap, env)
            if holds is None:
                return general(values, env)
            if not holds:
                return False
        return True

    return every


# --------------------------------------------------------------------------------------------------
# values


_FINITE = (int, Fraction, sp.Float, sp.Rational)  # numbers SymPy combines without building an expression


def _numbers_only(got) -> bool:
    return all(isinstance(g, _FINITE) for g in got)


def _mul_numbers(got):
    """The product of finite numbers, left to right by their own operators: what sp.Mul(*got) gives
    (its flattening multiplies the numbers into one coefficient in this order), without building
    and inspecting a Mul, and without SymPy's dispatch per operation (`numberops`) — in a 50-digit
    check most of the time went there."""
    return combine(got, True)


def _add_numbers(got):
    """The sum of finite numbers, left to right: what sp.Add(*got) gives, without an Add."""
    return combine(got, False)


def _add_all(terms: list):
    """The terms of a sum added left to right, as adding them one by one from 0 gives: Python's
    exact sum, the numbers' sum (`numberops`), or one SymPy Add of them all (SymPy's flattening
    gives one term at a time the same sum, but builds and flattens a longer Add at every step: a
    window written out over placeholder symbols has dozens of terms)."""
    for t in terms:
        if not isinstance(t, _PY):
            break
    else:
        return sum(terms)
    if _numbers_only(terms):
        return combine(terms, False)
    return sp.Add(*[to_sympy(t) for t in terms])


def _value(expr: sp.Basic) -> Callable:
    if expr.is_Number:
        constant = int(expr) if expr.is_Integer else Fraction(int(expr.p), int(expr.q)) if expr.is_Rational else expr
        return lambda values, env: constant
    if isinstance(expr, (sp.Idx, sp.Symbol)):
        symbol, slot = expr, _slot(expr)

        def read(values, env):
            value = env.get(slot, _MISSING)
            return symbol if value is _MISSING else value

        return read
    if isinstance(expr, sp.Indexed):
        return _entry(str(expr.base.label), [_index(i) for i in expr.indices])
    if isinstance(expr, sp.Sum):
        return _sum(expr)
    if isinstance(expr, Iverson):
        condition = _condition(expr.args[0])
        return lambda values, env: 1 if condition(values, env) is True else 0
    if isinstance(expr, (sp.And, sp.Or, sp.Not, sp.core.relational.Relational)) or expr is sp.true or expr is sp.false:
        condition = _condition(expr)
        return lambda values, env: to_sympy(condition(values, env))
    if isinstance(expr, sp.KroneckerDelta):  # 1 or 0 on whole numbers, as SymPy's would be
        left, right = (_index(a) for a in expr.args)
        func = expr.func

        def delta(values, env):
            a, b = left(values, env), right(values, env)
            if isinstance(a, _PY) and isinstance(b, _PY):
                return 1 if a == b else 0
            return func(to_sympy(a), to_sympy(b))

        return delta
    if expr.is_Mul:
        return _product(expr)
    parts = [_value(a) for a in expr.args]
    if expr.is_Add:
        def add(values, env):
            got = [p(values, env) for p in parts]
            if all(isinstance(g, _PY) for g in got):
                return sum(got)
            if _numbers_only(got):
                return _add_numbers(got)
            return sp.Add(*[to_sympy(g) for g in got])

        return add
    if expr.is_Pow:
        def power(values, env):
            base, exponent = parts[0](values, env), parts[1](values, env)
            if isinstance(base, _PY) and type(exponent) is int and (base != 0 or exponent >= 0):
                return base**exponent if exponent >= 0 else 1 / Fraction(base) ** -exponent  # int ** -1 is a float
            return sp.Pow(to_sympy(base), to_sympy(exponent))

        return power
    if expr.func in (sp.Max, sp.Min):
        return _extreme(expr.func, parts)
    if isinstance(expr, sp.Heaviside):
        return _step(parts)
    func = expr.func
    return lambda values, env: func(*[to_sympy(p(values, env)) for p in parts])


def _extreme(func, parts: list) -> Callable:
    """Max or Min: of exact numbers (ints and Fractions) the largest or smallest by Python's exact
    comparison, the value SymPy's would give; otherwise SymPy's. Every relu and every max-pooling
    window is one, at every entry of every check, and SymPy's Max sorts and filters its arguments
    through its assumptions each time."""
    pick = max if func is sp.Max else min

    def extreme(values, env):
        got = [p(values, env) for p in parts]
        for g in got:
            if not isinstance(g, _PY):
                return _symbolic_extreme(func, [to_sympy(g) for g in got])
        return pick(got)

    return extreme


def _symbolic_extreme(func, args: list):
    """func(*args) for arguments that are not all exact numbers: SymPy's, but where they are symbols
    (the placeholders of a written-out window: Max(a, b, c, d) of a max pooling, Max(0, z) of a
    relu), SymPy is asked once per pattern — the same numbers, and symbols of the same assumptions
    in the same places — with standard symbols in their place. If it keeps every argument there, no
    argument is comparable with another on the assumptions alone (which renaming does not change),
    and it keeps every one here: the same object, built without its pairwise comparisons, which
    query the assumptions of every pair at every window."""
    standard: dict = {}
    pattern = []
    for a in args:
        if type(a) is sp.Symbol:
            if a not in standard:
                standard[a] = len(standard)
            pattern.append((standard[a], tuple(sorted(a.assumptions0.items()))))
        elif a.is_Number:
            pattern.append((type(a), a))  # its type too: 0 and 0.0 are different arguments
        else:
            return func(*args)
    if not standard or not _keeps_every_argument(func, tuple(pattern)):
        return func(*args)
    return func(*args, evaluate=False)


@lru_cache(maxsize=1024)
def _keeps_every_argument(func, pattern: tuple) -> bool:
    """Whether SymPy's func keeps every distinct argument of this pattern (numbers as (type, number),
    symbols as (position, assumptions)) when it evaluates."""
    args = [p[1] if isinstance(p[1], sp.Basic) else sp.Symbol(f"_extreme{p[0]}", **dict(p[1])) for p in pattern]
    result = func(*args)
    return isinstance(result, func) and set(result.args) == set(args)


def _step(parts: list) -> Callable:
    """Heaviside(x, h₀) of an exact number: 1 above 0, 0 below, h₀ at 0, as SymPy's gives."""

    def step(values, env):
        got = [p(values, env) for p in parts]
        x = got[0]
        if isinstance(x, _PY) and (x != 0 or len(got) > 1 and isinstance(got[1], _PY)):
            return 1 if x > 0 else 0 if x < 0 else got[1]
        return sp.Heaviside(*[to_sympy(g) for g in got])

    return step


def _entry(label: str, positions: list) -> Callable:
    """An array entry read from `values` at its indices: one closure per rank, no generator per read
    (the reads are the commonest node of every form)."""
    if len(positions) == 1:
        (first,) = positions
        return lambda values, env: values[(label, (int(first(values, env)),))]
    if len(positions) == 2:
        first, second = positions
        return lambda values, env: values[(label, (int(first(values, env)), int(second(values, env))))]
    if len(positions) == 3:
        first, second, third = positions
        return lambda values, env: values[(label, (int(first(values, env)), int(second(values, env)),
                                                   int(third(values, env))))]
    return lambda values, env: values[(label, tuple([int(p(values, env)) for p in positions]))]


def _sum(expr: sp.Sum) -> Callable:
    (i, lo, hi), *rest = expr.limits
    bounds = _guard_bounds(expr.function, i, {limit[0] for limit in rest})
    i = _slot(i)
    inner = _value(sp.Sum(expr.function, *rest) if rest else expr.function)
    low, high = _value(lo), _value(hi)

    def total(values, env):
        start, stop = int(low(values, env)), int(high(values, env))
        for slope, remainder, strict in bounds:  # the guards' range of i: every term outside it is 0
            r = remainder(values, env)
            if type(r) is int:  # the edge −r/slope rounded by floor division, exactly
                if slope > 0:
                    start = max(start, (-r) // slope + 1 if strict else -(r // slope))
                else:
                    stop = min(stop, -(r // slope) - 1 if strict else (-r) // slope)
                continue
            if not isinstance(r, _PY):
                continue
            edge = Fraction(-r) / slope
            if slope > 0:
                start = max(start, math.floor(edge) + 1 if strict else math.ceil(edge))
            else:
                stop = min(stop, math.ceil(edge) - 1 if strict else math.floor(edge))
        saved = env.get(i, _MISSING)
        terms = []
        for v in range(start, stop + 1):
            env[i] = v
            terms.append(inner(values, env))
        if saved is _MISSING:
            env.pop(i, None)
        else:
            env[i] = saved
        return _add_all(terms)

    return total


_INEQUALITIES = (sp.GreaterThan, sp.StrictGreaterThan, sp.LessThan, sp.StrictLessThan)


def _guard_bounds(function: sp.Expr, i: sp.Idx, inner: set) -> list[tuple[int, Callable, bool]]:
    """The bounds on a summation index i that the summand's guards state: for every inequality
    a·i + r ≥ 0 (or > 0) in an Iverson factor of the summand, with a a whole number and r free of i
    and of the indices summed inside, (a, r as a closure, strict). Outside these bounds the guard is
    0 and so is the term (`_product` returns 0 without reading the other factors), so a sum may skip
    those values of i: the scatter form of a convolution's input error then visits the outputs whose
    window reads the entry, not every output."""
    out = []
    for factor in sp.Mul.make_args(function) if function.is_Mul else ():
        if not isinstance(factor, Iverson):
            continue
        condition = factor.args[0]
        for part in condition.args if isinstance(condition, sp.And) else (condition,):
            if not isinstance(part, _INEQUALITIES):
                continue
            gap = part.lhs - part.rhs if isinstance(part, (sp.GreaterThan, sp.StrictGreaterThan)) else part.rhs - part.lhs
            terms = sp.expand(gap).as_coefficients_dict()
            slope = sp.sympify(terms.get(i, 0))
            remainder = sp.expand(gap - slope * i)
            if not (slope.is_Integer and slope != 0) or remainder.has(i) or remainder.atoms(sp.Indexed) \
                    or any(remainder.has(j) for j in inner):
                continue
            out.append((int(slope), _index(remainder), isinstance(part, (sp.StrictGreaterThan, sp.StrictLessThan))))
    return out


def _product(expr: sp.Mul) -> Callable:
    """All factors at once; a guard (an Iverson bracket, a Kronecker delta) that is 0 makes the
    product 0 before the other factors are read (they may name entries that do not exist there)."""
    parts = [_value(a) for a in expr.args]
    guards = [(k, parts[k]) for k, a in enumerate(expr.args) if isinstance(a, (Iverson, sp.KroneckerDelta))]
    others = [(k, parts[k]) for k, a in enumerate(expr.args) if not isinstance(a, (Iverson, sp.KroneckerDelta))]
    count = len(parts)

    def product(values, env):
        got = [None] * count
        for k, guard in guards:  # each guard once: its value is kept for the product
            value = guard(values, env)
            if value == 0:
                return 0
            got[k] = value
        for k, part in others:
            got[k] = part(values, env)
        if all(isinstance(g, _PY) for g in got):
            out = 1
            for g in got:
                out *= g
            return out
        if _numbers_only(got):
            return _mul_numbers(got)
        return sp.Mul(*[to_sympy(g) for g in got])

    return product
