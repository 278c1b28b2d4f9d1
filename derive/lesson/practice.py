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
from dataclasses import dataclass, replace

import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.errors import ensure
from derive.notation import LayerRef, Q, Z
from derive.lesson.worked_example import DIGITS, WorkedExample, _loss, _numbers, _step, entries
from derive.matrixform import evaluate_index_form
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


FLOAT_STEPS = (sp.Rational(1, 10**5), sp.Rational(1, 10**8))  # the step recommended in float64, and one too small


@dataclass(frozen=True)
class FloatSlope:
    """The box's central difference as a student gets it: `loss` of model.py in float64, one step h."""

    step: sp.Rational
    slope: float
    relative: float  # against the exact gradient of the box


def float64_slopes(derivation: Derivation, example: WorkedExample, check: CentralDifference,
                   source: str | None) -> tuple[FloatSlope, ...] | None:
    """The box's weight moved by each of FLOAT_STEPS, each loss rounded to the nearest float64 number,
    their difference quotient taken in float64: at 10⁻⁵ the slope keeps about ten digits; at 10⁻⁸ the
    two losses share their first eight digits and the difference loses them (cancellation). The losses
    are the engine's 50-digit ones, correctly rounded, not model.py's own: NumPy's exp and log follow the
    CPU's instruction set, so model.py's last bits, and with them these quotients' digits, differ from
    machine to machine, and the documents must not (model.py lands within a few units in the last place
    of these; a test compares). None without model.py, or where its parameters are not the point's
    (W1, b1, … of a chain of dense layers): the box then prints no float64 lines."""
    if source is None or check is None:
        return None
    from derive.verify import load_module

    module = load_module(source, "derive_generated_practice")
    labels = {label for label, _ in example.point} - {"a_0", "y"}
    if {label.replace("_", "") for label in labels} != set(module.init_params(module.SIZES, np.random.default_rng(0))):
        return None
    gradient, out = float(check.gradient), []
    for step in FLOAT_STEPS:
        moved = central_difference(derivation, example, step, lambda *_: (check.weight, check.index))
        slope = (float(moved.up) - float(moved.down)) / (2 * float(step))
        out.append(FloatSlope(step, slope, abs(slope - gradient) / abs(gradient)))
    return tuple(out)


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
    diagonal: tuple | None  # diagonal_check: BP2 with diag(g′(z)) at the example (an exercise's answer)
    minibatch: tuple | None  # matrix_minibatch: two samples as matrices (an exercise's answer)
    floats: tuple | None = None  # float64_slopes: the box's slope as model.py gives it in float64
    jacobian: tuple | None = None  # jacobian_check: BP1 as Jᵀ ∂C/∂a for a softmax output (an exercise's answer)


def practice(derivation: Derivation, example: WorkedExample, source: str | None = None) -> Practice:
    """`source`: model.py, whose `loss` in float64 gives the slopes a student sees (the box prints them)."""
    checks = gradient_check(derivation, example, _first_weight)
    return Practice(checks, other_step(derivation, example, OTHER_RATE),
                    diagonal_check(derivation, example), matrix_minibatch(derivation, example),
                    float64_slopes(derivation, example, checks[-1], source) if checks else None,
                    jacobian_check(derivation, example))


