"""Is the derived start a good one? The saturated share of the initial pre-activations, computed.

For an activation with g(0) ≠ 0 (the sigmoid) the derived variance solves the exact forward condition,
n_in σ_w² E[g(z)²] = 1 at σ_z = 1, so every Var(z) stays 1 and few output units start where the
slope is nearly 0; the errors pay, losing variance by n σ_w² E[g′(z)²] per layer on their way back.
The usual rule, Glorot's variance from the linearisation (which drops g(0)²), does the reverse: the
pre-activations grow and a share of them starts on the flat part. Both are computed here for this
network, so that the document states the trade-off with numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from derive.initialisation import N_IN, N_OUT, Initialisation, LayerScale, error_path, quadrature, variance_path
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
    exact_gain: float  # 1 / moment: σ_w² = exact_gain / n_in, the derived rule
    default: Start  # the derived start (the exact forward condition)
    usual: Start  # the linearisation's Glorot variance it replaces
    squared_error: bool = False  # the loss keeps the output's slope in δ⁽ᴸ⁾ (section "loss_choice")
    usual_gain: str = ""  # the Glorot gain of the usual rule, as LaTeX


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
    if len(hidden) != 1 or len(scales) != 1 or scales[0].method != "offset":
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
    """The derived start against the usual (linearised, Glorot) one, for the networks of `_flat_edge`."""
    found = _flat_edge(model, init)
    if found is None:
        return None
    activation, threshold, edge = found
    (scale,) = [s for s in init.activations if s.activation.name == activation.name]
    usual = [LayerScale(s.layer, s.source, _for_layer(scale.convention, s) if s.source == activation.name else s.variance,
                        None, s.param) for s in init.layers]
    default, other = _start(model, init.layers), _start(model, usual)
    last = lambda start: start.variances[-1][1]  # noqa: E731
    moment = quadrature(activation.expr ** 2)
    return Saturation(activation, float(threshold), edge, moment, 1 / moment,
                      Start(default.variances, _flat_share(edge, last(default)), default.errors),
                      Start(other.variances, _flat_share(edge, last(other)), other.errors),
                      model.loss.name == "mse", scale.figures.get("convention_gain", ""))


def _even(f: sp.Expr) -> bool:
    """Whether f(−z) = f(z): a point where the two differ settles "no"; the sigmoid's slope, a rational
    function of e^{z/2}, settles "yes" by `exp_identity_holds`; only what neither settles goes to
    `simplify`, whose first call imports sympy.physics (a quarter of a second of the main job's start)."""
    mirrored = f.xreplace({Z: -Z})
    apart = (f - mirrored).xreplace({Z: sp.Rational(13, 10)}).evalf(30)
    if apart.is_Number and abs(apart) > sp.Float("1e-20"):  # a number, not one with a parameter in it
        return False
    return exp_identity_holds(f, mirrored, Z) or sp.simplify(f - mirrored) == 0


def _for_layer(variance: sp.Expr, scale: LayerScale) -> sp.Expr:
    """A variance in n_in, n_out at the sizes of the layer of `scale`."""
    return variance.xreplace({N_IN: size(LayerRef(scale.layer - 1)), N_OUT: size(LayerRef(scale.layer))})


__all__ = ["Flat", "Saturation", "Start", "compare_starts", "default_flat", "SLOPE_SHARE"]
