"""The chain rule, layer by layer: from the local rules of `layers` to the δ-form.

`chain_rule` is the one piece of calculus here. Given how the cost depends on a layer's outputs
(the upstream gradient) and the layer's local forward rule, it writes the chain-rule sum, lets SymPy
differentiate the local rule, collapses the Kronecker deltas and returns every intermediate equation
as a `Step`. The functions below only decide which layer is glued to which, and which quantities
get a name (δ⁽ˡ⁾ = ∂C/∂z⁽ˡ⁾): naming them is what keeps every expression local and small.

Everything is derived twice, per sample (vectors) and per minibatch (matrices, one column per
sample); both runs use the same layer rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp

from derive.indexing import collapse, factor_delta, factor_piecewise, transform
from derive.layers import ActivationLayer, Dense, LossLayer, entry_of
from derive.matrixform import entries_agree, to_matrix_form
from derive.notation import BATCH_COST, BATCH_SIZE, COST, LEARNING_RATE, LayerRef, Q, Quantity, index, sample_index
from derive.nonsmooth import kink_convention
from derive.regularisation import Penalty, gradient_steps
from derive.rewrite import targets_sum_to_one, tidy


@dataclass(frozen=True)
class Step:
    """One equation of a derivation and the rule that justifies it (a key of the message catalog)."""

    lhs: sp.Expr
    rhs: sp.Expr
    rule: str
    matrix: bool = False


@dataclass(frozen=True)
class Result:
    """A derived formula in index form, and the same formula recognised in matrix form."""

    name: str  # "delta", "grad_W", "grad_b", "grad_a", "z", "a"
    layer: LayerRef
    lhs: sp.Expr
    rhs: sp.Expr
    free: tuple[sp.Idx, ...]
    matrix_lhs: sp.Expr
    matrix_rhs: sp.Expr
    recognition_proved: bool


@dataclass
class Pass:
    """Everything derived in one mode (per sample, or per minibatch)."""

    batch: bool
    steps: dict[str, list[Step]] = field(default_factory=dict)  # keyed by "delta_3", "grad_W_l" …
    results: dict[str, Result] = field(default_factory=dict)

    def add(self, key: str, steps: list[Step], result: Result) -> None:
        self.steps[key] = steps
        self.results[key] = result


def _indices(unit: sp.Idx, sample: sp.Idx | None) -> tuple[sp.Idx, ...]:
    return (unit,) if sample is None else (unit, sample)


def _sum_over(expr: sp.Expr, indices: Sequence[sp.Idx]) -> sp.Expr:
    for i in reversed(indices):
        expr = sp.Sum(expr, (i, i.lower, i.upper))
    return expr


def _substitute(expr: sp.Expr, base: sp.IndexedBase, value: Callable[..., sp.Expr]) -> sp.Expr:
    """Replace every entry base[idx] by value(*idx)."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: value(*e.indices))


# --------------------------------------------------------------------------------------------------
# the calculus


def chain_rule(
    lhs: sp.Expr,
    upstream: Callable[..., sp.Expr],
    output: Quantity,
    entry: Callable[..., sp.Expr],
    out_indices: tuple[sp.Idx, ...],
    target: sp.Indexed,
    readable: Callable[[sp.Expr], tuple[sp.Expr, str] | None] | None = None,
) -> tuple[list[Step], sp.Expr]:
    """lhs = Σ_out upstream(out) · ∂out/∂target, with ∂out/∂target computed from the local rule."""
    out_entry = output.base[out_indices]
    local_symbol = sp.Derivative(out_entry, target)
    steps = [Step(lhs, _sum_over(upstream(*out_indices) * local_symbol, out_indices), "chain_rule")]
    raw = sp.diff(entry(*out_indices), target)
    steps.append(Step(local_symbol, raw, "local_derivative"))
    local = factor_delta(collapse(raw))
    if local != raw:
        rule = "common_delta" if raw.has(sp.Piecewise) and not raw.has(sp.Sum) else "kronecker_collapse"
        steps.append(Step(local_symbol, local, rule))
    if readable is not None:
        found = readable(local)
        if found is not None and found[0] != local:
            local = tidy(found[0]) if not local.has(sp.Sum) else found[0]
            steps.append(Step(local_symbol, local, found[1]))
    glued = _sum_over(upstream(*out_indices) * local, out_indices)
    result = _factored(collapse(glued))
    steps.append(Step(lhs, result, "kronecker_collapse" if glued.has(sp.KroneckerDelta) else "substitute_local"))
    return steps, result


def _factored(expr: sp.Expr) -> sp.Expr:
    """Common factors taken out of piecewise expressions (only piecewise results need the walk)."""
    return transform(expr, factor_piecewise) if expr.has(sp.Piecewise) else expr


