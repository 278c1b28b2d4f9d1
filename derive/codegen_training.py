"""NumPy code for training, printed from the derived expressions: init_params, init_state, update, train.

The weight scales of `init_params` are the variances `initialisation` derived, per layer; the body of
`update` is the optimizer's assignments from the catalog (torch.optim's definitions), printed by a
subclass of the NumPy printer of `codegen` that knows the names of `notation`. A top-level
Piecewise becomes if/elif/else (torch's first momentum step, `centered`, `amsgrad`). `plan_training`
returns plain lines and names; the template `model_training.py.j2` only lays them out.
"""

from __future__ import annotations

from derive.backprop import parameter_axes

from dataclasses import dataclass

import sympy as sp

from derive.catalog.optimizers import RANGES, Assign, Optimizer
from derive.codegen import NumPyCodePrinter
from derive.initialisation import Initialisation
from derive.model import Model
from derive.notation import LayerRef, Q, size
from derive.training import Training
from derive.notation import STEP, THETA, code_name

# how a hyper-parameter's allowed range reads as a Python condition (`{x}` is its name)
RANGE_CODE = {
    "nonnegative": "{x} >= 0",
    "unit": "0 <= {x} < 1",
    "open_unit": "0 < {x} < 1",
    "closed_unit": "0 <= {x} <= 1",
}
assert set(RANGE_CODE) == set(RANGES)


class TrainingCodePrinter(NumPyCodePrinter):
    """The NumPy printer of `codegen`, with the code names of `notation` (torch's names)."""

    def _print_Symbol(self, expr):
        if expr == STEP:
            return "t"
        name = code_name(expr.name)
        return name if name is not None else super()._print_Symbol(expr)

    def _print_Pow(self, expr, rational=False):
        if expr.exp == -1:  # 1/n, not n**(-1.0)
            return f"1/{self.parenthesize(expr.base, 60)}"
        return super()._print_Pow(expr, rational=rational)

    def condition(self, cond) -> str:
        if isinstance(cond, sp.Eq):
            return f"{self._print(cond.lhs)} == {self._print(cond.rhs)}"
        if isinstance(cond, sp.Symbol):
            return self._print(cond)
        raise ValueError(f"no code form for the condition {cond}")


@dataclass(frozen=True)
class StateCode:
    name: str  # torch's state key
    local: str  # variable name in `update`
    init: str  # expression creating the array from parameter `p`


def _init_lines(model: Model, init: Initialisation, printer: TrainingCodePrinter) -> list[str]:
    """Every parameter of the network: weights drawn with their derived variance, the rest zero."""
    network = model.network
    lines = [f"{_size_names(model, printer)} = sizes", "return {"]
    scales = {scale.weight: scale for scale in init.layers}
    for node in network.layers:
        for param in node.parameters:
            axes = [_axis_code(network, axis, printer) for axis in parameter_axes(node, param)]
            shape = ", ".join(axes if len(axes) > 1 else axes + ["1"])
            if param in scales:
                variance = printer._print(scales[param].variance)
                draw = f"rng.standard_normal(({shape})) * np.sqrt({variance})"
                lines.append(f'    "{param.code()}": ({draw}).astype(dtype, copy=False),')
            elif node.kind.initial_value(node, param) == 1:  # a scale γ starts at 1
                lines.append(f'    "{param.code()}": np.ones(({shape}), dtype),')
            else:
                lines.append(f'    "{param.code()}": np.zeros(({shape}), dtype),')
    lines.append("}")
    return lines


def _size_names(model: Model, printer) -> str:
    """The names init_params gives the entries of `sizes` (SIZES): n0, n1 … per layer, or per layer
    the names of its axes, (c0, h0, w0), (c1, h1, w1) …, when a layer has several."""
    network = model.network
    if all(isinstance(s, int) for s in network.sizes):
        return ", ".join(printer._print(size(LayerRef(l))) for l in range(model.depth + 1))
    names = []
    for layer, entry in enumerate(network.sizes):
        axes = network.axes_of(Q("a", 0)) if layer == 0 else _layer_axes(network, layer)
        text = [printer._print(a.size) for a in axes]
        names.append(text[0] if not isinstance(entry, tuple) else "(" + ", ".join(text) + ")")
    return ", ".join(names)


def _layer_axes(network, layer: int):
    """The axes of the last quantity layer `layer` computes (its activation's, or its kind's output)."""
    nodes = [node for node in network.layers if node.layer == LayerRef(layer)]
    return nodes[-1].out_axes


def _axis_code(network, axis, printer) -> str:
    """A parameter's axis in init_params: a size name of `sizes`, or a fixed extent (a kernel's rows)."""
    if axis.extent is not None:
        return str(axis.extent)
    return printer._print(axis.size)


