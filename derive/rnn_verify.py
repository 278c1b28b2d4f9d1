"""The checks of a recurrent network's derivation and of its generated code.

* **symbolic**: at tiny sizes (2 inputs, 2 hidden units, 2 outputs) and a short sequence (3 steps)
  the loss of one sample is unrolled over the steps into one expression of every parameter entry,
  by evaluating each node's own forward rule (the same rule the engine differentiated, nothing
  else), and differentiated directly with `sympy.diff`. The derived formulas, with the error
  recursion run backward in time from their index forms, must agree at a random rational point to
  50 significant digits (exactly, when every function is rational: relu and mse).
* **minibatch**: the derived minibatch gradients equal the mean of the per-sample ones (2 samples).
* **derivatives**: the generated `model.py`'s `gradients` against central finite differences of its
  `loss`, in float64, for every parameter entry.
"""

from __future__ import annotations

import random
import types
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive.backprop import Pass, parameter_axes
from derive.indexing import Iverson
from derive.matrixform import evaluate_index_form
from derive.notation import BATCH_SIZE
from derive.rnn import RNNModel

WIDTH = 2  # units of every layer in the symbolic check
STEPS = {"rnn": 3, "lstm": 2, "gru": 2}  # its sequence length: the LSTM's unrolled loss grows fast (2 steps: 13 s)


def symbolic_steps(model: RNNModel) -> int:
    return STEPS[model.spec.cell]
DIGITS = 50
TOLERANCE = sp.Float("1e-35", DIGITS)
FD_STEP = 1e-6
FD_TOLERANCE = 1e-6
WORKSPACE_TOLERANCE = 1e-12  # gradients_into against gradients, relative to each gradient's largest entry
FLOAT32_TOLERANCE = 1e-4  # gradients_into in float32 against gradients in float64, the same measure


@dataclass
class Check:
    name: str
    passed: bool
    figures: dict = field(default_factory=dict)


def _env(model: RNNModel, steps: int, samples: int | None) -> dict:
    """Every size symbol of the formulas at the tiny sizes: units WIDTH, `steps` steps."""
    env = {}
    for node in model.network.nodes:
        axes = [*node.out_axes, *(a for group in node.in_axes for a in group),
                *(a for p in node.parameters for a in parameter_axes(node, p))]
        env.update({a.size: (steps if a.role == "t" else WIDTH) for a in axes if a.extent is None})
    if samples is not None:
        env[BATCH_SIZE] = samples
    return env


def _extents(axes, env) -> list[tuple[int, ...]]:
    return list(np.ndindex(*[int(a.size.xreplace(env)) for a in axes]))


def _parameters(model: RNNModel, env: dict) -> list[tuple[str, tuple[int, ...]]]:
    return [(p.label, idx) for node in model.network.layers for p in node.parameters
            for idx in _extents(parameter_axes(node, p), env)]


def random_point(model: RNNModel, rng: random.Random, samples: int | None = None) -> dict:
    """Rational values for the inputs, the targets and every parameter entry, by (label, index)."""
    env = _env(model, symbolic_steps(model), samples)
    network = model.network
    columns = [None] if samples is None else list(range(samples))
    values = {}
    binary = model.loss.target in ("binary", "unit")
    for s in columns:
        for j in _extents(network.input_axes, env):
            values[("a_0", j) if s is None else ("A_0", (*j, s))] = sp.Rational(rng.randint(-9, 9), 7)
        for i in _extents(network.loss_node.in_axes[0], env):
            y = sp.Rational(rng.randint(1, 8), 9) if binary else sp.Rational(rng.randint(-9, 9), 9)
            values[("y", i) if s is None else ("Y", (*i, s))] = y
    for key in _parameters(model, env):
        values[key] = sp.Rational(rng.randint(-9, 9), 8 if key[0].startswith("W") else 11)
    return values


class _Lazy(dict):
    """(label, index) → value, an entry computed from its formula the first time it is read: the
    recursion of the errors over the steps runs in whatever order the formulas ask for entries."""

    def __init__(self, values: dict, formulas: dict, env: dict):
        super().__init__(values)
        self.formulas, self.env = formulas, env

    def __missing__(self, key):
        label, idx = key
        result = self.formulas[label]
        free = tuple(result.lhs.indices) if isinstance(result.lhs, sp.Indexed) else result.free
        value = evaluate_index_form(result.rhs, self, {**self.env, **dict(zip(free, idx))})
        self[key] = value
        return value