def _result(name: str, layer: LayerRef, lhs, rhs, free, matrix_lhs) -> Result:
    matrix_rhs = to_matrix_form(rhs, free)
    proved = entries_agree(rhs, matrix_rhs, free)
    if not proved:
        raise AssertionError(f"matrix form {matrix_rhs} of {rhs} failed its entry check")
    return Result(name, layer, lhs, rhs, free, matrix_lhs, matrix_rhs, proved)


# --------------------------------------------------------------------------------------------------
# the pieces of backpropagation


def loss_gradient(loss: LossLayer, batch: bool) -> tuple[list[Step], Callable[..., sp.Expr], Result]:
    """∂C/∂a⁽ᴸ⁾_q: differentiate the cost of a sample (or the summed cost of a minibatch)."""
    q = loss.unit_index("q")
    s = sample_index("s") if batch else None
    a = loss.input(batch)
    target = entry_of(a, q, s)
    if batch:
        t = sample_index("t")
        cost = sp.Sum(loss.sample_cost(t), (t, t.lower, t.upper))
        lhs = sp.Derivative(sp.Symbol("C_s", real=True), target)
    else:
        cost = loss.sample_cost()
        lhs = sp.Derivative(COST, target)
    # the penalty R does not depend on the outputs, so only the data term is differentiated (and
    # with all sums as one, which keeps SymPy from folding a piecewise loss out of its sum)
    i = loss.unit_index()
    data = sp.Sum(loss.per_unit(i, t), (i, i.lower, i.upper), (t, t.lower, t.upper)) if batch else \
        sp.Sum(loss.per_unit(i, None), (i, i.lower, i.upper))
    raw = sp.diff(data, target)
    steps = [Step(lhs, sp.Derivative(cost, target), "definition_loss"), Step(lhs, raw, "differentiate")]
    value = collapse(raw)
    steps.append(Step(lhs, value, "kronecker_collapse"))
    conventional = kink_convention(value) if value.has(sp.Heaviside, sp.DiracDelta) else value
    if conventional != value:  # a loss with a kink (max(a − y, 0)): the value used there
        value = conventional
        steps.append(Step(lhs, value, "kink_convention_loss"))
    tidied = tidy(value)
    if tidied != value:
        value = tidied
        steps.append(Step(lhs, value, "algebra"))

    def upstream(unit, sample=None):
        return value.xreplace({q: unit, **({s: sample} if batch else {})})

    grad = Q("grad_A" if batch else "grad_a", loss.layer)
    result = _result("grad_a", loss.layer, lhs, value, _indices(q, s), grad.symbol)
    return steps, upstream, result


def layer_error(
    act: ActivationLayer,
    upstream: Callable[..., sp.Expr],
    batch: bool,
    *,
    probability_targets: bool = False,
    output_layer: bool = False,
) -> tuple[list[Step], Result]:
    """δ⁽ˡ⁾_q = ∂C/∂z⁽ˡ⁾_q from the upstream ∂C/∂a⁽ˡ⁾ through the activation layer."""
    q = act.out_index("q")
    s = sample_index("s") if batch else None
    i = act.out_index("i")
    t = sample_index("t") if batch else None
    delta = Q("Delta" if batch else "delta", act.layer)
    z = act.input(batch)
    cost = sp.Symbol("C_s", real=True) if batch else COST
    lhs = entry_of(delta, q, s)
    target = entry_of(z, q, s)
    grad = Q("grad_A" if batch else "grad_a", act.layer)
    steps = [Step(lhs, sp.Derivative(cost, target), "definition_delta")]
    chain_steps, value = chain_rule(
        lhs,
        lambda *idx: grad.base[idx],
        act.output(batch),
        lambda unit, sample=None: act.entry(unit, sample),
        _indices(i, t),
        target,
        readable=lambda e: act.readable(e, t if batch else None),
    )
    steps += chain_steps
    value = _factored(collapse(_substitute(value, grad.base, upstream)))
    steps.append(Step(lhs, value, "substitute_upstream"))
    if probability_targets:
        replaced = targets_sum_to_one(value, Q("Y" if batch else "y").base)
        if replaced != value:
            value = replaced
            steps.append(Step(lhs, value, "targets_sum_to_one"))
    if output_layer and not value.has(sp.Sum):
        tidied = tidy(value)
        if tidied != value:
            value = tidied
            steps.append(Step(lhs, value, "algebra"))
    result = _result("delta", act.layer, lhs, value, _indices(q, s), delta.symbol)
    steps.append(Step(result.matrix_lhs, result.matrix_rhs, "matrix_form", matrix=True))
    return steps, result


