"""The reader's own checks: a central difference on one weight of the worked example, the exercises
and their answers, every number computed by the engine or by running the code it prints.

A student trusts a gradient after checking it: nudge one weight by ±h, and the slope of the loss
between the two points must match the gradient backpropagation gives. The box of appendix B does
that on the worked example in 50-digit arithmetic (the engine's own forward formulas); exercise 5
asks for the same check on model.py, and its answer is a short script whose output is what the
verification printed when it ran that very script on the generated module.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.notation import LayerRef, Q
from derive.lesson.worked_example import WorkedExample, _loss, _numbers, _step
from derive.verify_symbolic import _parameter_entries, _parameters, evaluate_pass

STEP = sp.Rational(1, 10**4)  # h of the box: small against the weight, large against 50 digits
OTHER_RATE = sp.Rational(1, 10)  # the learning rate of the exercise that redoes the update
STEPS = (STEP * 10, STEP)  # the box's two steps h: the difference shrinks like h²


@dataclass(frozen=True)
class CentralDifference:
    """C(θ ± h) for one weight θ of the worked example, their slope, and backpropagation's gradient."""

    weight: object  # the Quantity
    index: tuple[int, ...]
    step: sp.Rational
    up: sp.Expr
    down: sp.Expr
    slope: sp.Expr
    gradient: sp.Expr

    @property
    def relative(self) -> sp.Expr:
        return abs(self.slope - self.gradient) / abs(self.gradient)


def _first_weight(derivation: Derivation, example: WorkedExample):
    for node, param in _parameters(derivation.model):
        if param.rank >= 2:
            return param, next(iter(_parameter_entries(node, param, example.sizes)))
    return None


NEGLIGIBLE = sp.Rational(1, 10**20)  # a gradient this small against the largest is rounding, not a slope


def moving_weight(derivation: Derivation, example: WorkedExample):
    """The first weight entry, in the order of the layers, whose gradient at the point is not 0 (nor
    rounding next to the largest gradient): a slope there is worth comparing. In a network whose
    first weights get no gradient at this point (attention whose scores tie: the queries' gradient
    is 0), a later node's weight."""
    largest = max((abs(g) for g in example.gradients.values()), default=0)
    for node, param in _parameters(derivation.model):
        if param.rank < 2:
            continue
        for index in _parameter_entries(node, param, example.sizes):
            if abs(example.gradients[(param.label, index)]) > NEGLIGIBLE * largest:
                return param, index
    return None


def shrunk_sizes(network, sizes: dict) -> tuple:
    """Each layer's size (units, or its shape) at the point's sizes, as `network.sizes` lists them."""
    out = []
    for layer in range(len(network.sizes)):
        nodes = [node for node in network.layers if node.layer == LayerRef(layer)]
        axes = network.axes_of(Q("a", 0)) if layer == 0 else nodes[-1].out_axes
        shape = tuple(int(axis.size.xreplace(sizes)) for axis in axes)
        out.append(shape[0] if len(shape) == 1 else shape)
    return tuple(out)


def central_difference(derivation: Derivation, example: WorkedExample, step: sp.Rational = STEP,
                       choose=None) -> CentralDifference | None:
    """(C(θ + h) − C(θ − h)) / 2h for the first weight of layer 1 (or the weight `choose` picks),
    by the engine's forward formulas."""
    found = (choose or _first_weight)(derivation, example)
    if found is None:
        return None
    weight, index = found
    key = (weight.label, index)
    point = _numbers(example.point, example.exact)
    losses = []
    for sign in (1, -1):
        moved = dict(point)
        moved[key] = point[key] + sign * step
        values, _ = evaluate_pass(derivation, False, moved, example.sizes)
        losses.append(_loss(derivation, values, example.sizes))
    up, down = losses
    gradient = example.gradients[key]
    if gradient == 0:
        return None
    return CentralDifference(weight, index, step, up, down, (up - down) / (2 * step), gradient)


