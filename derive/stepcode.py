"""The training-step code of a model: which derived formulas, in which order, into which arrays.

`derive.workspace` turns formulas into in-place NumPy programs; this module decides the programs of
the generated model_inplace.py (the data of templates/model_workspace.py.j2):

* `gradients_into`: the forward pass and the backward pass exactly as `gradients` evaluates them
  (the code forms of `codegen`), the gradients pinned to arrays the workspace returns.
* `sgd_step`: the gradient-descent update rule of the derivation, θ ← θ − η ∂C̄/∂θ with the derived
  gradients substituted, applied in place. Two rewrites make it cheap, both checked: the output
  error is scaled once by −η/m and the recursion carries the factor down (it is linear in δ, which
  `linear_in` verifies on each derived formula), so each update is θ + Δ̃ Aᵀ with no scaling pass;
  and a layer's weights are updated as soon as they have carried the error to the layer below.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import sympy as sp

from derive.backprop import parameter_axes
from derive.codegen import _code_order, _target, backward_order
from derive.derivation import Derivation
from derive.ops import MATRIX_FUNCTIONS, Einsum, MatProd
from derive.notation import BATCH_SIZE, LEARNING_RATE, LayerRef, Q, Quantity, size
from derive.rewrite import scalar_onto_left_operand, stable_forms
from derive.workspace import Lowering, Pool, Program, Value, allocate, dim_name, quantity_shape, shape_text


@dataclass(frozen=True)
class WorkspaceProgram:
    """One in-place function: the lines binding its arrays, then the lowered formulas."""

    bindings: list[str]
    body: list[str]


@dataclass(frozen=True)
class WorkspacePlan:
    """Plain data for the `Workspace` class, `gradients_into` and `sgd_step`."""

    dims: list[str]  # n0 … nL: names the Workspace gives to the layer sizes
    gradients: list[tuple[str, str, str]]  # (parameter, gradient array, shape)
    scratch: list[tuple[str, str, str]]  # (array, shape, its memory order as an argument of _filled or "")
    products: list[tuple[str, str]]  # (function, inner dimension): np.dot if it is 1, else np.matmul
    constants: list[tuple[str, str]]  # (array of ones, shape) for sums computed as products
    windows: list[str]  # dicts of the window operations' work arrays (im2col columns, arg-max positions)
    gradients_into: WorkspaceProgram
    sgd_step: WorkspaceProgram
    scaled_errors: bool  # sgd_step carries −η/m down the recursion (see module docstring)
    size_sources: list[str] = ()  # for each layer size n0 … nL, where train() reads it (a parameter's shape)
    unpack: str = ""  # how the Workspace names the entries of `sizes` (n0, n1 … or (c0, h0, w0), …)
    unpack_value: str = ""
    layer_count: int = 0
    layer_names: str = ""
    min_of: str = "sizes"
    sizes_expr: str = ""  # how train() builds `sizes` from the arrays it is given
    x_shape: str = "(n0, m)"  # the shapes of X and Y, as code
    y_shape: str = "(nL, m)"


def linear_in(expr: sp.Expr, symbol: sp.Symbol) -> bool:
    """Whether a matrix-form expression is linear and homogeneous in `symbol`: f(c·X) = c·f(X).

    Structural and sufficient: X itself; a product (⊙ or matrix) with exactly one factor that
    mentions X, that factor linear; a sum of linear terms; a transpose, sum or broadcast of a linear
    argument. The derived recursions δ⁽ˡ⁻¹⁾ = g′ ⊙ (W⁽ˡ⁾ᵀ δ⁽ˡ⁾) pass; anything else is refused.
    """
    if expr == symbol:
        return True
    if not expr.has(symbol):
        return False
    if expr.is_Mul or isinstance(expr, (MatProd, Einsum)):
        carriers = [a for a in expr.args if a.has(symbol)]
        return len(carriers) == 1 and linear_in(carriers[0], symbol)
    if expr.is_Add:
        return all(linear_in(a, symbol) for a in expr.args)
    if isinstance(expr, MATRIX_FUNCTIONS) and len(expr.args) == 1:
        return linear_in(expr.args[0], symbol)
    return False


def _parameters(derivation: Derivation) -> list[Quantity]:
    return [p for node in derivation.model.network.layers for p in node.parameters]


def _arguments(derivation: Derivation) -> dict[str, Value]:
    """The caller's arrays: parameters, the input A0 (= X) and the targets Y."""
    out = {}
    network = derivation.model.network
    for q in _parameters(derivation):
        out[q.code()] = Value(quantity_shape(q, network), name=q.code(), argument=True)
    out[Q("A", 0).code()] = Value(quantity_shape(Q("X"), network), name=Q("A", 0).code(), argument=True)
    out[Q("Y").code()] = Value(quantity_shape(Q("Y"), network), name=Q("Y").code(), argument=True)
    for _, q in network.data_inputs:  # masks, drawn before the body
        out[q.batched().code()] = Value(quantity_shape(q.batched(), network), name=q.batched().code(), argument=True)
    return out