def matrix_minibatch(derivation: Derivation, example: WorkedExample):
    """Nielsen's fully matrix-based minibatch, on two samples: the worked example's and a second with
    its input and target in reverse order (the input negated too where that leaves a unit of layer L−1
    silent, A = 0, and negating does not: a column of zeros would add nothing to ∂C̄/∂W⁽ᴸ⁾). Returns (the second sample's example, D⁽ᴸ⁾ and A⁽ᴸ⁻¹⁾ with
    one column per sample, ∂C̄/∂W⁽ᴸ⁾ = D⁽ᴸ⁾(A⁽ᴸ⁻¹⁾)ᵀ/m as section 15 writes it); the product is asserted
    to be the mean of the two samples' own gradients (BP4 for each). None for a network whose samples
    are not independent, that is not a chain of dense layers, or whose cost has a penalty term."""
    model = derivation.model
    if not model.is_chain or model.network.couples_samples or getattr(model, "penalty", None) is not None:
        return None  # (a penalty adds its own gradient, not a mean over the samples)
    depth = model.depth
    second = None
    for flip in SECOND_INPUTS:
        point = _second_point(example.point, flip)
        numbers = point if example.exact else {k: sp.Float(v, DIGITS) for k, v in point.items()}
        values, gradients = evaluate_pass(derivation, False, numbers, example.sizes)
        candidate = replace(example, point=point, values=values, gradients=gradients)
        second = second or candidate  # the reversed sample, where no candidate has every unit active
        if not _silent_units(derivation, candidate, depth - 1):
            second = candidate
            break
    weight = [p for node in model.network.layers for p in node.parameters if p.rank >= 2][-1]  # W of layer L
    errors = [dict(entries(e, Q("delta", depth))) for e in (example, second)]
    inputs = [dict(entries(e, Q("a", depth - 1))) for e in (example, second)]
    if not all(errors) or not all(inputs):  # a layer with more than a weight and an activation
        return None
    D = [((j, r), errors[r][(j,)]) for (j,) in sorted(errors[0]) for r in range(2)]
    A = [((k, r), inputs[r][(k,)]) for (k,) in sorted(inputs[0]) for r in range(2)]
    gradient = [((j, k), sum(errors[r][(j,)] * inputs[r][(k,)] for r in range(2)) / 2)
                for (j,) in sorted(errors[0]) for (k,) in sorted(inputs[0])]
    mean = {idx: (a + b) / 2 for (idx, a), (_, b) in zip(entries(example, weight, "gradients"), entries(second, weight, "gradients"))}
    ensure(all(abs(sp.N(v - mean[idx], 40)) < 1e-30 for idx, v in gradient), "D A^T / m is the mean of BP4")
    return second, D, A, gradient


SECOND_INPUTS = (1, -1)  # the second sample's input: the example's reversed, then reversed and negated


def _second_point(point: dict, sign: int) -> dict:
    """The worked example's point with its input and target in reverse order, the input times `sign`:
    another class for a one-hot target, another input of the same size."""
    out = dict(point)
    for label in ("a_0", "y"):
        keys = sorted(k for k in out if k[0] == label)
        for key, value in zip(keys, [point[k] for k in reversed(keys)]):
            out[key] = sign * value if label == "a_0" else value
    return out


def _silent_units(derivation: Derivation, example: WorkedExample, layer: int) -> list:
    """The units of `layer` whose activation is 0 at the point (a ReLU unit with z < 0): a column of
    A⁽ˡ⁾ that would be 0 and add nothing to the output layer's weight gradient."""
    activations = [node.kind.activation for node in derivation.model.network.layers
                   if node.layer.number == layer and getattr(node.kind, "activation", None) is not None]
    if layer < 1 or not activations or activations[0].is_vector:
        return []
    return [idx for idx, a in entries(example, Q("a", layer)) if a == 0]


