"""model.py of a recurrent network: the derived minibatch formulas as loops over the steps.

Every formula line comes from the engine's derivation through `timeloop` (read at step t, proved
entry by entry); this module only orders them into blocks (outside the loops, the forward loop, the
backward loop), names the arrays and lays out PyTorch's parameter names, so that the arrays move
to and from `torch.nn.RNN` and `nn.Linear` unchanged:

    weight_ih_l{k} (H, n_in), weight_hh_l{k} (H, H), bias_ih_l{k} (H,), bias_hh_l{k} (H,),
    head_weight (K, H), head_bias (K,)

Sequences are (T, n, m): the time axis first, the sample index last (PyTorch's (T, m, n) is
`X.transpose(0, 2, 1)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import notation
from derive.backprop import Pass, parameter_axes
from derive.codegen import helpers_used
from derive.layers.recurrent import RNNCell
from derive.notation import Q, Quantity
from derive.rewrite import scalar_onto_left_operand, stable_forms, stable_log_loss
from derive.rnn import RNNModel
from derive.timeloop import Block, Statement, TimeSlicer, is_time_index


@dataclass(frozen=True)
class Parameter:
    key: str  # in params and in the gradients: PyTorch's name
    locals: tuple[str, ...]  # the names the formulas use (W_ih1; an LSTM's four gates W_ii1 … W_io1, stacked)
    gradients: tuple[str, ...]  # dW_ih1 …
    is_bias: bool
    shape: str  # code of its shape, from the module's sizes


def torch_key(param: Quantity) -> str:
    """PyTorch's name: weight_ih_l0 for W_ih⁽¹⁾ and for each LSTM gate's W_ii⁽¹⁾ … W_io⁽¹⁾ (stacked)."""
    if param.kind in ("W", "b"):
        return {"W": "head_weight", "b": "head_bias"}[param.kind]
    prefix = {"W_i": "weight_ih", "W_h": "weight_hh", "b_i": "bias_ih", "b_h": "bias_hh"}[param.kind[:3]]
    return f"{prefix}_l{param.layer.number - 1}"


def parameters(model: RNNModel) -> list[Parameter]:
    """Every parameter array of model.py in PyTorch's order, with the derivation's quantities it holds."""
    groups: dict[str, list[Quantity]] = {}
    for node in model.network.layers:
        for param in node.parameters:
            groups.setdefault(torch_key(param), []).append(param)
    out = []
    for key, params in groups.items():
        first = params[0]
        rows = "units" if first.kind in ("W", "b") else ("hidden" if len(params) == 1 else f"{len(params)} * hidden")
        cols = "hidden" if first.kind == "W" or key.startswith("weight_hh") or first.layer.number > 1 else "inputs"
        shape = f"({rows}, {cols})" if first.rank == 2 else f"({rows},)"
        out.append(Parameter(key, tuple(p.code() for p in params), tuple(p.gradient.code() for p in params),
                             first.rank == 1, shape))
    return out


def _time_index(indices) -> sp.Idx | None:
    found = [i for i in indices if is_time_index(i)]
    return found[0] if found else None


def _lhs_indices(result) -> tuple:
    lhs = result.lhs
    if isinstance(lhs, sp.Derivative):
        lhs = lhs.variables[0]
    return tuple(lhs.indices) if isinstance(lhs, sp.Indexed) else ()


def _dims(model: RNNModel, q: Quantity) -> str:
    """Code of the shape of a whole sequence array (T, rows, m), its rows read off a weight."""
    axes = model.network.axes_of(q)
    facts = model.network.size_facts
    wanted = facts.get(axes[-1].size, axes[-1].size)
    for node in model.network.layers:
        for param in node.parameters:
            for k, axis in enumerate(parameter_axes(node, param)):
                if facts.get(axis.size, axis.size) == wanted:
                    return f"(T, {param.code()}.shape[{k}], m)"
    raise ValueError(f"no weight has the size of {q.label}")


def _blocks(items: list[tuple[str | None, list[Statement]]]) -> list[Block]:
    """Consecutive statements of the same kind (a loop's, or outside) as one block."""
    blocks: list[Block] = []
    for loop, statements in items:
        if blocks and blocks[-1].loop == loop:
            blocks[-1] = Block(loop, blocks[-1].statements + tuple(statements))
        else:
            blocks.append(Block(loop, tuple(statements)))
    return blocks


def _step_free(indices: tuple, time: sp.Idx | None) -> tuple:
    return tuple(i for i in indices if i != time)


def plan_forward(model: RNNModel, batch: Pass, slicer: TimeSlicer) -> tuple[list[str], list[Block], list[str]]:
    """Allocations, the forward blocks, and the names of every array computed."""
    allocations, items, names = [], [], []
    for node in model.network.layers:
        result = batch.results[node.output]
        indices = _lhs_indices(result)
        time = _time_index(indices)
        target = node.out(True).code()
        names.append(target)
        rhs = slicer.at_step(result.rhs, time)
        form = lambda e, node=node: stable_forms(node.kind.code_form(e))  # noqa: E731
        if time is None:
            items.append((None, slicer.statements(target, rhs, indices, False, form)))
        else:
            allocations.append(f"{target} = np.empty({_dims(model, node.output)}, dtype=X.dtype)")
            items.append(("forward", slicer.statements(f"{target}[t]", rhs, _step_free(indices, time), False, form)))
    return allocations, _blocks(items), names


def _primal(q: Quantity) -> Quantity:
    """The array an error has the shape of: delta1 → Z1, dA1 → A1."""
    kind = next(k for k, v in notation._GRADIENT.items() if v == q.kind and k[0].isupper())
    return Quantity(kind, q.layer)


def plan_backward(model: RNNModel, batch: Pass, slicer: TimeSlicer) -> tuple[list[str], list[Block]]:
    network = model.network
    skip = network.output.gradient
    keys = [k for k in batch.steps if not (k == skip and skip.kind == "grad_a")]
    before, items = [], []
    form = lambda e: stable_forms(scalar_onto_left_operand(e))  # noqa: E731
    for key in keys:
        result = batch.results[key]
        indices = _lhs_indices(result)
        parameter = isinstance(result.lhs, sp.Derivative)
        target = key.code() if parameter else key.batched(True).code()
        time = _time_index(indices)
        summed = slicer.without_time_sum(result.rhs) if parameter else None
        if summed is not None:
            rhs, tau = summed
            before.append(f"{target} = np.zeros_like({_local(key)})")
            items.append(("backward", slicer.statements(target, slicer.at_step(rhs, tau), indices, True, form)))
        elif time is not None:
            before.append(f"{target} = np.empty_like({_primal(key.batched(True)).code()})")
            items.append(("backward", slicer.statements(f"{target}[t]", slicer.at_step(result.rhs, time),
                                                        _step_free(indices, time), False, form)))
        else:
            items.append((None, slicer.statements(target, slicer.at_step(result.rhs, None), indices, False, form)))
    return before, _blocks(items)


def _local(gradient: Quantity) -> str:
    return Quantity(gradient.kind.removeprefix("grad_"), gradient.layer).code()


def loss_value(model: RNNModel, printer) -> tuple[str, set[str]]:
    """The cost of a minibatch: the loss summed over the output's entries (its units, and its steps
    with `--output all`; averaged over the steps with `--output mean`), the mean over the samples;
    a log of the output merged with it (bce)."""
    network = model.network
    node = network.producers[network.output]
    A_L, Y = network.output.batched().symbol, Q("Y").symbol
    per_unit = model.loss.expr
    if per_unit.has(sp.log):
        a_expr = node.kind.log_stable_output(node.input(True).symbol)
        elementwise = stable_log_loss(per_unit.xreplace({notation.A: A_L if a_expr is None else a_expr, notation.Y: Y}))
    else:
        elementwise = per_unit.xreplace({notation.A: A_L, notation.Y: Y})
    names = {notation.quantity_of(s.name).code() for s in elementwise.free_symbols if notation.quantity_of(s.name)}
    per_step = " / T" if model.spec.output == "mean" else ""  # the StepMeanLoss: averaged over the steps
    return f"np.sum({printer._print(elementwise)}) / m{per_step}", names - {"Y"}


def code_context(model: RNNModel, batch: Pass, *, title: str, command: str, version: str) -> dict:
    """Plain data for templates/model_rnn.py.j2."""
    slicer = TimeSlicer()
    allocations, forward, names = plan_forward(model, batch, slicer)
    before, backward = plan_backward(model, batch, slicer)
    loss, loss_uses = loss_value(model, slicer.printer)
    from derive.rnn_workspace import workspace_context  # it reads this module's plans
    from derive.workspace import CannotLower

    try:
        workspace = workspace_context(model, forward, backward, slicer)
    except CannotLower:  # a step statement without an in-place form (the GRU's einsum): no workspace form
        workspace = None
    spec = model.spec
    params = parameters(model)
    cells = [node for node in model.network.layers if isinstance(node.kind, RNNCell)]

    def lines(blocks: list[Block]) -> list[dict]:
        return [{"loop": b.loop, "statements": [{"target": s.target, "op": s.op, "value": s.value, "guard": s.guard,
                                                 "next_step": s.next_step}
                                                for s in b.statements]} for b in blocks]

    return {
        "title": title, "command": command, "version": version,
        "inputs": spec.inputs, "hidden": spec.hidden, "layers": len(cells), "units": spec.units,
        "steps": spec.steps, "output": spec.output,
        "params": [{**vars(p), "count": len(p.locals),
                    "gradient": p.gradients[0] if len(p.gradients) == 1 else f"np.concatenate([{', '.join(p.gradients)}])"}
                   for p in params],
        "unpacked": ", ".join(name for p in params for name in p.locals),
        "loss_read": (", ".join(sorted(loss_uses)) + " = " + ", ".join(f'cache["{n}"]' for n in sorted(loss_uses))) if loss_uses else "",
        "allocations": allocations, "forward": lines(forward), "cached": names,
        "backward_before": before, "backward": lines(backward),
        "loss": loss,
        "output_array": model.network.output.batched().code(),
        "target_shape": "(T, units, m)" if spec.output != "last" else "(units, m)",
        "helpers": helpers_used(slicer.printer),
        "workspace": workspace,
    }
