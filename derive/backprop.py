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
from derive.layers import Node, entry_of
from derive.matrixform import NotRecognised, entries_agree, to_matrix_form
from derive.notation import BATCH_COST, BATCH_SIZE, COST, LEARNING_RATE, Axis, LayerRef, Q, Quantity, index, sample_index
from derive.nonsmooth import kink_convention
from derive.layers.penalty import Penalty, gradient_steps
from derive.rewrite import natural_signs, targets_sum_to_one, tidy


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
    """Everything derived in one mode (per sample, or per minibatch), keyed by the quantity each
    result defines: z⁽³⁾ and a⁽³⁾ for the forward pass, δ⁽³⁾ = ∂C/∂z⁽³⁾, ∂C/∂W⁽³⁾ … (the
    per-sample quantity in both modes), and `COST_KEY` for the cost."""

    batch: bool
    steps: dict[Quantity, list[Step]] = field(default_factory=dict)
    results: dict[Quantity, Result] = field(default_factory=dict)

    def add(self, key: Quantity, steps: list[Step], result: Result) -> None:
        self.steps[key] = steps
        self.results[key] = result


@dataclass(frozen=True)
class Flow:
    """How ∂C/∂q reaches the formulas that use it: by its own name (δ⁽ˡ⁾), or substituted as an
    expression (`value`, a function of the entry's indices) together with the steps that derived it,
    which the documents show before the formula that uses it. `from_loss`: it is ∂C/∂a⁽ᴸ⁾ itself."""

    value: Callable[..., sp.Expr] | None = None
    steps: tuple[Step, ...] = ()
    from_loss: bool = False

    @property
    def named(self) -> bool:
        return self.value is None


def _sum_over(expr: sp.Expr, indices: Sequence[sp.Idx]) -> sp.Expr:
    for i in reversed(indices):
        expr = sp.Sum(expr, (i, i.lower, i.upper))
    return expr


def _substitute(expr: sp.Expr, base: sp.IndexedBase, value: Callable[..., sp.Expr]) -> sp.Expr:
    """Replace every entry base[idx] by value(*idx)."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: value(*e.indices))


# --------------------------------------------------------------------------------------------------
# the calculus


@dataclass(frozen=True)
class Path:
    """One way the loss depends on a target entry: through the outputs `output[out_indices]` of a
    node whose forward rule is `entry` and whose ∂C/∂output is `upstream`."""

    upstream: Callable[..., sp.Expr]
    output: Quantity
    entry: Callable[..., sp.Expr]
    out_indices: tuple[sp.Idx, ...]
    readable: Callable[[sp.Expr], tuple[sp.Expr, str] | None] | None = None


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
    return chain_rule_paths(lhs, [Path(upstream, output, entry, out_indices, readable)], target)


def chain_rule_paths(lhs: sp.Expr, paths: list[Path], target: sp.Indexed) -> tuple[list[Step], sp.Expr]:
    """The chain rule over every path from the target to the loss: lhs = Σ_paths Σ_out ∂C/∂out ·
    ∂out/∂target. Each path's local derivative is computed from its node's rule and collapsed on
    its own; the paths' terms are then added (a quantity read by two nodes gets both errors)."""
    glued_terms = [_sum_over(p.upstream(*p.out_indices) * sp.Derivative(p.output.base[p.out_indices], target),
                             p.out_indices) for p in paths]
    steps = [Step(lhs, sp.Add(*glued_terms), "chain_rule" if len(paths) == 1 else "chain_rule_paths")]
    results, kronecker = [], False
    for path in paths:
        local_symbol = sp.Derivative(path.output.base[path.out_indices], target)
        rule = fresh_dummies(path.entry(*path.out_indices), set(target.indices) | set(path.out_indices))
        raw = sp.diff(rule, target)
        steps.append(Step(local_symbol, raw, "local_derivative"))
        local = factor_delta(collapse(raw))
        if local != raw:
            rule = "common_delta" if raw.has(sp.Piecewise) and not raw.has(sp.Sum) else "kronecker_collapse"
            steps.append(Step(local_symbol, local, rule))
        if path.readable is not None:
            found = path.readable(local)
            if found is not None and found[0] != local:
                local = tidy(found[0]) if not local.has(sp.Sum) else found[0]
                steps.append(Step(local_symbol, local, found[1]))
        glued = _sum_over(path.upstream(*path.out_indices) * local, path.out_indices)
        kronecker |= glued.has(sp.KroneckerDelta)
        results.append(_factored(collapse(glued)))
    result = sp.Add(*results)
    steps.append(Step(lhs, result, "kronecker_collapse" if kronecker else "substitute_local"))
    return steps, result


