"""Is the default start a good one? The saturated share of the initial pre-activations, computed.

The Glorot variance of a sigmoid layer drops σ(0)² = 1/4 from the second moment (the
linearisation), so the pre-activations of the later layers start with a variance well above 1 and
some of them where the slope is nearly 0. The alternative is the variance that solves the forward
condition exactly, n_in σ_w² E[g(z)²] = 1 with E[g(z)²] at σ_z = 1 by quadrature: every Var(z) stays
1, but the errors lose more variance on their way back. Both are computed here for this network, so
that the document says with numbers why it keeps its default and what to use instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from derive.initialisation import Initialisation, LayerScale, error_path, quadrature, variance_path
from derive.model import Model
from derive.notation import LayerRef, Z, size
from derive.rewrite import activation_derivative, exp_identity_holds

SLOPE_SHARE = sp.Rational(1, 5)  # "flat": a slope below a fifth of the activation's largest, g′(0)


@dataclass(frozen=True)
class Start:
    """One choice of initial variances: Var(z⁽ˡ⁾) per layer, the share of layer L's pre-activations
    on the flat part, and the errors' variance at layer 1 relative to layer L."""

    variances: tuple[tuple[int, float], ...]
    flat_share: float
    errors: float


@dataclass(frozen=True)
class Saturation:
    activation: object  # the hidden activation (catalog entry)
    threshold: float  # the slope below which a unit counts as saturated
    edge: float  # |z| beyond which the slope is below the threshold
    moment: float  # E[g(z)²] at σ_z = 1
    exact_gain: float  # 1 / moment: σ_w² = exact_gain / n_in
    default: Start
    exact: Start
    squared_error: bool = False  # the loss keeps the output's slope in δ⁽ᴸ⁾ (section "loss_choice")


def _flat_share(edge: float, variance: float) -> float:
    """P(|z| > edge) for z ~ N(0, variance)."""
    return math.erfc(edge / math.sqrt(2 * variance))


def _start(model: Model, layers: list[LayerScale]) -> Start:
    path = variance_path(model, layers)
    errors = error_path(model, layers, path)
    return Start(path, 0.0, math.prod(v for _, v in errors))


@dataclass(frozen=True)
class Flat:
    """Where the default start leaves the output layer: the slope below which a unit counts as
    saturated, |z| beyond which the slope is below it, and the share of layer L's initial
    pre-activations out there (Var(z⁽ᴸ⁾) from the initialisation's own path)."""

    activation: object
    threshold: float
    edge: float
    last: int
    variance: float
    share: float


def _flat_edge(model: Model, init: Initialisation):
    """The hidden activation, the slope threshold and the edge |z| of the flat part, for a chain whose
    hidden activations are one smooth activation with g(0) ≠ 0 and a slope that is largest at 0 and
    even (the sigmoid), the output the same activation, the loss squared error or binary cross
    entropy; None otherwise."""
    if not model.is_chain or not init.path or model.depth < 2:
        return None
    if model.activations[-1].name != model.activations[0].name or model.loss.name not in ("mse", "bce"):
        return None  # the output's flat part and what the loss makes of it are the point
    hidden = {a.name: a for a in model.activations[:-1]}
    scales = [s for s in init.activations if s.activation.name in hidden]
    if len(hidden) != 1 or len(scales) != 1 or "offset" not in scales[0].figures:
        return None
    activation = scales[0].activation
    slope = activation_derivative(activation).derivative
    if not _even(slope):
        return None
    peak = slope.xreplace({Z: 0})
    threshold = SLOPE_SHARE * peak
    edge = float(sp.nsolve(slope - threshold, Z, 3))
    if edge <= 0 or abs(float(slope.xreplace({Z: sp.Float(edge * 1.01)}))) >= float(threshold):
        return None
    return activation, threshold, edge


def default_flat(model: Model, init: Initialisation) -> Flat | None:
    """The default start's saturated share of the output layer alone (what the lesson prints): no
    quadrature of the alternative start, which only `--detail full` discusses."""
    found = _flat_edge(model, init)
    if found is None:
        return None
    activation, threshold, edge = found
    last, variance = init.path[-1]
    return Flat(activation, float(threshold), edge, last, variance, _flat_share(edge, variance))


def compare_starts(model: Model, init: Initialisation) -> Saturation | None:
    """The default start against the exact forward variance, for the networks of `_flat_edge`."""
    found = _flat_edge(model, init)
    if found is None:
        return None
    activation, threshold, edge = found
    moment = quadrature(activation.expr ** 2)
    exact = [LayerScale(s.layer, s.source, _exact_variance(s, moment) if s.source == activation.name else s.variance,
                        None, s.param) for s in init.layers]
    default, alternative = _start(model, init.layers), _start(model, exact)
    last = lambda start: start.variances[-1][1]  # noqa: E731
    return Saturation(activation, float(threshold), edge, moment, 1 / moment,
                      Start(default.variances, _flat_share(edge, last(default)), default.errors),
                      Start(alternative.variances, _flat_share(edge, last(alternative)), alternative.errors),
                      model.loss.name == "mse")


def _even(f: sp.Expr) -> bool:
    """Whether f(−z) = f(z): a point where the two differ settles "no"; the sigmoid's slope, a rational
    function of e^{z/2}, settles "yes" by `exp_identity_holds`; only what neither settles goes to
    `simplify`, whose first call imports sympy.physics (a quarter of a second of the main job's start)."""
    mirrored = f.xreplace({Z: -Z})
    apart = (f - mirrored).xreplace({Z: sp.Rational(13, 10)}).evalf(30)
    if apart.is_Number and abs(apart) > sp.Float("1e-20"):  # a number, not one with a parameter in it
        return False
    return exp_identity_holds(f, mirrored, Z) or sp.simplify(f - mirrored) == 0


def _exact_variance(scale: LayerScale, moment: float) -> sp.Expr:
    """σ_w² = 1 / (n_in E[g(z)²]), n_in the size of the layer before."""
    return sp.Float(1 / moment) / size(LayerRef(scale.layer - 1))


__all__ = ["Flat", "Saturation", "Start", "compare_starts", "default_flat", "SLOPE_SHARE"]
