"""How much each layer can pass back: the largest slope max |g′(z)| of every entry-wise activation.

BP2 multiplies the error by g′(z) in every layer it crosses, so the error that reaches layer 1 holds
one factor g′ per layer; with max σ′ = 1/4 it is at most (1/4)^L times what the weights pass back.
The bound is found from the derivative the engine derived (with its kink conventions): the largest
value on a fine grid, refined where g″ = 0 (SymPy's `nsolve`) and named exactly when it is a simple
number (σ′(0) = 1/4); a slope that approaches its bound only as z → ±∞ (softplus) gets SymPy's limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from derive.catalog import Activation
from derive.derivation import Derivation
from derive.notation import Z

GRID = [x / 100 for x in range(-2000, 2001)]  # z from −20 to 20
DIGITS = 4


@dataclass(frozen=True)
class SlopeBound:
    activation: Activation
    bound: sp.Expr | None  # sup_z |g′(z)|; None when unbounded or not found
    at: sp.Expr | None  # the z where it is attained, when it is one point
    exact: bool  # the bound is an exact number (1/4), not a decimal
    unbounded: bool = False  # g′ grows without bound (as opposed to: no bound found)
    side: int = 0  # attained on the whole half-line z > 0 (1), z < 0 (−1), everywhere (2), else 0
    blocks: bool = False  # g′ = 0 on the whole half-line z < 0: a unit there passes no error (relu)


@dataclass(frozen=True)
class PathBound:
    """The product of the slope bounds of layers 1 … L: what the error reaching layer 1 is scaled by,
    at most, besides the weights."""

    layers: tuple[tuple[int, SlopeBound], ...]  # per layer with an entry-wise activation
    product: sp.Expr | None

    @property
    def saturates(self) -> bool:
        """Some entry-wise activation has slopes near 0 that are not exactly 0 (sigmoid, tanh): not
        one whose slope is 0 on a whole half-line (relu) or the same everywhere (identity)."""
        return any(not b.blocks and b.side != 2 for _, b in self.layers)


def _values(f, points):
    out = []
    for x in points:
        try:
            v = abs(complex(f(x)))
        except (OverflowError, ZeroDivisionError, ValueError):
            v = math.inf
        out.append(v if math.isfinite(v) else math.inf)
    return out


def _named(value: float) -> tuple[sp.Expr, bool]:
    """A value as a simple exact number when it is one (1/4, 1), else to DIGITS significant digits."""
    simple = sp.nsimplify(value, tolerance=1e-12, rational=True)
    if abs(float(simple) - value) < 1e-12 and len(str(simple)) <= 6:
        return simple, True
    return sp.Float(value, DIGITS), False


def slope_bound(activation: Activation, derivative: sp.Expr) -> SlopeBound:
    try:
        return _slope_bound(activation, derivative)
    except Exception:  # noqa: BLE001 - a typed function may defeat lambdify or nsolve: then no bound is stated
        return SlopeBound(activation, None, None, False)


def _slope_bound(activation: Activation, derivative: sp.Expr) -> SlopeBound:
    f = sp.lambdify(Z, derivative, "math")
    values = _values(f, GRID)
    tail = sp.lambdify(Z, derivative, "mpmath")  # no overflow far out (e^600)
    near, far = _values(tail, [-60, 60]), _values(tail, [-600, 600])
    if not all(math.isfinite(v) for v in values + near + far) or any(b > 1.5 * a + 1e-9 for a, b in zip(near, far)):
        return SlopeBound(activation, None, None, False, unbounded=True)  # g′ grows without bound (or overflows)
    best = max(range(len(GRID)), key=lambda k: values[k])
    top = max(values[best], *near)  # a slope that approaches its bound only far out (softplus)
    at = None
    if 0 < best < len(GRID) - 1 and values[best - 1] < values[best] > values[best + 1] and values[best] >= top:
        try:  # a strict peak: refine it where g″ = 0
            root = float(sp.nsolve(sp.diff(derivative, Z), Z, GRID[best]))
            peak = abs(complex(f(root)))
            if abs(root - GRID[best]) < 0.02 and peak >= top:
                top, at = peak, _named(root)[0]
        except Exception:  # noqa: BLE001 - nsolve's failures are many (no root near, a step in g″)
            pass
    bound, exact = _named(top)
    if exact and at is not None and at.is_Rational:  # the exact value at an exact point, from the formula
        value = sp.nsimplify(derivative.xreplace({Z: at}))
        if value.is_Rational and abs(float(value) - top) < 1e-12:
            bound = value
    return SlopeBound(activation, bound, at if exact else None, exact, side=_side(values, top),
                      blocks=all(v == 0 for z, v in zip(GRID, values) if z < 0))


def _side(values: list[float], top: float) -> int:
    """Where a flat bound is attained: on every grid point with z > 0, z < 0, or everywhere."""
    attained = [z for z, v in zip(GRID, values) if abs(v - top) <= 1e-12 * max(1.0, top)]
    positive, negative = [z for z in GRID if z > 0], [z for z in GRID if z < 0]
    if len(attained) == len(GRID):
        return 2
    if attained == positive or attained == [0.0] + positive:
        return 1
    if attained == negative or attained == negative + [0.0]:
        return -1
    return 0


def path_bound(derivation: Derivation) -> PathBound:
    """The slope bound of each layer's activation (entry-wise ones), from layer 1 to the output."""
    derivatives = {d.activation: d.derivative for d in derivation.activation_derivatives}
    bounds: dict[Activation, SlopeBound] = {}
    layers = []
    for node in derivation.model.network.layers:
        activation = getattr(node.kind, "activation", None)
        if activation is None or activation.is_vector:
            continue
        if activation not in bounds:
            bounds[activation] = slope_bound(activation, derivatives[activation])
        layers.append((node.layer.number, bounds[activation]))
    product = None
    if layers and all(b.bound is not None for _, b in layers):
        product = sp.Mul(*[b.bound for _, b in layers])
    return PathBound(tuple(layers), product)


__all__ = ["SlopeBound", "PathBound", "slope_bound", "path_bound"]
