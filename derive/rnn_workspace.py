"""The workspace form of a recurrent network (model_inplace.py): the step statements as in-place NumPy calls.

`gradients` evaluates the derived step statements (`timeloop`) as one expression each, allocating
every intermediate at every step. `gradients_into` evaluates the same statements into arrays a
`Workspace` allocates once:

1. the statements are rewritten onto PyTorch's stacked gate arrays (`rnn_stacking`: one (4H, ·)
   product per step instead of four (H, ·) ones);
2. the loops are split (loop fission): a statement that reads nothing the loop computes runs once
   before the loop over all steps, and a statement nothing in the loop reads runs once after it.
   Sequences are (T, rows, m), so that each step's array, and each gate's rows of it, is contiguous
   (a strided view makes NumPy buffer every element-wise call: 15 µs instead of 4 µs for a
   256 × 64 multiply). A statement over all steps that works row by row (W_ih x, the head) runs
   on the stack of steps (matmul applies the weight to each step); one that sums over the samples
   (a weight's gradient Σₜ δ[t] a[t]ᵀ, a bias's Σ) runs on copies laid out (rows, T, m), where the
   steps of a range are one (rows, steps × m) matrix: one product over all steps and samples.
   Both layouts are layout choices; the statements are the derived ones;
3. each statement is lowered by `workspace.Lowering` (the MLP's in-place lowering) into NumPy calls
   with `out=`, scratch arrays assigned by liveness.

`derive rnn` compares `gradients_into` with `gradients` on every run (`rnn_verify.derivative_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from derive.convops import PositionMean
from derive.layers.lstm import GatePre, GateValue
from derive.notation import quantity_of
from derive.indexing import transform
from derive.ops import Einsum, MatProd, RowSums, Tr
from derive.rnn import RNNModel
from derive.rnn_code import Parameter, _dims, parameters
from derive.rnn_stacking import Family, Line, Ref, Refs, merge_columns, merge_rows
from derive.timeloop import STEP, STEPS, Block, StepPrinter, TimeSlicer
from derive.workspace import CannotLower, Lowering, Pool, Scalar, Transposed, Value, View, allocate

_STACKED = {"weight_ih": "W_ih", "weight_hh": "W_hh", "bias_ih": "b_ih", "bias_hh": "b_hh"}


def stacked_name(p: Parameter) -> str:
    """The name of a parameter array in the workspace code: W_ih1 for weight_ih_l0, whether stacked or not."""
    if len(p.locals) == 1:
        return p.locals[0]
    prefix, layer = p.key.rsplit("_l", 1)
    return f"{_STACKED[prefix]}{int(layer) + 1}"


def families(model: RNNModel, params: list[Parameter]) -> list[Family]:
    """Every stacked array: the gate parameters and their gradients, and per layer the gates'
    pre-activations, values and errors, in the order of the stacked weights (PyTorch's)."""
    out = []
    for p in params:
        if len(p.locals) > 1:
            out.append(Family(stacked_name(p), p.locals))
            out.append(Family("d" + stacked_name(p), p.gradients))
    layers = sorted({n.layer.number for n in model.network.layers if isinstance(n.kind, GatePre)})
    for layer in layers:
        for kind, name in ((GatePre, "Zgates"), (GateValue, "Gates")):
            nodes = [n for n in model.network.layers if n.layer.number == layer and isinstance(n.kind, kind)]
            codes = tuple(n.out(True).code() for n in nodes)
            errors = tuple(n.output.gradient.batched(True).code() for n in nodes)
            out += [Family(f"{name}{layer}", codes), Family(f"d{name}{layer}", errors)]
    return out


@dataclass
class Shapes:
    """The row count (code in inputs, hidden, units) of every array, and the parameters' shapes."""

    rows: dict[str, str]
    params: dict[str, tuple[str, str]]


def shapes(model: RNNModel, params: list[Parameter], fams: list[Family]) -> Shapes:
    param_shapes, rows = {}, {}
    for p in params:
        dims = [d.strip() for d in p.shape.strip("()").split(",") if d.strip()]
        shape = (dims[0], dims[1] if len(dims) > 1 else 1)  # a bias is a column
        param_shapes[stacked_name(p)] = shape
        param_shapes["d" + stacked_name(p)] = shape
        for local, gradient in zip(p.locals, p.gradients):
            block = ("hidden" if len(p.locals) > 1 else shape[0], shape[1])
            param_shapes[local] = param_shapes[gradient] = block
    for node in model.network.layers:
        code = _dims(model, node.output)  # "(T, W_ii1.shape[0], m)"
        local, axis = code.split(", ")[1].split(".shape[")
        row = param_shapes[local][int(axis.rstrip("]"))]
        rows[node.out(True).code()] = row
        if node.output.gradient is not None:
            rows[node.output.gradient.batched(True).code()] = row
    rows["A0"], rows["Y"] = "inputs", "units"
    for f in fams:
        if f.members[0] in rows:
            rows[f.array] = f"{len(f.members)} * hidden"
    return Shapes(rows, param_shapes)


# ---- statements as lines over references


def _lines(block: Block, slicer: TimeSlicer, refs: Refs) -> list[Line]:
    out = []
    for s in block.statements:
        if s.target.endswith("[t]"):
            target = Ref(s.target[:-3], None, STEP)
        else:
            target = Ref(s.target)
        mapping = {}
        for symbol in s.form.free_symbols:
            if symbol.name in slicer.steps:
                code, at = slicer.steps[symbol.name]
                mapping[symbol] = refs.symbol(Ref(code, None, at))
            elif quantity_of(symbol.name) is not None:
                mapping[symbol] = refs.symbol(Ref(slicer.printer._print(symbol)))
        source = (f"if {s.guard}: " if s.guard else "") + f"{s.target} {s.op} {s.value}"
        out.append(Line(target, s.op, einsum_as_products(s.form.xreplace(mapping)), s.conditions, s.next_step, source))
    return out


def _as_blocks(lines: list[Line], refs: Refs, fams: list[Family]) -> list[Line]:
    """Gate arrays left unmerged become their row block of the stacked array."""
    where = {m: (f.array, k) for f in fams for k, m in enumerate(f.members)}

    def moved(ref: Ref) -> Ref:
        if ref.array in where and ref.rows is None:
            array, k = where[ref.array]
            return Ref(array, (k, k + 1), ref.at)
        return ref

    out = []
    for line in lines:
        mapping = {s: refs.symbol(moved(refs.of(s))) for s in line.form.free_symbols if refs.of(s) is not None}
        out.append(replace(line, target=moved(line.target), form=line.form.xreplace(mapping)))
    return out


# ---- loop fission

_FROM_ONE = (sp.Ge(STEP, 1), STEP >= 1)


def _range_start(line: Line) -> int | None:
    """The first step of a line's range when it may run over all steps at once: 0, or 1 behind [t ≥ 1]."""
    if line.next_step:
        return None
    if not line.conditions:
        return 0
    if len(line.conditions) == 1 and line.conditions[0] in _FROM_ONE:
        return 1
    return None


def _all_steps_ok(line: Line, refs: Refs, param_names: set[str]) -> bool:
    """Every array read is a step of a sequence (at t + k) or a parameter; the target a step or a gradient."""
    if _range_start(line) is None:
        return False
    if line.target.at is not None and line.target.at != STEP:
        return False
    if line.target.at is None and line.op != "+=":
        return False
    if not sums_over_samples(line.form, refs) and any(
            r.at is not None and r.rows is not None for r in refs.read(line.form) + [line.target]):
        return False  # some gates' rows of a stack of steps: not contiguous, NumPy would buffer or copy
    for ref in refs.read(line.form):
        if ref.at is None and ref.array not in param_names:
            return False
        if ref.at is not None and not (ref.at - STEP).is_Integer:
            return False
    return True


def split_loop(lines: list[Line], refs: Refs, param_names: set[str]) -> tuple[list[Line], list[Line], list[Line]]:
    """(before, loop, after): the lines that run once over all steps before the loop, the loop's own
    lines, and those that run once after it (see the module docstring)."""
    reads = lambda line: {r.array for r in refs.read(line.form)}  # noqa: E731
    before, rest = [], []
    for i, line in enumerate(lines):
        pending = {x.target.array for x in rest + lines[i:]}  # written in the loop, this line included
        if _all_steps_ok(line, refs, param_names) and not reads(line) & pending - (
                {line.target.array} if line.target.at is None else set()):
            if not any(x.target.array == line.target.array for x in rest):
                before.append(line)
                continue
        rest.append(line)
    after: list[Line] = []
    loop = list(rest)
    for line in reversed(rest):
        others = [x for x in loop if x is not line]
        later = loop[loop.index(line) + 1:]
        if (_all_steps_ok(line, refs, param_names)
                and not any(line.target.array in reads(x) for x in others)
                and not any(x.target.array in reads(line) | {line.target.array} for x in later)):
            after.insert(0, line)
            loop.remove(line)
    return before, loop, after


# ---- printing


class WorkspacePrinter(StepPrinter):
    """Prints references as workspace code, in one of three modes:

    * "step": one step in the loop, A1[t - 1] (rows of stacked gates: Gates1[t, :2 * hidden]);
    * "stack": the steps start … T − 1 at once as a stack of step matrices, A1[0:T - 1], for a
      statement that works row by row (element-wise operations, products with a weight on the left,
      which NumPy's matmul applies to each step of the stack);
    * "cols": the steps as one (rows, steps × m) matrix, _steps(A1_cols, 0, T - 1), read from the
      copy of the sequence laid out (rows, T, m), for a statement that sums over the samples (a
      weight's gradient Σₜ δ[t] a[t]ᵀ is then one product over all steps and samples).
    """

    def __init__(self, refs: Refs, mode: str = "step", start: int = 0):
        super().__init__({})
        self.refs, self.mode, self.start = refs, mode, start

    def rows_code(self, rows) -> str:
        if rows is None:
            return ":"
        lo, hi = rows
        text = lambda k: "" if k == 0 else ("hidden" if k == 1 else f"{k} * hidden")  # noqa: E731
        return f"{text(lo)}:{text(hi)}"

    def steps_code(self, ref: Ref) -> tuple[str, str]:
        shift = ref.at - STEP
        return self._print(shift + self.start), self._print(STEPS + shift)

    def ref_code(self, ref: Ref) -> str:
        rows = "" if ref.rows is None else f", {self.rows_code(ref.rows)}"
        if ref.at is None:
            return ref.array if ref.rows is None else f"{ref.array}[{self.rows_code(ref.rows)}]"
        if self.mode == "step":
            return f"{ref.array}[{self._print(ref.at)}{rows}]"
        first, last = self.steps_code(ref)
        if self.mode == "stack":
            return f"{ref.array}[{first}:{last}{rows}]"
        array = f"{ref.array}_cols" + ("" if ref.rows is None else f"[{self.rows_code(ref.rows)}]")
        return f"_steps({array}, {first}, {last})"

    def _print_Symbol(self, expr):
        ref = self.refs.of(expr)
        return self.ref_code(ref) if ref is not None else super()._print_Symbol(expr)


class StepLowering(Lowering):
    """`workspace.Lowering` over workspace references, with NumPy's matmul for every product and the
    mean over the samples of a bias gradient as a sum and a division (over all steps' columns at
    once, it sums the steps' means, as the gradient Σₜ does)."""

    erf_work = False  # the recurrent Workspace keeps no work-array dicts: _erf allocates its own

    def holds_arrays(self, expr: sp.Basic) -> bool:
        return any(self.printer.refs.of(s) is not None for s in expr.free_symbols) or super().holds_arrays(expr)

    def _product_of(self, left, right):
        return self._emit("product", "np.matmul", (left, right), (left.shape[0], right.shape[1]))

    def _lower(self, expr):
        if isinstance(expr, PositionMean) and not expr.args[1] and int(expr.args[2]) == 1:
            # the mean over the samples (the columns) of a step's error, kept as a column
            x = self._array(self.lower(expr.args[0]))
            total = self._emit("reduce", "np.add.reduce", (x,), (x.shape[0], 1), keywords="axis=1, keepdims=True")
            return self._elementwise("np.divide", total, Scalar("m"))
        return super()._lower(expr)


class Compiler:
    """Lowers lines to printed NumPy calls; every part of one module shares the scratch `pool`."""

    def __init__(self, refs: Refs, shapes: Shapes, pool: Pool):
        self.refs, self.shapes, self.pool = refs, shapes, pool

    def _shape(self, ref: Ref, cols: str) -> tuple:
        if ref.array in self.shapes.params:
            rows, c = self.shapes.params[ref.array]
        else:
            rows, c = self.shapes.rows[ref.array], cols
        if ref.rows is not None:
            rows = "hidden" if ref.rows[1] - ref.rows[0] == 1 else f"{ref.rows[1] - ref.rows[0]} * hidden"
        return rows, (c if ref.at is not None or ref.array in self.shapes.params else "m")

    def lower(self, lines: list[Line], indent: str, carry: bool, mode: str = "step", start: int = 0) -> list[str]:
        """The NumPy calls of `lines`: at step t, or over the steps start … T − 1 (see WorkspacePrinter)."""
        printer = WorkspacePrinter(self.refs, mode, start)
        steps = printer._print(STEPS - start)
        cols = {"step": "m", "stack": f"[{steps}]", "cols": printer._print((STEPS - start) * sp.Symbol("m"))}[mode]
        arguments = {}
        for line in lines:
            for ref in self.refs.read(line.form) + [line.target]:
                name = printer.ref_code(ref)
                arguments[name] = Value(self._shape(ref, cols), name=name, argument=True)
        lowering = StepLowering(printer, arguments)
        spans = []
        for line in lines:
            target = printer.ref_code(line.target)
            begin = len(lowering.instructions)
            saved = dict(lowering.computed)  # what a guarded statement computes may not have run: forgotten after it
            if line.form == 0:
                spans.append((line, begin, begin, f"{target}.fill(0)"))
                continue
            if line.op == "+=":
                form = sp.Add(self.refs.symbol(line.target), line.form, evaluate=False)
                lowering.statement(target, form, comment="", pin=target, update=True)
            else:
                lowering.statement(target, line.form, comment="", pin=target)
            if line.conditions:  # kept: what was computed before it and is still valid (not stale after `update`)
                lowering.computed = {k: v for k, v in saved.items() if k in lowering.computed}
            spans.append((line, begin, len(lowering.instructions), None))
        allocate(lowering.instructions, self.pool, [])
        out = []
        for line, begin, end, text in spans:
            pad = indent
            out.append(f"{indent}# {'every step at once: ' if mode != 'step' else ''}{line.source}")
            if line.also:
                out.append(f"{indent}#   and {', '.join(line.also)} alike: one statement on their rows of {line.target.array}")
            if line.conditions and mode == "step":
                guard = " and ".join(printer._print(c).strip("()") for c in line.conditions)
                out.append(f"{indent}if {guard}{' and carry' if line.next_step and carry else ''}:")
                pad = indent + "    "
            if text is not None:
                out.append(pad + text)
            for ins in lowering.instructions[begin:end]:
                out.append(pad + _instruction(ins))
        return out


def _name(operand) -> str:
    if isinstance(operand, Scalar):
        return operand.text
    if isinstance(operand, Transposed):
        return _name(operand.value) + ".T"
    if isinstance(operand, View):
        return operand.template.format(_name(operand.value))
    if operand.argument or operand.name is not None and operand.pin is None:
        return operand.name
    if operand.pin is not None:
        return operand.pin
    return f"ws.{operand.buffer}"


def _instruction(ins) -> str:
    out = _name(ins.out)
    args = ", ".join(_name(a) for a in ins.args)
    if ins.kind == "reduce":
        return f"{ins.call}({args}, {ins.keywords}, out={out})"
    if ins.kind == "copy":
        return f"np.copyto({out}, {args})"
    if ins.kind in ("elementwise", "product"):
        return f"{ins.call}({args}, out={out})"
    if ins.kind == "expression":  # a piecewise formula (Huber's error): as the MLP's workspace does
        return f"np.copyto({out}, {ins.text})  # no in-place form: allocates"
    raise CannotLower(f"no in-place form for {ins.call}: the workspace would allocate")


# ---- the whole plan


def sums_over_samples(form: sp.Expr, refs: Refs) -> bool:
    """Whether a statement contracts a sequence over its samples (a transposed step, a sum over the
    columns): over all steps it then needs the (rows, steps × m) matrices of the sequences."""
    for e in sp.preorder_traversal(form):
        if isinstance(e, (Tr, RowSums, PositionMean)) and any(
                r.at is not None for r in refs.read(e.args[0])):
            return True
    return False


def einsum_as_products(form: sp.Expr) -> sp.Expr:
    """An einsum of matrices that is a matrix product of entry-wise products, written as one:
    operands with the same two indices multiply entry by entry, then Σₖ L[i, k] R[k, j] is L R (a
    factor's indices the other way round is its transpose). By the definition of einsum; any other
    einsum is left as it is (and has no workspace form)."""

    def as_matrix(factor: sp.Expr, have: str, want: str) -> sp.Expr:
        return factor if have == want else Tr(factor)

    def rule(e):
        if not isinstance(e, Einsum):
            return e
        inputs, output = e.subscripts.split("->")
        specs = inputs.split(",")
        if len(output) != 2 or any(len(spec) != 2 for spec in specs):
            return e
        merged: dict[str, list] = {}
        for spec, operand in zip(specs, e.operands):
            key = spec if spec in merged or spec[::-1] not in merged else spec[::-1]
            merged.setdefault(key, []).append(operand if key == spec else Tr(operand))
        factors = [(spec, sp.Mul(*ops)) for spec, ops in merged.items()]
        if len(factors) == 1 and set(factors[0][0]) == set(output):
            return as_matrix(factors[0][1], factors[0][0], output)
        if len(factors) != 2:
            return e
        (a, left), (b, right) = factors
        shared = set(a) & set(b)
        if len(shared) != 1 or shared & set(output):
            return e
        k = shared.pop()
        if output[0] not in a:
            (a, left), (b, right) = (b, right), (a, left)
        if output[0] not in a or output[1] not in b:
            return e
        return MatProd(as_matrix(left, a, output[0] + k), as_matrix(right, b, k + output[1]))

    return transform(form, rule)


def product_scaled_after(form: sp.Expr) -> sp.Expr:
    """(s X) Yᵀ → s (X Yᵀ) for a number s (the 1/m of a weight gradient): the same product, scaled
    after it, so that the smaller result is scaled rather than the errors of every step."""

    def rule(e):
        if isinstance(e, MatProd) and e.args[0].is_Mul:
            scalars = [f for f in e.args[0].args if not f.free_symbols or all(
                s.name == "m" for s in f.free_symbols)]
            if scalars:
                rest = sp.Mul(*[f for f in e.args[0].args if f not in scalars])
                return sp.Mul(*scalars) * MatProd(rest, e.args[1])
        return e

    return transform(form, rule)


def workspace_context(model: RNNModel, forward: list[Block], backward: list[Block], slicer: TimeSlicer) -> dict:
    """Plain data for templates/model_rnn_workspace.py.j2 (model_inplace.py)."""
    params = parameters(model)
    fams = families(model, params)
    table = shapes(model, params, fams)
    refs = Refs()
    param_names = set(table.params)
    pool = Pool()
    compiler = Compiler(refs, table, pool)
    sequences: dict[str, None] = {}
    singles: dict[str, None] = {}
    columns: dict[str, None] = {}  # sequences that also have a (rows, T, m) copy
    fresh: set[str] = set()  # … whose copy holds the sequence's current values
    assigned: set[str] = set()  # gradients computed by one statement over all steps (not accumulated)
    writers: dict[str, int] = {}  # statements writing each array (after the stacking)

    def over_steps(lines: list[Line]) -> list[str]:
        """Lines run once over all steps, lowered together where they share a mode and a range (so
        that a subexpression they share, such as the bias gradients' Σ over δ, is computed once)."""
        out, group, key = [], [], None
        for line in lines + [None]:
            mode = None if line is None else ("cols" if sums_over_samples(line.form, refs) else "stack")
            start = None if line is None else (1 if line.conditions else 0)
            if group and (line is None or (mode, start) != key):
                out += lower_group(group, *key)
                group = []
            if line is not None:
                group.append(line)
                key = (mode, start)
        return out

    def lower_group(group: list[Line], mode: str, start: int) -> list[str]:
        plain = []
        for line in group:
            op = line.op
            if op == "+=" and line.target.array in param_names and writers[line.target.array] == 1:
                op = "="  # the gradient's only statement: written, not added to zeros
                assigned.add(line.target.array)
            plain.append(replace(line, op=op, form=product_scaled_after(line.form), conditions=()))
        out = []
        if mode == "stack":
            fresh.difference_update(x.target.array for x in group)
        else:
            for line in group:
                if line.target.at is not None:
                    raise CannotLower(f"{line.target.array} summed over the samples of every step")
            for array in sorted({r.array for x in group for r in refs.read(x.form) if r.at is not None}):
                columns.setdefault(array)
                if array not in fresh:  # the layout copy: once per array, after its last write
                    out.append(f"    np.copyto({array}_cols, {array}.transpose(1, 0, 2))  # laid out (rows, T, m)")
                    fresh.add(array)
        return out + compiler.lower(plain, "    ", False, mode, start)

    def stack_products(line: Line) -> Line:
        form = merge_columns(line.form, refs, fams)
        if form == line.form:
            return line
        return replace(line, form=form, source=line.source + "   [the gates' products as one on the stacked arrays]")

    def part(blocks: list[Block], carry: bool) -> list[str]:
        out = []
        for block in blocks:
            lines = _lines(block, slicer, refs)
            lines = [stack_products(x) for x in lines]
            lines = _as_blocks(merge_rows(lines, refs, fams), refs, fams)
            for line in lines:
                writers[line.target.array] = writers.get(line.target.array, 0) + 1
                if line.target.at is not None:
                    sequences.setdefault(line.target.array)
                elif line.target.array not in param_names:
                    singles.setdefault(line.target.array)
            if block.loop is None:
                fresh.difference_update(x.target.array for x in lines)
                out += compiler.lower(lines, "    ", carry)
                continue
            before, loop, after = split_loop(lines, refs, param_names)
            out += over_steps(before)
            if loop:
                fresh.difference_update(x.target.array for x in loop)
                out.append("    for t in " + ("range(T):" if block.loop == "forward" else "reversed(range(T)):"))
                if carry:
                    out.append("        carry = truncate is None or (t + 1) % truncate != 0")
                out += compiler.lower(loop, "        ", carry)
            out += over_steps(after)
        return out

    forward_lines = part(forward, False)
    backward_lines = part(backward, True)
    sequences.pop("A0", None)
    sequences.pop("Y", None)

    def shape_code(shape) -> str:
        rows, cols = shape
        if isinstance(cols, str) and cols.startswith("["):  # a stack of step matrices
            return f"({cols[1:-1]}, {rows}, m)"
        return f"({rows}, {cols})"

    return {
        "forward": forward_lines, "backward": backward_lines,
        "sequences": [(name, table.rows[name]) for name in sequences],
        "singles": [(name, table.rows[name]) for name in singles],
        "columns": [(name, table.rows[name]) for name in columns],
        "scratch": [(f"t{k}", shape_code(shape)) for k, shape in enumerate(pool.shapes)],
        "params": [{"key": p.key, "name": stacked_name(p), "is_bias": p.is_bias, "shape": p.shape,
                    "zeroed": "d" + stacked_name(p) not in assigned} for p in params],
    }