def _statements(assign: Assign, opt: Optimizer, printer: TrainingCodePrinter) -> list[str]:
    """One assignment as code: arrays kept between steps are written in place (`x[...] = …`)."""
    persistent = {s.symbol for s in opt.state} | {THETA}
    target = printer._print(assign.target)
    write = f"{target}[...] = " if assign.target in persistent else f"{target} = "
    value = assign.value
    if not isinstance(value, sp.Piecewise):
        return [write + printer._print(value)]
    lines = []
    for n, (branch, cond) in enumerate(value.args):
        if cond is sp.true:
            if branch == assign.target:
                break  # "else: unchanged"
            lines.append("else:")
        else:
            lines.append(f"{'if' if n == 0 else 'elif'} {printer.condition(cond)}:")
        lines.append("    " + write + printer._print(branch))
    return lines


@dataclass(frozen=True)
class OptimizerCode:
    """The optimizer's part of the code (init_state, update), for any architecture's model.py."""

    optimizer: str
    torch_class: str
    signature: str  # keyword-only hyper-parameters of update, with this run's values as defaults
    init_signature: str  # keyword-only hyper-parameters of init_state ('' if none)
    init_keys: list[str]
    unpack: list[str]
    checks: list[dict]  # {"condition", "name", "expected"}
    state: list[StateCode]
    body: list[str]  # statements of the per-parameter loop, indented relative to the loop body
    uses_step: bool


@dataclass(frozen=True)
class TrainingCode(OptimizerCode):
    """The optimizer's code and the rest of training: init_params, accuracy."""

    init_lines: list[str] = ()  # body of init_params after the random generator
    accuracy: str | None = None  # expression of the accuracy from A (output) and Y, or None for regression
    accuracy_kind: str | None = None  # "argmax" (one class per sample) or "threshold" (independent outputs)
    output: str = ""  # name of the output activation array in forward()'s cache


def plan_optimizer(training: Training) -> OptimizerCode:
    """init_state and update of the optimizer of `training`, printed from its catalog equations."""
    printer = TrainingCodePrinter()
    opt, values = training.optimizer, training.values
    keywords, init_keywords, unpack, checks = [], [], [], []
    for h in opt.hypers:
        text = f"{h.name}={_python_value(values[h.name])}"
        (init_keywords if h.init_only else keywords).append(text)
        if h.kind == "pair":
            unpack.append(f"{', '.join(printer._print(s) for s in h.symbols)} = {h.name}")
        if h.kind == "flag":
            continue
        for sym in h.symbols:
            name = printer._print(sym)
            condition = RANGE_CODE[h.range].format(x=name)
            if not h.init_only:
                checks.append({"condition": condition, "name": name, "expected": condition})
    state = []
    for s in opt.state:
        local = printer._print(s.symbol)
        initial = "np.zeros_like(p)" if s.initial == 0 else f"np.full_like(p, {printer._print(s.initial)})"
        state.append(StateCode(s.name, local, initial))
    body = [line for assign in opt.equations for line in _statements(assign, opt, printer)]
    return OptimizerCode(opt.name, opt.torch_class, ", ".join(keywords), ", ".join(init_keywords),
                         [h.name for h in opt.hypers if h.init_only], unpack, checks, state, body,
                         any(a.value.has(STEP) for a in opt.equations))


def plan_training(model: Model, training: Training, init: Initialisation) -> TrainingCode:
    printer = TrainingCodePrinter()
    code = plan_optimizer(training)
    target = model.loss.target
    accuracy_kind = {"probability": "argmax", "binary": "threshold"}.get(target)
    accuracy = {
        "argmax": "np.mean(np.argmax(A, axis=0) == np.argmax(Y, axis=0))",
        "threshold": "np.mean((A > 0.5) == (Y > 0.5))",
    }.get(accuracy_kind)
    return TrainingCode(
        init_lines=_init_lines(model, init, printer),
        optimizer=code.optimizer,
        torch_class=code.torch_class,
        signature=code.signature,
        init_signature=code.init_signature,
        init_keys=code.init_keys,
        unpack=code.unpack,
        checks=code.checks,
        state=code.state,
        body=code.body,
        uses_step=code.uses_step,
        accuracy=accuracy,
        accuracy_kind=accuracy_kind,
        output=model.network.output.batched().code(),
    )


def _python_value(value: object) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(float(v)) for v in value) + ")"
    return repr(float(value))


def optimizer_context(code: OptimizerCode) -> dict:
    """Plain data for model_optimizer.py.j2 (init_state, update), for a model.py of its own kind
    (`derive rnn`'s)."""
    return {"training": {
        "optimizer": code.optimizer,
        "torch_class": code.torch_class,
        "signature": code.signature,
        "init_signature": code.init_signature,
        "init_keys": code.init_keys,
        "unpack": code.unpack,
        "checks": code.checks,
        "state": [{"name": s.name, "local": s.local, "init": s.init} for s in code.state],
        "body": code.body,
        "uses_step": code.uses_step,
    }}


def code_context(code: TrainingCode) -> dict:
    """Plain data for model_training.py.j2 (merged into the model.py context by `run`)."""
    data = optimizer_context(code)
    data["training"] |= {"init_lines": code.init_lines, "accuracy": code.accuracy,
                         "accuracy_kind": code.accuracy_kind, "output": code.output,
                         # a parameter that starts at 1 (a normalisation's scale γ), for init_params's docstring
                         "some_start_at_one": any("np.ones(" in line for line in code.init_lines)}
    return data