def fresh_dummies(expr: sp.Expr, taken: set) -> sp.Expr:
    """`expr` with every summation index that is also in `taken` renamed (j → j′): SymPy
    differentiates Σ_q W_iq a_q with respect to a_q wrongly when q is also the free index of the
    target (sympy#21891), so a kind's rule never sums over a letter the derivation uses."""
    clashes = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            for limit in node.limits:
                i = limit[0]
                if i in taken and i not in clashes:
                    name = str(i.label) + "'"
                    while any(str(t.label) == name for t in taken if isinstance(t, sp.Idx)):
                        name += "'"
                    clashes[i] = sp.Idx(sp.Symbol(name, integer=True), (i.lower, i.upper)) if isinstance(i, sp.Idx) \
                        else sp.Symbol(name, integer=True)
    return expr.xreplace(clashes) if clashes else expr


def _is_fraction(value: Callable[..., sp.Expr]) -> bool:
    """Whether a loss gradient's value (`_substitution`: in its own free indices when called with
    none) has a denominator."""
    try:
        probe = value()
    except TypeError:
        return False
    return any(p.exp.is_negative for p in probe.atoms(sp.Pow))


def _factored(expr: sp.Expr) -> sp.Expr:
    """Common factors taken out of piecewise expressions (only piecewise results need the walk)."""
    return transform(expr, factor_piecewise) if expr.has(sp.Piecewise) else expr


def _result(name: str, layer: LayerRef, lhs, rhs, free, matrix_lhs) -> Result:
    """A derived formula with its array form, proved entry by entry; a formula that no operation
    expresses (not even einsum: a shifted index of a recurrence) keeps its index form only, and the
    code generator says so if it needs one."""
    try:
        matrix_rhs = to_matrix_form(rhs, free)
    except NotRecognised:
        return Result(name, layer, lhs, rhs, free, matrix_lhs, None, False)
    proved = entries_agree(rhs, matrix_rhs, free)
    if not proved:
        raise AssertionError(f"matrix form {matrix_rhs} of {rhs} failed its entry check")
    return Result(name, layer, lhs, rhs, free, matrix_lhs, matrix_rhs, proved)


# --------------------------------------------------------------------------------------------------
# the pieces of backpropagation


def _cost_symbol(batch: bool) -> sp.Symbol:
    """The loss whose derivative a per-entry formula states: C, or C_s for column s of a minibatch."""
    return sp.Symbol("C_s", real=True) if batch else COST


def loss_gradient(node: Node, batch: bool) -> tuple[list[Step], Flow, Result]:
    """∂C/∂a⁽ᴸ⁾ entry by entry: differentiate the cost of a sample (or the summed cost of a minibatch)."""
    loss = node.kind
    a = node.inputs[0]
    q = node.in_indices(0, "target")
    s = sample_index("s") if batch else None
    target = entry_of(a, q, s)
    if batch:
        t = sample_index("t")
        cost = sp.Sum(loss.sample_cost(node, t), (t, t.lower, t.upper))
        lhs = sp.Derivative(sp.Symbol("C_s", real=True), target)
    else:
        cost = loss.sample_cost(node)
        lhs = sp.Derivative(COST, target)
    # the penalty R does not depend on the outputs, so only the data term is differentiated (and
    # with all sums as one, which keeps SymPy from folding a piecewise loss out of its sum)
    i = node.in_indices(0, "out")
    summed = (*i, t) if batch else i  # the units innermost, then the samples
    data = sp.Sum(loss.per_unit(node, i if len(i) > 1 else i[0], t if batch else None),
                  *[(x, x.lower, x.upper) for x in summed])
    raw = sp.diff(data, target)
    # the lines printed with each binomial in its natural order, (1 - y) not -(y - 1); the value used on is the engine's
    steps = [Step(lhs, sp.Derivative(cost, target), "definition_loss"), Step(lhs, natural_signs(raw), "differentiate")]
    value = collapse(raw)
    steps.append(Step(lhs, natural_signs(value), "kronecker_collapse"))
    conventional = kink_convention(value) if value.has(sp.Heaviside, sp.DiracDelta) else value
    if conventional != value:  # a loss with a kink (max(a − y, 0)): the value used there
        value = conventional
        steps.append(Step(lhs, value, "kink_convention_loss"))
    tidied = tidy(value)
    if tidied != value:
        value = tidied
        steps.append(Step(lhs, value, "algebra"))
    free = (*q, s) if batch else q
    grad = a.gradient.batched(batch)
    result = _result("grad_a", a.layer, lhs, value, free, grad.symbol)
    return steps, Flow(_substitution(value, free), from_loss=True), result


