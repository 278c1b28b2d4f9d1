"""Functions with kinks and jumps (relu, abs, max, piecewise definitions): where the kinks are, the
derivative on each side, and the value the formulas use at the kink.

SymPy differentiates max/min and relu to Heaviside steps, abs to sign, a piecewise definition
branch by branch, and a typed step to an impulse (DiracDelta). At a kink the derivative does not
exist; the formulas and the code still need a value there. The conventions, applied by
`kink_convention` and stated in every document that uses them:

* a step H(x) that comes out of a derivative is taken as 0 at x = 0 (relu′(0) = 0, as PyTorch);
* sign(0) = 0 (the derivative of |x| at 0; PyTorch's choice too);
* a piecewise derivative takes the branch whose condition holds at the boundary;
* an impulse DiracDelta(x) (the derivative of a step) is dropped: it is 0 wherever it is defined.

`kinks` then locates each kink of an activation (where a step, sign, max/min or piecewise condition
switches, when that equation is polynomial in z) and reports the one-sided derivatives and the value
used, all evaluated from the expressions, nothing typed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.indexing import transform
from derive.notation import Z

NON_SMOOTH = (sp.Heaviside, sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min, sp.DiracDelta)
MAX_DEGREE = 4


def kink_convention(expr: sp.Expr) -> sp.Expr:
    """Heaviside(x) → Heaviside(x, 0) and DiracDelta(…) → 0 in a derivative."""

    def rule(e):
        if isinstance(e, sp.Heaviside) and e.args[1] != 0:
            return sp.Heaviside(e.args[0], 0)
        if isinstance(e, sp.DiracDelta):
            return sp.S.Zero
        return e

    return transform(expr, rule)


def conventions_used(computed: sp.Expr) -> tuple[str, ...]:
    """Which conventions a derivative as SymPy computed it relies on (keys of the message catalog)."""
    keys = []
    if computed.has(sp.Heaviside):
        keys.append("step")
    if computed.has(sp.sign):
        keys.append("sign")
    if computed.has(sp.Piecewise):
        keys.append("piecewise")
    if computed.has(sp.DiracDelta):
        keys.append("impulse")
    return tuple(keys)


@dataclass(frozen=True)
class Kink:
    """A point where the derivative jumps, its one-sided limits and the value the formulas use."""

    point: sp.Expr
    left: sp.Expr
    right: sp.Expr
    used: sp.Expr


def _switch_equations(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions u(z) whose zeros are where a non-smooth part of `expr` switches."""
    out = []
    for e in sp.preorder_traversal(expr):
        if isinstance(e, (sp.Heaviside, sp.sign, sp.Abs, sp.DiracDelta)):
            out.append(e.args[0])
        elif isinstance(e, (sp.Max, sp.Min)):
            out += [x - y for n, x in enumerate(e.args) for y in e.args[n + 1:]]
        elif isinstance(e, sp.Piecewise):
            for _, condition in e.args:
                out += [r.lhs - r.rhs for r in condition.atoms(sp.core.relational.Relational)]
    return out


def breakpoints(expr: sp.Expr) -> tuple[list[sp.Expr], bool]:
    """The real points where a non-smooth part of `expr` switches, sorted; and whether every switch
    could be located (only polynomial switching equations of low degree are solved)."""
    points, located = set(), True
    for u in _switch_equations(expr):
        if not u.has(Z):
            continue
        if not u.is_polynomial(Z) or sp.degree(u, Z) > MAX_DEGREE or u.has(*NON_SMOOTH):
            located = False
            continue
        points.update(sp.Poly(u, Z).real_roots())
    return sorted(points, key=lambda p: float(p)), located


def _value_at(u: sp.Expr, point: sp.Expr) -> float:
    return float(u.xreplace({Z: point}).evalf(30))


def branch_value(expr: sp.Expr, point: sp.Expr) -> sp.Expr:
    """`expr` on the smooth piece that contains `point` (a point that is not a breakpoint): every
    step, sign, abs, max/min and piecewise choice replaced by the one that holds there."""

    def rule(e):
        if isinstance(e, sp.Heaviside):
            return sp.S.One if _value_at(e.args[0], point) > 0 else sp.S.Zero
        if isinstance(e, sp.DiracDelta):
            return sp.S.Zero
        if isinstance(e, sp.sign):
            return sp.S.One if _value_at(e.args[0], point) > 0 else sp.S.NegativeOne
        if isinstance(e, sp.Abs):
            return e.args[0] if _value_at(e.args[0], point) > 0 else -e.args[0]
        if isinstance(e, (sp.Max, sp.Min)):
            values = [(_value_at(a, point), n) for n, a in enumerate(e.args)]
            chosen = max(values) if isinstance(e, sp.Max) else min(values)
            return e.args[chosen[1]]
        if isinstance(e, sp.Piecewise):
            for branch, condition in e.args:
                if condition.xreplace({Z: point}) == sp.true:
                    return branch
        return e

    return transform(expr, rule)


def _sample_points(points: list[sp.Expr]) -> list[sp.Expr]:
    """One point inside each smooth piece: left of the first breakpoint, between, right of the last."""
    if not points:
        return [sp.S.Zero]
    out = [points[0] - 1]
    out += [(a + b) / 2 for a, b in zip(points, points[1:])]
    out.append(points[-1] + 1)
    return out


def _number(expr: sp.Expr) -> sp.Expr:
    expr = sp.nsimplify(expr) if expr.is_Float else expr
    return sp.simplify(expr) if expr.free_symbols == set() and expr.count_ops() > 6 else expr


def pieces(g: sp.Expr, derivative: sp.Expr) -> tuple[list[tuple[sp.Expr | None, sp.Expr | None, sp.Expr]], list[Kink], bool]:
    """The smooth pieces of g′ (lower end, upper end, formula on the piece) and the genuine kinks.

    A breakpoint where both one-sided derivatives agree is not a kink (elu with α = 1 at 0).
    """
    points, located = breakpoints(sp.Tuple(g, derivative))
    samples = _sample_points(points)
    forms = [branch_value(derivative, s) for s in samples]
    bounds = [None] + points + [None]
    segments = [(bounds[n], bounds[n + 1], form) for n, form in enumerate(forms)]
    kinks = []
    for n, point in enumerate(points):
        left = _number(forms[n].xreplace({Z: point}))
        right = _number(forms[n + 1].xreplace({Z: point}))
        if sp.simplify(left - right) == 0:
            continue
        used = _number(derivative.xreplace({Z: point}))
        kinks.append(Kink(point, left, right, used))
    return segments, kinks, located
