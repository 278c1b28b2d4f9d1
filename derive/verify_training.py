"""Checks of the generated training code, in the spirit of `verify`: the tool checks what it writes.

* **optimizer_code**: a few steps of the generated `update` on random parameters and gradients equal
  the optimizer's equations (the catalog's SymPy assignments, translated by SymPy to mpmath, not by
  our NumPy printer) evaluated in 30-digit arithmetic, with this run's hyper-parameters and again
  with every hyper-parameter set to a non-default value (flags switched), so that every term of the
  code is exercised.
* **initial_weights**: `init_params` at 100 units per layer draws every weight matrix with a sample
  variance within 10 % of the derived variance (10⁴ draws per layer: the sampling error is ~1.4 %).
* **training_loop**: `train` runs two epochs on random data and records finite values.

Figures are rounded up to powers of ten, as in `verify`, so documents stay byte-identical.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from derive.initialisation import Initialisation
from derive.model import Model
from derive.notation import LayerRef, size
from derive.training import Training
from derive.notation import GRAD, STEP, THETA
from derive.verify import Check, _numeric_targets, decade_bound, load_module

UPDATE_STEPS = 3
# non-default values for the second configuration of the optimizer check (flags are switched)
PROBE = {"lr": 0.03, "momentum": 0.7, "dampening": 0.2, "weight_decay": 0.05, "eps": 1e-3, "alpha": 0.8,
         "betas": (0.7, 0.9), "lr_decay": 0.1, "initial_accumulator_value": 0.3}
DIGITS = 30
UPDATE_TOLERANCE = 1e-12
INIT_UNITS = 100
INIT_TOLERANCE = 0.1


def _reference_steps(training: Training, values: dict) -> tuple[list, list, dict]:
    """The optimizer's assignments at these hyper-parameters as mpmath functions (SymPy's mpmath
    translation of each catalog equation, independent of the NumPy printer), made once for every
    parameter array they are applied to: the state's names, the steps and the state's start."""
    opt = training.optimizer
    hyper = {}
    for h in opt.hypers:
        for sym, v in zip(h.symbols, values[h.name] if h.kind == "pair" else (values[h.name],)):
            hyper[sym] = sp.true if v is True else sp.false if v is False else sp.Float(float(v), DIGITS)
    names = [THETA, GRAD, STEP] + [a.target for a in opt.equations if a.target not in (THETA,)]
    names += [s.symbol for s in opt.state]
    names = list(dict.fromkeys(names))
    steps = [(a.target, sp.lambdify(names, a.value.xreplace(hyper), "mpmath")) for a in opt.equations]
    initial = {s.symbol: s.initial.xreplace(hyper) for s in opt.state}
    return names, steps, initial


def _reference_update(reference: tuple[list, list, dict], theta: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """θ after len(grads) steps of `_reference_steps`, every entry in 30-digit arithmetic."""
    import mpmath

    names, steps, initial = reference
    out = np.empty_like(theta)
    with mpmath.workdps(DIGITS):
        start = {sym: mpmath.mpf(str(sp.N(value, DIGITS))) for sym, value in initial.items()}
        for pos in np.ndindex(theta.shape):
            current = dict.fromkeys(names, mpmath.mpf(0))
            current[THETA] = mpmath.mpf(float(theta[pos]))
            current.update(start)
            for t, grad in enumerate(grads, start=1):
                current[GRAD] = mpmath.mpf(float(grad[pos]))
                current[STEP] = t
                for target, f in steps:
                    current[target] = f(*[current[n] for n in names])
            out[pos] = float(current[THETA])
    return out


def _configurations(training: Training) -> list[dict]:
    opt = training.optimizer
    probe = {h.name: (not training.values[h.name]) if h.kind == "flag" else PROBE[h.name] for h in opt.hypers}
    return [dict(training.values), probe]


def optimizer_check(training: Training, module, seed: int = 0) -> Check:
    rng = np.random.default_rng(seed)
    opt = training.optimizer
    worst, entries = 0.0, 0
    for values in _configurations(training):
        params = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal((2, 1))}
        start = {k: v.copy() for k, v in params.items()}
        grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(UPDATE_STEPS)]
        state = module.init_state(params, **{h.name: values[h.name] for h in opt.hypers if h.init_only})
        for g in grads:
            module.update(params, g, state, **{h.name: values[h.name] for h in opt.hypers if not h.init_only})
        reference = _reference_steps(training, values)
        for key in params:
            expected = _reference_update(reference, start[key], [g[key] for g in grads])
            worst = max(worst, float(np.max(np.abs(params[key] - expected) / np.maximum(np.abs(expected), 1e-300))))
            entries += params[key].size
    return Check("optimizer_code", bool(worst <= UPDATE_TOLERANCE), figures={
        "steps": UPDATE_STEPS, "entries": entries, "optimizer": opt.name,
        "error": "$0$" if worst == 0 else _power(decade_bound(worst)),
    })


def _pooled_draws(model: Model, module, seed: int) -> tuple[dict, dict]:
    """A network of channels and positions has its own sizes (kernels of a few dozen entries): the
    weights of several draws are pooled until each has INIT_UNITS² entries, as a vector network has."""
    from derive.windowsizes import size_values

    rng = np.random.default_rng(seed)
    draws = [module.init_params(model.sizes, rng)]
    smallest = min(v.size for v in draws[0].values())
    while len(draws) * smallest < INIT_UNITS * INIT_UNITS:
        draws.append(module.init_params(model.sizes, rng))
    params = {key: np.concatenate([d[key].ravel() for d in draws]) for key in draws[0]}
    return params, size_values(model.network)


def initial_weights_check(model: Model, init: Initialisation, module, seed: int = 0) -> Check:
    if any(isinstance(entry, tuple) for entry in model.sizes):
        params, values = _pooled_draws(model, module, seed)
    else:
        sizes = (INIT_UNITS,) * (model.depth + 1)
        params = module.init_params(sizes, np.random.default_rng(seed))
        values = {size(LayerRef(l)): INIT_UNITS for l in range(model.depth + 1)}
    worst = 0.0
    weights = {scale.weight.code() for scale in init.layers}
    for layer in init.layers:
        expected = float(layer.variance.xreplace(values))
        observed = float(np.var(params[layer.weight.code()]))
        worst = max(worst, abs(observed / expected - 1))
    starts = {p.code(): node.kind.initial_value(node, p) for node in model.network.layers for p in node.parameters}
    if any(np.any(value != starts.get(key, 0)) for key, value in params.items() if key not in weights):
        worst = float("inf")  # biases start at zero, a normalisation's scale γ at one
    return Check("initial_weights", bool(worst <= INIT_TOLERANCE), figures={
        "units": INIT_UNITS, "tolerance": f"{INIT_TOLERANCE:.0%}",
        "deviation": f"{worst:.1%}",
    })


def training_loop_check(model: Model, module, seed: int = 0) -> Check:
    rng = np.random.default_rng(seed)
    nested = any(isinstance(entry, tuple) for entry in model.sizes)
    sizes = model.sizes if nested or sum(model.sizes) <= 2000 else tuple(min(n, 6) for n in model.sizes)
    params = module.init_params(sizes, rng)
    X = rng.standard_normal((*(sizes[0] if isinstance(sizes[0], tuple) else (sizes[0],)), 8))
    Y = _numeric_targets(model, sizes[-1], 8, rng)
    scale = 1.0
    for _ in range(8):  # a network whose values overflow float64 here (e.g. exp(exp(z))): a smaller start,
        with np.errstate(all="ignore"):  # as the finite-difference check does
            value, grads = module.loss(params, X, Y), module.gradients(params, X, Y)
        if np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values()):
            break
        scale /= 2
        params = {k: v / 2 for k, v in params.items()}
        X = X / 2
    start = {k: v.copy() for k, v in params.items()}
    with np.errstate(all="ignore"):
        history = module.train(params, X, Y, epochs=2, batch_size=3, rng=rng, X_val=X, Y_val=Y, quiet=True)
    finite = all(len(v) == 2 and np.all(np.isfinite(v)) for v in history.values())
    diverged = False
    if not finite:  # steep enough to diverge at the default step: the loop itself is checked with lr = 0
        diverged = True
        with np.errstate(all="ignore"):
            history = module.train(start, X, Y, epochs=2, batch_size=3, rng=rng, X_val=X, Y_val=Y, quiet=True, lr=0.0)
        finite = all(len(v) == 2 and np.all(np.isfinite(v)) for v in history.values())
    return Check("training_loop", bool(finite), figures={
        "epochs": 2, "samples": 8, "classification": "accuracy" in history, "scale": scale, "diverged": diverged,
    })


def _power(bound: str) -> str:
    mantissa, _, exponent = bound.partition("e")
    return f"$10^{{{int(exponent)}}}$" if exponent else f"${bound}$"


def training_checks(model: Model, training: Training, init: Initialisation, source: str) -> list[Check]:
    module = load_module(source, "derive_generated_training")
    return [
        optimizer_check(training, module),
        initial_weights_check(model, init, module),
        training_loop_check(model, module),
    ]
