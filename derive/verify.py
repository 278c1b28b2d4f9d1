"""The tool checks what it prints.

Three independent checks, each returning figures the documents quote:

* **symbolic**: at a small concrete size (width 2, depth ≤ 4) the loss is expanded into one scalar
  expression of all parameters and differentiated directly with `sympy.diff`; the δ-form formulas of
  the derivation are evaluated at the same random rational point and must agree — exactly when every
  function involved is rational (identity, relu, mse), otherwise to 50 significant digits.
* **minibatch**: the minibatch formulas must equal the mean of the per-sample formulas (exact).
* **derivatives**: the generated NumPy module's `gradients` against complex-step derivatives of the
  network's definition (`complex_step`; no cancellation, so one relative tolerance holds at every
  depth), and its `loss` against the definition's value.
* **stability**: its forward pass, loss and gradients under pre-activations of ±1000 with
  floating-point overflow, division by zero and invalid operations turned into errors.
* **workspace form**: the in-place `gradients_into` of model_inplace.py equals `gradients` bit for
  bit, `sgd_step` applies −lr·gradients, and float32 gradients agree with float64 ones.

Figures in the documents are rounded up to a power of ten so that documents are byte-identical
across machines whose BLAS round differently.
"""

from __future__ import annotations

import math
import types
from functools import lru_cache
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from derive import complex_step
from derive.derivation import Derivation
from derive.expr import TimeLimitExceeded, time_limit
from derive.inplace import INPLACE_FILE, load_inplace
from derive.nonsmooth import breakpoints, kink_convention
from derive.model import Model
from derive.notation import A, Q, Y, Z
from derive.verify_symbolic import Check, DirectDifferentiation, decade_bound, minibatch_check, symbolic_check

PREACTIVATION_BOUND = 3.0  # the derivative check's point: every |z| within this (see numeric_point)
KINK_MARGIN = 1e-3  # … and no z this close to a kink
DERIVATIVE_TOLERANCE = 1e-9  # relative to the largest entry of the same parameter's gradient
TINY = float(np.finfo(float).tiny)
# The loss of model.py against the definition's is printed no finer than a few units in the last place:
# below that the figure depends on the CPU (NumPy picks its exp and log kernels by instruction set, so the
# same program gives 0 on one machine and one unit in the last place on another), and the documents must
# be the same bytes everywhere
LOSS_FLOOR = 4 * float(np.finfo(float).eps)
STABILITY_SCALE = 1e3
NUMERIC_MAX_PARAMS = 2000


@dataclass
class Report:
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.ran)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


# --------------------------------------------------------------------------------------------------
# the generated code


def load_module(source: str, name: str = "derive_generated_model") -> types.ModuleType:
    """Import generated source (our own printer's output, never user text) as a fresh module."""
    module = types.ModuleType(name)
    exec(compiled_source(source, "<model.py>"), module.__dict__)  # noqa: S102 - generated code
    return module


@lru_cache(maxsize=8)
def compiled_source(source: str, filename: str) -> types.CodeType:
    """Generated source compiled once per process: a run loads model.py for the code checks, the
    training checks and the lesson's reader checks, each as a fresh module (its own namespace) of
    the one code object."""
    return compile(source, filename, "exec")


def load_package(source: str | bytes, inplace_source: str | bytes | None,
                 name: str = "derive_generated_model") -> tuple[types.ModuleType, types.ModuleType | None]:
    """model.py and model_inplace.py (None where there is none) as fresh modules, the second reading
    the first as `model`."""
    module = load_module(source, name)
    if inplace_source is None:
        return module, None
    return module, load_inplace(module, inplace_source.decode() if isinstance(inplace_source, bytes) else inplace_source,
                                f"{name}_inplace")


def load_files(files: dict[str, bytes], name: str = "derive_generated_model"):
    """`load_package` of the files a run generated (its `files`, file name → content)."""
    return load_package(files["model.py"], files.get(INPLACE_FILE), name)


def _numeric_sizes(model: Model) -> tuple[int, ...]:
    sizes = model.sizes
    if any(isinstance(s, tuple) for s in sizes):  # channels and positions: the sizes tie together
        return sizes
    count = sum(math.prod(sizes[ref.number] for ref in node.kind.parameter_axes(node, param))
                for node in model.network.layers for param in node.parameters)
    if count <= NUMERIC_MAX_PARAMS:
        return sizes
    return tuple(min(n, 6) for n in sizes)


