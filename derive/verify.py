"""The tool checks what it prints.

Three independent checks, each returning figures the documents quote:

* **symbolic**: at a small concrete size (width 2, depth ≤ 4) the loss is expanded into one scalar
  expression of all parameters and differentiated directly with `sympy.diff`; the δ-form formulas of
  the derivation are evaluated at the same random rational point and must agree — exactly when every
  function involved is rational (identity, relu, mse), otherwise to 50 significant digits.
* **minibatch**: the minibatch formulas must equal the mean of the per-sample formulas (exact).
* **finite differences**: the generated NumPy module's `gradients` against central differences of its
  own `loss` in float64, and its forward pass, loss and gradients under pre-activations of ±1000
  with floating-point overflow, division by zero and invalid operations turned into errors.
* **workspace form**: the module's in-place `gradients_into` equals `gradients` bit for bit,
  `sgd_step` applies −lr·gradients, and float32 gradients agree with float64 ones.

Figures in the documents are rounded up to a power of ten so that documents are byte-identical
across machines whose BLAS round differently.
"""

from __future__ import annotations

import math
import random
import types
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.expr import TimeLimitExceeded, time_limit
from derive.indexing import transform
from derive.matrixform import evaluate_index_form
from derive.nonsmooth import breakpoints, kink_convention
from derive.model import Model
from derive.notation import BATCH_SIZE, A, LayerRef, Q, Y, Z, size
from derive.verify_symbolic import (  # noqa: F401 - part of this module's interface
    DIGITS,
    SYMBOLIC_MAX_DEPTH,
    SYMBOLIC_WIDTH,
    UNEVALUABLE,
    Check,
    DirectDifferentiation,
    decade_bound,
    direct_gradients,
    minibatch_check,
    symbolic_check,
    symbolic_point,
)
from derive.nonsmooth import NON_SMOOTH

FD_STEP = 1e-5
FD_SPREAD = 10.0  # activations up to this size keep the full step for the weights they multiply
FD_ABS_TOL = 1e-7
FD_REL_TOL = 1e-5
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
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - generated code
    return module


def _numeric_sizes(model: Model) -> tuple[int, ...]:
    sizes = model.sizes
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