def gradient_check(derivation: Derivation, point: WorkedExample,
                   choose=moving_weight) -> tuple[CentralDifference, ...] | None:
    """The box's central differences at both STEPS on the weight `choose` picks at `point`: a graph
    document's first weight with a gradient, or the lesson's first weight of layer 1 (`_first_weight`);
    None where either step does not apply. Computed once per run: every format prints the same numbers."""
    checks = tuple(central_difference(derivation, point, h, choose) for h in STEPS)
    return checks if all(checks) else None


def other_step(derivation: Derivation, example: WorkedExample, rate: sp.Rational = OTHER_RATE) -> tuple[dict, sp.Expr]:
    """The worked example's step with another learning rate: the updated parameters and the loss after it."""
    updated = _step(derivation, _numbers(example.point, example.exact), example.gradients, rate)
    after, _ = evaluate_pass(derivation, False, updated, example.sizes)
    return updated, _loss(derivation, after, example.sizes)


@dataclass(frozen=True)
class Practice:
    """The figures of the reader's checks, computed once per derivation: every format prints them,
    and each costs forward passes in 50-digit arithmetic."""

    checks: tuple | None  # gradient_check on the first weight of layer 1 (None where it does not apply)
    other: tuple[dict, sp.Expr]  # other_step at OTHER_RATE: the updated parameters and the loss after


def practice(derivation: Derivation, example: WorkedExample) -> Practice:
    return Practice(gradient_check(derivation, example, _first_weight), other_step(derivation, example, OTHER_RATE))


def scaled_costs(costs, sizes: dict, factor: int = 2) -> tuple[dict, int, int, int]:
    """The multiply-adds of backpropagation and of central differences with every layer `factor`
    times as wide: the counted formulas of section "cost" at other sizes."""
    wider = {symbol: value * factor for symbol, value in sizes.items()}
    value = lambda count: int(count.symbolic.xreplace(wider))  # noqa: E731
    backprop = value(costs.forward) + value(costs.errors) + value(costs.gradients)
    parameters = value(costs.parameters)
    return wider, backprop, parameters, 2 * parameters * value(costs.forward)


# --------------------------------------------------------------------------------------------------
# exercise 5: a gradient check of model.py, written as the reader would, run on the generated module

CHECK_SCRIPT = '''import numpy as np
import model

rng = np.random.default_rng(0)
params = model.init_params(model.SIZES, rng)
X = rng.standard_normal((model.SIZES[0], 10))
{targets}
h = 1e-5
W = params["W1"]
W[0, 0] += h
up = model.loss(params, X, Y)
W[0, 0] -= 2 * h
down = model.loss(params, X, Y)
W[0, 0] += h
numeric = (up - down) / (2 * h)
exact = model.gradients(params, X, Y)["W1"][0, 0]
print(f"{{numeric:.10g}} {{exact:.10g}} {{abs(numeric - exact) / abs(exact):.1e}}")'''

TARGETS = {  # the targets the loss takes: one-hot columns, 0/1 labels, or any numbers in (0, 1)
    "probability": "Y = np.eye(model.SIZES[-1])[rng.integers(0, model.SIZES[-1], 10)].T",
    "binary": "Y = rng.integers(0, 2, (model.SIZES[-1], 10)).astype(float)",
    "real": "Y = rng.random((model.SIZES[-1], 10))",
}


def check_script(model) -> str:
    """The script of exercise 5 for this network's loss."""
    kind = model.loss.target if model.loss.target in ("probability", "binary") else "real"
    return CHECK_SCRIPT.format(targets=TARGETS[kind])


def run_check_script(model, module) -> str | None:
    """What the script prints when run on the generated module (None when it cannot run: a network
    without a dense first layer W1, or one the script's targets do not fit)."""
    if "W1" not in module.init_params(module.SIZES, np.random.default_rng(0)):
        return None
    source = check_script(model).replace("import model\n", "")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<exercise>", "exec"), {"model": module, "__name__": "exercise"})  # noqa: S102
    except Exception:  # noqa: BLE001 - an answer the script cannot give is left out, not invented
        return None
    return out.getvalue().strip()


__all__ = ["CentralDifference", "central_difference", "moving_weight", "shrunk_sizes", "gradient_check", "STEPS", "other_step", "scaled_costs", "check_script",
           "run_check_script", "STEP", "OTHER_RATE"]