def _statement(lowering: Lowering, target: str, expr: sp.Expr, printed: Printed, note: str = "", **pin) -> Value:
    return lowering.statement(target, expr, comment=f"{target} = {printed[expr]}{note}", **pin)


class Printed(dict):
    """The plain code of formulas, each printed once (gradients_into and sgd_step share most)."""

    def __init__(self, printer):
        super().__init__()
        self.printer = printer

    def __missing__(self, expr: sp.Expr) -> str:
        self[expr] = self.printer._print(expr)
        return self[expr]


def _forward(lowering: Lowering, derivation: Derivation, forms: dict, printed: Printed) -> None:
    for node in derivation.model.network.layers:
        _statement(lowering, printed[derivation.batch.results[node.output].matrix_lhs], forms[node.output], printed)


def gradients_program(derivation: Derivation, forms: dict, printed: Printed) -> Program:
    """gradients_into: the forward pass, then the backward pass into the gradient arrays."""
    lowering = Lowering(printed.printer, _arguments(derivation))
    _forward(lowering, derivation, forms, printed)
    outputs = []
    for key in backward_order(derivation):
        target = _target(derivation.batch.results[key], printed.printer)
        pin = {"pin": target} if _is_parameter_gradient(key) else {}
        value = _statement(lowering, target, forms[key], printed, **pin)
        if pin:
            outputs.append(value)
    return Program(lowering, outputs)


def _is_parameter_gradient(key: Quantity) -> bool:
    return key.kind.startswith("grad_") and Quantity(key.kind.removeprefix("grad_"), key.layer).is_parameter


def _linear_in_errors(expr: sp.Expr, errors: list[sp.Symbol]) -> bool:
    """Linear and homogeneous in the named errors jointly: every error it reads, scaled by the same
    factor, scales it by that factor (checked by renaming them all to one symbol)."""
    common = sp.Dummy("E")
    return linear_in(expr.xreplace({e: common for e in errors}), common)