def _numeric_targets(model: Model, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if model.loss.target == "probability":
        return np.eye(n)[:, rng.integers(0, n, size=m)]
    if model.loss.target == "binary":
        return rng.integers(0, 2, size=(n, m)).astype(float)
    if model.loss.target == "unit":
        return rng.uniform(0.1, 0.9, size=(n, m))
    return rng.standard_normal((n, m))


def numeric_point(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3,
                  bound: float = PREACTIVATION_BOUND) -> tuple:
    """(sizes, params, X, Y) in float64 where every pre-activation lies within ±bound and none within
    KINK_MARGIN of a kink; the derivative and workspace checks both run here.

    The weights are drawn by the module's `init_params` (biases from N(0, 1/4), inputs from N(0, 1));
    a layer whose pre-activations exceed the bound has its weights and bias scaled down until they
    do not. Deep in a network drawn at random some layer otherwise saturates: every unit so far into
    a flat part of its activation (silu at z = −40, gelu_tanh's output at z = −100) that float64 rounds
    its derivative to 0, the code then computes 0 for every layer below, and no comparison could tell
    a right formula from a wrong one there. Within the bound every derivative is resolved, and
    gradients still vanish or explode through depth as they do at any point.
    """
    sizes = _numeric_sizes(model)
    rng = np.random.default_rng(seed)
    kinks = np.array(sorted({0.0} | {float(p) for a in model.activations if not a.is_vector
                                      for p in breakpoints(a.expr)[0]}))
    for _ in range(20):  # stay away from kinks
        params = module.init_params(sizes, rng)
        for key in params:
            if key.startswith("b"):
                params[key] = 0.5 * rng.standard_normal(params[key].shape)
        X = rng.standard_normal((*_shape(sizes[0]), samples))
        Z = _bounded_forward(model, params, X, bound)
        if np.nanmin(np.abs(Z[:, None] - kinks[None, :])) > KINK_MARGIN:
            break
    Y = _numeric_targets(model, sizes[-1], samples, rng)
    return sizes, params, X, Y


def fixed_masks(model: Model, samples: int) -> dict:
    """The masks the numeric checks hold fixed (dropout), by code name: ones and zeros drawn from a
    fixed seed (about one entry in four zero), one column per sample; empty for a network without."""
    rng = np.random.default_rng(7)
    sizes = _numeric_sizes(model)
    return {q.batched().code(): (rng.random((sizes[node.layer.number], samples)) >= 0.25).astype(float)
            for node, q in model.network.data_inputs}


def _mask_env(model: Model, samples: int) -> dict:
    """The same masks by symbol, for evaluating the network's definition."""
    masks = fixed_masks(model, samples)
    return {q.batched().symbol: masks[q.batched().code()] for _, q in model.network.data_inputs}


def _shape(entry) -> tuple[int, ...]:
    """A layer's entry of the sizes as an array shape: n units, or (channels, rows, columns)."""
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _bounded_forward(model: Model, params: dict, X: np.ndarray, bound: float) -> np.ndarray:
    """Scale the parameters of each node that computes a pre-activation (in place) so that its
    outputs stay within ±bound (they are linear in its parameters: W a + b); the pre-activations,
    evaluated from the network's definition, as one flat array."""
    env, seen = {Q("A", 0).symbol: np.asarray(X, float),
                 **complex_step.size_environment(model, X.shape[-1], float),
                 **_mask_env(model, X.shape[-1])}, []
    with np.errstate(all="ignore"):
        for node, form in complex_step.forward_forms(model):
            for p in node.parameters:
                env[p.symbol] = params[p.code()]
            z = np.real(complex_step.evaluate(form, env))
            if node.kind.output_kind == "z" and node.parameters:
                largest = float(np.max(np.abs(z)))
                if largest > bound:  # nan compares False: left for the check to report
                    factor = bound / largest
                    for p in node.parameters:
                        params[p.code()] = env[p.symbol] = params[p.code()] * factor
                    z = z * factor
                seen.append(z.ravel())
            env[node.out(True).symbol] = z
    return np.concatenate(seen) if seen else np.zeros(0)


def _finite_point(model: Model, module: types.ModuleType, evaluate, seed: int, samples: int) -> tuple:
    """The point of `numeric_point` with the largest bound (3, 1.5, 0.75, …) at which `evaluate(params,
    X, Y)` — returning (result, arrays) — gives only finite arrays: ((sizes, params, X, Y, bound), result,
    finite). A typed exp(exp(z)) exceeds float64 at the usual bound."""
    bound = PREACTIVATION_BOUND
    for _ in range(12):
        sizes, params, X, Y = numeric_point(model, module, seed, samples, bound)
        with np.errstate(all="ignore"):
            result, arrays = evaluate(params, X, Y)
        finite = all(np.all(np.isfinite(a)) for a in arrays)
        if finite:
            break
        bound /= 2
    return (sizes, params, X, Y, bound), result, finite


DIRECTIONS = 4  # random directions per parameter array where the entries exceed NUMERIC_MAX_PARAMS


def _identically_zero(model: Model) -> set[str]:
    """The code names of the parameters whose gradient is 0 by the structure of their layer."""
    declared = {p.code() for node in model.network.layers for p in node.kind.identically_zero_gradients(node)}
    if not any(getattr(node.kind, "over_samples", False) for node in model.network.layers):
        return declared  # no batch normalisation: no bias removed by batch means (nor its module imported)
    from derive.layers.normalise import biases_removed_by_batch_means

    return declared | {p.code() for p in biases_removed_by_batch_means(model.network)}


def derivative_check(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    """`derivative_check_entries` where the copies of the network per entry are affordable (up to
    NUMERIC_MAX_PARAMS entries: every MLP, whose sizes are shrunk to reach that, and small
    convolutional networks), else `derivative_check_directions`."""
    sizes = _numeric_sizes(model)
    if any(isinstance(s, tuple) for s in sizes):
        params = module.init_params(sizes, np.random.default_rng(seed))
        if sum(v.size for v in params.values()) > NUMERIC_MAX_PARAMS:
            return derivative_check_directions(model, module, seed, samples)
    return derivative_check_entries(model, module, seed, samples)


def derivative_check_directions(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3,
                                count: int = DIRECTIONS) -> Check:
    """`gradients` of the generated code along `count` random unit directions per parameter array
    against complex-step directional derivatives of the network's definition
    (`complex_step.directional_derivatives`), and `loss` against the definition's value.

    ⟨g, v⟩ of the code's gradient g is compared with the reference relative to Σ_j |g_j v_j|, the
    sum of the absolute terms of the dot product (what its rounding is proportional to)."""
    def by_directions(params, X, Y):
        directions = complex_step.random_directions(model, params, count, seed + 11)
        along, value, scale = complex_step.directional_derivatives(model, params, X, Y, directions,
                                                                   data=_mask_env(model, X.shape[-1]))
        return (along, directions, value, scale), [value, *along.values()]

    (sizes, params, X, Y, bound), (reference, directions, expected, scale), finite = _finite_point(
        model, module, by_directions, seed, samples)
    grads, value = _code_gradients(model, module, params, X, Y)
    terms = {key: np.abs(directions[key]) @ np.abs(np.ravel(grads[key])) for key in reference}
    overall = max((float(np.max(t)) for t in terms.values()), default=0.0)
    for key in _identically_zero(model) & set(terms):  # its terms are rounding noise: the network's scale
        terms[key] = np.zeros_like(terms[key])
    worst, smallest, largest = 0.0, math.inf, 0.0
    for key, ref in reference.items():
        got = directions[key] @ np.ravel(grads[key])
        size_of = float(np.max(np.abs(ref)))
        smallest, largest = min(smallest, size_of), max(largest, size_of)
        error = float(np.max(np.abs(got - ref) / np.maximum(np.where(terms[key] > 0, terms[key], overall), TINY)))
        worst = max(worst, error if math.isfinite(error) else math.inf)
    figures = {"method": "directional", "directions": sum(len(d) for d in directions.values()), "per_parameter": count,
               "partials": sum(np.size(params[key]) for key in reference)}
    return _derivative_result(figures, (sizes, samples, bound), finite, worst, (value, expected, scale),
                              (smallest, largest))


def derivative_check_entries(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    """`gradients` of the generated code against complex-step derivatives of the network's definition
    (see `complex_step`), entry by entry, and `loss` against the definition's value.

    Each entry is compared relative to the largest reference entry of its own parameter array, so a
    layer whose gradients have vanished to 1e-40 is checked as strictly as the output layer. If the
    values at the point exceed float64 (a typed exp(exp(z))), the bound on the pre-activations is
    halved until they do not, and the document says so.
    """
    def by_complex_step(params, X, Y):
        grads, value, scale = complex_step.gradients(model, params, X, Y, data=_mask_env(model, X.shape[-1]))
        return (grads, value, scale), [value, *grads.values()]

    (sizes, params, X, Y, bound), (reference, expected, scale), finite = _finite_point(
        model, module, by_complex_step, seed, samples)
    grads, value = _code_gradients(model, module, params, X, Y)
    worst, smallest, largest = 0.0, math.inf, 0.0
    overall = max(float(np.max(np.abs(ref))) for ref in reference.values()) if reference else 0.0
    structural = _identically_zero(model)
    for key, ref in reference.items():
        size_of = float(np.max(np.abs(ref)))
        smallest, largest = min(smallest, size_of), max(largest, size_of)
        # an array whose derivative is 0 has no scale of its own: its rounding noise is measured
        # against the largest gradient of the network. That is an exact 0 from the complex step (a
        # bias before a batch normalisation, which the batch mean removes) or a parameter its kind
        # declares (the key bias of attention gets 1e-18 from the complex step); any other array,
        # however small (the first layer of a deep sigmoid network), is measured on its own scale
        own = size_of if size_of > 0 and key not in structural else overall
        error = float(np.max(np.abs(grads[key] - ref))) / max(own, TINY)
        worst = max(worst, error if math.isfinite(error) else math.inf)
    figures = {"partials": sum(r.size for r in reference.values())}
    if hasattr(module, "backprop") and not model.network.data_inputs:  # the loop form: the same numbers
        with np.errstate(all="ignore"):
            looped = module.backprop(params, X, Y)
        loop = max(float(np.max(np.abs(looped[key] - grads[key]))) / max(float(np.max(np.abs(grads[key]))), TINY)
                   for key in grads)
        figures["loop_error"] = "0" if loop == 0 else decade_bound(loop)
        worst = max(worst, loop if math.isfinite(loop) else math.inf)
    if model.is_chain and not model.network.data_inputs:  # the reader's own gradient check (exercise 5), run
        from derive.lesson.practice import run_check_script

        printed = run_check_script(model, module)
        if printed is not None:
            figures["exercise"] = printed
    return _derivative_result(figures, (sizes, samples, bound), finite, worst, (value, expected, scale),
                              (smallest, largest))


def _code_gradients(model: Model, module: types.ModuleType, params: dict, X, Y) -> tuple[dict, float]:
    """The generated code's gradients and loss at a point, with the dropout masks held fixed as in the
    derivation (and the module back in evaluation mode afterwards)."""
    if model.network.data_inputs:
        module.dropout_mode("fixed", masks=fixed_masks(model, X.shape[-1]))
    with np.errstate(all="ignore"):
        grads, value = module.gradients(params, X, Y), module.loss(params, X, Y)
    if model.network.data_inputs:
        module.dropout_mode("eval")
    return grads, value


def _derivative_result(figures: dict, point: tuple, finite: bool, worst: float, loss: tuple, extent: tuple) -> Check:
    """The derivative check's verdict and figures, shared by the per-entry and the directional form:
    `point` is (sizes, samples, bound), `loss` (the code's value, the reference, its scale) and
    `extent` the smallest and largest gradient seen."""
    (sizes, samples, bound), (value, expected, scale), (smallest, largest) = point, loss, extent
    loss_error = abs(value - expected) / max(scale, TINY) if math.isfinite(value) else math.inf
    passed = finite and worst <= DERIVATIVE_TOLERANCE and loss_error <= DERIVATIVE_TOLERANCE
    figures = {
        **figures,
        "sizes": list(sizes),
        "samples": samples,
        "bound": bound,
        "step": decade_bound(complex_step.STEP),
        "largest_error": decade_bound(worst) if finite else "nan",
        "loss_error": decade_bound(max(loss_error, LOSS_FLOOR)) if finite else "nan",
        "tolerance": decade_bound(DERIVATIVE_TOLERANCE),
        "smallest_gradient": _decade_floor(smallest) if finite else "nan",
        "largest_gradient": decade_bound(largest) if finite else "nan",
    }
    if not passed:
        figures["error"] = _derivative_failure(finite, worst, loss_error)
    return Check("derivatives", bool(passed), figures=figures)


def _derivative_failure(finite: bool, worst: float, loss_error: float) -> str:
    tolerance = decade_bound(DERIVATIVE_TOLERANCE)
    if not finite:
        return "the values of the network exceed float64 at every test point tried"
    if worst > DERIVATIVE_TOLERANCE:
        return (f"the gradients of model.py differ from complex-step derivatives of the network by up to "
                f"{decade_bound(worst)} (relative; tolerance {tolerance})")
    return f"the loss of model.py differs from the network's definition by up to {decade_bound(loss_error)} (relative; tolerance {tolerance})"


def _decade_floor(x: float) -> str:
    """The largest power of ten ≤ x ('1e-45'), '0' for zero: with `decade_bound`, the range of sizes."""
    return "0" if x == 0 else f"1e{math.floor(math.log10(x))}"


def stability_check(model: Model, module: types.ModuleType, seed: int = 0,
                    inplace: types.ModuleType | None = None) -> Check:
    """Forward, loss and gradients under huge pre-activations, with FP errors raised.

    When a scenario fails, the same forward pass is recomputed exactly (SymPy floats, no exponent
    limit): if its true values exceed the float64 range (exp(z) at z = 1000), the overflow belongs to
    the function, not to the code, and the check is reported as not applicable instead of failed.
    """
    sizes = _numeric_sizes(model)
    rng = np.random.default_rng(seed)
    largest = 0.0
    passed, inherent, largest_exact = True, True, sp.S.Zero
    for scenario in ("input", "output"):
        params = module.init_params(sizes, rng)
        X = rng.standard_normal((*_shape(sizes[0]), 4))
        if scenario == "input":
            X *= STABILITY_SCALE
        else:
            last = [key for key, value in params.items() if value.ndim >= 2][-1]  # the output layer's weights
            params[last] = params[last] * STABILITY_SCALE / max(np.abs(params[last]).max(), 1e-12)
            X = np.sign(X) * 3.0
        Y = _numeric_targets(model, sizes[-1], 4, rng)
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                module.forward(params, X)
                value = module.loss(params, X, Y)
                grads = module.gradients(params, X, Y)
                finite = np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
                if inplace is not None:  # the workspace form evaluates the same forms
                    ws = inplace.Workspace(sizes, 4)
                    grads = inplace.gradients_into(ws, params, X, Y)
                    stepped = {k: v.copy() for k, v in params.items()}
                    inplace.sgd_step(ws, stepped, X, Y, 0.1)
                    finite = finite and all(np.all(np.isfinite(g)) for g in [*grads.values(), *stepped.values()])
        except FloatingPointError:
            finite = False
        with np.errstate(all="ignore"):
            cache = module.forward(params, X)
        Z = np.concatenate([np.abs(v).ravel() for k, v in cache.items() if k.startswith("Z")])
        largest = max(largest, float(np.max(np.where(np.isnan(Z), np.inf, Z))))
        if not finite:
            passed = False
            if not model.is_chain:  # the exact recomputation follows the layers of a chain
                inherent = False
                continue
            try:
                with np.errstate(all="ignore"), time_limit(EXACT_SECONDS):  # mpmath may raise FPU flags
                    exact = exact_largest(model, params, X, Y)
            except (TimeLimitExceeded, ValueError, OverflowError, ArithmeticError):
                sp.core.cache.clear_cache()
                exact = sp.oo  # values too large for even SymPy's floats to reach in time
            largest_exact = max(largest_exact, exact)
            inherent &= exact > FLOAT64_MAX
    figures = {"largest_preactivation": decade_bound(largest)}
    if not passed and inherent:
        figures["largest_exact"] = _decade_text(largest_exact)
        return Check("stability", True, ran=False, figures=figures)
    return Check("stability", passed, figures=figures)


FLOAT64_MAX = sp.Float(np.finfo(float).max)
EXACT_SECONDS = 5.0


def _decade_text(x: sp.Expr) -> str:
    """A power of ten at least x for numbers beyond float range: '1e434' ('inf' when unreachable)."""
    if x == sp.oo:
        return "inf"
    exponent = int(mpmath.ceil(mpmath.log10(mpmath.mpf(sp.Float(x, 20)._mpf_))))
    if exponent >= 10**12:  # a tower: 10^(10^k) bounds it
        return f"1e1e{int(mpmath.ceil(mpmath.log10(exponent)))}"
    return f"1e{exponent}"


def exact_largest(model: Model, params: dict, X: np.ndarray, targets: np.ndarray) -> sp.Expr:
    """The largest magnitude among the exact pre-activations, activations, activation derivatives and
    loss terms of the network at (params, X, Y), in SymPy floats (whose exponents have no limit)."""
    digits = 20

    def exact(array):
        return np.vectorize(lambda v: sp.Float(float(v), digits), otypes=[object])(np.asarray(array, dtype=float))

    def apply(expr, variables, *arrays):
        return np.vectorize(lambda *vs: expr.xreplace(dict(zip(variables, vs))).evalf(digits), otypes=[object])(*arrays)

    largest = sp.S.Zero
    outputs = exact(X)
    for layer in range(1, model.depth + 1):
        pre = np.dot(exact(params[f"W{layer}"]), outputs) + exact(params[f"b{layer}"])
        act = model.activations[layer - 1]
        if act.is_vector:
            powers = np.vectorize(sp.exp, otypes=[object])(pre)
            total = powers.sum(axis=0, keepdims=True)
            outputs = powers / total if act.is_softmax else pre - np.vectorize(sp.log, otypes=[object])(total)
            values = [pre, outputs]
        else:
            outputs = apply(act.expr, (Z,), pre)
            values = [pre, outputs, apply(kink_convention(sp.diff(act.expr, Z)), (Z,), pre)]
        for array in values:
            largest = max([largest] + [abs(v) for v in array.ravel() if v.is_Number])
        if largest > FLOAT64_MAX:  # settled: deeper layers would only take longer to evaluate
            return largest
    ell, dell = model.loss.expr, kink_convention(sp.diff(model.loss.expr, A))
    for expr in (ell, dell):
        terms = apply(expr, (A, Y), outputs, exact(targets))
        largest = max([largest] + [abs(v) for v in terms.ravel() if v.is_Number])
    return largest


WORKSPACE_STEP_TOL = 1e-12  # sgd_step against params − lr·gradients, relative to the largest entry
FLOAT32_REL_TOL = 1e-4  # float32 gradients against float64 ones, relative to the largest gradient entry
FLOAT32_MAX = float(np.finfo(np.float32).max) / 1e4  # values this large leave float32 no headroom


def workspace_check(model: Model, module: types.ModuleType, inplace: types.ModuleType | None,
                    seed: int = 0, samples: int = 3) -> Check:
    """The workspace form of the generated code (model_inplace.py, loaded as `inplace`; None where the
    code has none) against `gradients` of model.py, at the derivative check's point.

    `gradients_into` must give exactly the same numbers (float64, bit for bit) on two calls in a row
    with one workspace; `sgd_step` must move every parameter by −lr·gradients; in float32 every
    gradient entry must agree with float64 to FLOAT32_REL_TOL of the network's largest gradient entry,
    the size a training step is made of. Relative to a parameter's own gradient the difference is
    reported, not required: where gradients have vanished through many saturated units, float32
    keeps fewer of their digits (1 − a² of a = tanh(4) has three), whatever the code.
    """
    if inplace is None:
        return Check("workspace", True, ran=False)
    def plain(params, X, Y):
        grads = module.gradients(params, X, Y)
        return grads, [module.loss(params, X, Y), *grads.values()]

    (sizes, params, X, Y, _), expected, _ = _finite_point(model, module, plain, seed, samples)
    ws = inplace.Workspace(sizes, samples, np.float64)
    first = {k: v.copy() for k, v in inplace.gradients_into(ws, params, X, Y).items()}
    second = inplace.gradients_into(ws, params, X, Y)
    exact = sorted(first) == sorted(expected) and all(
        np.array_equal(first[k], expected[k]) and np.array_equal(second[k], expected[k]) for k in expected
    )
    lr = 0.1
    stepped = {k: v.copy() for k, v in params.items()}
    inplace.sgd_step(ws, stepped, X, Y, lr)
    step_error = max(  # relative to the larger of the parameters and the step itself
        float(np.max(np.abs(stepped[k] - (params[k] - lr * expected[k]))))
        / max(float(np.max(np.abs(params[k]))), lr * float(np.max(np.abs(expected[k]))), 1.0)
        for k in params
    )
    single = {k: v.astype(np.float32) for k, v in params.items()}
    ws32 = inplace.Workspace(sizes, samples, np.float32)
    with np.errstate(all="ignore"):
        low = inplace.gradients_into(ws32, single, X.astype(np.float32), Y.astype(np.float32))
        cache = module.forward(params, X)
    largest = max(float(np.max(np.abs(v))) for v in [*cache.values(), *expected.values()])
    float32_applies = largest < FLOAT32_MAX and all(np.all(np.isfinite(g)) for g in low.values())
    float32_error = own_error = None
    if float32_applies:  # measured against the largest gradient of the network, and of each parameter
        differences = {k: float(np.max(np.abs(low[k] - expected[k]))) for k in expected}
        sizes_of = {k: float(np.max(np.abs(expected[k]))) for k in expected}
        float32_error = max(differences.values()) / max(max(sizes_of.values()), TINY)
        own_error = max(differences[k] / max(sizes_of[k], TINY) for k in expected)
    passed = exact and step_error <= WORKSPACE_STEP_TOL and (not float32_applies or float32_error <= FLOAT32_REL_TOL)
    figures = {
        "partials": sum(v.size for v in expected.values()),
        "sizes": list(sizes),
        "samples": samples,
        "exact": bool(exact),
        "step_error": decade_bound(step_error),
        "float32_error": None if float32_error is None else decade_bound(float32_error),
        "float32_own_error": None if own_error is None else decade_bound(own_error),
        "float32_tolerance": decade_bound(FLOAT32_REL_TOL),
    }
    if not passed:
        figures["error"] = ("gradients_into does not give exactly the numbers of gradients" if not exact else
                            f"sgd_step differs from params − lr·gradients by {decade_bound(step_error)}"
                            if step_error > WORKSPACE_STEP_TOL else
                            f"float32 gradients differ from float64 ones by up to {decade_bound(float32_error)} of the "
                            f"largest gradient (tolerance {decade_bound(FLOAT32_REL_TOL)})")
    return Check("workspace", bool(passed), figures=figures)


# --------------------------------------------------------------------------------------------------


def derivation_figures(derivation: Derivation) -> list[Check]:
    """What the engine proved while deriving: matrix forms entry by entry, readable derivatives."""
    results = [r for p in derivation.passes() for r in p.results.values() if r.free or r.name != "cost"]
    recognised = sum(1 for r in results if r.recognition_proved)
    readable = [d for d in derivation.activation_derivatives if d.in_terms_of_output is not None]
    return [
        Check("recognition", recognised == len(results), figures={"formulas": len(results), "proved": recognised}),
        Check(
            "readable_forms",
            all(d.proof for d in readable),
            figures={"found": len(readable), "methods": sorted({d.proof for d in readable})},
        ),
    ]


def verify(derivation: Derivation, source: str, direct: DirectDifferentiation | None = None,
           minibatch=None, inplace_source: str | None = None) -> Report:
    """Run every check of model.py (`source`) and of model_inplace.py (`inplace_source`, where the code
    has a workspace form); `direct` is the direct differentiation and `minibatch` the minibatch check
    (an object whose `result()` gives its `Check`) if they were started earlier."""
    module, inplace = load_package(source, inplace_source)
    complex_step.remember_forward_forms(derivation)
    # the symbolic check runs last: it waits for the direct differentiation, which may still be
    # running in a second process while the checks that do not need it run here
    later = [derivative_check(derivation.model, module), stability_check(derivation.model, module, inplace=inplace),
             workspace_check(derivation.model, module, inplace)]
    later += derivation_figures(derivation)
    batch = minibatch.result() if minibatch is not None else minibatch_check(derivation)
    return Report([symbolic_check(derivation, direct), batch, *later])