def _formulas(model: RNNModel, results: Pass, batch: bool) -> dict:
    """The forward rules and every named error of a pass, by the label of what they compute."""
    out = {}
    for node in model.network.layers:
        out[node.out(batch).label] = results.results[node.output]
    for result in results.results.values():
        if isinstance(result.lhs, sp.Indexed):
            out.setdefault(str(result.lhs.base.label), result)
    return out


def derived_gradients(model: RNNModel, results: Pass, values: dict, batch: bool, samples: int | None = None) -> dict:
    """Every parameter gradient entry from the derived formulas at `values`."""
    env = _env(model, symbolic_steps(model), samples)
    lazy = _Lazy(values, _formulas(model, results, batch), env)
    out = {}
    for node in model.network.layers:
        for p in node.parameters:
            result = results.results[p.gradient]
            for idx in _extents(parameter_axes(node, p), env):
                out[(p.label, idx)] = evaluate_index_form(result.rhs, lazy, {**env, **dict(zip(result.free, idx))})
    return out


def _cost(model: RNNModel, sample: Pass, point: dict, env: dict) -> sp.Expr:
    """The loss of one sample unrolled over the steps: each node's forward rule evaluated entry by
    entry (the recursion over the steps runs as the entries ask for each other)."""
    forward = {node.out(False).label: sample.results[node.output] for node in model.network.layers}
    lazy = _Lazy(point, forward, env)
    loss = model.network.loss_node
    cost = sp.S.Zero
    for i in _extents(loss.in_axes[0], env):
        unit = tuple(map(sp.Integer, i))
        cost += evaluate_index_form(loss.kind.per_unit(loss, unit[0] if len(unit) == 1 else unit, None), lazy, env)
    return cost


def rational_network(model: RNNModel) -> bool:
    """Every node's rule and the loss map rationals to rationals (relu, identity, mse): exact checks."""
    from derive.verify_symbolic import _is_rational_valued

    loss = model.network.loss_node
    i = loss.in_indices(0, "out")
    rules = [node.call_entry(node.out_indices(), None) for node in model.network.layers]
    rules.append(loss.kind.per_unit(loss, i[0] if len(i) == 1 else i, None))
    return all(_is_rational_valued(rule.xreplace({g: 1 for g in rule.atoms(Iverson)})) for rule in rules)


def direct_gradients(model: RNNModel, sample: Pass, values: dict) -> tuple[dict, bool]:
    """∂C/∂θ by `sympy.diff` of the loss unrolled over the steps, one parameter entry at a time: the
    loss as an expression of that entry (a symbol) with every other entry at its value, so the
    expression stays small however many steps feed it."""
    env = _env(model, symbolic_steps(model), None)
    exact = rational_network(model)  # relu and mse: exact rational arithmetic
    numbers = values if exact else {k: sp.Float(v, DIGITS) for k, v in values.items()}
    out = {}
    for key in _parameters(model, env):
        theta = sp.Symbol("theta", real=True)
        cost = _cost(model, sample, {**numbers, key: theta}, env)
        d = sp.diff(cost, theta).xreplace({theta: numbers[key]})
        out[key] = d if exact else d.evalf(DIGITS)
    return out, exact


def symbolic_check(model: RNNModel, sample: Pass, seed: int = 0) -> Check:
    values = random_point(model, random.Random(seed))
    expected, exact = direct_gradients(model, sample, values)
    derived = derived_gradients(model, sample, values if exact else {k: sp.Float(v, DIGITS) for k, v in values.items()},
                                False)
    worst = sp.S.Zero
    for key, value in expected.items():
        got = derived[key] if exact else derived[key].evalf(DIGITS)
        worst = max(worst, abs(value - got) / max(sp.S.One, abs(value)))
    passed = worst == 0 if exact else worst <= TOLERANCE
    return Check("symbolic", bool(passed), {"partials": len(expected), "width": WIDTH, "steps": symbolic_steps(model),
                                            "exact": exact, "digits": DIGITS,
                                            "largest_difference": "0" if worst == 0 else f"{float(worst):.1e}"})


