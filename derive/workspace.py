"""Training-loop code: the derived formulas as in-place NumPy calls over pre-allocated arrays.

`gradients` in model.py evaluates each formula as one NumPy expression. That is the readable form,
but every operator allocates a new array, and new arrays of a few hundred kilobytes page-fault on
first touch. A training loop repeats the same shapes thousands of times, so the workspace form
evaluates the same formulas as sequences of NumPy calls that write into arrays allocated once
(`out=`). This module is the small compiler back end that produces it:

1. `Lowering` walks a matrix-form expression in exactly the order Python evaluates the code that
   `NumPyCodePrinter` prints for it (the printer's order of terms and factors, a division where the
   printer divides) and emits one instruction per NumPy operation. The same operations in the same
   order give the numbers of `gradients` bit for bit, which the verification checks.
2. `allocate` assigns arrays with liveness over the instruction list: an element-wise operation
   writes over an operand that is not needed afterwards (in place), results that outlive the call
   (gradients, updated parameters) go to their own arrays, a matrix product never writes over its
   operands, and arrays of the same shape are reused once free.
3. `Program.lines` prints the instructions as Python for the template.

Shapes are symbolic: the dimensions are the names `n0 … nL` (units per layer) and `m` (the batch),
which the generated `Workspace` binds to numbers when it allocates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.core.mul import _keep_coeff

from derive.batchedproducts import batch_first, batched_product, flat_product, matrix_view, scaled_by_sum, transpose_text
from derive.ops import Op, natural_c_order
from derive.notation import Quantity
from derive.rewrite import Erf, LogSumExp, Softmax, Softplus, holds_arrays, logsumexp_shifted, softmax_shifted

Dim = str | int  # "n1", "m" or 1
Shape = tuple[Dim, ...]  # () for a scalar, (rows, columns) for an array
BATCH = "m"


class CannotLower(ValueError):
    """An expression this lowering has no rule for, used where a rule is required."""


def dim_name(layer: int) -> str:
    return f"n{layer}"


def quantity_shape(q: Quantity, network) -> Shape:
    """Shape of a quantity in the minibatch formulas: samples are columns, a parameter has the axes
    its kind gives it (a vector one column). Layers whose sizes are equal by construction (the two
    sides of a residual sum) share one dimension name."""
    from derive.backprop import parameter_axes

    dims = lambda axes: tuple(network.axis_dim(axis) for axis in axes)  # noqa: E731
    if q.kind == "X":
        return (*dims(network.input_axes), BATCH)
    if q.kind == "Y":
        return (*dims(network.loss_node.in_axes[0]), BATCH)
    if q.kind in ("Z", "A"):
        return (*dims(network.axes_of(q)), BATCH)
    if q.kind in ("Delta", "grad_A"):
        return (*dims(network.axes_of(Quantity("z" if q.kind == "Delta" else "a", q.layer))), BATCH)
    for node, data in network.data_inputs:  # a mask: shaped like the output of the node that reads it
        if q == data.batched():
            return (*dims(node.out_axes), BATCH)
    param = Quantity(q.kind.removeprefix("grad_"), q.layer) if q.is_gradient else q
    if param.is_parameter:
        node = network.owner(param)
        shape = dims(parameter_axes(node, param))
        return shape if len(shape) != 1 else shape + (1,)  # a vector parameter is a column
    raise CannotLower(f"{q.kind!r} has no minibatch shape")


def broadcast(*shapes: Shape) -> Shape:
    arrays = [s for s in shapes if s]
    if not arrays:
        return ()
    out = list(arrays[0])
    for shape in arrays[1:]:
        for axis, dim in enumerate(shape):
            if out[axis] == 1:
                out[axis] = dim
            elif dim != 1 and dim != out[axis]:
                raise CannotLower(f"shapes {shapes} do not broadcast")
    return tuple(out)


def shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# --------------------------------------------------------------------------------------------------
# the instruction set


@dataclass(eq=False)
class Value:
    """One array result (single assignment). `buffer` is chosen by `allocate`."""

    shape: Shape
    name: str | None = None  # code name when the value is a named quantity (Z1, delta2) or an argument
    argument: bool = False  # given by the caller (W1, X, Y): never written unless it is `pin`ned
    pin: str | None = None  # the array it must be computed in: a gradient output or an updated parameter
    updates_argument: bool = False  # `pin` is an argument array updated in place (gradient descent)
    buffer: str | None = None
    layout: tuple[int, ...] | None = None  # memory order of its axes (derive.batchedproducts); None: C order


@dataclass(frozen=True)
class Transposed:
    value: Value

    @property
    def shape(self) -> Shape:
        return self.value.shape[::-1]


@dataclass(frozen=True)
class Scalar:
    """A Python scalar expression (a number, `m`, `lr`), evaluated by Python as in the plain code."""

    text: str
    shape: Shape = ()


@dataclass(frozen=True)
class View:
    """An array seen with other axes (placed into a larger shape for broadcasting), no copy made:
    `template` is the code with {} for the array's name."""

    value: Value
    template: str
    shape: Shape


