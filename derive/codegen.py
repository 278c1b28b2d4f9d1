"""NumPy code printed from the derived matrix-form expressions.

`NumPyCodePrinter` subclasses SymPy's NumPy printer: quantities print as the code names of
`notation` (W3, delta3, …), matrix products as `@`, transposes as `.T`, sums over an axis with
`keepdims`, and the stable functions of `rewrite` as overflow-free NumPy calls. `plan_code` turns a
derivation into the plain lines the `model.py` template lays out; every formula line comes from an
expression the engine derived, nothing here is a hand-written formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive import notation
from derive.derivation import Derivation
from derive.notation import Q, Quantity
from derive.rewrite import (
    logsumexp_shifted,
    scalar_onto_left_operand,
    softmax_shifted,
    stable_forms,
    stable_log_loss,
)

if TYPE_CHECKING:
    from derive.codegen_inputs import InputCheck
    from derive.stepcode import WorkspacePlan

LOGSUMEXP_HELPER = "_logsumexp"
SOFTMAX_HELPER = "_softmax"
ERF_HELPER = "_erf"
XLOGX_HELPER = "_xlogx"


class NumPyCodePrinter(NumPyPrinter):
    """Prints matrix-form expressions as NumPy code over the arrays named by `notation`."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.helpers: set[str] = set()

    def _as_ordered_terms(self, expr, order=None):
        """A matrix product before what is added to it, as the formula reads: W1 @ A0 + b1, not b1 + W1 @ A0
        (a stable sort: every other order is SymPy's)."""
        from derive.ops import MatProd

        return sorted(super()._as_ordered_terms(expr, order=order), key=lambda t: not t.has(MatProd))

    def _module_format(self, fqn, register=True):
        return "np." + fqn[len("numpy.") :] if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    def _print_Symbol(self, expr):
        q = notation.quantity_of(expr.name)
        if q is not None:
            return q.code()
        if expr.name in notation.SCALAR_CODE:
            return notation.SCALAR_CODE[expr.name]
        return super()._print_Symbol(expr)

    def _print_Pow(self, expr, rational=False):
        """x**(-1/2) as 1/np.sqrt(x) always, as the workspace lowers it (SymPy prints a base that holds
        an array operation, such as a mean over a token's features, as x**(-1/2) otherwise)."""
        if expr.exp == -sp.S.Half:
            return f"1/np.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_Heaviside(self, expr):
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(sp.Float(expr.args[1]))})"

    def _print_Max(self, expr):
        return self._nested("np.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("np.minimum", expr.args)

    def _nested(self, fn: str, args) -> str:
        text = self._print(args[-1])
        for arg in reversed(args[:-1]):
            text = f"{fn}({self._print(arg)}, {text})"
        return text

    def _print_Softplus(self, expr):
        return f"np.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_Expm1(self, expr):
        return f"np.expm1({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"np.abs({self._print(expr.args[0])})"

    def _print_Total(self, expr):
        return f"np.sum({self._print(expr.args[0])})"

    def _print_Erf(self, expr):
        self.helpers.add(ERF_HELPER)
        return f"{ERF_HELPER}({self._print(expr.args[0])})"

    def _print_XLogX(self, expr):
        self.helpers.add(XLOGX_HELPER)
        return f"{XLOGX_HELPER}({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        """np.where for each branch, nested; the last condition is True (SymPy's 'otherwise')."""
        *branches, (last, condition) = expr.args
        if condition != sp.true:
            raise ValueError(f"piecewise without an 'otherwise' branch: {expr}")
        text = self._print(last)
        for value, condition in reversed(branches):
            text = f"np.where({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return "(" + " & ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(a) for a in expr.args) + ")"

    def _print_LogSumExp(self, expr):
        self.helpers.add(LOGSUMEXP_HELPER)
        return f"{LOGSUMEXP_HELPER}({self._print(expr.args[0])})"

    def _print_Softmax(self, expr):
        self.helpers.add(SOFTMAX_HELPER)
        return f"{SOFTMAX_HELPER}({self._print(expr.args[0])})"


def logsumexp_helper() -> list[str]:
    """Source of the column-wise log-sum-exp, shifted by the column maximum so exp cannot overflow."""
    M, X = sp.symbols("M X", real=True)
    body = NumPyCodePrinter()._print(logsumexp_shifted(X, M))
    return [
        f"def {LOGSUMEXP_HELPER}(X):",
        '    """log(sum(exp(X), axis=0)) per column, as M + log(sum(exp(X - M))) with M the column max."""',
        "    M = X.max(axis=0, keepdims=True)",
        f"    return {body}",
    ]


def softmax_helper() -> list[str]:
    """Source of the column-wise softmax, shifted by the column maximum so exp cannot overflow."""
    M, X, E = sp.symbols("M X E", real=True)
    printer = NumPyCodePrinter()
    shifted, ratio = softmax_shifted(X, M, E)
    return [
        f"def {SOFTMAX_HELPER}(X):",
        '    """exp(X) / sum(exp(X), axis=0) per column, as E / sum(E) with E = exp(X - M), M the column max."""',
        "    M = X.max(axis=0, keepdims=True)",
        f"    E = {printer._print(shifted)}",
        f"    return {printer._print(ratio)}",
    ]


ERF_STEP = 64  # intervals [k/64, (k + 1)/64): centre 0 for the first, the midpoint for the others
ERF_INTERVALS = 6 * ERF_STEP  # up to 6, where erf rounds to ±1
ERF_TAYLOR_TERMS = 9  # powers of t = |x| − c up to 8: the next below 1e-17 of erf(x) on every interval
ERF_TAYLOR_TERMS_FLOAT32 = 5  # float32 needs powers up to 4 only (each power is a gather and two passes)


def erf_helper() -> list[str]:
    """NumPy has no erf: a vectorised one, with no branch and no masked copy. |x| falls in one of the
    intervals [k/64, (k + 1)/64) up to 6 and erf is the Taylor expansion around that interval's centre,
    its coefficients gathered by the interval's number (np.take) and summed by Horner's rule; the
    coefficients come from erf and e^(−x²) at the centre by the recurrence of the derivatives of
    e^(−x²) (computed once, when the module loads). The first interval's centre is 0, where every even
    coefficient is 0, so a tiny x keeps its relative accuracy (the sum is t times a polynomial); from 6 on
    the last expansion is evaluated at 6, which rounds to 1. The sign is copied back, so erf(−x) =
    −erf(x) exactly and NaN stays NaN. It computes in the dtype of its argument (float32 stays float32)
    and writes into `out=` when given: the workspace form allocates only its index and scratch arrays.
    float64: within 2 units in the last place of math.erf (tests/test_erf.py)."""
    return [
        f"_ERF_CENTRES = (np.arange({ERF_INTERVALS}) + 0.5) / {ERF_STEP}",
        "_ERF_CENTRES[0] = 0.0  # the odd expansion around 0: a tiny x keeps its relative accuracy",
        "",
        "",
        "def _erf_taylor_table():",
        '    """Row n: the n-th Taylor coefficient of erf around every centre c, a₀ = erf(c), aₙ₊₁ = gₙ/(n + 1),',
        "    where gₙ are those of g = (2/√π) e^(−x²), from g' = −2x g: (n + 1) gₙ₊₁ = −2c gₙ − 2 gₙ₋₁.\"\"\"",
        "    from math import erf",
        "",
        f"    table = np.zeros(({ERF_TAYLOR_TERMS}, len(_ERF_CENTRES)))",
        "    c = _ERF_CENTRES",
        "    g = [1.1283791670955126 * np.exp(-c * c)]",
        "    g.append(-2 * c * g[0])",
        f"    for n in range(1, {ERF_TAYLOR_TERMS - 2}):",
        "        g.append((-2 * c * g[n] - 2 * g[n - 1]) / (n + 1))",
        "    table[0] = [erf(v) for v in c]",
        f"    for n in range({ERF_TAYLOR_TERMS - 1}):",
        "        table[n + 1] = g[n] / (n + 1)",
        "    return table",
        "",
        "",
        "_ERF_TAYLOR = {np.dtype(np.float64): _erf_taylor_table()}",
        f"_ERF_TAYLOR[np.dtype(np.float32)] = _ERF_TAYLOR[np.dtype(np.float64)][:{ERF_TAYLOR_TERMS_FLOAT32}].astype(np.float32)  # powers up to {ERF_TAYLOR_TERMS_FLOAT32 - 1}: the next below 1e-8 of erf(x)",
        "",
        "",
        f"def {ERF_HELPER}(X, out=None, scratch=None):",
        '    """erf entry by entry, vectorised (NumPy has none): the Taylor expansion around the centre of the',
        f"    interval of width 1/{ERF_STEP} that holds |x| (centre 0 for the first), up to 6; the sign copied back,",
        '    NaN stays NaN. In the dtype of X (float32 stays float32, others compute in float64); float64 is within',
        '    2 units in the last place of math.erf. With a dict `scratch` its work arrays are kept there and',
        '    reused by the next call (a training step then allocates nothing here)."""',
        "    X = np.asarray(X)",
        "    if X.dtype not in _ERF_TAYLOR:",
        "        X = X.astype(np.float64)",
        "    table = _ERF_TAYLOR[X.dtype]",
        "    work = {} if scratch is None else scratch",
        "    key = (X.shape, X.dtype)",
        "    if key not in work:",
        "        work[key] = (np.empty(X.shape, X.dtype), np.empty(X.shape, X.dtype), np.empty(X.shape, X.dtype),",
        "                     np.empty(X.shape, np.intp))",
        "    a, T, coefficient, k = work[key]",
        "    np.abs(X, out=a)",
        f"    np.fmin(a, {ERF_INTERVALS - 0.5!r} / {ERF_STEP}, out=T)  # fmin: a NaN gets the last interval, not a bad index",
        f"    T *= {ERF_STEP}",
        "    np.copyto(k, T, casting=\"unsafe\")  # truncated: the interval's number",
        "    t = np.minimum(a, 6, out=a)  # (minimum keeps a NaN)",
        "    t -= np.take(_ERF_CENTRES.astype(X.dtype, copy=False), k, out=coefficient, mode=\"clip\")  # clip: no bounds check",
        "    np.take(table[-1], k, out=T, mode=\"clip\")",
        "    for n in range(len(table) - 2, -1, -1):",
        "        T *= t",
        "        T += np.take(table[n], k, out=coefficient, mode=\"clip\")",
        "    return np.copysign(T, X, out=out if out is not None else T.copy())",
    ]


def xlogx_helper() -> list[str]:
    """x log x with its limit 0 at x = 0, printed from the piecewise definition."""
    X = sp.Symbol("X", real=True)
    body = NumPyCodePrinter()._print(sp.Piecewise((X * sp.log(sp.Piecewise((X, X > 0), (1, True))), X > 0), (0, True)))
    return [
        f"def {XLOGX_HELPER}(X):",
        '    """X*log(X) entry by entry, with the limit 0 where X = 0 (and no log(0) evaluated)."""',
        f"    return {body}",
    ]


HELPERS = {
    LOGSUMEXP_HELPER: logsumexp_helper,
    SOFTMAX_HELPER: softmax_helper,
    ERF_HELPER: erf_helper,
    XLOGX_HELPER: xlogx_helper,
}


def _convolution_helpers() -> None:
    """The window operations of convolutional networks (im2col, col2im …: derive.convops)."""
    from derive import convops

    for name in convops.ORDER:
        HELPERS[name] = lambda name=name: convops.helper_lines(name)


def _attention_helpers() -> None:
    """The key-axis softmax and sum of attention layers (derive.attnops)."""
    from derive import attnops

    for name, source in attnops.HELPERS.items():
        HELPERS[name] = lambda source=source: source.split("\n")


_WINDOW_HELPERS_REGISTERED: list = [False]


def helpers_used(printer: NumPyCodePrinter) -> list[list[str]]:
    """The helper functions the printed code calls, in a fixed order: the general ones, then the
    convolution's, then attention's. The last two are registered when code first calls a helper that
    is not a general one (only the operations of those modules print such calls), so that a network
    without windows or attention does not import `convops` and `attnops` (0.02-0.04 s)."""
    if not _WINDOW_HELPERS_REGISTERED[0] and not set(printer.helpers) <= HELPERS.keys():
        _convolution_helpers()
        _attention_helpers()
        _WINDOW_HELPERS_REGISTERED[0] = True
    return [make() for name, make in HELPERS.items() if name in printer.helpers]


@dataclass(frozen=True)
class Assignment:
    target: str
    value: str
    comment: str = ""


@dataclass(frozen=True)
class CodePlan:
    """Plain lines for the template: what to compute, in order, per function."""

    sizes: tuple[int, ...]
    depth: int
    parameters: list[str]
    forward: list[Assignment]
    loss_value: str
    loss_uses: list[str]  # cached arrays the loss expression reads
    backward: list[Assignment]
    backward_uses: list[str]
    helpers: list[list[str]]  # the numerical helpers the formulas call (_softmax, _conv, …), printed at the end
    workspace: WorkspacePlan | None = None  # the in-place form for training loops (derive.stepcode)
    constants: list[Assignment] = ()  # module-level constants the formulas use (penalty strengths)
    loss_params: list[str] = ()  # parameters the loss reads directly (a penalty)
    sizes_used: list[Assignment] = ()  # layer sizes the backward formulas use, read off the weights
    input_check: InputCheck | None = None  # what forward, loss and gradients check of their arguments
    forward_sizes: list[Assignment] = ()  # layer sizes the forward formulas use (a mean over the features)
    workspace_extra: list[Assignment] = ()  # what gradients_into and sgd_step bind besides: forward sizes, masks
    dropout: bool = False  # the network has masks: train() draws them (dropout_mode)
    batchnorm: bool = False  # the network keeps running statistics: train(…, running=…) updates them
    # functions of this network that train() and the reader call (dropout_mode, predict, …), printed after train
    own_functions: list[list[str]] = ()


def _names(expr: sp.Expr) -> set[str]:
    out = set()
    for s in expr.free_symbols:
        q = notation.quantity_of(s.name)
        if q is not None:
            out.add(q.code())
    return out


def code_forms(derivation: Derivation) -> dict[Quantity, sp.Expr]:
    """The minibatch formulas as the generated code evaluates them, keyed like `derivation.batch`.

    The derived matrix forms with the rewrites of `rewrite` for code: overflow-free forms
    (softmax via log-sum-exp, the sigmoid via tanh, each kind's `code_form`) and scalars moved onto
    the smaller operand of a product ((Δ Aᵀ)/m → (Δ/m) Aᵀ). `gradients` and the workspace form both
    print from these.
    """
    network = derivation.model.network
    batch = derivation.batch.results
    missing = [r for r in batch.values() if r.matrix_rhs is None and r.name != "cost"]
    if missing:
        from derive.errors import DeriveError

        raise DeriveError(f"no array form was found for {missing[0].lhs} (its index form is "
                          f"{missing[0].rhs}), so no code can be printed for this network")
    forms = {}
    for node in network.layers:
        forms[node.output] = stable_forms(node.kind.code_form(batch[node.output].matrix_rhs))
    for key in backward_order(derivation):
        forms[key] = stable_forms(scalar_onto_left_operand(batch[key].matrix_rhs))
    return forms


def backward_order(derivation: Derivation) -> list[Quantity]:
    """The formulas of the backward pass in the order the walk derived them: the output error, then
    per node from the last its parameter gradients and the errors it passes down (∂C/∂a⁽ᴸ⁾ itself,
    which the output error substitutes, is not computed)."""
    skip = derivation.model.network.output.gradient
    if skip.kind != "grad_a":  # the network ends in a pre-activation (no activation): its δ is the one computed
        return list(derivation.batch.steps)
    return [key for key in derivation.batch.steps if key != skip]


def _target(result, printer) -> str:
    target = result.matrix_lhs
    if isinstance(target, sp.Derivative):  # ∂C̄/∂W3 → dW3
        q = notation.quantity_of(target.variables[0].name)
        return Q("grad_" + q.kind, q.layer).code()
    return printer._print(target)


def plan_code(derivation: Derivation) -> CodePlan:
    model = derivation.model
    network = model.network
    depth = model.depth
    printer = NumPyCodePrinter()
    batch = derivation.batch.results
    forms = code_forms(derivation)
    from derive.codegen_masks import constant_lines, helper_lines, mask_line, workspace_masks

    forward = [assignment for node in network.layers for assignment in (
        *(Assignment(target, value) for target, value in mask_line(network, node, printer)),
        Assignment(printer._print(batch[node.output].matrix_lhs), printer._print(forms[node.output])))]

    output_node = network.producers[network.output]
    A_L, Y = network.output.batched().symbol, Q("Y").symbol
    per_unit = model.loss.expr
    if per_unit.has(sp.log):
        a_expr = output_node.kind.log_stable_output(output_node.input(True).symbol)
        a_expr = A_L if a_expr is None else a_expr
        elementwise = stable_log_loss(per_unit.xreplace({notation.A: a_expr, notation.Y: Y}))
    else:
        elementwise = per_unit.xreplace({notation.A: A_L, notation.Y: Y})
    loss_value = f"np.sum({printer._print(elementwise)}) / m"
    parameter_quantities = [p for node in network.layers for p in node.parameters]
    constants = [Assignment(name, value, comment) for name, value, comment in constant_lines(network, printer)]
    if model.penalty is not None:
        loss_value += f" + {printer._print(model.penalty.value_expression(parameter_quantities))}"
        for symbol, value in model.penalty.strengths.items():
            constants.append(Assignment(printer._print(symbol), repr(float(value)), _STRENGTH_COMMENTS[symbol.name]))

    parameters = [p.code() for p in parameter_quantities]
    order = backward_order(derivation)
    backward = [Assignment(_target(batch[key], printer), printer._print(forms[key])) for key in order]

    used_forward = {a.target for a in forward} | {Q("A", 0).code()}
    loss_uses = sorted(_names(elementwise) & used_forward, key=_code_order)
    loss_params = [] if model.penalty is None else [
        p for p in parameters if p in _names(model.penalty.value_expression(parameter_quantities))]
    backward_uses = sorted(
        set().union(*[_names(forms[k]) for k in order]) & used_forward,
        key=_code_order,
    )
    sizes_used = _sizes_used(derivation, [forms[k] for k in order], printer)
    from derive.stepcode import plan_workspace  # it builds on the code forms of this module

    from derive.codegen_inputs import plan_input_check

    workspace = plan_workspace(derivation, forms, printer)
    forward_sizes = _sizes_used(derivation, [forms[node.output] for node in network.layers], printer)
    if any(forms[node.output].has(notation.BATCH_SIZE) for node in network.layers):  # batch statistics
        forward_sizes = [Assignment("m", "X.shape[-1]"), *forward_sizes]
    helpers = helpers_used(printer)  # before the functions below print with the same printer
    from derive.codegen_running import helper_lines as running_lines

    own_functions = [lines for lines in (helper_lines(network, printer), running_lines(derivation, forms, printer))
                     if lines]
    return CodePlan(
        model.sizes,
        depth,
        parameters,
        forward,
        loss_value,
        loss_uses,
        backward,
        backward_uses,
        helpers,
        workspace=workspace,
        constants=constants,
        loss_params=loss_params,
        sizes_used=sizes_used,
        input_check=plan_input_check(derivation),
        forward_sizes=forward_sizes,
        dropout=bool(network.data_inputs),
        batchnorm=network.couples_samples,
        own_functions=own_functions,
        workspace_extra=[*[a for a in forward_sizes if a.target not in {s.target for s in sizes_used} | {"m"}],
                         *workspace_masks(derivation, printer)],
    )


def _sizes_used(derivation: Derivation, forms: list[sp.Expr], printer: NumPyCodePrinter) -> list[Assignment]:
    """n_3 = params["W3"].shape[0] for every size a formula mentions (the log-softmax error of a
    loss whose derivative has a constant part holds Σᵢ 1 = n_L)."""
    from derive.codegen_inputs import is_size_symbol, size_source

    symbols = sorted({s for f in forms for s in f.free_symbols if is_size_symbol(derivation, s)}, key=str)
    return [Assignment(printer._print(s), size_source(derivation, s)) for s in symbols]


_STRENGTH_COMMENTS = {
    "lambda_2": "strength of the L2 penalty (--l2), counted once per minibatch",
    "lambda_1": "strength of the L1 penalty (--l1), counted once per minibatch",
}


def _code_order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else -1, name)