def minibatch_check(model: RNNModel, sample: Pass, batch: Pass, seed: int = 1, samples: int = 2) -> Check:
    """The minibatch formulas give the mean of the per-sample gradients."""
    values = {k: sp.Float(v, DIGITS) for k, v in random_point(model, random.Random(seed), samples).items()}
    derived = derived_gradients(model, batch, values, True, samples)
    total: dict = {}
    for s in range(samples):
        one = {}
        for (label, idx), v in values.items():
            if label in ("A_0", "Y") and idx[-1] == s:
                one[("a_0" if label == "A_0" else "y", idx[:-1])] = v
            elif label not in ("A_0", "Y"):
                one[(label, idx)] = v
        for key, v in derived_gradients(model, sample, one, False).items():
            total[key] = total.get(key, 0) + v / samples
    worst = max((abs(sp.N(derived[k] - total[k], DIGITS)) for k in total), default=sp.S.Zero)
    return Check("minibatch", bool(worst <= TOLERANCE),
                 {"partials": len(total), "samples": samples, "largest_difference": f"{float(worst):.1e}"})


def load_module(source: str) -> types.ModuleType:
    module = types.ModuleType("derive_generated_rnn")
    exec(compile(source, "model.py", "exec"), module.__dict__)
    return module


def derivative_check(model: RNNModel, module: types.ModuleType, workspace: types.ModuleType | None = None,
                     seed: int = 0, samples: int = 3) -> Check:
    """gradients() of model.py against central finite differences of its loss(), every entry; and the
    workspace form's gradients_into (model_inplace.py, loaded as `workspace`) against gradients()."""
    rng = np.random.default_rng(seed)
    spec = model.spec
    steps = min(spec.steps, 6)
    params = module.init_params(rng)
    X = rng.standard_normal((steps, spec.inputs, samples))
    shape = (steps, spec.units, samples) if spec.output != "last" else (spec.units, samples)
    binary = model.loss.target in ("binary", "unit")
    Y = rng.uniform(0.1, 0.9, shape) if binary else rng.standard_normal(shape)
    grads = module.gradients(params, X, Y)
    worst, count = 0.0, 0
    for name, array in params.items():
        if grads[name].shape != array.shape:
            return Check("derivatives", False, {"error": f"gradient {name} has shape {grads[name].shape}, "
                                                         f"the parameter {array.shape}"})
        for idx in np.ndindex(array.shape):
            old = array[idx]
            array[idx] = old + FD_STEP
            up = module.loss(params, X, Y)
            array[idx] = old - FD_STEP
            down = module.loss(params, X, Y)
            array[idx] = old
            fd = (up - down) / (2 * FD_STEP)
            worst = max(worst, abs(fd - grads[name][idx]) / max(1.0, abs(fd)))
            count += 1
    figures = {"partials": count, "steps": steps, "samples": samples,
               "largest_error": f"{worst:.1e}", "tolerance": f"{FD_TOLERANCE:g}"}
    passed = worst <= FD_TOLERANCE
    if workspace is not None:
        float64, float32 = workspace_errors(workspace, params, X, Y, grads)
        figures |= {"workspace_error": f"{float64:.1e}", "workspace_tolerance": f"{WORKSPACE_TOLERANCE:g}",
                    "float32_error": f"{float32:.1e}", "float32_tolerance": f"{FLOAT32_TOLERANCE:g}"}
        passed = passed and float64 <= WORKSPACE_TOLERANCE and float32 <= FLOAT32_TOLERANCE
    return Check("derivatives", bool(passed), figures)


def workspace_errors(module: types.ModuleType, params: dict, X: np.ndarray, Y: np.ndarray, grads: dict,
                     truncate: int | None = None) -> tuple[float, float]:
    """gradients_into against gradients (float64, twice with one workspace, so that a value left over
    from the first call would show; then float32), each relative to the largest entry of its gradient."""
    T, n, m = X.shape
    sizes = dict(inputs=n, hidden=params["weight_hh_l0"].shape[1], units=params["head_bias"].shape[0])

    def largest(got) -> float:
        return max(float(np.max(np.abs(got[k] - grads[k]))) / max(float(np.max(np.abs(grads[k]))), 1e-300)
                   for k in grads)

    ws = module.Workspace(m, T, np.float64, **sizes)
    module.gradients_into(ws, params, X, Y, truncate)
    float64 = largest(module.gradients_into(ws, params, X, Y, truncate))
    single = {k: v.astype(np.float32) for k, v in params.items()}
    ws32 = module.Workspace(m, T, np.float32, **sizes)
    float32 = largest(module.gradients_into(ws32, single, X.astype(np.float32), Y.astype(np.float32), truncate))
    return float64, float32
