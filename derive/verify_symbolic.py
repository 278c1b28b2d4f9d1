"""The exact checks of the derived formulas: against direct differentiation, and per minibatch.

* **symbolic**: at a small concrete size (every layer `SYMBOLIC_WIDTH` units, at most
  `SYMBOLIC_MAX_DEPTH` layers) the loss of one sample is expanded into one scalar expression of all
  parameters by evaluating each node's own forward rule entry by entry, and differentiated directly
  with `sympy.diff`; the derived formulas are evaluated at the same random rational point and must
  agree, exactly when every function involved is rational (identity, relu, mse), otherwise to 50
  significant digits.
* **minibatch**: the minibatch formulas must equal the mean of the per-sample formulas.

Both walk the network graph, so every layer kind is checked the same way, and both report the
largest difference per node as well as overall.
"""

from __future__ import annotations

import random
from fractions import Fraction
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.indexing import transform
from derive.backprop import Pass, parameter_axes
from derive.layers import Node
from derive.indexeval import compiled, to_sympy
from derive.model import Model
from derive.nonsmooth import NON_SMOOTH, breakpoints
from derive.notation import BATCH_SIZE, LayerRef, Quantity, sample_index, size

SYMBOLIC_MAX_DEPTH = 4
SYMBOLIC_WIDTH = 2
DIGITS = 50
FLOAT_TOLERANCE = sp.Float("1e-35", DIGITS)
SMALL_COST_OPS = 160  # expanded losses up to this size are evaluated with evalf, larger ones compiled
# what exact evaluation of an astronomically large network raises (mpmath, SymPy, Python)
UNEVALUABLE = (MemoryError, OverflowError, ValueError, ArithmeticError, RecursionError)


@dataclass
class Check:
    name: str  # "symbolic", "minibatch", "derivatives", "stability", "workspace", "recognition", …
    passed: bool
    ran: bool = True
    figures: dict = field(default_factory=dict)


def decade_bound(x: float) -> str:
    """The smallest power of ten ≥ x, as text ('1e-9'); '0' for exactly zero."""
    import math

    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"1e{math.ceil(math.log10(x))}"


def _unevaluable_text(error: BaseException) -> str:
    return (f"the expanded network could not be evaluated exactly at the test point ({type(error).__name__}); "
            "its values are too large to represent")


# --------------------------------------------------------------------------------------------------
# a concrete point


def _parameters(model: Model) -> list[tuple[Node, Quantity]]:
    return [(node, p) for node in model.network.layers for p in node.parameters]


def _extent(axis, env: dict) -> int:
    return int(axis.size.xreplace(env))


def _axis_entries(axes, env: dict) -> list[tuple[int, ...]]:
    """Every index tuple of a quantity with these axes, at the concrete sizes of `env`."""
    return list(np.ndindex(*[_extent(a, env) for a in axes]))


def _parameter_entries(node: Node, param: Quantity, env: dict) -> list[tuple[int, ...]]:
    return _axis_entries(parameter_axes(node, param), env)


def _random_point(model: Model, width: int, samples: int, rng: random.Random) -> dict:
    """Exact rational values for the input, targets and parameters (keys: (label, index tuple)).

    Per node, row by row: the row's entries of its vector parameters (biases, drawn as k/11), then
    of its matrices (weights, k/8)."""
    env = concrete_sizes(model, width, None)
    network = model.network
    inputs, outputs = _axis_entries(network.input_axes, env), _axis_entries(network.loss_node.in_axes[0], env)
    values = {}
    for s in range(samples):
        for j in inputs:
            values[("a_0", j) if samples == 1 else ("A_0", (*j, s))] = sp.Rational(rng.randint(-9, 9), 7)
        for i, y in zip(outputs, _targets(model, len(outputs), rng)):
            values[("y", i) if samples == 1 else ("Y", (*i, s))] = y
    for node in network.layers:
        params = sorted(node.parameters, key=lambda p: len(parameter_axes(node, p)))
        weights = node.kind.weights(node)
        rows = max((_extent(parameter_axes(node, p)[0], env) for p in params), default=0)
        for row in range(rows):
            for param in params:
                for idx in _parameter_entries(node, param, env):
                    if idx[0] == row:
                        values[(param.label, idx)] = sp.Rational(rng.randint(-9, 9), 8 if param in weights else 11)
    for node, mask in network.data_inputs:  # a mask held fixed: ones and zeros (mostly ones)
        for s in range(samples):
            for i in _axis_entries(node.out_axes, env):
                key = (mask.label, i) if samples == 1 else (mask.batched().label, (*i, s))
                values[key] = sp.Integer(int(rng.random() < 0.75))
    return values


def _targets(model: Model, n: int, rng: random.Random) -> list[sp.Rational]:
    if model.loss.target == "probability":
        weights = [rng.randint(1, 9) for _ in range(n)]
        return [sp.Rational(w, sum(weights)) for w in weights]
    if model.loss.target in ("binary", "unit"):
        return [sp.Rational(rng.randint(1, 8), 9) for _ in range(n)]
    return [sp.Rational(rng.randint(-9, 9), 9) for _ in range(n)]