def _substitution(value: sp.Expr, free: tuple[sp.Idx, ...]) -> Callable[..., sp.Expr]:
    """`value`, an expression in the indices `free`, as a function of the indices it is wanted at."""

    def at(*indices):
        return value.xreplace(dict(zip(free, indices)))

    return at


def gradient_through(uses: list[tuple[Node, int, Flow]], batch: bool, *, named: bool,
                     probability_targets: bool = False) -> tuple[list[Step], sp.Expr, sp.Indexed]:
    """∂C/∂u_q for a quantity u read by the given nodes (node, input position, ∂C/∂node output):
    Σ over the nodes and their outputs of ∂C/∂out · ∂out/∂u_q, with ∂C/∂out by name and, where it is
    not a named quantity, its expression substituted afterwards.

    `named`: ∂C/∂u gets a name (δ⁽ˡ⁾ = ∂C/∂z⁽ˡ⁾ …): its definition opens the steps, and an output
    error close to the loss is tidied. Returns the steps (after those of unnamed upstreams), the
    value and the entry it defines.
    """
    node, k, _ = uses[0]
    target_q = node.inputs[k]
    q = node.in_indices(k, "target")
    s = sample_index("s") if batch else None
    t = sample_index("t") if batch else None
    target = entry_of(target_q, q, s)
    lhs = entry_of(target_q.gradient, q, s)
    steps = [step for _, _, flow in uses for step in flow.steps]
    if named:
        rule = "definition_delta" if target_q.gradient.kind == "delta" else "definition_gradient"
        steps.append(Step(lhs, sp.Derivative(_cost_symbol(batch), target), rule))
    paths = []
    for node, k, flow in uses:
        grad_out = node.output.gradient.batched(batch)
        paths.append(Path(lambda *idx, base=grad_out.base: base[idx], node.out(batch), _entry_of_node(node, batch),
                          _with_sample(node.out_indices("out"), t),
                          lambda e, node=node: node.readable(e, t if batch else None)))
    chain_steps, value = chain_rule_paths(lhs, paths, target)
    steps += chain_steps
    inline = [(node.output.gradient.batched(batch).base, flow) for node, _, flow in uses if not flow.named]
    held = None
    if inline and not value.has(sp.Sum) and all(flow.from_loss for _, flow in inline) \
            and any(_is_fraction(flow.value) for _, flow in inline):
        # a loss gradient that is a fraction: shown as put in, then cancelled as a step of its own
        # (SymPy would cancel it against the slope silently)
        held = value
        for base, flow in inline:
            held = _substitute(held, base, lambda *i, flow=flow: sp.UnevaluatedExpr(flow.value(*i)))
        steps.append(Step(lhs, held, "substitute_upstream"))
        value = tidy(held.xreplace({u: u.args[0] for u in held.atoms(sp.UnevaluatedExpr)}))
        steps.append(Step(lhs, value, "algebra"))
    elif inline:
        for base, flow in inline:
            value = _substitute(value, base, flow.value)
        value = _factored(collapse(value))
        steps.append(Step(lhs, value, "substitute_upstream"))
    if named and all(flow.from_loss for _, _, flow in uses):
        if probability_targets:
            replaced = targets_sum_to_one(value, Q("Y" if batch else "y").base)
            if replaced != value:
                value = replaced
                steps.append(Step(lhs, value, "targets_sum_to_one"))
        if not value.has(sp.Sum):
            tidied = tidy(value)
            if tidied != value:
                value = tidied
                steps.append(Step(lhs, value, "algebra"))
    return steps, value, lhs


def named_gradient(quantity: Quantity, steps: list[Step], value: sp.Expr, lhs: sp.Indexed, batch: bool) -> Result:
    """The result for a named ∂C/∂q (δ⁽ˡ⁾, or ∂C/∂a where paths meet), with its matrix form as a step."""
    grad = quantity.gradient
    result = _result("delta" if grad.kind == "delta" else grad.kind, quantity.layer, lhs, value,
                     tuple(lhs.indices), grad.batched(batch).symbol)
    if result.matrix_rhs is not None:
        steps.append(Step(result.matrix_lhs, result.matrix_rhs, "matrix_form", matrix=True))
    return result


def inline_flow(steps: list[Step], value: sp.Expr, lhs: sp.Indexed, batch: bool) -> Flow:
    """An unnamed ∂C/∂u: its value as a function of the entry's indices, for substitution."""
    return Flow(_substitution(value, tuple(lhs.indices)), tuple(steps))


