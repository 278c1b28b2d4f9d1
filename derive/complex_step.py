"""Reference gradients by complex-step differentiation of the network's definition.

The generated code is checked against derivatives that lose no digits to cancellation. For a
function f that is analytic at a real point x, f(x + ih) = f(x) + ih f′(x) − h² f″(x)/2 + …, so
f′(x) = Im f(x + ih) / h with a relative error of order h², and no two nearly equal numbers are
subtracted: the derivative is as accurate as the evaluation of f itself, whether it is 1 or 1e-40
(a vanishing gradient deep in a network). A finite difference, by contrast, divides the rounding
error of f by the step and becomes meaningless for small gradients. The step is h = 1e-100, divided
for a weight by the size of the activations it multiplies where they exceed 1, so that every
imaginary part stays negligible next to the real one and derivatives from about 1e-200 to 1e90 are
represented.

The network is evaluated here from its definition — the activations g(z), the loss ℓ(a, y) and the
penalty as SymPy expressions — not from the derived formulas or the generated code. Functions are
evaluated by their complex continuation (NumPy's exp, log, tanh …). NumPy has no complex erf, so
erf(x + iy) is taken to first order, erf(x) + iy·2e^(−x²)/√π, which is exact to O(y²) ≈ 1e-40.
Kinked functions (max, min, |·|, sign, Heaviside, piecewise) take the branch that holds at the real
part: at a point away from every kink the function equals that branch on a neighbourhood of the
point, and the branch is analytic. A product with an exactly zero factor is 0 (y log y = 0 at y = 0).

The network's definition here is each node's forward rule in matrix form (`forward_forms`), which
the engine proves entry by entry against the kind's index rule: so every layer kind is covered, and
nothing of the derived backward pass or of the generated code enters the reference. Every
parameter entry gets its own copy of the network (a leading axis), all evaluated at once.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from derive.backprop import forward_result
from derive.indexing import assume_sizes
from derive.layers import Node
from derive.model import Model
from derive.notation import A, Q, Y
from derive.ops import Op

STEP = 1e-100

_FUNCTIONS = {sp.exp: np.exp, sp.log: np.log, sp.sin: np.sin, sp.cos: np.cos, sp.tanh: np.tanh,
              sp.sinh: np.sinh, sp.cosh: np.cosh, sp.atan: np.arctan}
_real_erf = np.vectorize(math.erf, otypes=[float])


class NoReference(ValueError):
    """An expression contains a function this evaluator has no rule for."""


def evaluate(expr: sp.Expr, env: dict, cache: dict | None = None) -> np.ndarray | complex:
    """`expr` with its symbols replaced by the (complex) arrays of `env`, entry by entry."""
    cache = {} if cache is None else cache
    if expr in cache:
        return cache[expr]
    if expr in env:
        return env[expr]
    if expr.is_Number or isinstance(expr, sp.NumberSymbol) or (expr.is_number and not expr.free_symbols):
        value = complex(expr.evalf(20))
    else:
        value = _compound(expr, env, cache)
    cache[expr] = value
    return value


def _compound(expr: sp.Expr, env: dict, cache: dict):
    if isinstance(expr, Op):  # a matrix operation of the forward forms (derive/ops.py)
        return expr.evaluate(lambda arg: evaluate(arg, env, cache))
    args = [evaluate(arg, env, cache) for arg in expr.args] if not isinstance(expr, sp.Piecewise) else None
    if expr.is_Add:
        return sum(args[1:], args[0])
    if expr.is_Mul:
        product = args[0]
        for factor in args[1:]:
            product = product * factor
        zero = np.zeros(np.shape(product), bool)
        for factor in args:
            zero = zero | (np.asarray(factor) == 0)
        return np.where(zero, 0, product) if np.any(zero) else product
    if expr.is_Pow:  # an integer power by multiplication: exp(n log x) would lose the tiny imaginary part
        base, exponent = args
        return base ** int(expr.exp) if expr.exp.is_Integer else base**exponent
    if expr.func in _FUNCTIONS:
        return _FUNCTIONS[expr.func](*args)
    if isinstance(expr, sp.erf):
        x = np.asarray(args[0], complex)
        return _real_erf(x.real) + 1j * x.imag * (2 / math.sqrt(math.pi)) * np.exp(-x.real**2)
    if isinstance(expr, sp.Abs):
        return args[0] * np.sign(np.real(args[0]))
    if isinstance(expr, sp.sign):
        return np.sign(np.real(args[0])) + 0j
    if isinstance(expr, sp.Heaviside):
        middle = 0.5 if len(args) == 1 else np.real(args[1])
        return np.heaviside(np.real(args[0]), middle) + 0j
    if isinstance(expr, (sp.Max, sp.Min)):
        pick = np.greater if isinstance(expr, sp.Max) else np.less
        best = args[0]
        for other in args[1:]:
            best = np.where(pick(np.real(other), np.real(best)), other, best)
        return best
    if isinstance(expr, sp.Piecewise):
        return _piecewise(expr, env, cache)
    raise NoReference(f"no complex-step rule for {expr.func.__name__}")


def _piecewise(expr: sp.Piecewise, env: dict, cache: dict):
    """The first branch whose condition holds at the real parts."""
    conditions = [_condition(c, env, cache) for _, c in expr.args]
    values = [evaluate(e, env, cache) for e, _ in expr.args]
    shape = np.broadcast_shapes(*[np.shape(v) for v in values + conditions])
    out = np.zeros(shape, complex)
    chosen = np.zeros(shape, bool)
    for value, condition in zip(values, conditions):
        take = np.broadcast_to(condition, shape) & ~chosen
        out = np.where(take, value, out)
        chosen |= take
    return out


_RELATIONS = {sp.StrictGreaterThan: np.greater, sp.GreaterThan: np.greater_equal, sp.StrictLessThan: np.less,
              sp.LessThan: np.less_equal, sp.Equality: np.equal, sp.Unequality: np.not_equal}


def _condition(condition, env: dict, cache: dict):
    if condition is sp.true:
        return np.True_
    if condition is sp.false:
        return np.False_
    if type(condition) in _RELATIONS:
        lhs, rhs = (np.real(evaluate(side, env, cache)) for side in condition.args)
        return _RELATIONS[type(condition)](lhs, rhs)
    parts = [_condition(c, env, cache) for c in condition.args]
    if isinstance(condition, sp.And):
        return np.logical_and.reduce(parts)
    if isinstance(condition, sp.Or):
        return np.logical_or.reduce(parts)
    if isinstance(condition, sp.Not):
        return np.logical_not(parts[0])
    raise NoReference(f"no complex-step rule for the condition {condition}")


# --------------------------------------------------------------------------------------------------
# the network


_FORMS: dict = {}


def forward_forms(model: Model) -> tuple[tuple[Node, sp.Expr], ...]:
    """Each node with its forward rule in matrix form (one column per sample), as the engine states it
    and proves it entry by entry against the kind's index rule: the network's definition, with no
    derivative in it. Taken from the derivation when `remember_forward_forms` was given it (its
    minibatch pass states exactly these forward results), otherwise derived here."""
    if model not in _FORMS:
        from derive.windowsizes import network_sizes

        with assume_sizes(model.network.size_facts), network_sizes(model.network):
            _remember(model, tuple((node, forward_result(node, True).matrix_rhs) for node in model.network.layers))
    return _FORMS[model]


def remember_forward_forms(derivation) -> None:
    """The forward forms of `derivation`'s minibatch pass (`backprop.forward_result(node, True)` for
    every node, proved there), so that the reference does not derive them a second time."""
    model = derivation.model
    if model not in _FORMS:
        _remember(model, tuple((node, derivation.batch.results[node.output].matrix_rhs)
                               for node in model.network.layers))


def _remember(model: Model, forms: tuple) -> None:
    if len(_FORMS) >= 32:
        _FORMS.pop(next(iter(_FORMS)))
    _FORMS[model] = forms


def size_environment(model: Model, samples: int, number=complex) -> dict:
    """The sizes and constants a forward form may read, as `number`s: a mean over the n features
    divides by n, over the minibatch by m; a mean over positions (global average pooling) by the rows
    and columns of its input; dropout's p."""
    from derive.notation import BATCH_SIZE
    from derive.windowsizes import size_values

    values = {BATCH_SIZE: samples, **model.network.constants, **size_values(model.network)}
    return {symbol: number(value) for symbol, value in values.items()}


