"""Recognise index-level results as vector and matrix operations, and prove the recognition.

The engine derives every formula entry by entry (δ_q = Σ_i W_iq δ_i …). People and NumPy want the
same formula as whole-array operations (δ = Wᵀδ ⊙ …). `to_matrix_form` reads an index expression
and writes it with the operations below; `entries_agree` then evaluates both forms entry by entry at
small concrete sizes with exact rational values, so a recognition is only used once it is proved.

In a matrix-form expression a plain symbol whose name is a quantity label (see `notation`) stands
for the whole array, and SymPy's `+ * / **` and elementary functions act element-wise (so `*` is the
Hadamard product ⊙). Matrix structure is spelled with the unevaluated functions defined here.
Arrays are column-oriented as in the formulas: a per-sample vector is n × 1, a minibatch is n × m.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import sympy as sp

from derive import notation
from derive.indexing import free_indices


class MatProd(sp.Function):
    """Matrix product X Y."""

    nargs = 2


class Tr(sp.Function):
    """Transpose Xᵀ."""

    nargs = 1


class RowSums(sp.Function):
    """X 1: the column vector of row sums (sums over the second index)."""

    nargs = 1


class ColSums(sp.Function):
    """1ᵀ X: the row vector of column sums (sums over the first index)."""

    nargs = 1


class ColBroadcast(sp.Function):
    """b 1ᵀ: a column vector repeated across the columns of a matrix."""

    nargs = 1


class RowBroadcast(sp.Function):
    """1 r: a row vector repeated down the rows of a matrix."""

    nargs = 1


class Ones(sp.Function):
    """𝟏: an array of ones shaped like its argument, a quantity (a⁽ᴸ⁾ or A⁽ᴸ⁾). A formula whose
    entries are one constant (∂C/∂a = 1 of the linear loss a, δ⁽ᴸ⁾ = −1 of −a after an identity
    output) is that constant times 𝟏, an array that products and sums can take."""

    nargs = 1


MATRIX_FUNCTIONS = (MatProd, Tr, RowSums, ColSums, ColBroadcast, RowBroadcast, Ones)


class NotRecognised(ValueError):
    """The index expression has a shape this recogniser does not know."""


# --------------------------------------------------------------------------------------------------
# recognition


def _indexed(expr: sp.Basic) -> list[sp.Indexed]:
    return sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key)


def _leaf(entry: sp.Indexed, wanted: tuple[sp.Idx, ...]) -> sp.Expr:
    """An array entry read with the index tuple `wanted`: X, Xᵀ or a broadcast vector."""
    symbol = notation._vector_symbol(str(entry.base.label))
    idx = tuple(entry.indices)
    if idx == wanted:
        return symbol
    if len(idx) == 2 and idx == wanted[::-1]:
        return Tr(symbol)
    if len(idx) == 1 and len(wanted) == 2:
        if idx[0] == wanted[0]:
            return ColBroadcast(symbol)
    raise NotRecognised(f"entry {entry} read as {wanted}")


def to_matrix_form(expr: sp.Expr, free: tuple[sp.Idx, ...]) -> sp.Expr:
    """Rewrite the index expression `expr` with free indices `free` as a matrix-form expression.

    free = (q,) is a column vector, (p, q) a matrix, (q, s) a minibatch matrix, () a scalar.
    """
    expr = sp.sympify(expr)
    if free and not expr.atoms(sp.Indexed):  # the same value in every entry
        return expr * Ones(_activations_over(free))
    return _matrix_form(expr, free)


def _activations_over(free: tuple[sp.Idx, ...]) -> sp.Symbol:
    """The activations whose entries the free indices run over: a⁽ˡ⁾ for (q,), A⁽ˡ⁾ for (q, s)."""
    units = free[0].upper + 1
    batch = len(free) == 2 and free[1].upper + 1 == notation.BATCH_SIZE
    quantity = None
    if isinstance(units, sp.Symbol) and units.name.startswith("n_") and len(free) == 1 + batch:
        quantity = notation.quantity_of(("A_" if batch else "a_") + units.name[2:])
    if quantity is None:
        raise NotRecognised(f"a constant with free indices {free}")
    return quantity.symbol


def _matrix_form(expr: sp.Expr, free: tuple[sp.Idx, ...]) -> sp.Expr:
    own = free_indices(expr)
    if not own <= set(free):
        raise NotRecognised(f"{expr} has indices {own} outside {free}")
    if isinstance(expr, sp.Indexed):
        return _leaf(expr, free)
    if not expr.atoms(sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        return _contraction(expr, tuple(i for i in free if i in own))
    if own != set(free) and len(free) == 2 and own:
        # a vector quantity inside a matrix expression: broadcast it
        (only,) = own
        coefficient, rest = expr.as_coeff_Mul()
        inner = _matrix_form(rest, (only,))
        return coefficient * (ColBroadcast(inner) if only == free[0] else RowBroadcast(inner))
    if expr.is_Mul and len(free) == 2:
        outer = _outer_product(expr, free)
        if outer is not None:
            return outer
    return expr.func(*[_matrix_form(arg, free) for arg in expr.args])


def _outer_product(expr: sp.Mul, free: tuple[sp.Idx, ...]):
    """u_p v_q as u vᵀ, when the factors split into ones indexed by p only and by q only."""
    p, q = free
    left = [f for f in expr.args if free_indices(f) == {p}]
    right = [f for f in expr.args if free_indices(f) == {q}]
    scalar = [f for f in expr.args if not free_indices(f)]
    if left and right and len(left) + len(right) + len(scalar) == len(expr.args):
        u = _matrix_form(sp.Mul(*left), (p,))
        v = _matrix_form(sp.Mul(*right), (q,))
        return sp.Mul(*scalar) * MatProd(u, Tr(v))
    return None


def _contraction(expr: sp.Sum, free: tuple[sp.Idx, ...]) -> sp.Expr:
    """Σ_k of a product: a matrix product, or a reduction of an element-wise expression."""
    if len(expr.limits) != 1:
        raise NotRecognised(f"multiple sums in {expr}")
    k = expr.limits[0][0]
    summand = expr.function
    factors = sp.Mul.make_args(summand)
    constant = sp.Mul(*[f for f in factors if not f.has(k)])
    varying = [f for f in factors if f.has(k)]
    if constant != 1:
        return _matrix_form(constant, free) * _contraction(sp.Sum(sp.Mul(*varying), expr.limits[0]), free)
    entries = [f for f in varying if isinstance(f, sp.Indexed)]
    if len(varying) == 2 and len(entries) == 2:
        product = _matrix_product(entries[0], entries[1], k, free)
        if product is not None:
            return product
    # an element-wise expression of entries that all carry k, reduced along k
    patterns = {tuple(e.indices) for e in _indexed(summand)}
    if len(patterns) == 1:
        (pattern,) = patterns
        if len(pattern) == 1 and pattern[0] == k and free == ():
            return ColSums(_matrix_form(summand, (k,)))
        if len(pattern) == 2 and pattern[0] == k and free == (pattern[1],):
            return ColSums(_matrix_form(summand, pattern))
        if len(pattern) == 2 and pattern[1] == k and free == (pattern[0],):
            return RowSums(_matrix_form(summand, pattern))
    raise NotRecognised(f"contraction {expr} with free indices {free}")


def _oriented(entry: sp.Indexed, first: sp.Idx | None, second: sp.Idx | None) -> sp.Expr | None:
    """The array of `entry` transposed if needed so that its indices read (first, second)."""
    idx = tuple(entry.indices)
    symbol = notation._vector_symbol(str(entry.base.label))
    if len(idx) == 1:
        if first is None and second is not None and idx == (second,):
            return Tr(symbol)  # a column vector read as a row
        if second is None and first is not None and idx == (first,):
            return symbol
        return None
    if idx == (first, second):
        return symbol
    if idx == (second, first):
        return Tr(symbol)
    return None


def _matrix_product(x: sp.Indexed, y: sp.Indexed, k: sp.Idx, free: tuple[sp.Idx, ...]) -> sp.Expr | None:
    row, col = (free + (None, None))[:2]
    for left, right in ((x, y), (y, x)):
        lhs = _oriented(left, row, k)
        rhs = _oriented(right, k, col)
        if lhs is not None and rhs is not None:
            return MatProd(lhs, rhs)
    return None


# --------------------------------------------------------------------------------------------------
# proof by evaluation


def evaluate_matrix_form(expr: sp.Expr, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate a matrix-form expression on object arrays of exact SymPy numbers."""
    if isinstance(expr, sp.Symbol) and str(expr) in arrays:
        return arrays[str(expr)]
    if isinstance(expr, Ones):  # broadcast by NumPy where the array itself does not occur
        shape = arrays[str(expr.args[0])].shape if str(expr.args[0]) in arrays else (1, 1)
        return np.full(shape, sp.S.One, dtype=object)
    if isinstance(expr, MatProd):
        return np.dot(evaluate_matrix_form(expr.args[0], arrays), evaluate_matrix_form(expr.args[1], arrays))
    if isinstance(expr, Tr):
        return evaluate_matrix_form(expr.args[0], arrays).T
    if isinstance(expr, RowSums):
        return evaluate_matrix_form(expr.args[0], arrays).sum(axis=1, keepdims=True)
    if isinstance(expr, ColSums):
        return evaluate_matrix_form(expr.args[0], arrays).sum(axis=0, keepdims=True)
    if isinstance(expr, (ColBroadcast, RowBroadcast)):
        return evaluate_matrix_form(expr.args[0], arrays)  # NumPy broadcasting does the repeat
    if expr.is_Number or not (expr.has(Ones) or expr.free_symbols & {sp.Symbol(k, real=True) for k in arrays}):
        return np.array([[expr]], dtype=object)
    if isinstance(expr, sp.Piecewise):  # entry by entry, the first branch whose condition holds
        pairs = [(evaluate_matrix_form(e, arrays), evaluate_matrix_form(c, arrays)) for e, c in expr.args]
        shape = np.broadcast_shapes(*[a.shape for pair in pairs for a in pair])
        out = np.empty(shape, dtype=object)
        for pos in np.ndindex(shape):
            for value, condition in pairs:
                if bool(_at(condition, pos)):
                    out[pos] = _at(value, pos)
                    break
        return out
    values = [evaluate_matrix_form(arg, arrays) for arg in expr.args]
    if expr.is_Add:
        out = values[0]
        for v in values[1:]:
            out = out + v
        return out
    if expr.is_Mul:
        out = values[0]
        for v in values[1:]:
            out = out * v
        return out
    if expr.is_Pow:
        return _elementwise(lambda b, e: b**e, *values)
    return _elementwise(lambda *xs: expr.func(*xs), *values)