Operand = Value | Transposed | Scalar | View


@dataclass(eq=False)
class Instruction:
    kind: str  # "elementwise", "product", "reduce", "einsum", "matmul", "copy" or "expression"
    call: str  # np.add, mm_m, np.add.reduce, np.copyto
    args: tuple[Operand, ...]
    out: Value
    keywords: str = ""  # e.g. "axis=1, keepdims=True" for reductions
    text: str = ""  # "expression": the plain printed expression, evaluated and copied into `out`
    einsum: tuple | None = None  # a "matmul" of reshaped views: the einsum it replaces, if `out` is not C-ordered

    def reads(self) -> list[Value]:
        return [a.value if isinstance(a, (Transposed, View)) else a for a in self.args if not isinstance(a, Scalar)]


@dataclass
class Block:
    """The instructions of one formula: `target = expression`."""

    target: str
    comment: str
    start: int
    end: int
    result: Value
    alias_of: Value | None = None  # the formula names an existing value (A1 = Z1): no instruction


def _operator_text(call: str) -> str:
    return {"np.add": "+", "np.subtract": "-", "np.multiply": "*", "np.divide": "/"}[call]


# --------------------------------------------------------------------------------------------------
# lowering


class Lowering:
    """Turns formulas into instructions, evaluating as the printed code does (see module docstring).

    With `exact=False` the program may round differently from the printed code, for speed: the
    scalar factors of a product are multiplied first, in Python, so that an array is scaled once
    (−lr/m · Δ instead of (−lr·Δ)/m), and row and column sums become matrix-vector products with a
    vector of ones (X 1, 1ᵀX), which BLAS computes faster than NumPy's reduction. Used only where no
    plain-code counterpart has to be matched (the fused gradient-descent step).
    """

    erf_work = True  # `_erf` keeps its work arrays in the Workspace's dict ws.erf_work

    def __init__(self, printer, arguments: dict[str, Value], *, exact: bool = True):
        self.printer = printer
        self.values: dict[str, Value] = dict(arguments)
        self.arguments = dict(arguments)
        self.instructions: list[Instruction] = []
        self.blocks: list[Block] = []
        self.exact = exact
        self.constants: dict[str, Value] = {}  # arrays of ones the workspace provides (exact=False)
        self.bound: dict[str, Value] = {}  # plain symbols standing for computed values (in helpers)
        self.updates: list[tuple[str, Value]] = []  # arguments updated in place, and their new value
        self.computed: dict[sp.Expr, Operand] = {}  # subexpressions already evaluated (reused, not redone)
        self.readers: dict[str, list[sp.Expr]] = {}  # code name → computed subexpressions that read it
        self.code_names: dict[sp.Symbol, str] = {}
        self.windows: dict[str, None] = {}  # the Workspace's dicts of window work arrays, in order of use
        self.window_results: set[tuple[str, str]] = set()  # (dict, what) a forward call left there
        self.layouts: dict[Shape, tuple[int, ...]] = {}  # batch axes first for the arrays of batched products

    def holds_arrays(self, expr: sp.Basic) -> bool:
        return holds_arrays(expr) or any(s.name in self.bound for s in expr.free_symbols)

    # ---- statements

    def statement(
        self, target: str, expr: sp.Expr, *, comment: str, pin: str | None = None, update: bool = False
    ) -> Value:
        """Evaluate `expr` and name it `target`; with `pin`, the result is computed in that array
        (with `update`, `pin` is the argument `target` itself, overwritten in place)."""
        start = len(self.instructions)
        result = self.lower(expr)
        if isinstance(result, Scalar):
            raise CannotLower(f"{target} = {expr} is a scalar")
        if isinstance(result, (Transposed, View)):  # a view of another array (a reshape): its own copy
            result = self._emit("copy", "np.copyto", (result,), result.shape)
        fresh = any(ins.out is result for ins in self.instructions[start:])
        alias_of = None
        if pin is not None:
            if not fresh or result.pin is not None or result.name is not None:
                result = self._emit("copy", "np.copyto", (result,), result.shape)
            result.pin = pin
            result.updates_argument = update
            if update:
                self.updates.append((pin, result))
                for stale in self.readers.pop(pin, []):  # computed from the old value: not reusable
                    self.computed.pop(stale, None)
        elif fresh:
            result.name = target
        else:
            alias_of = result
        self.values[target] = result
        self.blocks.append(Block(target, comment, start, len(self.instructions), result, alias_of))
        return result

    def check_updates(self) -> None:
        """An argument updated in place must not be read by any later instruction."""
        written, last_read = {}, {}
        for i, ins in enumerate(self.instructions):
            written[id(ins.out)] = i
            for v in ins.reads():
                if v.argument:
                    last_read[id(v)] = i
        for name, result in self.updates:
            if last_read.get(id(self.arguments[name]), -1) > written[id(result)]:
                raise CannotLower(f"{name} is updated in place before its last use")

    # ---- expressions

    def lower(self, expr: sp.Expr) -> Operand:
        """The operand holding the value of `expr`, emitting the instructions that compute it (once:
        a subexpression seen before in this program is reused, which gives the same bits)."""
        if self.bound or isinstance(expr, sp.Symbol) or not self.holds_arrays(expr):
            return self._lower(expr)
        if expr not in self.computed:
            self.computed[expr] = self._lower(expr)
            for symbol in expr.free_symbols:
                self.readers.setdefault(self._code_name(symbol), []).append(expr)
        return self.computed[expr]

    def _code_name(self, symbol: sp.Symbol) -> str:
        if symbol not in self.code_names:
            self.code_names[symbol] = self.printer._print(symbol)
        return self.code_names[symbol]

    def _lower(self, expr: sp.Expr) -> Operand:
        if not self.holds_arrays(expr):
            return Scalar(self.printer._print(expr))
        if isinstance(expr, sp.Symbol):
            if expr.name in self.bound:
                return self.bound[expr.name]
            name = self.printer._print(expr)
            if name not in self.values:
                raise CannotLower(f"{name} is used before it is computed")
            return self.values[name]
        if isinstance(expr, Op):
            return expr.lower(self)  # each operation lowers itself (derive/ops.py) with the primitives below
        if expr.is_Add:
            return self._add(expr)
        if expr.is_Mul:
            return self._mul(expr)
        if expr.is_Pow:
            return self._pow(expr)
        if isinstance(expr, LogSumExp):
            return self._logsumexp(expr)
        if isinstance(expr, Softmax):
            return self._softmax(expr)
        return self._function(expr)

    def _emit(self, kind: str, call: str, args: tuple, shape: Shape, keywords: str = "", text: str = "") -> Value:
        out = Value(shape)
        self.instructions.append(Instruction(kind, call, tuple(args), out, keywords, text))
        return out

    def _array(self, operand: Operand) -> Value:
        if isinstance(operand, Value):
            return operand
        if isinstance(operand, (Transposed, View)):
            return self._emit("copy", "np.copyto", (operand,), operand.shape)
        raise CannotLower(f"scalar {operand.text} where an array is needed")

    def _elementwise(self, call: str, *args: Operand) -> Operand:
        if all(isinstance(a, Scalar) for a in args):
            if call in ("np.add", "np.subtract", "np.multiply", "np.divide"):
                return Scalar(f"({args[0].text} {_operator_text(call)} {args[1].text})")
            if call == "np.negative":
                return Scalar(f"(-{args[0].text})")
            return Scalar(f"{call}({', '.join(a.text for a in args)})")
        return self._emit("elementwise", call, args, broadcast(*(a.shape for a in args)))

    def _negated(self, term: sp.Expr) -> bool:
        """Whether the printer writes this term of a sum with a minus sign (then Python subtracts it)."""
        return not term.is_Add and self.printer._print(term).startswith("-")

    def _add(self, expr: sp.Add) -> Operand:
        # the printer writes t1 ± t2 ± …; Python folds from the left. Negation is exact in floating
        # point, so (−s) + t is computed as t − s and (−s) − t as −(s + t), with identical results.
        acc, negated = None, False
        for term in self.printer._as_ordered_terms(expr, order=None):
            negative = self._negated(term)
            operand = self.lower(-term if negative else term)
            if acc is None:
                acc, negated = operand, negative
                if negated and isinstance(acc, Scalar):
                    acc, negated = self._elementwise("np.negative", acc), False
            elif not negated:
                acc = self._elementwise("np.subtract" if negative else "np.add", acc, operand)
            elif negative:
                acc = self._elementwise("np.add", acc, operand)
            else:
                acc, negated = self._elementwise("np.subtract", operand, acc), False
        return self._elementwise("np.negative", acc) if negated else acc

    def _factors(self, expr: sp.Mul) -> tuple[bool, list[sp.Expr], list[sp.Expr]]:
        """Sign, numerator and denominator factors, exactly as the code printer splits a product."""
        coefficient, rest = expr.as_coeff_Mul()
        negative = bool(coefficient < 0)
        if negative:
            expr = _keep_coeff(-coefficient, rest)
        numerator, denominator = [], []
        for item in expr.as_ordered_factors():
            if item.is_commutative and item.is_Pow and item.exp.is_Rational and item.exp.is_negative:
                denominator.append(item.base if item.exp == -1 else sp.Pow(item.base, -item.exp, evaluate=False))
            else:
                numerator.append(item)
        return negative, numerator or [sp.S.One], denominator

    def _mul(self, expr: sp.Mul) -> Operand:
        negative, numerator, denominator = self._factors(expr)
        if not self.exact and not any(self.holds_arrays(d) for d in denominator):
            arrays = [f for f in numerator if self.holds_arrays(f)]
            scalars = [f for f in numerator if not self.holds_arrays(f)]
            coefficient = sp.Mul(*scalars) / sp.Mul(*denominator) * (-1 if negative else 1)
            acc = self.lower(arrays[0])
            for factor in arrays[1:]:
                acc = self._elementwise("np.multiply", acc, self.lower(factor))
            if coefficient != 1:
                acc = self._elementwise("np.multiply", acc, Scalar(self.printer._print(coefficient)))
            return acc
        # Python evaluates "-a*b*c/d" as (((−a)·b)·c)/d; the sign may move to any factor exactly
        acc = self.lower(numerator[0])
        for factor in numerator[1:]:
            operand = self.lower(factor)
            if negative and isinstance(operand, Scalar):
                operand, negative = self._elementwise("np.negative", operand), False
            acc = self._elementwise("np.multiply", acc, operand)
        if denominator:
            divisor = self.lower(denominator[0])
            for factor in denominator[1:]:
                divisor = self._elementwise("np.multiply", divisor, self.lower(factor))
            if negative and isinstance(divisor, Scalar):
                divisor, negative = self._elementwise("np.negative", divisor), False
            acc = self._elementwise("np.divide", acc, divisor)
        return self._elementwise("np.negative", acc) if negative else acc

    def _pow(self, expr: sp.Pow) -> Operand:
        base, exponent = expr.base, expr.exp
        if exponent == sp.S.Half:
            return self._elementwise("np.sqrt", self.lower(base))
        if exponent == -sp.S.Half:
            return self._elementwise("np.divide", Scalar("1"), self._elementwise("np.sqrt", self.lower(base)))
        if exponent == 2:
            return self._elementwise("np.square", self.lower(base))  # what ndarray ** 2 calls
        if exponent.is_integer and exponent.is_negative:
            exponent = exponent.evalf()  # the NumPy printer writes x**(-1.0)
        return self._elementwise("np.power", self.lower(base), Scalar(self.printer._print(exponent)))

    # ---- primitives the operations of derive/ops.py lower themselves with

    def array(self, operand: Operand) -> Value:
        """An operand as an array of its own (a transposed view is copied)."""
        return self._array(operand)

    def matrix(self, operand: Operand) -> Value | Transposed:
        """An operand for a matrix product, which reads a transposed view directly."""
        return operand if isinstance(operand, Transposed) else self._array(operand)

    def transposed(self, value: Value) -> Transposed:
        return Transposed(value)

    def product(self, left: Value | Transposed, right: Value | Transposed) -> Value:
        return self._product_of(left, right)

    def axis_sum(self, x: Operand, axis: int) -> Value:
        """Sums along an axis, kept as a column (axis 1) or a row (axis 0)."""
        if not self.exact:  # X 1 and 1ᵀ X as products
            ones = self._ones(x.shape[axis])
            left, right = (x, ones) if axis == 1 else (Transposed(ones), x)
            return self._product_of(left, right)
        shape = (x.shape[0], 1) if axis == 1 else (1, x.shape[1])
        return self._emit("reduce", "np.add.reduce", (x,), shape, keywords=f"axis={axis}, keepdims=True")

    def filled(self, value: str, shape: Shape) -> Value:
        """An array of `shape` holding one number everywhere (𝟏: np.ones_like in the plain code)."""
        return self._emit("copy", "np.copyto", (Scalar(value),), shape)

    def einsum(self, subscripts: str, operands: list[Value], shape: Shape) -> Value:
        plan = None if self.exact else batched_product(subscripts)
        if plan is not None:
            return self._batched_product(plan, subscripts, operands, shape)
        flat = None if self.exact else flat_product(subscripts)
        if flat is not None:
            return self._flat_product(flat, subscripts, operands, shape)
        if not self.exact and len(operands) == 3 and subscripts.split(",")[0] == subscripts.split("->")[1]:
            inputs, output = subscripts.split("->")
            rest = ",".join(inputs.split(",")[1:]) + "->" + output
            if batched_product(rest) or flat_product(rest):  # A ⊙ (B·C): the product first, by BLAS
                return self._emit("elementwise", "np.multiply", (operands[0], self.einsum(rest, operands[1:], shape)), shape)
        summed = None if self.exact else scaled_by_sum(subscripts)
        if summed is not None:  # A₁ ⊙ … ⊙ Σ(B ⊙ C): a pass each (derive.batchedproducts)
            *factors, b, c = operands
            product = self._product_computed(b, c) or self._emit("elementwise", "np.multiply", (b, c), b.shape)
            kept = tuple(1 if p in summed else d for p, d in enumerate(b.shape))
            acc = self._emit("reduce", "np.add.reduce", (product,), kept, keywords=f"axis={summed}, keepdims=True")
            for factor in reversed(factors):
                rank = max(len(factor.shape), len(acc.shape))  # NumPy aligns the trailing axes
                padded = [(1,) * (rank - len(x.shape)) + tuple(x.shape) for x in (factor, acc)]
                acc = self._emit("elementwise", "np.multiply", (factor, acc), broadcast(*padded))
            return acc
        kind = "einsum" if natural_c_order(subscripts) else "einsum_copy"
        return self._emit(kind, "np.einsum", tuple(operands), shape, keywords=f'"{subscripts}"',
                          text=", optimize=True" if len(operands) > 1 else "")  # as the plain code (ops.Einsum)

    def _product_computed(self, b: Value, c: Value) -> Value | None:
        """The value of b ⊙ c if an earlier instruction computed it (values are never overwritten while
        they are read later: `allocate` keeps it): the score error's dα ⊙ α is also its first term."""
        for ins in self.instructions:
            if ins.kind == "elementwise" and ins.call == "np.multiply" and len(ins.args) == 2:
                if {id(a) for a in ins.args} == {id(b), id(c)} and all(isinstance(a, Value) for a in ins.args):
                    return ins.out
        return None

    def _batched_product(self, plan, subscripts: str, operands: list[Value], shape: Shape) -> Value:
        """np.matmul on transposed views (derive.batchedproducts); the shapes of the arrays it reads
        and writes are noted, so that `assign_layouts` keeps every array of such a shape with its
        batch axes first."""
        inputs, output = subscripts.split("->")
        left, right = (operands[1], operands[0]) if plan.swap else (operands[0], operands[1])
        views = tuple(View(v, "{}" + transpose_text(axes), tuple(v.shape[a] for a in axes))
                      for v, axes in ((left, plan.left_axes), (right, plan.right_axes)))
        arrays = [(v.shape, spec) for v, spec in zip(operands, inputs.split(",")) if not v.argument]
        for array_shape, spec in (*arrays, (shape, output)):
            if len(spec) >= 3:
                self.layouts.setdefault(array_shape, batch_first(spec, plan.batch))
        return self._emit("matmul", "np.matmul", views, shape, keywords="{0}" + transpose_text(plan.out_axes))

    def _flat_product(self, plan, subscripts: str, operands: list[Value], shape: Shape) -> Value:
        """np.matmul of two-dimensional views (derive.batchedproducts.flat_product), written into a
        view of the result: no temporary, where einsum would allocate its result and copy it."""
        left, right = (operands[1], operands[0]) if plan.swap else (operands[0], operands[1])
        views = tuple(View(v, matrix_view(len(v.shape), split, transposed), ())
                      for v, (split, transposed) in ((left, plan.left), (right, plan.right)))
        out = self._emit("matmul", "np.matmul", views, shape, keywords=matrix_view(len(shape), plan.rows, False))
        kind = "einsum" if natural_c_order(subscripts) else "einsum_copy"
        self.instructions[-1].einsum = (kind, "np.einsum", tuple(operands), f'"{subscripts}"', ", optimize=True")
        return out

    def drop_unread(self, outputs: list[Value]) -> None:
        """Remove the instructions whose result nothing reads and that write no output (gradient
        descent needs no error of the input), and the formulas left empty. Helper calls stay: a
        forward call may leave work arrays for a backward one."""
        live = {id(v) for v in outputs}
        keep = []
        for ins in reversed(self.instructions):
            needed = ins.kind == "call" or ins.out.pin is not None or id(ins.out) in live
            if needed:
                live.update(id(v) for v in ins.reads())
            keep.append(needed)
        keep.reverse()
        position = [0]
        for needed in keep:
            position.append(position[-1] + needed)
        kept_values = {id(ins.out) for ins, needed in zip(self.instructions, keep) if needed}
        blocks = []
        for block in self.blocks:
            block.start, block.end = position[block.start], position[block.end]
            if block.alias_of is not None:
                if block.alias_of.argument or id(block.alias_of) in kept_values:
                    blocks.append(block)
            elif block.end > block.start:
                blocks.append(block)
        self.instructions = [ins for ins, needed in zip(self.instructions, keep) if needed]
        self.blocks = blocks

    def assign_layouts(self) -> None:
        """Every computed array whose shape a batched product reads or writes gets that product's
        memory order (an element-wise pass over arrays of one layout runs in memory order too)."""
        for ins in self.instructions:
            if ins.out.pin is None and not ins.out.argument and ins.out.shape in self.layouts:
                ins.out.layout = self.layouts[ins.out.shape]
            if ins.einsum is not None and (ins.out.pin is not None or ins.out.layout is not None):
                # a reshaped view of an array that is not C-ordered would be a copy: the einsum instead
                ins.kind, ins.call, ins.args, ins.keywords, ins.text = ins.einsum
                ins.einsum = None

    def helper_call(self, op, call: str, operands, extra: str, window: str | None = None) -> Value:
        """A helper function of the generated module that writes its result into `out=` (the
        window operations of convolutions): `call(operands…, extra, out=…)`. It never writes over
        its operands. With `window`, the helper keeps its work arrays in that dict of the Workspace
        (`scratch=ws.<window>`), so that no step after the first allocates them."""
        from derive import convops

        convops.use(self.printer, call)
        args = tuple(self._array(self.lower(a)) for a in operands)
        if window is not None:
            self.windows.setdefault(window)
            extra = f"{extra}, scratch=ws.{window}"
        return self._emit("call", call, (*args, Scalar(extra)), op.shape(self.shape_of))

    def window_dict(self, operand: sp.Expr, tag: str) -> str:
        """The name of the Workspace dict for the window operations on `operand` with the geometry
        `tag`: the same name in every program of the module, and one per (operand, geometry), so a
        forward call and the backward call that reads its work arrays meet in it."""
        import hashlib

        text = self.printer._print(operand)
        base = text if text.isidentifier() else "x" + hashlib.sha256(text.encode()).hexdigest()[:8]
        return f"win_{base}_{tag}"

    def leaves(self, window: str, what: str) -> None:
        """Record that the call being lowered leaves `what` (im2col columns, arg-max positions) in
        the dict `window`, for a later call of this program to read instead of recomputing it."""
        self.window_results.add((window, what))

    def left(self, window: str, what: str) -> bool:
        """Whether an earlier call of this program left `what` in the dict `window`."""
        return (window, what) in self.window_results

    def view(self, operand: Operand, template: str, shape: Shape) -> View:
        return View(self._array(operand), template, shape)

    def shape_of(self, expr: sp.Expr) -> Shape:
        return self._shape(expr)

    def _ones(self, dim: Dim) -> Value:
        name = f"ones_{dim}"
        if name not in self.constants:
            self.constants[name] = Value((dim, 1), name=name, argument=True)
        return self.constants[name]

    def _product_of(self, left: Value | Transposed, right: Value | Transposed) -> Value:
        inner = left.shape[1]
        call = f"mm_{inner}" if isinstance(inner, str) else "np.dot"
        return self._emit("product", call, (left, right), (left.shape[0], right.shape[1]))

    def _logsumexp(self, expr: LogSumExp) -> Value:
        """The `_logsumexp` helper of the plain code, step by step: M = column max, then M + log 1ᵀ exp(X − M)."""
        x = self._array(self.lower(expr.args[0]))
        maximum = self._emit("reduce", "np.maximum.reduce", (x,), (1, x.shape[1]), keywords="axis=0, keepdims=True")
        M, X = sp.Symbol("M", real=True), sp.Symbol("X", real=True)  # the helper's own names
        self.bound = {"M": maximum, "X": x}
        try:
            return self.lower(logsumexp_shifted(X, M))
        finally:
            self.bound = {}

    def _softmax(self, expr: Softmax) -> Value:
        """The `_softmax` helper of the plain code, step by step: M = column max, E = exp(X − M), E / 1ᵀE."""
        x = self._array(self.lower(expr.args[0]))
        maximum = self._emit("reduce", "np.maximum.reduce", (x,), (1, x.shape[1]), keywords="axis=0, keepdims=True")
        M, X, E = sp.Symbol("M", real=True), sp.Symbol("X", real=True), sp.Symbol("E", real=True)
        shifted, ratio = softmax_shifted(X, M, E)
        self.bound = {"M": maximum, "X": x}
        try:
            self.bound["E"] = self._array(self.lower(shifted))
            return self.lower(ratio)
        finally:
            self.bound = {}

    def _function(self, expr: sp.Expr) -> Operand:
        if isinstance(expr, sp.Heaviside):
            at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
            if at_zero in (0, 1):  # the same 0 and 1 as np.heaviside, written by a comparison: 80× faster
                call = "np.greater" if at_zero == 0 else "np.greater_equal"  # (np.heaviside keeps a NaN; these give 0)
                return self._elementwise(call, self.lower(expr.args[0]), Scalar("0"))
            return self._elementwise("np.heaviside", self.lower(expr.args[0]), Scalar(self.printer._print(sp.Float(at_zero))))
        if isinstance(expr, (sp.Max, sp.Min)):
            call = "np.maximum" if isinstance(expr, sp.Max) else "np.minimum"
            acc = self.lower(expr.args[-1])
            for arg in reversed(expr.args[:-1]):
                acc = self._elementwise(call, self.lower(arg), acc)
            return acc
        if isinstance(expr, Softplus):
            return self._elementwise("np.logaddexp", Scalar("0.0"), self.lower(expr.args[0]))
        if isinstance(expr, Erf):  # the module's `_erf` helper takes out= like a ufunc (and may overwrite its argument)
            from derive.codegen import ERF_HELPER

            self.printer.helpers.add(ERF_HELPER)
            if not self.erf_work:
                return self._elementwise(ERF_HELPER, self.lower(expr.args[0]))
            self.windows.setdefault("erf_work")  # its work arrays, kept by the Workspace
            return self._elementwise(ERF_HELPER, self.lower(expr.args[0]), Scalar("scratch=ws.erf_work"))
        known = self.printer.known_functions.get(type(expr).__name__, "")
        name = {"abs": "absolute"}.get(known, known.removeprefix("numpy."))
        if isinstance(getattr(np, name, None), np.ufunc) and (known.startswith("numpy.") or known == "abs"):
            return self._elementwise(f"np.{name}", *(self.lower(a) for a in expr.args))
        return self._expression(expr)

    def _expression(self, expr: sp.Expr) -> Value:
        """No in-place rule: evaluate the printed expression (allocating) and copy it into place."""
        if expr.free_symbols & {sp.Symbol(n, real=True) for n in self.bound}:
            raise CannotLower(f"no in-place rule for {expr} inside a helper")
        reads = tuple(self.lower(s) for s in sorted(expr.free_symbols, key=sp.default_sort_key) if holds_arrays(s))
        return self._emit("expression", "np.copyto", reads, self._shape(expr), text=self.printer._print(expr))

    def _shape(self, expr: sp.Expr) -> Shape:
        if not self.holds_arrays(expr):
            return ()
        if isinstance(expr, sp.Symbol):
            if expr.name in self.bound:
                return self.bound[expr.name].shape
            return self.values[self.printer._print(expr)].shape
        if isinstance(expr, Op):
            return expr.shape(self._shape)
        if isinstance(expr, LogSumExp):
            return (1, self._shape(expr.args[0])[1])
        if isinstance(expr, Softmax):
            return self._shape(expr.args[0])
        return broadcast(*(self._shape(a) for a in expr.args))