def _with_sample(indices: tuple[sp.Idx, ...], sample: sp.Idx | None) -> tuple[sp.Idx, ...]:
    return indices if sample is None else (*indices, sample)


def _entry_of_node(node: Node, batch: bool) -> Callable[..., sp.Expr]:
    """The node's rule as a function of its output indices (and the sample index, per minibatch)."""
    rank = len(node.out_axes)

    def entry(*indices):
        return node.call_entry(indices[:rank], indices[rank] if batch else None)

    return entry


PARAMETER_LETTERS = "pqrogh"  # indices of a parameter's entry (never s, t: the samples; nor i, j, k)


def _parameter_indices(node: Node, param: Quantity) -> tuple[sp.Idx, ...]:
    """Fresh indices p, q, … over a parameter's axes, distinct from its node's output indices (never
    a summation letter of the rule either: see `fresh_dummies` and sympy#21891)."""
    taken = {str(i.label) for i in node.out_indices("out")}
    letters = [c for c in PARAMETER_LETTERS if c not in taken]
    own = getattr(node.kind, "parameter_letters", None)  # a kind's own (a kernel's g, e, u, v)
    if own is not None:
        letters = list(own(node, param))
    return tuple(axis.index(letter) for letter, axis in zip(letters, parameter_axes(node, param)))


def parameter_axes(node: Node, param: Quantity) -> tuple[Axis, ...]:
    """A parameter's axes; a kind may give them as layers (an axis of units each)."""
    return tuple(a if isinstance(a, Axis) else Axis("n", a) for a in node.kind.parameter_axes(node, param))


def parameter_gradients(node: Node, batch: bool, penalty: Penalty | None = None) -> list[tuple[Quantity, list[Step], Result]]:
    """∂C/∂θ for every parameter θ of the node from its named error (per minibatch: the mean over
    its samples), plus the derivative of the penalty for the parameters it covers."""
    t = sample_index("t") if batch else None
    delta = node.output.gradient.batched(batch)
    cost = BATCH_COST if batch else COST

    def upstream(*idx):
        return delta.base[idx] / BATCH_SIZE if batch else delta.base[idx]

    out = []
    for param in node.parameters:
        free = _parameter_indices(node, param)
        target = param.base[free]
        lhs = sp.Derivative(cost, target)
        steps, value = chain_rule(lhs, upstream, node.out(batch), _entry_of_node(node, batch),
                                  _with_sample(node.out_indices("out"), t), target)
        if penalty is not None and penalty.covers(param):
            axes = [(p, node.kind.parameter_axes(node, p)) for p in node.parameters]
            steps, value = gradient_steps(penalty, param, target, steps, value, batch, Step, axes)
        matrix_lhs = sp.Derivative(cost, param.symbol)
        result = _result(param.gradient.kind, node.layer, lhs, value, free, matrix_lhs)
        if result.matrix_rhs is not None:
            steps.append(Step(matrix_lhs, result.matrix_rhs, "matrix_form", matrix=True))
        out.append((param, steps, result))
    return out


def update_rule(gradients: list[tuple[Quantity, Result]]) -> list[Step]:
    """Gradient descent with step size η, written with the derived minibatch gradients."""
    steps = []
    for param, grad in gradients:
        w = param.symbol
        steps.append(Step(w, w - LEARNING_RATE * grad.matrix_lhs, "gradient_descent", matrix=True))
        steps.append(Step(w, w - LEARNING_RATE * grad.matrix_rhs, "substitute_gradient", matrix=True))
    return steps


def forward_result(node: Node, batch: bool) -> Result:
    """A node's output entry by entry and in matrix form."""
    i = node.out_indices("out")
    s = sample_index("s") if batch else None
    out = node.out(batch)
    return _result(node.output.kind, node.layer, entry_of(node.output, i, s), node.call_entry(i, s),
                   _with_sample(i, s), out.symbol)


def loss_equation(node: Node, batch: bool) -> Result:
    loss = node.kind
    if batch:
        return Result("cost", node.inputs[0].layer, BATCH_COST, loss.batch_cost(node), (), BATCH_COST, BATCH_COST, True)
    return Result("cost", node.inputs[0].layer, COST, loss.sample_cost(node), (), COST, COST, True)


# the key of the cost among a pass's results
COST_KEY = Q("cost")

__all__ = [
    "Step",
    "Result",
    "Pass",
    "Flow",
    "COST_KEY",
    "chain_rule",
    "loss_gradient",
    "gradient_through",
    "named_gradient",
    "inline_flow",
    "parameter_gradients",
    "update_rule",
    "forward_result",
    "loss_equation",
    "index",
]