def _at(array: np.ndarray, pos: tuple) -> sp.Basic:
    """The entry at `pos` of an array that may be broadcast along some axes."""
    return array[tuple(p if array.shape[d] > 1 else 0 for d, p in enumerate(pos))]


def _elementwise(fn, *arrays: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(shape):
        out[pos] = fn(*[a[tuple(p if a.shape[d] > 1 else 0 for d, p in enumerate(pos))] for a in arrays])
    return out


def evaluate_index_form(expr: sp.Basic, values: Mapping, env: Mapping) -> sp.Expr:
    """Evaluate an index expression for concrete indices (`env`: Idx or size symbol → int).

    `values` maps (label, index tuple) to a number. Sums are expanded by iteration; everything else
    is combined with SymPy's exact number arithmetic. Much faster than `doit()` + `xreplace`.
    """
    if expr.is_Number:
        return expr
    if isinstance(expr, (sp.Idx, sp.Symbol)):
        if expr not in env:
            return expr
        value = env[expr]
        return value if isinstance(value, sp.Basic) else sp.Integer(value)
    if isinstance(expr, sp.Indexed):
        key = tuple(int(evaluate_index_form(i, values, env)) for i in expr.indices)
        return values[(str(expr.base.label), key)]
    if isinstance(expr, sp.Sum):
        (i, lo, hi), *rest = expr.limits
        inner = sp.Sum(expr.function, *rest) if rest else expr.function
        total = sp.S.Zero
        for v in range(int(evaluate_index_form(lo, values, env)), int(evaluate_index_form(hi, values, env)) + 1):
            total += evaluate_index_form(inner, values, {**env, i: v})
        return total
    args = [evaluate_index_form(a, values, env) for a in expr.args]
    if expr.is_Add:
        return sp.Add(*args)
    if expr.is_Mul:
        return sp.Mul(*args)
    return expr.func(*args)


def entries_agree(
    index_expr: sp.Expr,
    matrix_expr: sp.Expr,
    free: tuple[sp.Idx, ...],
    *,
    seed: int = 0,
    size: int = 2,
    batch: int = 2,
) -> bool:
    """Prove `matrix_expr` equals `index_expr` entry by entry at concrete sizes, exactly.

    Every quantity gets random rational entries; sizes n_* become `size` and m becomes `batch`.
    Both forms are evaluated and compared with exact arithmetic (`expand` of the difference; the
    functions involved act on the same rational arguments on both sides, so equal results cancel).
    """
    rng = random.Random(seed)
    size_symbols = {s for s in _all_bound_symbols(index_expr) | _all_bound_symbols(sp.Tuple(*free)) if _is_size(s)}
    size_symbols |= {s for s in index_expr.free_symbols if isinstance(s, sp.Symbol) and _is_size(s)}
    concrete = {s: (batch if s == notation.BATCH_SIZE else size) for s in size_symbols}
    arrays: dict[str, np.ndarray] = {}
    values: dict[tuple[str, tuple[int, ...]], sp.Rational] = {}
    for entry in sorted(index_expr.atoms(sp.Indexed), key=sp.default_sort_key):
        label = str(entry.base.label)
        if label in arrays:
            continue
        dims = [int((i.upper + 1).xreplace(concrete)) for i in entry.indices]
        shape = tuple(dims) if len(dims) == 2 else (dims[0], 1)
        arr = np.empty(shape, dtype=object)
        for pos in np.ndindex(shape):
            arr[pos] = sp.Rational(rng.randint(1, 9), rng.randint(2, 9))
            values[(label, pos if len(dims) == 2 else pos[:1])] = arr[pos]
        arrays[label] = arr
    result = evaluate_matrix_form(matrix_expr.xreplace(concrete), arrays)
    dims = [int((i.upper + 1).xreplace(concrete)) for i in free]
    for pos in np.ndindex(*dims) if dims else [()]:
        entry = evaluate_index_form(index_expr, values, {**concrete, **dict(zip(free, pos))})
        got = _at(result, pos if len(pos) == 2 else (pos[0], 0) if pos else (0, 0))  # a constant broadcasts
        if entry != got and not _difference_vanishes(entry - got):
            return False
    return True


def _difference_vanishes(difference: sp.Expr) -> bool:
    """Exactly zero: the expanded difference, or, where the two sides put the same transcendental
    constants (atan(5), log(2)) over differently written denominators, which `expand` leaves apart,
    the expanded numerator over a common denominator."""
    if sp.expand(difference) == 0:
        return True
    numerator, _ = sp.fraction(sp.together(difference))
    return sp.expand(numerator) == 0


def _all_bound_symbols(expr: sp.Basic) -> set[sp.Symbol]:
    out: set[sp.Symbol] = set()
    for i in expr.atoms(sp.Idx):
        out |= i.upper.free_symbols
    return out


def _is_size(s: sp.Symbol) -> bool:
    return s == notation.BATCH_SIZE or s.name.startswith("n_")