def input_gradient(dense: Dense, batch: bool) -> tuple[list[Step], Callable[..., sp.Expr]]:
    """∂C/∂a⁽ˡ⁻¹⁾_q = Σ_i δ⁽ˡ⁾_i ∂z⁽ˡ⁾_i/∂a⁽ˡ⁻¹⁾_q: what the layer below receives."""
    q = dense.in_index("q")
    s = sample_index("s") if batch else None
    i = dense.out_index("i")
    t = sample_index("t") if batch else None
    delta = Q("Delta" if batch else "delta", dense.layer)
    grad = Q("grad_A" if batch else "grad_a", dense.previous)
    target = entry_of(dense.input(batch), q, s)
    lhs = grad.base[_indices(q, s)]
    steps, value = chain_rule(
        lhs,
        lambda *idx: delta.base[idx],
        dense.output(batch),
        lambda unit, sample=None: dense.entry(unit, sample),
        _indices(i, t),
        target,
    )

    def upstream(unit, sample=None):
        return value.xreplace({q: unit, **({s: sample} if batch else {})})

    return steps, upstream


def parameter_gradients(
    dense: Dense, batch: bool, penalty: Penalty | None = None
) -> tuple[list[Step], Result, list[Step], Result]:
    """∂C/∂W⁽ˡ⁾ and ∂C/∂b⁽ˡ⁾ from δ⁽ˡ⁾ (per minibatch: the mean over its samples), plus the
    derivative of the penalty for the parameters it covers."""
    p, q = dense.out_index("p"), dense.in_index("q")
    i = dense.out_index("i")
    t = sample_index("t") if batch else None
    delta = Q("Delta" if batch else "delta", dense.layer)
    cost = BATCH_COST if batch else COST

    def upstream(*idx):
        return delta.base[idx] / BATCH_SIZE if batch else delta.base[idx]

    out = []
    for param, target, free, name in (
        (dense.weight, dense.weight.base[p, q], (p, q), "grad_W"),
        (dense.bias, dense.bias.base[p], (p,), "grad_b"),
    ):
        lhs = sp.Derivative(cost, target)
        steps, value = chain_rule(
            lhs,
            upstream,
            dense.output(batch),
            lambda unit, sample=None: dense.entry(unit, sample),
            _indices(i, t),
            target,
        )
        if penalty is not None and penalty.covers(param.kind):
            steps, value = gradient_steps(penalty, param, target, steps, value, batch, Step)
        matrix_lhs = sp.Derivative(cost, param.symbol)
        result = _result(name, dense.layer, lhs, value, free, matrix_lhs)
        steps.append(Step(matrix_lhs, result.matrix_rhs, "matrix_form", matrix=True))
        out += [steps, result]
    return tuple(out)


def update_rule(dense: Dense, grad_W: Result, grad_b: Result) -> list[Step]:
    """Gradient descent with step size η, written with the derived minibatch gradients."""
    steps = []
    for param, grad in ((dense.weight, grad_W), (dense.bias, grad_b)):
        w = param.symbol
        steps.append(Step(w, w - LEARNING_RATE * grad.matrix_lhs, "gradient_descent", matrix=True))
        steps.append(Step(w, w - LEARNING_RATE * grad.matrix_rhs, "substitute_gradient", matrix=True))
    return steps


def dense_forward(dense: Dense, batch: bool) -> Result:
    """z⁽ˡ⁾ entry by entry and in matrix form."""
    i = dense.out_index("i")
    s = sample_index("s") if batch else None
    z = dense.output(batch)
    return _result("z", dense.layer, entry_of(z, i, s), dense.entry(i, s), _indices(i, s), z.symbol)


def forward_equations(dense: Dense, act: ActivationLayer, batch: bool) -> tuple[Result, Result]:
    """z⁽ˡ⁾ and a⁽ˡ⁾ entry by entry and in matrix form."""
    i = dense.out_index("i")
    s = sample_index("s") if batch else None
    a = act.output(batch)
    a_result = _result("a", act.layer, entry_of(a, i, s), act.entry(i, s), _indices(i, s), a.symbol)
    return dense_forward(dense, batch), a_result


def loss_equation(loss: LossLayer, batch: bool) -> Result:
    if batch:
        return Result("cost", loss.layer, BATCH_COST, loss.batch_cost(), (), BATCH_COST, BATCH_COST, True)
    return Result("cost", loss.layer, COST, loss.sample_cost(), (), COST, COST, True)


__all__ = [
    "Step",
    "Result",
    "Pass",
    "chain_rule",
    "loss_gradient",
    "layer_error",
    "input_gradient",
    "parameter_gradients",
    "update_rule",
    "forward_equations",
    "dense_forward",
    "loss_equation",
    "index",
]
