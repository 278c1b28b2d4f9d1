"""Whole-array operations of the matrix forms, one class each.

The engine derives every formula entry by entry; `matrixform` recognises the results as operations
on whole arrays. Each operation is one class here that carries everything the rest of the tool
needs of it, so that a new operation is one class:

* `evaluate(value)`: its value on object arrays of exact numbers (the entry-by-entry proof);
* `_derive_latex(printer)`: its LaTeX (the documents' printer dispatches to it);
* `_numpycode(printer)`: its NumPy code (the generated model.py);
* `lower(lowering)`: its in-place evaluation into preallocated arrays (the workspace form);
* `shape(shape_of)`: its shape from its arguments' shapes.

In a matrix-form expression a plain symbol whose name is a quantity label stands for the whole
array and SymPy's `+ * / **` and elementary functions act entry-wise (`*` is the Hadamard product);
matrix structure is spelled with these classes. Arrays are column-oriented as in the formulas: a
per-sample vector is n × 1, a minibatch is n × m.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import sympy as sp
from sympy.core.symbol import Str

ONES = r"\mathbf{1}"


class Op(sp.Function):
    """A matrix-form operation (see the module docstring for what each subclass provides)."""

    def evaluate(self, value: Callable[[sp.Basic], np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def lower(self, lowering):
        raise NotImplementedError

    def shape(self, shape_of: Callable[[sp.Basic], tuple]) -> tuple:
        raise NotImplementedError

    @property
    def operands(self) -> tuple[sp.Basic, ...]:
        """The array arguments (an einsum's subscripts are not one)."""
        return self.args


def _latex_operand(printer, arg: sp.Basic) -> str:
    tex = printer._print(arg)
    if isinstance(arg, (sp.Symbol, MatProd, Tr, RowSums, ColSums, Einsum, sp.exp)):
        return tex
    return rf"\left({tex}\right)"


def _code_operand(printer, arg: sp.Basic) -> str:
    text = printer._print(arg)
    return text if isinstance(arg, (sp.Symbol, Tr)) else f"({text})"


class MatProd(Op):
    """Matrix product X Y."""

    nargs = 2

    def evaluate(self, value):  # matmul: arrays may carry leading axes (copies of a network)
        return np.matmul(value(self.args[0]), value(self.args[1]))

    def _derive_latex(self, printer, **_):
        return " ".join(_latex_operand(printer, arg) for arg in self.args)

    def _numpycode(self, printer, **_):
        return f"({_code_operand(printer, self.args[0])} @ {_code_operand(printer, self.args[1])})"

    def lower(self, lowering):
        left, right = (lowering.lower(arg) for arg in self.args)
        return lowering.product(lowering.matrix(left), lowering.matrix(right))

    def shape(self, shape_of):
        return (shape_of(self.args[0])[0], shape_of(self.args[1])[1])


class Tr(Op):
    """Transpose Xᵀ."""

    nargs = 1

    def evaluate(self, value):
        return np.swapaxes(value(self.args[0]), -1, -2)

    def _derive_latex(self, printer, **_):
        inner = printer._print(self.args[0])
        if "^" in inner or not isinstance(self.args[0], sp.Symbol):
            inner = rf"\left({inner}\right)"
        return rf"{inner}^{{\top}}"

    def _numpycode(self, printer, **_):
        return f"{_code_operand(printer, self.args[0])}.T"

    def lower(self, lowering):
        return lowering.transposed(lowering.array(lowering.lower(self.args[0])))

    def shape(self, shape_of):
        return shape_of(self.args[0])[::-1]


class _AxisSum(Op):
    nargs = 1
    axis = 0

    def evaluate(self, value):
        return value(self.args[0]).sum(axis=self.axis - 2, keepdims=True)  # the last two axes

    def _numpycode(self, printer, **_):
        return f"{_code_operand(printer, self.args[0])}.sum(axis={self.axis}, keepdims=True)"

    def lower(self, lowering):
        return lowering.axis_sum(lowering.lower(self.args[0]), self.axis)

    def shape(self, shape_of):
        rows, columns = shape_of(self.args[0])
        return (rows, 1) if self.axis == 1 else (1, columns)


class RowSums(_AxisSum):
    """X 1: the column vector of row sums (sums over the second index)."""

    axis = 1

    def _derive_latex(self, printer, **_):
        return rf"{_latex_operand(printer, self.args[0])} {ONES}"


class ColSums(_AxisSum):
    """1ᵀ X: the row vector of column sums (sums over the first index)."""

    axis = 0

    def _derive_latex(self, printer, **_):
        return rf"{ONES}^{{\top}} {_latex_operand(printer, self.args[0])}"


class _Broadcast(Op):
    nargs = 1

    def evaluate(self, value):
        return value(self.args[0])  # NumPy broadcasting does the repeat

    def _numpycode(self, printer, **_):
        # NumPy broadcasting repeats an (n, 1) or (1, m) array; one operand, so that −exp(A)⊙(1 (S + T))
        # does not print as −exp(A)*S + T
        text = printer._print(self.args[0])
        return text if isinstance(self.args[0], (sp.Symbol, sp.Function)) else f"({text})"

    def lower(self, lowering):
        return lowering.lower(self.args[0])

    def shape(self, shape_of):
        return shape_of(self.args[0])


class ColBroadcast(_Broadcast):
    """b 1ᵀ: a column vector repeated across the columns of a matrix."""

    def _derive_latex(self, printer, **_):
        return rf"{_latex_operand(printer, self.args[0])} {ONES}^{{\top}}"


class RowBroadcast(_Broadcast):
    """1 r: a row vector repeated down the rows of a matrix."""

    def _derive_latex(self, printer, **_):
        return rf"{ONES} {_latex_operand(printer, self.args[0])}"


class Ones(Op):
    """𝟏: an array of ones shaped like its argument, a quantity (a⁽ᴸ⁾ or A⁽ᴸ⁾). A formula whose
    entries are one constant (∂C/∂a = 1 of the linear loss a, δ⁽ᴸ⁾ = −1 of −a after an identity
    output) is that constant times 𝟏, an array that products and sums can take."""

    nargs = 1

    def evaluate(self, value):
        array = value(self.args[0])  # (1, 1) where the quantity itself does not occur: broadcast
        if array.dtype != object:
            return np.ones_like(array)
        return np.full(array.shape, sp.S.One, dtype=object)

    def _derive_latex(self, printer, **_):  # a vector of ones, or the matrix of ones 𝟏𝟏ᵀ
        from derive import notation

        quantity = notation.quantity_of(self.args[0].name)
        return ONES if quantity.rank == 1 else rf"{ONES} {ONES}^{{\top}}"

    def _numpycode(self, printer, **_):
        return f"np.ones_like({printer._print(self.args[0])})"

    def lower(self, lowering):  # np.ones_like(A) of the plain code: the array filled with 1.0
        return lowering.filled("1.0", lowering.lower(self.args[0]).shape)

    def shape(self, shape_of):
        return shape_of(self.args[0])


@cache
def natural_c_order(subscripts: str) -> bool:
    """Whether NumPy's einsum, left to choose, returns this contraction in C order. Its order of
    summation follows the layout of its output, so writing into a C-ordered buffer with `out=` gives
    exactly the numbers of the plain code only then (an attention score error, "ijkl,ijml->ijkl",
    is returned in another order, and differs in the last bit); tried on small arrays. The plain
    code makes such a result C-ordered at once (`np.ascontiguousarray`), so that the arrays both
    forms read have the same layout."""
    inputs, output = subscripts.split("->")
    sizes = {letter: size for letter, size in zip(sorted(set(subscripts) - set(",->")), (2, 3, 5, 7, 11, 13, 17, 19,
                                                                                       23, 29, 31, 37, 41, 43))}
    operands = [np.zeros(tuple(sizes.get(c, 2) for c in spec)) for spec in inputs.split(",")]
    result = np.einsum(subscripts, *operands, optimize=len(operands) > 1)  # as printed (`Einsum.optimize`)
    return bool(np.asarray(result).flags.c_contiguous)


class Einsum(Op):
    """Σ over the repeated indices of a product of arrays, in NumPy's einsum notation: the fallback
    for a contraction no other operation expresses (Einsum(Str("ijk,jz,kz->i"), T, u, v)). A
    per-sample vector is an n × 1 array whose unit column is the letter `UNIT` (summed away unless
    the result is itself a column)."""

    UNIT = "z"

    @property
    def subscripts(self) -> str:
        return str(self.args[0])

    @property
    def operands(self) -> tuple[sp.Basic, ...]:
        return self.args[1:]

    def evaluate(self, value):  # "..." carries any leading axes (copies of a network)
        inputs, output = self.subscripts.split("->")
        spec = ",".join("..." + part for part in inputs.split(",")) + "->..." + output
        return np.einsum(spec, *[value(a) for a in self.operands])

    def _derive_latex(self, printer, **_):
        inputs, output = self.subscripts.replace(self.UNIT, "").split("->")
        arrays = ", ".join(printer._print(a) for a in self.operands)
        return rf"\operatorname{{einsum}}_{{{inputs.replace(',', ', ')} \to {output}}}\left({arrays}\right)"

    def _numpycode(self, printer, **_):
        text = f'np.einsum("{self.subscripts}", {", ".join(printer._print(a) for a in self.operands)}{self.optimize})'
        return text if natural_c_order(self.subscripts) else f"np.ascontiguousarray({text})"

    @property
    def optimize(self) -> str:
        """A contraction of several arrays goes through BLAS (NumPy's `optimize=True`: pairwise
        tensordot) rather than einsum's own loops, which are many times slower on a whole minibatch
        (attention's projections and head products); a one-array einsum is a reduction, left as is."""
        return ", optimize=True" if len(self.operands) > 1 else ""

    def lower(self, lowering):
        operands = [lowering.array(lowering.lower(a)) for a in self.operands]
        return lowering.einsum(self.subscripts, operands, self.shape(lowering.shape_of))

    def shape(self, shape_of):
        inputs, output = self.subscripts.split("->")
        sizes = {}
        for spec, operand in zip(inputs.split(","), self.operands):
            sizes.update(zip(spec, shape_of(operand)))
        return tuple(sizes[letter] for letter in output)


class Place(Op):
    """An array with its axes at given places of a larger one, size 1 elsewhere, so that NumPy
    broadcasting repeats it there: a per-channel bias (F × 1) added to an output with axes (f, i, j, s)
    is placed at axis 0 of 4. The pattern lists, for each axis of the result, the axis of the
    argument it takes ("0", "1", …) or "_" for a new axis of size 1; an argument that is a column
    (n × 1, a vector) uses only its first axis."""

    @property
    def pattern(self) -> list[str]:
        return str(self.args[1]).split(",")

    @property
    def operands(self) -> tuple[sp.Basic, ...]:
        return self.args[:1]

    def _column(self) -> bool:
        from derive import notation

        arg = self.args[0]
        return isinstance(arg, sp.Symbol) and notation.quantity_of(arg.name) is not None and \
            notation.quantity_of(arg.name).rank == 1

    def _new_axes(self) -> tuple[int, ...]:
        return tuple(n for n, p in enumerate(self.pattern) if p == "_")

    def evaluate(self, value):
        x = value(self.args[0])
        if self._column():
            x = x[..., 0]
        return np.expand_dims(x, tuple(n - len(self.pattern) for n in self._new_axes()))

    def _derive_latex(self, printer, **_):
        return printer._print(self.args[0])  # the formulas state the broadcast in words (the bias of every entry)

    def _numpycode(self, printer, **_):
        text = printer._print(self.args[0])
        if self._column():  # a column: its entries along the one axis that is not new
            return f"{text}.reshape({', '.join('-1' if p != '_' else '1' for p in self.pattern)})"
        return f"np.expand_dims({_code_operand(printer, self.args[0])}, {self._new_axes()})"

    def lower(self, lowering):
        return lowering.view(lowering.lower(self.args[0]), self._numpycode_template(), self.shape(lowering.shape_of))

    def _numpycode_template(self) -> str:
        if self._column():
            return "{}.reshape(" + ", ".join("-1" if p != "_" else "1" for p in self.pattern) + ")"
        return "np.expand_dims({}, " + str(self._new_axes()) + ")"

    def shape(self, shape_of):
        inner = shape_of(self.args[0])
        return tuple(1 if p == "_" else inner[int(p)] for p in self.pattern)


def place(expr: sp.Basic, pattern: list[str]) -> Place:
    return Place(expr, Str(",".join(pattern)))


MATRIX_FUNCTIONS = (MatProd, Tr, RowSums, ColSums, ColBroadcast, RowBroadcast, Ones, Einsum, Place)


def einsum(subscripts: str, *operands: sp.Basic) -> Einsum:
    return Einsum(Str(subscripts), *operands)