def concrete_sizes(model: Model, width: int, samples: int | None) -> dict:
    """Concrete values for the symbols of the formulas: every axis `width` long (the layers' sizes),
    the batch size, the penalty strengths."""
    env = {size(LayerRef(l)): width for l in range(model.depth + 1)}
    for node in model.network.layers:
        axes = [*node.out_axes, *(a for group in node.in_axes for a in group),
                *(a for p in node.parameters for a in parameter_axes(node, p))]
        env.update({a.size: width for a in axes if a.extent is None})
    from derive.windowsizes import consistent_sizes

    env = consistent_sizes(model.network, env, width)  # a window's output: the size the formula gives
    if samples is not None:
        env[BATCH_SIZE] = samples
    if model.penalty is not None:
        env.update(model.penalty.strengths)
    env.update(model.network.constants)  # dropout's p
    return env


# --------------------------------------------------------------------------------------------------
# direct differentiation of the expanded loss


def _active_piece(expr: sp.Expr, point: dict) -> sp.Expr:
    """`expr` with each piecewise part replaced by the branch that holds at `point` (a dict of
    numbers for its variables), unless the point lies on a boundary, where the whole is kept.

    The derivative at a point inside a piece is the derivative of that piece, so the direct check
    may differentiate the active piece; SymPy would otherwise fold nested piecewise functions of
    consecutive layers into every combination of branches.
    """

    def on_boundary(condition) -> bool:
        for relation in condition.atoms(sp.core.relational.Relational):
            gap = sp.N((relation.lhs - relation.rhs).xreplace(point), DIGITS)
            if gap == 0 or abs(gap) < sp.Float(10) ** -(DIGITS - 10):
                return True
        return False

    def rule(e):
        if not isinstance(e, sp.Piecewise):
            return e
        for branch, condition in e.args:
            if on_boundary(condition):
                return e
            if condition.xreplace(point) == sp.true:
                return branch
        return e

    return transform(expr, rule) if expr.has(sp.Piecewise) else expr


def _numeric(value: sp.Expr, exact: bool) -> sp.Expr:
    return value if exact else sp.N(value, DIGITS + 10)


class _Placeholders(dict):
    """(label, index) → a symbol standing for that entry, made on first use."""

    def __missing__(self, key):
        label, idx = key
        self[key] = sp.Symbol(f"{label}[{','.join(map(str, idx))}]", real=True)
        return self[key]