def diagonal_check(derivation: Derivation, example: WorkedExample) -> tuple[list, list, list, list] | None:
    """Nielsen's Σ′ form of BP2 at the worked example, for the layer below the output: the slopes
    g′(z) (the diagonal of diag(g′(z))), the weights W of the output layer, the output error δ and
    the product diag(g′(z)) Wᵀ δ, each as (indices, value). The product is computed from the exact
    values and must be the example's own error of that layer. None where the output activation does
    not act entry by entry (BP1 is then δ = Jᵀ ∂C/∂a) or the network has no hidden layer."""
    model = derivation.model
    depth = model.depth
    if not model.is_chain or depth < 2:
        return None
    activations = {node.layer.number: node.kind.activation for node in model.network.layers
                   if getattr(node.kind, "activation", None) is not None}
    if set(activations) != set(range(1, depth + 1)) or any(a.is_vector for a in activations.values()):
        return None
    slope = sp.diff(activations[depth - 1].expr, Z)
    slopes = [(idx, slope.subs(Z, z)) for idx, z in entries(example, Q("z", depth - 1))]
    weights, errors = entries(example, Q("W", depth)), entries(example, Q("delta", depth))
    own = dict(entries(example, Q("delta", depth - 1)))
    if not (slopes and weights and errors and own):  # a layer with more than a weight and an activation
        return None
    product = [((j,), s * sum(w * dict(errors)[(i,)] for (i, k), w in weights if k == j)) for (j,), s in slopes]
    ensure(all(abs(sp.N(v - own[idx], 40)) < 1e-30 for idx, v in product), "diag(g') W^T delta is delta")
    return slopes, weights, errors, product


def jacobian_check(derivation: Derivation, example: WorkedExample) -> tuple[list, list, list, list] | None:
    """BP1 in matrix form for a softmax output at the worked example: J (differentiated here from the
    softmax written out at the example's z, and asserted to be diag(a) − a aᵀ, the form section
    "output_error" derives), ∂C/∂a⁽ᴸ⁾ (the engine's, evaluated) and Jᵀ ∂C/∂a⁽ᴸ⁾, asserted to be the
    example's own δ⁽ᴸ⁾; each as (indices, value). None for any other output or network."""
    model = derivation.model
    depth = model.depth
    output = [node.kind.activation for node in model.network.layers
              if node.layer.number == depth and getattr(node.kind, "activation", None) is not None]
    if not model.is_chain or depth < 2 or len(output) != 1 or output[0].name != "softmax":
        return None
    upstream = derivation.sample.results.get(Q("grad_a", depth))
    a, z = entries(example, Q("a", depth)), entries(example, Q("z", depth))
    own = dict(entries(example, Q("delta", depth)))
    if upstream is None or len(upstream.free) != 1 or not (a and z and own):
        return None
    (free,) = upstream.free
    values = dict(example.values) | _numbers(example.point, example.exact)
    upstream_values = [((k,), evaluate_index_form(upstream.rhs, values, {**example.sizes, free: k})) for k in range(len(a))]
    symbols = sp.symbols(f"z0:{len(z)}")
    softmax = sp.Matrix([sp.exp(s) / sum(sp.exp(t) for t in symbols) for s in symbols])
    at = {s: v for s, (_, v) in zip(symbols, z)}
    J = softmax.jacobian(symbols)  # J[j′, j] = ∂a_{j′} / ∂z_j
    jacobian = [((i, j), J[i, j].xreplace(at)) for i in range(len(z)) for j in range(len(z))]
    outputs = dict(a)
    ensure(all(abs(sp.N(v - ((outputs[(i,)] if i == j else 0) - outputs[(i,)] * outputs[(j,)]), 40)) < 1e-30
               for (i, j), v in jacobian), "J is diag(a) - a a^T")
    product = [((j,), sum(v * dict(upstream_values)[(i,)] for (i, jj), v in jacobian if jj == j)) for j in range(len(z))]
    ensure(all(abs(sp.N(v - own[idx], 40)) < 1e-30 for idx, v in product), "J^T dC/da is delta")
    return a, jacobian, upstream_values, product


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

# eight digits and a yes/no against 1e-8: what the script prints is the same on every machine, where the
# relative difference itself (about 1e-11, rounding noise) follows the CPU's exp and log kernels
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
print(f"{{numeric:.8g}} {{exact:.8g}} {{abs(numeric - exact) / abs(exact) < 1e-8}}")'''

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


__all__ = ["FloatSlope", "float64_slopes", "FLOAT_STEPS", "CentralDifference", "central_difference", "moving_weight", "shrunk_sizes", "gradient_check", "STEPS", "other_step", "scaled_costs", "check_script",
           "run_check_script", "STEP", "OTHER_RATE"]