# --------------------------------------------------------------------------------------------------
# allocation


@dataclass
class Pool:
    """The scratch arrays of a workspace, by shape; shared by every program of one module."""

    shapes: list[Shape] = field(default_factory=list)  # buffer t<k> has shapes[k]
    layouts: list[tuple[int, ...] | None] = field(default_factory=list)  # and memory order layouts[k]

    def names(self) -> list[str]:
        return [f"t{k}" for k in range(len(self.shapes))]


def allocate(instructions: list[Instruction], pool: Pool, live_out: list[Value]) -> None:
    """Give every value an array (see module docstring); fills `Value.buffer`."""
    last_use: dict[Value, int] = {}
    for i, ins in enumerate(instructions):
        for v in ins.reads():
            last_use[v] = i
    for v in live_out:
        last_use[v] = len(instructions)

    # a pinned result pulls the element-wise chain that computes it into its own array
    for i in range(len(instructions) - 1, -1, -1):
        ins = instructions[i]
        if ins.kind != "elementwise" or ins.out.pin is None or ins.out.updates_argument:
            continue
        for arg in ins.args:
            if (
                isinstance(arg, Value)
                and not arg.argument
                and arg.pin is None
                and arg.name is None
                and arg.shape == ins.out.shape
                and last_use.get(arg) == i
            ):
                arg.pin = ins.out.pin
                break

    free: dict[str, bool] = {name: True for name in pool.names()}
    holders: dict[str, int] = {}  # scratch array → number of live values stored in it
    for i, ins in enumerate(instructions):
        out = ins.out
        dying = [v for v in {id(v): v for v in ins.reads()}.values() if last_use.get(v) == i and v.buffer in free]
        if out.pin is not None:
            out.buffer = out.pin
        elif ins.kind == "elementwise":  # in place over an operand that dies here
            for arg in ins.args:
                if (
                    isinstance(arg, Value)
                    and arg in dying
                    and arg.shape == out.shape
                    and arg.layout == out.layout
                    and holders.get(arg.buffer) == 1
                    and not any(isinstance(a, (Transposed, View)) and a.value.buffer == arg.buffer for a in ins.args)
                ):
                    out.buffer = arg.buffer
                    break
        if out.buffer is None:
            out.buffer = _take(pool, free, out.shape, out.layout)
        if out.buffer in free:
            free[out.buffer] = False
            holders[out.buffer] = holders.get(out.buffer, 0) + 1
        for v in dying + ([out] if out not in last_use and out.buffer in free else []):
            holders[v.buffer] -= 1
            if holders[v.buffer] == 0:
                free[v.buffer] = True