def _parameters(model: Model) -> list:
    return [p for node in model.network.layers for p in node.parameters]


def _penalty(model: Model, params: dict, steps: dict) -> tuple[float, dict]:
    """R at the point, and for every penalised array r(θ + ih) − r(θ) entry by entry (flat, with the
    step of each entry)."""
    penalty = model.penalty
    if penalty is None:
        return 0.0, {}
    x = sp.Symbol("x", real=True)
    term = penalty.term(x).xreplace(penalty.strengths)
    total, shifts = 0.0, {}
    for param in _parameters(model):
        if penalty.covers(param):
            key = param.code()
            flat = params[key].ravel()
            real = evaluate(term, {x: flat + 0j}).real
            total += float(np.sum(real))
            shifts[key] = evaluate(term, {x: flat + 1j * steps[key]}) - real
    return total, shifts


def _perturbed(value: np.ndarray, first: int, copies: int, steps: np.ndarray) -> np.ndarray:
    """`copies` copies of a parameter array, copy first + k with its entry k moved by i·steps[first + k]."""
    out = np.broadcast_to(np.asarray(value, float), (copies,) + value.shape).astype(complex)
    flat = out.reshape(copies, -1)
    mine = first + np.arange(value.size)
    flat[mine, np.arange(value.size)] += 1j * steps[mine]
    return out