def _partial(term: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    """∂term/∂symbol: `sympy.diff`, except for the commonest term of a layer's rule, a product in which
    the symbol is one plain factor (K·a of a convolution, W·a of a dense layer), whose derivative is
    the product of the other factors."""
    if term is symbol:
        return sp.S.One
    if term.is_Mul and symbol in term.args:
        others = [factor for factor in term.args if factor is not symbol]
        if len(others) == len(term.args) - 1 and not any(factor.has(symbol) for factor in others):
            return sp.Mul(*others)
    return _renamed_diff(term, symbol)


def _renamed_diff(term: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    """`sympy.diff(term, symbol)`, differentiated once per pattern: the entries of one node read
    different entries by the same rule (every relu is Max(0, z), every window of a max pooling
    Max(a, b, c, d), every softmax output the same quotient), so the term is renamed into standard
    symbols (`_standard`) and its derivative, found once, renamed back. Renaming the variables of a
    function renames those of its derivative; nothing else changes."""
    symbols = sorted(term.free_symbols, key=sp.default_sort_key)
    names = tuple(_standard(n) for n in range(len(symbols)))
    if any(s.assumptions0 != names[0].assumptions0 for s in symbols):  # not only placeholders: as it is
        return sp.diff(term, symbol)
    standard = term.xreplace(dict(zip(symbols, names)))
    derivative = _standard_diff(standard, names[symbols.index(symbol)])
    return derivative.xreplace(dict(zip(names, symbols)))


@lru_cache(maxsize=4096)
def _standard(n: int) -> sp.Symbol:
    return sp.Symbol(f"_x{n}", real=True)  # real, as the placeholders are: the same assumptions


@lru_cache(maxsize=4096)
def _standard_diff(term: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    return sp.diff(term, symbol)


def _entry_rule(rule: sp.Expr, env: dict) -> tuple[sp.Expr, dict]:
    """A node's rule, stated once with its output indices, at the concrete indices of `env`, its sums
    written out over placeholder symbols (by the compiled evaluator, `indexeval`). Remembered: the
    search for a point off the kinks and the chained differentiation write out the same entries."""
    return _written_out(rule, tuple(env.items()))


@lru_cache(maxsize=4096)
def _written_out(rule: sp.Expr, env: tuple) -> tuple[sp.Expr, dict]:
    from derive.indexeval import evaluate

    placeholders = _Placeholders()
    expanded = evaluate(rule, placeholders, dict(env))
    return expanded, {symbol: key for key, symbol in placeholders.items()}


@dataclass
class Expanded:
    cost: sp.Expr  # the loss of one sample, in the parameter symbols (or a number)
    params: dict  # (label, index) → its symbol
    inputs: list  # (activation, value of one input entry): where kinks must be avoided


COUPLED_SAMPLES = 2  # the minibatch of the symbolic check of a network that couples its samples


def coupled_samples(model: Model) -> int | None:
    """The size of the minibatch the symbolic check expands (batch normalisation has no loss of one
    sample alone: the loss of a minibatch is expanded instead); None for a per-sample network."""
    return COUPLED_SAMPLES if model.network.couples_samples else None


def _expanded_network(model: Model, width: int, values: dict, symbolic: bool) -> Expanded:
    """The forward pass of one sample written out in full, node by node from each node's own rule.

    With `symbolic` the parameters are symbols (input and targets are numbers) and the forward pass
    is also followed with the numbers of `values`, to pick the active piece of piecewise functions
    (see `_active_piece`); otherwise everything is numbers (exact expressions).
    """
    exact = rational_model(model)
    samples = coupled_samples(model)
    env = concrete_sizes(model, width, samples)
    columns = [None] if samples is None else [sp.Integer(s) for s in range(samples)]
    sym, num, params = dict(values), dict(values), {}
    if symbolic:
        for node, param in _parameters(model):
            for idx in _parameter_entries(node, param, env):
                params[(param.label, idx)] = sym[(param.label, idx)] = sp.Symbol(
                    f"{param.label}_{'_'.join(map(str, idx))}", real=True)
    inputs = []
    for node in model.network.layers:
        activation = getattr(node.kind, "activation", None)
        out = node.out_indices()
        generals = {column: node.call_entry(out, column) for column in columns}  # the rule once per node
        for i, column in ((i, c) for c in columns for i in _axis_entries(node.out_axes, env)):
            rule, keys = _entry_rule(generals[column], {**env, **dict(zip(out, i))})
            at = i if column is None else (*i, int(column))
            key = (node.out(column is not None).label, at)
            if activation is not None and not activation.is_vector:
                inputs.append((activation, num[(node.input(column is not None).label, at)]))
            num_point = {s: num[k] for s, k in keys.items()}
            num[key] = _numeric(rule.xreplace(num_point), exact) if symbolic else rule.xreplace(num_point)
            if symbolic:
                active = _active_piece(rule, num_point) if rule.has(sp.Piecewise) else rule
                sym[key] = active.xreplace({s: sym[k] for s, k in keys.items()})
    loss_node = model.network.loss_node
    cost = sp.S.Zero
    out = loss_node.in_indices(0, "out")
    generals = {column: loss_node.kind.per_unit(loss_node, out[0] if len(out) == 1 else out, column) for column in columns}
    for i, column in ((i, c) for c in columns for i in _axis_entries(loss_node.in_axes[0], env)):
        rule, keys = _entry_rule(generals[column], {**env, **dict(zip(out, i))})
        if symbolic:
            rule = _active_piece(rule, {s: num[k] for s, k in keys.items()}) if rule.has(sp.Piecewise) else rule
        cost += rule.xreplace({s: (sym if symbolic else num)[k] for s, k in keys.items()})
    if samples is not None:  # the mean loss of the minibatch
        cost = cost / samples
    if model.penalty is not None:
        terms = [model.penalty.term((sym if symbolic else num)[(param.label, idx)])
                 for node, param in _parameters(model) if model.penalty.covers(param)
                 for idx in _parameter_entries(node, param, env)]
        cost += sp.Add(*terms).xreplace(model.penalty.strengths)
    return Expanded(cost, params, inputs)


def _is_rational_valued(expr: sp.Expr) -> bool:
    """Rational inputs give rational outputs: exact comparison is possible."""
    allowed = (sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.Piecewise, sp.sign)
    return all(isinstance(f, allowed) for f in expr.atoms(sp.Function)) and not expr.atoms(sp.NumberSymbol) \
        and not expr.atoms(sp.Float) and all(p.exp.is_Integer for p in expr.atoms(sp.Pow))


def rational_model(model: Model) -> bool:
    """Every node's rule and the loss map rationals to rationals."""
    for node in model.network.nodes:
        if node is model.network.loss_node:
            i = node.in_indices(0, "out")
            rule = node.kind.per_unit(node, i[0] if len(i) == 1 else i, None)
        else:
            rule = node.call_entry(node.out_indices(), sample_index("s") if model.network.couples_samples else None)
        if not _is_rational_valued(rule):
            return False
    return True


def symbolic_point(model: Model, seed: int = 0) -> dict:
    """A random rational point where no input of an activation sits exactly on one of its kinks."""
    rng = random.Random(seed)
    nonsmooth = any(not a.is_vector and a.expr.has(*NON_SMOOTH) for a in model.activations)
    kinks = {a: {sp.S.Zero, *breakpoints(a.expr)[0]} for a in model.activations if not a.is_vector}
    deep = model.depth > SYMBOLIC_MAX_DEPTH  # exact numbers may double their digits per layer there
    for _ in range(20):
        values = _random_point(model, SYMBOLIC_WIDTH, coupled_samples(model) or 1, rng)
        if not nonsmooth:  # a smooth network has no kink to avoid: skip the exact forward pass
            break
        forward = {k: sp.Float(v, DIGITS) for k, v in values.items()} if deep else values
        inputs = _expanded_network(model, SYMBOLIC_WIDTH, forward, symbolic=False).inputs
        if all(value not in kinks[activation] for activation, value in inputs):
            break
    return values


def direct_gradients(model: Model, values: dict, digits: int = DIGITS) -> tuple[dict, bool]:
    """∂C/∂θ for every parameter θ by `sympy.diff` of the fully expanded loss, at `values`."""
    expanded = _expanded_network(model, SYMBOLIC_WIDTH, values, symbolic=True)
    cost, params = expanded.cost, expanded.params
    exact = _is_rational_valued(cost)
    point = {sym: (values[key] if exact else sp.Float(values[key], digits)) for key, sym in params.items()}
    derivatives = dict(zip(params, partial_derivatives(cost, list(params.values()))))
    if exact:
        return dict(zip(derivatives, shared_xreplace(list(derivatives.values()), point))), exact
    if sp.count_ops(cost) <= SMALL_COST_OPS:  # small trees: evalf directly, no compilation needed
        at_point = shared_xreplace(list(derivatives.values()), point)
        return {key: value.evalf(digits) for key, value in zip(derivatives, at_point)}, exact
    return dict(zip(derivatives, _evaluate_digits(list(derivatives.values()), point, digits))), exact


def partial_derivatives(expr: sp.Expr, symbols: list[sp.Symbol]) -> list[sp.Expr]:
    """`[sympy.diff(expr, s) for s in symbols]`, the same expressions, without differentiating a
    repeated subtree again.

    The expanded loss repeats its subtrees (every activation of a layer appears in every unit of the
    layers after it), and `sympy.diff` differentiates each occurrence anew; each of its recursive steps
    also builds a `Derivative`, which walks the step's whole result looking for unevaluated
    derivatives and asks whether it is zero. Here SymPy's own rule of each node
    (`_eval_derivative_n_times`, the rule `Derivative` calls) differentiates it, the recursion of
    those rules (their `.diff` of each argument) is routed back here, and each (subtree, symbol)
    is differentiated once. What `Derivative` would add is kept where it can matter: a result that
    still holds an unevaluated derivative, a node without a rule, and any call other than a first
    derivative by one symbol go through `sympy.diff` itself. `tests/test_verification.py` checks that
    the results are identical (`==`) to `sympy.diff`'s."""
    from sympy.core.function import Derivative

    original = sp.Expr.diff
    free: dict = {}
    found: dict = {}

    def derivative(e: sp.Expr, s: sp.Symbol) -> sp.Expr:
        key = (e, s)
        if key in found:
            return found[key]
        symbols_of_e = free.get(e)
        if symbols_of_e is None:
            symbols_of_e = free[e] = e.free_symbols
        if s not in symbols_of_e:  # Derivative's quick exit
            result = sp.S.Zero
        elif isinstance(e, Derivative) or not hasattr(e, "_eval_derivative"):
            result = original(e, s)
        else:
            result = e._eval_derivative_n_times(s, sp.S.One)
            if result is None or result.has(Derivative):
                result = original(e, s)
        found[key] = result
        return result

    def diff(self, *variables, **assumptions):
        if not assumptions and len(variables) == 1:
            v = variables[0]
            if isinstance(v, sp.Symbol):
                return derivative(self, v)
            if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], sp.Symbol) and v[1] == 1:
                return derivative(self, v[0])  # Mul's rule asks for (s, 1)
        return original(self, *variables, **assumptions)

    sp.Expr.diff = diff
    try:
        return [derivative(expr, s) for s in symbols]
    finally:
        sp.Expr.diff = original


def shared_xreplace(exprs: list[sp.Expr], rule: dict) -> list[sp.Expr]:
    """`[e.xreplace(rule) for e in exprs]`, the same expressions, with each distinct subtree replaced
    once for all of them (the partial derivatives of one loss share most of their subtrees). The
    steps are those of SymPy's `Basic._xreplace`, which no class of SymPy overrides."""
    done: dict = {}

    def replaced(e) -> tuple:
        if e in rule:
            return rule[e], True
        if e in done:
            return done[e]
        args, changed = [], False
        for a in e.args:
            if hasattr(a, "_xreplace"):
                new, c = replaced(a)
                args.append(new)
                changed |= c
            else:
                args.append(a)
        done[e] = (e.func(*args), True) if changed else (e, False)
        return done[e]

    return [replaced(e)[0] if rule else e for e in exprs]


def chained_gradients(model: Model, values: dict, digits: int = DIGITS) -> tuple[dict, bool]:
    """∂C/∂θ for every parameter θ by `sympy.diff` of each entry's own rule, chained at `values`.

    The same network as `direct_gradients`, written out entry by entry from each node's own forward
    rule (no derived formula, no index calculus); but instead of one expression of the whole loss,
    each entry keeps its own small rule in the entries it reads, `sympy.diff` differentiates that
    rule by each of them, and the local derivatives, evaluated at the point, are multiplied and
    summed from the loss back to the parameters (the chain rule over the scalar entries, in exact
    or `digits`-digit numbers). The expanded loss grows without bound with the depth (and with a
    convolution's windows, fast); this grows with the number of entries, so it runs at any depth.
    """
    # exact for rational networks up to SYMBOLIC_MAX_DEPTH; deeper, exact numbers can double their
    # digits with every layer (as in the minibatch check), so `digits` digits instead
    exact = rational_model(model) and model.depth <= SYMBOLIC_MAX_DEPTH
    samples = coupled_samples(model)
    env = concrete_sizes(model, SYMBOLIC_WIDTH, samples)
    columns = [None] if samples is None else [sp.Integer(s) for s in range(samples)]

    def number(expr):
        return expr if exact else sp.N(expr, digits + 10)

    num = dict(values) if exact else {k: sp.Float(v, digits) for k, v in values.items()}
    rules = []  # (entry key, its rule, placeholder → entry key), in forward order
    for node in model.network.layers:
        out = node.out_indices()
        for column in columns:  # the rule once per node, then entry by entry at concrete indices
            general = node.call_entry(out, column)
            for i in _axis_entries(node.out_axes, env):
                rule, keys = _entry_rule(general, {**env, **dict(zip(out, i))})
                key = (node.out(column is not None).label, i if column is None else (*i, int(column)))
                num[key] = number(rule.xreplace({s: num[k] for s, k in keys.items()}))
                rules.append((key, rule, keys))
    adjoint: dict = defaultdict(lambda: sp.S.Zero)

    def spread(rule, keys, weight):
        point = {s: num[k] for s, k in keys.items()}
        terms = [(t, t.free_symbols) for t in sp.Add.make_args(rule)]
        for symbol, key in keys.items():  # only the terms that read the entry can change with it
            local = sp.Add(*[_partial(t, symbol) for t, reads in terms if symbol in reads])
            if local != 0:
                adjoint[key] += weight * number(local.xreplace(point))

    loss_node = model.network.loss_node
    weight = sp.S.One if samples is None else sp.Rational(1, samples)  # the mean loss of the minibatch
    i = loss_node.in_indices(0, "out")
    for column in columns:
        general = loss_node.kind.per_unit(loss_node, i[0] if len(i) == 1 else i, column)
        for unit in _axis_entries(loss_node.in_axes[0], env):
            rule, keys = _entry_rule(general, {**env, **dict(zip(i, unit))})
            spread(rule, keys, weight)
    for key, rule, keys in reversed(rules):
        if key in adjoint:
            spread(rule, keys, adjoint[key])
    gradients = {}
    for node, param in _parameters(model):
        for idx in _parameter_entries(node, param, env):
            key = (param.label, idx)
            total = adjoint[key] if key in adjoint else sp.S.Zero
            if model.penalty is not None and model.penalty.covers(param):
                x = sp.Symbol("x", real=True)
                term = model.penalty.term(x).xreplace(model.penalty.strengths)
                total += number(sp.diff(term, x).xreplace({x: num[key]}))
            gradients[key] = total
    return gradients, exact


def _evaluate_digits(exprs: list, point: dict, digits: int = DIGITS) -> list:
    """The expressions at `point` to DIGITS significant digits: compiled together for mpmath (shared
    subexpressions once) when its printer knows every function, which is much faster than evalf on
    large trees; otherwise SymPy's evalf."""
    constants = {c: c.evalf(digits + 10) for e in exprs for c in e.atoms(sp.NumberSymbol) if c not in (sp.pi, sp.E)}
    exprs = [e.xreplace(constants) for e in exprs]
    if not any(e.has(sp.Heaviside, sp.DiracDelta, sp.Piecewise, sp.Max, sp.Min) for e in exprs):
        try:
            symbols = list(point)
            function = sp.lambdify(symbols, exprs, "mpmath", cse=True)
            with mpmath.workdps(digits + 10):
                values = function(*[mpmath.mpf(point[s]._mpf_) for s in symbols])
            return [sp.Float(v, digits) for v in values]
        except (NameError, TypeError, AttributeError, ValueError):
            pass
    return [e.xreplace(point).evalf(digits) for e in exprs]


class DirectDifferentiation:
    """The expensive half of the symbolic check: the search for a point off the kinks and the
    differentiation there. Both run when `values` or `result` is first asked for, unless `start`
    handed them to a runner first (`derive.run` starts them in a second process, so that they run
    while the engine derives: the search writes out the same entries the chained differentiation
    reads, and the two share them there)."""

    def __init__(self, model: Model, seed: int = 0):
        self.model = model
        self.seed = seed
        self.chained = is_chained(model)
        self.skipped = model.depth > SYMBOLIC_MAX_DEPTH and not self.chained
        self._point: tuple | None = None  # (values, why they could not be found) once known
        self._pending = None

    def start(self, runner: Callable, sample: Pass | None = None) -> DirectDifferentiation:
        """Hand the search and the differentiation to `runner(function, *arguments)`, which returns an
        object whose `result()` gives the function's value. Given the per-sample pass, the runner
        also evaluates it at the point (`derived`): otherwise `symbolic_check` does that here, alone,
        after waiting for the runner."""
        if not self.skipped:
            self._pending = runner(_point_and_gradients, self.model, self.seed, self.gradients, sample)
        return self

    def _settle(self) -> tuple | None:
        """The runner's answer (point, error, gradients), or None if it failed or none was started;
        the point is kept either way once known."""
        if self._pending is None:
            return None
        try:
            answer = self._pending.result()
        except Exception:  # the runner failed: repeat here, where the error itself is raised
            self._pending = None
            return None
        if self._point is None:
            self._point = answer[:2]
        return answer

    def _search(self) -> tuple:
        """(point, why none was found): from the runner if one was started, else searched here."""
        if self._point is None:
            self._settle()
        if self._point is None:
            self._point = _search_point(self.model, self.seed) if not self.skipped else (None, None)
        return self._point

    @property
    def values(self) -> dict | None:
        """The random rational point of the check (None if it could not be evaluated, or skipped)."""
        return self._search()[0]

    @values.setter
    def values(self, point: dict | None) -> None:
        self._point, self._pending = (point, None), None

    @property
    def error(self) -> str | None:
        """Why the expanded loss could not be evaluated at a point, if it could not."""
        return self._search()[1]

    @property
    def gradients(self) -> Callable:
        """`direct_gradients` or `chained_gradients`, whichever this network is checked by."""
        return chained_gradients if self.chained else direct_gradients

    def result(self) -> tuple[dict, bool]:
        answer = self._settle()
        if answer is not None and answer[2] is not None:
            return answer[2]
        return self.gradients(self.model, self.values)

    @property
    def derived(self) -> dict | None:
        """The per-sample pass's parameter gradients at the point, at the check's first precision, if
        the runner evaluated them (None otherwise: the check evaluates them itself)."""
        answer = self._settle()
        return answer[3] if answer is not None else None


def _search_point(model: Model, seed: int) -> tuple[dict | None, str | None]:
    try:
        return symbolic_point(model, seed), None
    except UNEVALUABLE as error:
        return None, _unevaluable_text(error)


def _point_and_gradients(model: Model, seed: int, gradients: Callable, sample: Pass | None = None) -> tuple:
    """(point, why none was found, the gradients there, the per-sample pass evaluated there or None):
    what `DirectDifferentiation` hands a runner."""
    values, error = _search_point(model, seed)
    if values is None:
        return values, error, None, None
    found = gradients(model, values)
    return values, error, found, _first_evaluation(model, sample, values, found[1])


def _first_evaluation(model: Model, sample: Pass | None, values: dict, exact: bool) -> dict | None:
    """What `_compare_with_direct` evaluates first: the per-sample pass at the point, exact or at
    DIGITS digits (None for a network that couples its samples, whose check reads the minibatch
    pass, or where the evaluation fails: the check then meets the failure itself)."""
    if sample is None or coupled_samples(model) is not None:
        return None
    point = values if exact else {k: sp.Float(v, DIGITS) for k, v in values.items()}
    try:
        return _evaluate_pass(model, sample, False, point, concrete_sizes(model, SYMBOLIC_WIDTH, None))[1]
    except UNEVALUABLE:
        return None


def _entry_count(model: Model) -> int:
    """The scalar equations `chained_gradients` writes out: every entry of every node and every term
    of the loss, per sample of the expanded minibatch."""
    env = concrete_sizes(model, SYMBOLIC_WIDTH, coupled_samples(model))
    nodes = [*model.network.layers]
    count = sum(len(_axis_entries(node.out_axes, env)) for node in nodes)
    count += len(_axis_entries(model.network.loss_node.in_axes[0], env))
    return count * (coupled_samples(model) or 1)


def is_chained(model: Model) -> bool:
    """Whether the symbolic check chains the local derivatives of each entry (`chained_gradients`)
    instead of differentiating the expanded loss (`direct_gradients`): for a network with windows
    (convolution, pooling), at any depth; its expanded loss is large even when shallow (36 s for one
    convolution and a pooling layer). Other networks keep the expanded loss up to SYMBOLIC_MAX_DEPTH
    and skip the check beyond (their documents and run times stay as they were; the chained form
    would run there too, at the cost measured in the README)."""
    return any(hasattr(node.kind, "window_sizes") for node in model.network.layers)


# --------------------------------------------------------------------------------------------------
# evaluating the derived formulas


def _point_digits(values: dict) -> int | None:
    """The working digits of a point given in floats (None for an exact, rational point), taken once
    from the point itself: values computed with 10 guard digits must not raise it further, or every
    layer would work 10 digits finer than the one before (700 digits at depth 64, where one erf
    took 20 ms)."""
    precisions = [v._prec for v in values.values() if isinstance(v, sp.Float)]
    return mpmath.libmp.prec_to_dps(max(precisions)) if precisions else None


def _formula(rhs: sp.Expr, digits: int | None) -> sp.Expr:
    """A formula ready for evaluation at a point of `digits` digits: its constant parts (√2, π, named
    constants) become floats too, so that products stay numbers instead of growing."""
    return rhs if digits is None else _floated(rhs, digits)


@lru_cache(maxsize=None)
def _floated(rhs: sp.Expr, digits: int) -> sp.Expr:
    return rhs.replace(lambda e: isinstance(e, sp.Expr) and e.is_number and not e.is_Number and not e.is_Atom
                       or isinstance(e, sp.NumberSymbol), lambda e: e.evalf(digits + 10))


def _settled(value: sp.Expr, digits: int | None) -> sp.Expr:
    """A value computed at a point of floats, as one float: a constant of the formulas given by its
    value only at evaluation (an attention head's 1/√d_k = √2/2) would otherwise stay a factor of
    every later value, and the expressions grow layer by layer."""
    if digits is None or not isinstance(value, sp.Basic) or value.is_Number:  # Python ints and Fractions too
        return value
    return value.evalf(digits + 10)


def _is_parameter_gradient(key: Quantity) -> bool:
    return key.is_gradient and Quantity(key.kind.removeprefix("grad_"), key.layer).is_parameter


def _entries(free: tuple, env: dict):
    """Every combination of values of the free indices of a formula at the concrete sizes."""
    return np.ndindex(*[int((i.upper + 1).xreplace(env)) for i in free])


def evaluate_derivation(derivation: Derivation, batch: bool, values: dict, env: dict) -> dict:
    """The derived formulas of one pass evaluated at a concrete point, in the order they were derived:
    the forward pass, then every named error; returns the parameter gradients by (label, index)."""
    return evaluate_pass(derivation, batch, values, env)[1]


def evaluate_pass(derivation: Derivation, batch: bool, values: dict, env: dict) -> tuple[dict, dict]:
    """`evaluate_derivation`, also returning every value it computed on the way (the given point,
    each node's output and each named error, by (label, index)): the worked example prints them."""
    return _evaluate_pass(derivation.model, derivation.batch if batch else derivation.sample, batch, values, env)


def _evaluate_pass(model: Model, formulas: Pass, batch: bool, values: dict, env: dict) -> tuple[dict, dict]:
    results = formulas.results
    digits = _point_digits(values)
    # exact rationals as Python fractions while evaluating (`indexeval`: the same numbers, faster)
    values = {k: Fraction(int(v.p), int(v.q)) if isinstance(v, sp.Rational) else v for k, v in values.items()}
    for node in model.network.layers:
        result = results[node.output]
        label = node.out(batch).label
        form = compiled(_formula(result.rhs, digits))
        for idx in _entries(result.free, env):
            values[(label, tuple(idx))] = _settled(form(values, {**env, **dict(zip(result.free, idx))}), digits)
    grads = {}
    skip = model.network.output.gradient
    for key in formulas.steps:
        if key == skip and skip.kind == "grad_a":  # ∂C/∂a⁽ᴸ⁾ is substituted; a δ⁽ᴸ⁾ is computed
            continue
        result = results[key]
        if _is_parameter_gradient(key):
            label = Quantity(key.kind.removeprefix("grad_"), key.layer).label
            target = grads
        else:
            label = key.batched(batch).label
            target = values
        form = compiled(_formula(result.rhs, digits))
        for idx in _entries(result.free, env):
            target[(label, tuple(idx))] = _settled(form(values, {**env, **dict(zip(result.free, idx))}), digits)
    return {k: to_sympy(v) for k, v in values.items()}, {k: to_sympy(v) for k, v in grads.items()}


# --------------------------------------------------------------------------------------------------
# the checks


def _per_node(model: Model, differences: dict, digits: int | None = None) -> dict[str, str]:
    """The largest difference per node that owns parameters, by its output's label (with `digits`, as
    `rounding_bound` prints it)."""
    out = {}
    owner = {param.label: node for node, param in _parameters(model)}
    for (label, _), difference in differences.items():
        node = owner[label].output.label
        out[node] = max(out.get(node, sp.S.Zero), difference)
    order = [node.output.label for node in model.network.layers]
    bound = (lambda x: decade_bound(float(x))) if digits is None else (lambda x: rounding_bound(x, digits))
    return {node: "0" if out[node] == 0 else bound(out[node]) for node in order if node in out}


def rounding_bound(difference: sp.Expr, digits: int) -> str:
    """A difference of two evaluations at `digits` significant digits, as the power of ten it stays
    below ('1e-50'; '0' for none): a difference under the working precision's unit 10^-digits is
    rounding, whose size (10^-51 or 10^-52) depends on the order in which each side was evaluated, so
    it is stated as that unit; a larger one by its own decade (`decade_bound`)."""
    if difference == 0:
        return "0"
    if difference <= sp.Rational(1, 10**digits):
        return f"1e-{digits}"
    return decade_bound(float(difference))


def symbolic_check(derivation: Derivation, direct: DirectDifferentiation | None = None) -> Check:
    model = derivation.model
    direct = direct if direct is not None else DirectDifferentiation(model)
    if direct.skipped:
        return Check("symbolic", True, ran=False, figures={"depth": model.depth, "max_depth": SYMBOLIC_MAX_DEPTH})
    try:
        if direct.error is not None:
            raise ValueError(direct.error)
        return _compare_with_direct(derivation, direct)
    except UNEVALUABLE as error:
        reason = direct.error or _unevaluable_text(error)
        return Check("symbolic", False, figures={"partials": 0, "width": SYMBOLIC_WIDTH, "depth": model.depth,
                                                 "exact": False, "digits": DIGITS, "working_digits": DIGITS,
                                                 "largest_difference": "nan", "error": reason})


def _compare_with_direct(derivation: Derivation, direct: DirectDifferentiation) -> Check:
    model = derivation.model
    expected, exact = direct.result()
    for digits in (DIGITS, 2 * DIGITS, 4 * DIGITS):
        # an ill-conditioned point (cosh(z)**64 of a large z) loses digits in both evaluations:
        # evaluate both again with more working digits before calling a difference an error
        if digits != DIGITS:
            expected, exact = direct.gradients(model, direct.values, digits)
        values = direct.values if exact else {k: sp.Float(v, digits) for k, v in direct.values.items()}
        samples = coupled_samples(model)  # a network that couples its samples: its minibatch formulas
        derived = direct.derived if digits == DIGITS else None  # evaluated by the runner, if it could
        if derived is None:
            derived = evaluate_derivation(derivation, samples is not None, values,
                                          concrete_sizes(model, SYMBOLIC_WIDTH, samples))
        differences = {}
        for key, value in expected.items():
            got = derived[key] if exact else derived[key].evalf(digits)  # named constants (selu) → digits
            differences[key] = abs(value - got) / max(sp.S.One, abs(value))
        worst = max(differences.values(), default=sp.S.Zero)
        passed = worst == 0 if exact else worst <= FLOAT_TOLERANCE
        if exact or passed:
            break
    return Check(
        "symbolic",
        bool(passed),
        figures={
            "partials": len(expected),
            "width": SYMBOLIC_WIDTH,
            "depth": model.depth,
            "exact": exact,
            "digits": DIGITS,
            "working_digits": digits,
            "largest_difference": "0" if worst == 0 else decade_bound(float(worst)) if exact
            else rounding_bound(worst, digits),
            "per_node": _per_node(model, differences, None if exact else digits),
            **({"samples": coupled_samples(model)} if coupled_samples(model) else {}),
            **({"method": "chained", "entries": _entry_count(model)} if direct.chained else {}),
        },
    )


def minibatch_check(derivation: Derivation, seed: int = 1, samples: int = 2) -> Check:
    if any(node.kind.couples_samples for node in derivation.model.network.layers):
        return Check("minibatch", True, ran=False, figures={"reason": "couples_samples"})
    try:
        return _minibatch_check(derivation, seed, samples)
    except UNEVALUABLE as error:
        return Check("minibatch", False, figures={"partials": 0, "samples": samples, "exact": False,
                                                  "digits": DIGITS, "largest_difference": "nan",
                                                  "error": _unevaluable_text(error)})


def _minibatch_check(derivation: Derivation, seed: int, samples: int) -> Check:
    """(1/m) Σ_s of the per-sample gradients equals the minibatch formulas, exactly."""
    model = derivation.model
    width = SYMBOLIC_WIDTH
    rng = random.Random(seed)
    batch_values = _random_point(model, width, samples, rng)
    # exact for rational networks up to the depth of the direct check; deeper, their exact numbers grow
    # with every layer (softsign doubles their digits: depth 14 took a minute), so 50 digits instead
    exact = rational_model(model) and model.depth <= SYMBOLIC_MAX_DEPTH
    if not exact:
        batch_values = {k: sp.Float(v, DIGITS) for k, v in batch_values.items()}
    per_sample_sum: dict = defaultdict(lambda: sp.S.Zero)
    columns = {"A_0": "a_0", "Y": "y", **{q.batched().label: q.label for _, q in model.network.data_inputs}}
    for s in range(samples):
        values = {k: v for k, v in batch_values.items() if k[0] not in columns}
        for (label, idx), v in batch_values.items():  # column s of the minibatch: the sample index last
            if label in columns and idx[-1] == s:
                values[(columns[label], idx[:-1])] = v
        grads = evaluate_derivation(derivation, False, values, concrete_sizes(model, width, None))
        for key, v in grads.items():
            per_sample_sum[key] += v
    batch = evaluate_derivation(derivation, True, batch_values, concrete_sizes(model, width, samples))
    differences = {k: abs(batch[k] - per_sample_sum[k] / samples) for k in batch}
    worst = max(differences.values())
    if not exact:
        worst = worst.evalf(DIGITS)
    passed = worst == 0 if exact else worst <= FLOAT_TOLERANCE
    return Check(
        "minibatch",
        bool(passed),
        figures={
            "partials": len(batch),
            "samples": samples,
            "exact": exact,
            "digits": DIGITS,
            "largest_difference": "0" if worst == 0 else decade_bound(float(worst)),
            "per_node": _per_node(model, {k: (v if exact else v.evalf(DIGITS)) for k, v in differences.items()}),
        },
    )