def _take(pool: Pool, free: dict[str, bool], shape: Shape, layout: tuple[int, ...] | None = None) -> str:
    for k, shape_k in enumerate(pool.shapes):
        if shape_k == shape and pool.layouts[k] == layout and free.get(f"t{k}"):
            return f"t{k}"
    pool.shapes.append(shape)
    pool.layouts.append(layout)
    name = f"t{len(pool.shapes) - 1}"
    free[name] = True
    return name


# --------------------------------------------------------------------------------------------------
# printing


@dataclass
class Program:
    """A lowered, allocated program and how to print it."""

    lowering: Lowering
    outputs: list[Value]

    @property
    def instructions(self) -> list[Instruction]:
        return self.lowering.instructions

    def buffers(self) -> list[str]:
        """Scratch arrays the program uses, in order of first use."""
        seen: dict[str, None] = {}
        for ins in self.instructions:
            if ins.out.buffer.startswith("t"):
                seen.setdefault(ins.out.buffer)
        return list(seen)

    def products(self) -> list[str]:
        seen: dict[str, None] = {}
        for ins in self.instructions:
            if ins.kind == "product" and ins.call.startswith("mm_"):
                seen.setdefault(ins.call)
        return list(seen)

    def lines(self) -> list[str]:
        out = []
        for block in self.lowering.blocks:
            out.append(f"# {block.comment}")
            if block.alias_of is not None:
                out.append(f"{block.target} = {self._name(block.alias_of, block)}")
                continue
            if block.result.pin is None:
                out.append(f"{block.target} = {block.result.buffer}")
            for ins in self.instructions[block.start : block.end]:
                out.append(self._instruction(ins, block))
        return out

    def _name(self, operand: Operand, block: Block) -> str:
        if isinstance(operand, Scalar):
            return operand.text
        if isinstance(operand, Transposed):
            return self._name(operand.value, block) + ".T"
        if isinstance(operand, View):
            return operand.template.format(self._name(operand.value, block))
        v = operand
        if v.argument or v.name is not None:
            return v.name
        if v.pin is not None:
            return v.pin
        if block.result.pin is None and v.buffer == block.result.buffer:
            return block.target
        return v.buffer

    def _instruction(self, ins: Instruction, block: Block) -> str:
        out = self._name(ins.out, block)
        args = ", ".join(self._name(a, block) for a in ins.args)
        if ins.kind == "reduce":
            return f"{ins.call}({args}, {ins.keywords}, out={out})"
        if ins.kind == "einsum":  # the subscripts come first
            return f"{ins.call}({ins.keywords}, {args}{ins.text}, out={out})"
        if ins.kind == "matmul":  # views of the operands and of the result (derive.batchedproducts)
            return f"{ins.call}({args}, out={ins.keywords.format(out)})"
        if ins.kind == "einsum_copy":
            return f"np.copyto({out}, {ins.call}({ins.keywords}, {args}{ins.text}))  # einsum's own layout: allocates"
        if ins.kind == "copy":
            return f"np.copyto({out}, {args})"
        if ins.kind == "expression":
            return f"np.copyto({out}, {ins.text})  # no in-place form: allocates"
        return f"{ins.call}({args}, out={out})"