def sgd_program(derivation: Derivation, forms: dict, printed: Printed) -> tuple[Program, bool]:
    """sgd_step (see module docstring); also says whether the errors carry the factor −η/m."""
    if "derive.convops" in sys.modules:  # a form is a MaxPool only if convops, which defines it, was imported
        from derive.poolfusion import pool_before_relu

        forms = pool_before_relu(derivation, forms)
    batch = derivation.batch
    order = backward_order(derivation)
    errors = [key for key in order if not _is_parameter_gradient(key)]
    symbols = {key: batch.results[key].matrix_lhs for key in errors}
    sources = [key for key in errors if not forms[key].has(*symbols.values())]
    scaled = all(_linear_in_errors(forms[key], list(symbols.values())) for key in errors if key not in sources)
    factor = -LEARNING_RATE / BATCH_SIZE
    lowering = Lowering(printed.printer, _arguments(derivation), exact=False)
    _forward(lowering, derivation, forms, printed)
    note = "  # scaled by -lr/m; the errors below inherit the factor" if scaled else ""
    outputs = []
    pending: list = []  # nodes whose parameters wait until no later formula reads them
    updated: set = set()
    nodes = {p: node for node in derivation.model.network.layers for p in node.parameters}

    def flush(upcoming: list) -> None:
        for node in list(pending):
            readers = [k for k in upcoming if forms[k].has(*[p.batched().symbol for p in node.parameters])]
            if readers:
                continue
            pending.remove(node)
            updated.add(node)
            own = {p.symbol for p in node.parameters}  # a layer of several nodes lists them all
            steps = [step for step in derivation.updates[node.layer.tag()] if step.lhs in own]
            for step in steps[1::2]:  # θ ← θ − η·(derived gradient)
                rule = step.rhs.xreplace({symbols[key]: symbols[key] / factor for key in errors}) if scaled else step.rhs
                rule = stable_forms(scalar_onto_left_operand(rule))
                target = printed[step.lhs]
                outputs.append(_statement(lowering, target, rule, printed, pin=target, update=True))

    for n, key in enumerate(order):
        if _is_parameter_gradient(key):
            node = nodes[Quantity(key.kind.removeprefix("grad_"), key.layer)]
            if node not in pending and node not in updated:
                pending.append(node)
        else:
            top = forms[key]
            if key in sources:
                _statement(lowering, printed[symbols[key]], factor * top if scaled else top, printed,
                           note if scaled else "")
            else:
                _statement(lowering, printed[symbols[key]], top, printed)
        flush([k for k in order[n + 1:] if not _is_parameter_gradient(k)])
    lowering.check_updates()
    return Program(lowering, outputs), scaled


def _bindings(program: Program, gradients: list[str] | None) -> list[str]:
    lines = []
    if gradients:
        lines.append(_unpack(gradients))
    if program.buffers():
        lines.append(_unpack(program.buffers()))
    if program.lowering.constants:
        lines.append(_unpack(list(program.lowering.constants)))
    if program.products():
        lines.append(_unpack(program.products()))
    return lines


def _unpack(names: list[str]) -> str:
    """`a, b = ws.a, ws.b` (with the trailing commas a single name needs)."""
    comma = "," if len(names) == 1 else ""
    return ", ".join(names) + f"{comma} = " + ", ".join(f"ws.{n}" for n in names) + comma


def _size_sources(derivation: Derivation) -> list[str]:
    """For each layer size, where `train` reads it from the arrays it is given."""
    from derive.codegen_inputs import size_source

    return [size_source(derivation, size(LayerRef(layer))) for layer in range(len(derivation.model.network.sizes))]


def plan_workspace(derivation: Derivation, forms: dict, printer) -> WorkspacePlan:
    from derive.windowsizes import network_sizes

    with network_sizes(derivation.model.network):
        return _plan_workspace(derivation, forms, printer)


def _plan_workspace(derivation: Derivation, forms: dict, printer) -> WorkspacePlan:
    network = derivation.model.network
    pool = Pool()  # both functions draw their scratch arrays from the same workspace
    printed = Printed(printer)
    grads = gradients_program(derivation, forms, printed)
    grads.lowering.drop_unread(grads.outputs)  # (the values it keeps are computed as before, bit for bit)
    allocate(grads.instructions, pool, grads.outputs)
    sgd, scaled = sgd_program(derivation, forms, printed)
    sgd.lowering.drop_unread(sgd.outputs)
    sgd.lowering.assign_layouts()
    allocate(sgd.instructions, pool, sgd.outputs)
    gradients = [(q.code(), q.gradient.code(), shape_text(quantity_shape(q, network))) for q in _parameters(derivation)]
    products = sorted(set(grads.products()) | set(sgd.products()), key=_code_order)
    dims, sources = _dims_and_sources(derivation, pool)
    nested = any(isinstance(entry, tuple) for entry in network.sizes)
    if nested:
        unpack, sizes_expr, layer_names = _layer_unpacking(derivation)
        unpack_value, min_of = "sizes", "(" + ", ".join(dims) + ")"
    else:
        unpack = layer_names = ", ".join(dims)
        unpack_value, min_of, sizes_expr = "(int(n) for n in sizes)", "sizes", "(" + ", ".join(sources) + ",)"
    return WorkspacePlan(
        dims=dims,
        gradients=gradients,
        scratch=[(name, shape_text(shape), _axes_text(layout)) for name, shape, layout in zip(pool.names(), pool.shapes, pool.layouts)],
        products=[(name, name.removeprefix("mm_")) for name in products],
        constants=[(name, shape_text(v.shape)) for name, v in sgd.lowering.constants.items()],
        windows=list(dict.fromkeys([*grads.lowering.windows, *sgd.lowering.windows])),
        gradients_into=WorkspaceProgram(_bindings(grads, [g[1] for g in gradients]), grads.lines()),
        sgd_step=WorkspaceProgram(_bindings(sgd, None), sgd.lines()),
        scaled_errors=scaled,
        size_sources=sources,
        unpack=unpack,
        unpack_value=unpack_value,
        layer_count=len(network.sizes),
        layer_names=layer_names,
        min_of=min_of,
        sizes_expr=sizes_expr,
        x_shape=shape_text(quantity_shape(Q("X"), network)),
        y_shape=shape_text(quantity_shape(Q("Y"), network)),
    )