def _scale_steps(node: Node, form: sp.Expr, env: dict, params: dict, first: dict, steps: np.ndarray) -> None:
    """Shrink the step of each of the node's parameter entries by how far a unit move of that entry
    moves the node's output where that exceeds 1: a weight multiplies the activations below it, and
    i·h·a must stay small next to the output for the step to stay in the linear regime (exp(300 z)
    feeds activations of 1e187 to the next layer). The copies of this node's entries have real
    inputs, so the imaginary part of the probe is exactly h times that derivative."""
    copies = steps.size
    trial = dict(env)
    for p in node.parameters:
        trial[p.symbol] = _perturbed(params[p.code()], first[p.code()], copies, np.full(copies, STEP))
    probe = evaluate(form, trial)
    probe = np.broadcast_to(probe, (copies,) + np.shape(probe)[1:])
    for p in node.parameters:
        mine = first[p.code()] + np.arange(params[p.code()].size)
        reach = np.max(np.abs(probe[mine].imag).reshape(mine.size, -1), axis=1) / STEP
        reach = np.where(np.isfinite(reach), reach, 1.0)
        steps[mine] = STEP / np.maximum(1.0, reach)


def gradients(model: Model, params: dict, X: np.ndarray, Y_: np.ndarray, data: dict | None = None) -> tuple[dict, float, float]:
    """(∂loss/∂θ for every entry of every parameter, the loss, a scale of the loss) at (params, X, Y).

    The loss is the mean over the samples (the last axis) of Σ ℓ(a, y) plus the penalty, as in
    model.py; the scale is the same sum of absolute values, against which a loss value is compared.
    Copy k of the network has entry k (counting through every parameter) moved by i·h, h = STEP
    shrunk per entry by `_scale_steps`.
    """
    keys = [p.code() for p in _parameters(model)]
    first, copies = {}, 0
    for key in keys:
        first[key] = copies
        copies += params[key].size
    steps = np.full(copies, STEP)
    samples = X.shape[-1]
    with np.errstate(all="ignore"):
        env = {Q("A", 0).symbol: np.asarray(X, float)[None] + 0j, **size_environment(model, samples),
               **{symbol: np.asarray(v, float)[None] + 0j for symbol, v in (data or {}).items()}}  # fixed masks
        for node, form in forward_forms(model):
            if node.parameters:
                _scale_steps(node, form, env, params, first, steps)
            for p in node.parameters:
                env[p.symbol] = _perturbed(params[p.code()], first[p.code()], copies, steps)
            env[node.out(True).symbol] = evaluate(form, env)
        a = env[model.network.output.batched().symbol]
        terms = evaluate(model.loss.expr, {A: a, Y: np.asarray(Y_, float)[None] + 0j})
        terms = np.broadcast_to(terms, a.shape)
        value = np.sum(terms.reshape(copies, -1), axis=1) / samples
        scale = float(np.sum(np.abs(terms[0].real))) / samples
        penalty, shifts = _penalty(model, params, {key: steps[first[key]:first[key] + params[key].size] for key in keys})
        value = value + penalty
        for key, shift in shifts.items():
            value[first[key]:first[key] + shift.size] += shift
    ratios = value.imag / steps
    gradients = {key: ratios[first[key]:first[key] + params[key].size].reshape(params[key].shape) for key in keys}
    return gradients, float(value[0].real), scale + abs(penalty)