def numeric_point(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> tuple:
    """(sizes, params, X, Y) in float64 where no pre-activation is within 100 difference steps of 0
    (away from kinks); the finite-difference and workspace checks both run here."""
    sizes = _numeric_sizes(model)
    rng = np.random.default_rng(seed)
    kinks = np.array(sorted({0.0} | {float(p) for a in model.activations if not a.is_vector
                                      for p in breakpoints(a.expr)[0]}))
    for _ in range(20):  # stay away from kinks: no pre-activation within the difference step
        params = module.init_params(sizes, rng)
        for key in params:
            if key.startswith("b"):
                params[key] = 0.5 * rng.standard_normal(params[key].shape)
        X = rng.standard_normal((sizes[0], samples))
        with np.errstate(all="ignore"):
            cache = module.forward(params, X)
        Z = np.concatenate([v.ravel() for k, v in cache.items() if k.startswith("Z")])
        if np.nanmin(np.abs(Z[:, None] - kinks[None, :])) > 100 * FD_STEP:
            break
    Y = _numeric_targets(model, sizes[-1], samples, rng)
    return sizes, params, X, Y


def _within_tolerance(gradient: float, difference: float) -> bool:
    """The code's gradient agrees with a finite-difference estimate (False when either is nan)."""
    return bool(abs(gradient - difference) <= FD_ABS_TOL + FD_REL_TOL * abs(difference))


def _central_difference(module: types.ModuleType, params: dict, X, Y, theta, pos, step: float) -> tuple[float, bool]:
    """(loss(θ + h) − loss(θ − h)) / 2h for one entry, and whether both values were finite."""
    original = theta[pos]
    with np.errstate(all="ignore"):  # a non-finite value fails the comparison of the caller
        theta[pos] = original + step
        up = module.loss(params, X, Y)
        theta[pos] = original - step
        down = module.loss(params, X, Y)
    theta[pos] = original
    return (up - down) / (2 * step), bool(math.isfinite(up) and math.isfinite(down))


def _finite_differences(module: types.ModuleType, params: dict, X: np.ndarray, Y: np.ndarray) -> dict:
    """Central differences of `loss` against `gradients` on every parameter, at one point.

    Where the loss curves strongly (a typed activation such as 3 z sin z feeding another layer has
    third derivatives of order 10⁵), the truncation error h² f‴/6 of the central difference alone
    exceeds the tolerance although the gradient is right; for those entries the difference at 2h is
    also taken and Richardson's extrapolation (4 D(h) − D(2h))/3, whose error is of order h⁴, is the
    estimate compared. How many entries needed it is reported.
    """
    with np.errstate(all="ignore"):
        grads = module.gradients(params, X, Y)
        cache = module.forward(params, X)
    worst_abs = worst_rel = 0.0
    passed, nonfinite, count, extrapolated, smallest_step = True, False, 0, 0, FD_STEP
    for key in sorted(params):
        theta = params[key]
        inputs = cache.get(f"A{int(key[1:]) - 1}") if key.startswith("W") else None
        for pos in np.ndindex(theta.shape):
            # W[p, q] moves z[p, s] by step × A[q, s]: where those activations are large (cosh(z)**64
            # reaches 1e31) the step shrinks in proportion, so the difference stays a derivative
            largest = 0.0 if inputs is None else float(np.max(np.abs(inputs[pos[1]])))
            spread = largest if largest > FD_SPREAD else 1.0
            step = FD_STEP / spread
            smallest_step = min(smallest_step, step)
            g = float(grads[key][pos])
            fd, finite = _central_difference(module, params, X, Y, theta, pos, step)
            if finite and not _within_tolerance(g, fd):
                wide, finite = _central_difference(module, params, X, Y, theta, pos, 2 * step)
                fd = (4 * fd - wide) / 3
                extrapolated += 1
            err = abs(g - fd)
            nonfinite |= not (math.isfinite(err) and finite)
            worst_abs = max(worst_abs, err)
            worst_rel = max(worst_rel, err / max(abs(g) + abs(fd), 1e-12))
            passed &= _within_tolerance(g, fd)  # False for nan
            count += 1
    return {"passed": passed, "nonfinite": nonfinite, "count": count, "step": smallest_step,
            "abs": worst_abs, "rel": worst_rel, "extrapolated": extrapolated}


def finite_difference_check(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    sizes, params, X, Y = numeric_point(model, module, seed, samples)
    scale = 1.0
    for attempt in range(9):
        with np.errstate(all="ignore"):
            value, grads = module.loss(params, X, Y), module.gradients(params, X, Y)
        if np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values()):
            measured = _finite_differences(module, params, X, Y)
            if not measured["nonfinite"] or attempt == 8:
                break
        # values (or the perturbed values) beyond float64 at this point, as exp(exp(z)) or exp(10 z)
        # reach: the same check at a smaller point (the document says by how much)
        scale /= 2
        params = {k: v / 2 for k, v in params.items()}
        X = X / 2
    else:
        measured = _finite_differences(module, params, X, Y)
    return Check(
        "finite_differences",
        bool(measured["passed"]),
        figures={
            "partials": measured["count"],
            "sizes": list(sizes),
            "samples": samples,
            "scale": scale,
            "step": measured["step"],
            "largest_absolute_error": "nan" if measured["nonfinite"] else decade_bound(measured["abs"]),
            "largest_relative_error": "nan" if measured["nonfinite"] else decade_bound(measured["rel"]),
            "extrapolated": measured["extrapolated"],
        },
    )


def stability_check(model: Model, module: types.ModuleType, seed: int = 0) -> Check:
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
        X = rng.standard_normal((sizes[0], 4))
        if scenario == "input":
            X *= STABILITY_SCALE
        else:
            last = f"W{model.depth}"
            params[last] = params[last] * STABILITY_SCALE / max(np.abs(params[last]).max(), 1e-12)
            X = np.sign(X) * 3.0
        Y = _numeric_targets(model, sizes[-1], 4, rng)
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                module.forward(params, X)
                value = module.loss(params, X, Y)
                grads = module.gradients(params, X, Y)
                finite = np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
                if hasattr(module, "gradients_into"):  # the workspace form evaluates the same forms
                    ws = module.Workspace(sizes, 4)
                    grads = module.gradients_into(ws, params, X, Y)
                    stepped = {k: v.copy() for k, v in params.items()}
                    module.sgd_step(ws, stepped, X, Y, 0.1)
                    finite = finite and all(np.all(np.isfinite(g)) for g in [*grads.values(), *stepped.values()])
        except FloatingPointError:
            finite = False
        with np.errstate(all="ignore"):
            cache = module.forward(params, X)
        Z = np.concatenate([np.abs(v).ravel() for k, v in cache.items() if k.startswith("Z")])
        largest = max(largest, float(np.max(np.where(np.isnan(Z), np.inf, Z))))
        if not finite:
            passed = False
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
FLOAT32_REL_TOL = 1e-4  # float32 gradients against float64 ones, relative (in norm, per parameter)
FLOAT32_MAX = float(np.finfo(np.float32).max) / 1e4  # values this large leave float32 no headroom


def workspace_check(model: Model, module: types.ModuleType, seed: int = 0, samples: int = 3) -> Check:
    """The workspace form of the generated code against `gradients`, at the finite-difference point.

    `gradients_into` must give exactly the same numbers (float64, bit for bit) on two calls in a row
    with one workspace; `sgd_step` must move every parameter by −lr·gradients; in float32 the
    gradients must agree with float64 to FLOAT32_REL_TOL (relative, in norm, per parameter).
    """
    if not hasattr(module, "gradients_into"):
        return Check("workspace", True, ran=False)
    sizes, params, X, Y = numeric_point(model, module, seed, samples)
    for _ in range(8):  # values beyond float64 here: the smaller point of the finite-difference check
        with np.errstate(all="ignore"):
            expected = module.gradients(params, X, Y)
            value = module.loss(params, X, Y)
        if np.isfinite(value) and all(np.all(np.isfinite(g)) for g in expected.values()):
            break
        params = {k: v / 2 for k, v in params.items()}
        X = X / 2
    ws = module.Workspace(sizes, samples, np.float64)
    first = {k: v.copy() for k, v in module.gradients_into(ws, params, X, Y).items()}
    second = module.gradients_into(ws, params, X, Y)
    exact = sorted(first) == sorted(expected) and all(
        np.array_equal(first[k], expected[k]) and np.array_equal(second[k], expected[k]) for k in expected
    )
    lr = 0.1
    stepped = {k: v.copy() for k, v in params.items()}
    module.sgd_step(ws, stepped, X, Y, lr)
    step_error = max(  # relative to the larger of the parameters and the step itself
        float(np.max(np.abs(stepped[k] - (params[k] - lr * expected[k]))))
        / max(float(np.max(np.abs(params[k]))), lr * float(np.max(np.abs(expected[k]))), 1.0)
        for k in params
    )
    single = {k: v.astype(np.float32) for k, v in params.items()}
    ws32 = module.Workspace(sizes, samples, np.float32)
    with np.errstate(all="ignore"):
        low = module.gradients_into(ws32, single, X.astype(np.float32), Y.astype(np.float32))
        cache = module.forward(params, X)
    largest = max(float(np.max(np.abs(v))) for v in [*cache.values(), *expected.values()])
    float32_applies = largest < FLOAT32_MAX and all(np.all(np.isfinite(g)) for g in low.values())
    float32_error = max(
        float(np.linalg.norm(low[k] - expected[k]) / max(float(np.linalg.norm(expected[k])), 1e-30)) for k in expected
    ) if float32_applies else None
    passed = exact and step_error <= WORKSPACE_STEP_TOL and (not float32_applies or float32_error <= FLOAT32_REL_TOL)
    return Check(
        "workspace",
        bool(passed),
        figures={
            "partials": sum(v.size for v in expected.values()),
            "sizes": list(sizes),
            "samples": samples,
            "exact": bool(exact),
            "step_error": decade_bound(step_error),
            "float32_error": None if float32_error is None else decade_bound(float32_error),
            "float32_tolerance": decade_bound(FLOAT32_REL_TOL),
        },
    )


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


def verify(derivation: Derivation, source: str, direct: DirectDifferentiation | None = None) -> Report:
    """Run every check; `direct` is the direct differentiation if it was started earlier."""
    module = load_module(source)
    checks = [symbolic_check(derivation, direct), minibatch_check(derivation)]
    checks += [finite_difference_check(derivation.model, module), stability_check(derivation.model, module)]
    checks.append(workspace_check(derivation.model, module))
    checks += derivation_figures(derivation)
    return Report(checks)