def _axes_text(layout: tuple[int, ...] | None) -> str:
    """`, axes=(0, 3, 1, 2)` for `_filled` when an array is kept in another memory order, else nothing."""
    return "" if layout is None else ", axes=" + shape_text(layout)


def _dims_and_sources(derivation: Derivation, pool: Pool) -> tuple[list[str], list[str]]:
    """The size names the Workspace binds and where train() reads each: the layer sizes n0 … nL of a
    network of vectors; every size name its arrays' shapes use (c0, h0, w0, c1 …) otherwise."""
    network = derivation.model.network
    if all(len(network.axes_of(Q("a", 0))) == 1 and len(node.out_axes) <= 1 for node in network.layers):
        return [dim_name(layer) for layer in range(len(network.sizes))], _size_sources(derivation)
    from derive.codegen_inputs import size_source

    symbols: dict[str, sp.Symbol] = {}
    axes = [*network.input_axes, *(a for node in network.layers for a in node.out_axes)]
    for node in network.layers:
        for param in node.parameters:
            axes += list(parameter_axes(node, param))
    for axis in axes:
        if axis.extent is None:
            symbols.setdefault(network.axis_dim(axis), network.size_facts.get(axis.size, axis.size)
                               if isinstance(network.size_facts.get(axis.size, axis.size), sp.Symbol) else axis.size)
    used = {d for shape in pool.shapes for d in shape if isinstance(d, str)}
    used |= {d for q in _parameters(derivation) for d in quantity_shape(q, network) if isinstance(d, str)}
    used |= {d for d in quantity_shape(Q("X"), network) + quantity_shape(Q("Y"), network) if isinstance(d, str)}
    names = [name for name in symbols if name in used and name != "m"]
    return names, [size_source(derivation, symbols[name]) for name in names]


def _layer_unpacking(derivation: Derivation) -> tuple[str, str, str]:
    """How the Workspace unpacks `sizes` (SIZES: per layer a number of units or a shape), how train()
    builds it from the arrays it is given, and the names the messages list."""
    from derive.codegen_inputs import size_source

    network = derivation.model.network
    groups, sources = [], []
    for layer, entry in enumerate(network.sizes):
        if layer == 0:
            axes = network.axes_of(Q("a", 0))
        else:
            axes = [node for node in network.layers if node.layer == LayerRef(layer)][-1].out_axes
        names = [network.axis_dim(a) for a in axes]
        texts = [size_source(derivation, a.size) for a in axes]
        if isinstance(entry, tuple):
            groups.append("(" + ", ".join(names) + ")")
            sources.append("(" + ", ".join(texts) + ")")
        else:
            groups.append(names[0])
            sources.append(texts[0])
    return ", ".join(groups), "(" + ", ".join(sources) + ",)", ", ".join(groups)