# --------------------------------------------------------------------------------------------------
# directional derivatives: one copy of the network per direction, not per entry


def random_directions(model: Model, params: dict, count: int, seed: int = 11) -> dict:
    """`count` random unit directions per parameter array (Gaussian, normalised), by parameter name:
    arrays of shape (count, size of the parameter)."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in _parameters(model):
        v = rng.standard_normal((count, params[p.code()].size))
        out[p.code()] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def directional_derivatives(model: Model, params: dict, X: np.ndarray, Y_: np.ndarray, directions: dict,
                            data: dict | None = None) -> tuple[dict, float, float]:
    """(⟨∂loss/∂θ, v⟩ for every direction v of every parameter θ, the loss, a scale of the loss).

    As `gradients`, with copy k of the network moved along a direction instead of along one entry:
    C(θ + i·h·v) has imaginary part h⟨∇_θ C, v⟩ + O(h³), so one copy gives the derivative along v
    exactly as one copy gave one entry. A network of 60 000 parameters needs 60 000 copies for every
    entry; a few random directions per parameter array test the same gradient (a wrong entry moves
    the derivative along almost every direction) at the cost of a few forward passes. `directions`
    maps each parameter's name to an array (count, size); the result has the same keys, (count,).
    """
    keys = [p.code() for p in _parameters(model)]
    rows, copies = {}, 0
    for key in keys:
        rows[key] = np.arange(copies, copies + len(directions[key]))
        copies += len(directions[key])
    steps = np.full(copies, STEP)
    samples = X.shape[-1]

    def moved(key, steps):
        value = params[key]
        out = np.broadcast_to(np.asarray(value, float), (copies,) + value.shape).astype(complex)
        flat = out.reshape(copies, -1)
        flat[rows[key]] += 1j * steps[rows[key], None] * directions[key]
        return out

    with np.errstate(all="ignore"):
        env = {Q("A", 0).symbol: np.asarray(X, float)[None] + 0j, **size_environment(model, samples),
               **{symbol: np.asarray(v, float)[None] + 0j for symbol, v in (data or {}).items()}}
        for node, form in forward_forms(model):
            if node.parameters:  # the step of each direction shrunk by how far it moves the node's output
                trial = dict(env)
                for p in node.parameters:
                    trial[p.symbol] = moved(p.code(), np.full(copies, STEP))
                probe = evaluate(form, trial)
                probe = np.broadcast_to(probe, (copies,) + np.shape(probe)[1:])
                for p in node.parameters:
                    mine = rows[p.code()]
                    reach = np.max(np.abs(probe[mine].imag).reshape(mine.size, -1), axis=1) / STEP
                    steps[mine] = STEP / np.maximum(1.0, np.where(np.isfinite(reach), reach, 1.0))
            for p in node.parameters:
                env[p.symbol] = moved(p.code(), steps)
            env[node.out(True).symbol] = evaluate(form, env)
        a = env[model.network.output.batched().symbol]
        terms = np.broadcast_to(evaluate(model.loss.expr, {A: a, Y: np.asarray(Y_, float)[None] + 0j}), a.shape)
        value = np.sum(terms.reshape(copies, -1), axis=1) / samples
        scale = float(np.sum(np.abs(terms[0].real))) / samples
        penalty = 0.0
        if model.penalty is not None:
            x = sp.Symbol("x", real=True)
            term = model.penalty.term(x).xreplace(model.penalty.strengths)
            for p in _parameters(model):
                if model.penalty.covers(p):
                    key = p.code()
                    flat = params[key].ravel()
                    real = evaluate(term, {x: flat + 0j}).real
                    penalty += float(np.sum(real))
                    shifted = evaluate(term, {x: flat[None, :] + 1j * steps[rows[key], None] * directions[key]})
                    value[rows[key]] += np.sum(shifted - real[None, :], axis=1)
        value = value + penalty
    ratios = value.imag / steps
    return {key: ratios[rows[key]] for key in keys}, float(value[0].real), scale + abs(penalty)
