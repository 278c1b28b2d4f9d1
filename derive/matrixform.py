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
from fractions import Fraction

import numpy as np
import sympy as sp

from derive import notation
from derive.indexing import Iverson, free_indices


from derive.ops import (  # noqa: E402 - the operations recognised here
    ColBroadcast,
    ColSums,
    Einsum,
    MatProd,
    Ones,
    Op,
    RowBroadcast,
    RowSums,
    Tr,
    einsum,
    place,
)


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


def to_matrix_form(expr: sp.Expr, free: tuple[sp.Idx, ...], row: bool = False) -> sp.Expr:
    """Rewrite the index expression `expr` with free indices `free` as a matrix-form expression:
    with the readable operations where they fit, else with einsum (see `einsum_form`).

    free = (q,) is a column vector, (p, q) a matrix, (q, s) a minibatch matrix, () a scalar. A formula
    that is one number in every entry is that number times 𝟏, an array shaped like the activations.
    """
    expr = sp.sympify(expr)
    if free and not expr.atoms(sp.Indexed):  # the same value in every entry
        return expr * Ones(_activations_over(free))
    from derive.windowsizes import window_forms_possible

    if expr.is_Mul and len(free) in (3, 4):  # attention's key softmax (imported only where it could be one)
        from derive import attnops

        found = attnops.recognise(expr, free)
        if found is not None:
            return found
    if window_forms_possible():
        from derive import convforms  # convolution, flatten and their backward forms

        found = convforms.recognise(expr, free, to_matrix_form)
        if found is not None:
            return found
        unflattened = convforms.unflatten_form(expr, free, to_matrix_form)
        if unflattened is not None:
            return unflattened
    return _any_form(expr, free, row)


def _any_form(expr: sp.Expr, free: tuple[sp.Idx, ...], row: bool = False) -> sp.Expr:
    try:
        return readable_form(expr, free, row)
    except NotRecognised:
        return einsum_form(expr, free)


def readable_form(expr: sp.Expr, free: tuple[sp.Idx, ...], row: bool = False) -> sp.Expr:
    """`to_matrix_form` with the readable operations only (raises NotRecognised otherwise)."""
    expr = sp.sympify(expr)
    if len(free) > 2:
        same = _entrywise(expr, tuple(free))
        if same is None and expr.is_Add:  # term by term (γ ⊙ x̂ + β over a sequence's entries)
            return sp.Add(*[_any_form(arg, free, row) for arg in expr.args])
        if same is None:
            raise NotRecognised(f"{len(free)} free indices: no matrix operation has that many")
        return same
    own = free_indices(expr)
    if not own <= set(free):
        raise NotRecognised(f"{expr} has indices {own} outside {free}")
    if isinstance(expr, sp.Indexed):
        return _leaf(expr, free)
    if not expr.atoms(sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        reduced = tuple(i for i in free if i in own)
        return _contraction(expr, reduced, row or (len(free) == 2 and reduced == free[1:]))
    if own != set(free) and len(free) == 2 and own:
        # a vector quantity inside a matrix expression: broadcast it
        (only,) = own
        coefficient, rest = expr.as_coeff_Mul()
        inner = readable_form(rest, (only,), row=only != free[0])
        return coefficient * (ColBroadcast(inner) if only == free[0] else RowBroadcast(inner))
    if expr.is_Mul and len(free) == 2:
        outer = _outer_product(expr, free)
        if outer is not None:
            return outer
    # terms of a sum may each fall back to einsum; the factors of a product may not (einsum takes
    # the whole product, so that its indices stay linked)
    return expr.func(*[(_any_form if expr.is_Add else readable_form)(arg, free, row) for arg in expr.args])


_LETTERS = "ijklmnpqrstuvwxyabcdefgh"  # einsum letters for indices ('z' is the unit column; no o, which no table defines)


def einsum_form(expr: sp.Expr, free: tuple[sp.Idx, ...]) -> sp.Expr:
    """The fallback recognition: each term of the index expression, written as one sum over
    indices of a product of factors (sums inside products are distributed and pulled out), becomes
    one einsum. A factor that is an entry becomes its array; any other factor (g′(z_q)) becomes the
    matrix form of that factor over its own indices. Raises NotRecognised when a factor has no
    matrix form or an index is not a plain index (s·i + k)."""
    if not free:
        raise NotRecognised(f"{expr} is a scalar")
    return sp.Add(*[_einsum_term(bound, factors, free) for bound, factors in _product_terms(sp.sympify(expr))])


def _product_terms(expr: sp.Basic) -> list[tuple[list[sp.Idx], list[sp.Basic]]]:
    """expr as a sum of terms Σ_bound Π factors (distributing products over sums of indexed terms)."""
    if isinstance(expr, sp.Sum):
        bound = []
        for i, lower, upper in expr.limits:
            if not isinstance(i, sp.Idx) or (lower, upper) != (i.lower, i.upper):
                raise NotRecognised(f"{expr} does not sum over a whole index range")
            bound.append(i)
        return [(bound + inner, factors) for inner, factors in _product_terms(expr.function)]
    if expr.is_Add and expr.has(sp.Sum):
        return [term for arg in expr.args for term in _product_terms(arg)]
    if expr.is_Mul:
        terms = [([], [])]
        for factor in expr.args:
            expanded = _product_terms(factor) if factor.has(sp.Sum) else [([], [factor])]
            terms = [_joined(left, right) for left in terms for right in expanded]
        return terms
    return [([], [expr])]


def _joined(left, right):
    """Two terms multiplied: a summation index the right one shares with the left gets a fresh name."""
    (bound_l, factors_l), (bound_r, factors_r) = left, right
    taken = set(bound_l) | {i for f in factors_l for i in f.atoms(sp.Idx)}
    renames = {}
    for i in bound_r:
        if i in taken:
            renames[i] = sp.Idx(sp.Dummy(str(i.label)), (i.lower, i.upper))
    bound_r = [renames.get(i, i) for i in bound_r]
    factors_r = [f.xreplace(renames) for f in factors_r]
    return bound_l + bound_r, factors_l + factors_r


def _einsum_term(bound: list[sp.Idx], factors: list[sp.Basic], free: tuple[sp.Idx, ...]) -> sp.Expr:
    letters = dict(zip([*free, *bound], _LETTERS))
    if len(letters) < len(free) + len(bound):
        raise NotRecognised("more indices than einsum letters")
    coefficient, operands, specs, present = sp.S.One, [], [], set()
    for factor in factors:
        indices = [i for i in _first_appearance(factor) if i in letters]
        if not indices:
            coefficient *= factor
            continue
        present.update(indices)
        if isinstance(factor, sp.Indexed):
            if not all(isinstance(i, sp.Idx) and i in letters for i in factor.indices):
                raise NotRecognised(f"{factor} has an index that is not a plain index")
            operands.append(notation._vector_symbol(str(factor.base.label)))
            indices = list(factor.indices)
        else:
            operands.append(readable_form(factor, tuple(indices)))
        specs.append("".join(letters[i] for i in indices) + (Einsum.UNIT if len(indices) == 1 else ""))
    if not operands:
        raise NotRecognised("no array in the term")
    kept = [i for i in free if i in present]
    if len(kept) < len(free):  # a term without some of the free indices (a bias): broadcast along them
        pattern = [str(kept.index(i)) if i in present else "_" for i in free]
        if len(operands) == 1 and not bound and specs[0] == letters[kept[0]] + Einsum.UNIT and len(kept) == 1:
            return coefficient * place(operands[0], pattern)  # a column as it is: b.reshape(-1, 1, 1)
        inner = einsum(",".join(specs) + "->" + "".join(letters[i] for i in kept), *operands)
        return coefficient * place(inner, pattern)
    output = "".join(letters[i] for i in free)
    if len(free) == 1:
        if not any(spec.endswith(Einsum.UNIT) for spec in specs):  # e.g. Σ over positions and samples
            return coefficient * place(einsum(",".join(specs) + "->" + output, *operands), ["0", "_"])
        output += Einsum.UNIT
    return coefficient * einsum(",".join(specs) + "->" + output, *operands)


def _entrywise(expr: sp.Expr, indices: tuple) -> sp.Expr | None:
    """An entry-by-entry expression of arrays read at exactly `indices` (tanh(Z[f, j, s])) as the same
    expression of the whole arrays, at any rank; None if it sums or reads an entry otherwise."""
    if expr.has(sp.Sum) or any(tuple(e.indices) != indices for e in expr.atoms(sp.Indexed)):
        return None
    return expr.replace(lambda e: isinstance(e, sp.Indexed), lambda e: notation._vector_symbol(str(e.base.label)))


def _first_appearance(expr: sp.Basic) -> list[sp.Idx]:
    seen = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Idx) and node not in seen:
            seen.append(node)
    return seen


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


def _outer_product(expr: sp.Mul, free: tuple[sp.Idx, ...]):
    """u_p v_q as u vᵀ, when the factors split into ones indexed by p only and by q only."""
    p, q = free
    left = [f for f in expr.args if free_indices(f) == {p}]
    right = [f for f in expr.args if free_indices(f) == {q}]
    scalar = [f for f in expr.args if not free_indices(f)]
    if left and right and len(left) + len(right) + len(scalar) == len(expr.args):
        u = to_matrix_form(sp.Mul(*left), (p,))
        v = to_matrix_form(sp.Mul(*right), (q,))
        return sp.Mul(*scalar) * MatProd(u, Tr(v))
    return None


def _contraction(expr: sp.Sum, free: tuple[sp.Idx, ...], row: bool = False) -> sp.Expr:
    """Σ_k of a product: a matrix product, or a reduction of an element-wise expression."""
    if len(expr.limits) != 1:
        raise NotRecognised(f"multiple sums in {expr}")
    k = expr.limits[0][0]
    summand = expr.function
    factors = sp.Mul.make_args(summand)
    constant = sp.Mul(*[f for f in factors if not f.has(k)])
    varying = [f for f in factors if f.has(k)]
    if constant != 1:
        return to_matrix_form(constant, free) * _contraction(sp.Sum(sp.Mul(*varying), expr.limits[0]), free, row)
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
            return ColSums(to_matrix_form(summand, (k,)))
        if len(pattern) == 2 and pattern[0] == k and free == (pattern[1],):
            total = ColSums(to_matrix_form(summand, pattern))  # a row: 1ᵀ X
            return total if row else Tr(total)  # … or the column a result with this one index is
        if len(pattern) == 2 and pattern[1] == k and free == (pattern[0],):
            return RowSums(to_matrix_form(summand, pattern))
    if any(len(e.indices) > 2 for e in _indexed(summand)):  # a statistic of a sequence's token (Σₖ u²ₖⱼₛ)
        return einsum_form(expr, free)
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
    if isinstance(expr, Op):
        return expr.evaluate(lambda arg: evaluate_matrix_form(arg, arrays))
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
    if expr.func in (sp.Max, sp.Min):
        return _elementwise(_rational_extreme(expr.func), *values)
    if isinstance(expr, sp.Heaviside):
        return _elementwise(_rational_step, *values)
    return _elementwise(lambda *xs: expr.func(*xs), *values)


def _exact(x: sp.Rational) -> Fraction:
    return Fraction(int(x.p), int(x.q))


def _rational_extreme(func):
    """Max or Min entry by entry: of rationals the largest or smallest, by exact comparison (the
    value SymPy's gives, without its argument filtering per entry); of anything else SymPy's."""
    pick = max if func is sp.Max else min

    def extreme(*xs):
        if all(isinstance(x, sp.Rational) for x in xs):
            return pick(xs, key=_exact)
        return func(*xs)

    return extreme


def _rational_step(*xs):
    """Heaviside(x, h₀) entry by entry: of a rational x, 1 above 0, 0 below, h₀ at 0; else SymPy's."""
    x = xs[0]
    if isinstance(x, sp.Rational) and (x != 0 or len(xs) > 1 and isinstance(xs[1], sp.Rational)):
        return sp.S.One if x > 0 else sp.S.Zero if x < 0 else xs[1]
    return sp.Heaviside(*xs)


def _at(array: np.ndarray, pos: tuple) -> sp.Basic:
    """The entry at `pos` of an array that may be broadcast along some axes (or have fewer of them)."""
    array = array.reshape((1,) * (len(pos) - array.ndim) + array.shape) if array.ndim < len(pos) else array
    return array[tuple(p if array.shape[d] > 1 else 0 for d, p in enumerate(pos))]


def _elementwise(fn, *arrays: np.ndarray) -> np.ndarray:
    arrays = np.broadcast_arrays(*arrays)  # NumPy's rules, whatever the ranks
    out = np.empty(arrays[0].shape, dtype=object)
    for pos in np.ndindex(out.shape):
        out[pos] = fn(*[a[pos] for a in arrays])
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
        key = tuple(int(_number(i, values, env)) for i in expr.indices)
        return values[(str(expr.base.label), key)]
    if isinstance(expr, sp.Sum):
        (i, lo, hi), *rest = expr.limits
        inner = sp.Sum(expr.function, *rest) if rest else expr.function
        total = sp.S.Zero
        for v in range(int(evaluate_index_form(lo, values, env)), int(evaluate_index_form(hi, values, env)) + 1):
            total += evaluate_index_form(inner, values, {**env, i: v})
        return total
    if isinstance(expr, (Iverson, sp.And, sp.Or, sp.Not, sp.core.relational.Relational)):
        return _truth(expr, values, env)
    if expr.is_Mul:  # a guard that is 0 here: the other factors may name entries that do not exist
        guards = [a for a in expr.args if isinstance(a, Iverson)]
        if any(evaluate_index_form(g, values, env) == 0 for g in guards):
            return sp.S.Zero
    args = [evaluate_index_form(a, values, env) for a in expr.args]
    if expr.is_Add:
        return sp.Add(*args)
    if expr.is_Mul:
        return sp.Mul(*args)
    return expr.func(*args)


_COMPARE = {sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
            sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
            sp.Equality: lambda a, b: a == b, sp.Unequality: lambda a, b: a != b}


def _truth(expr: sp.Basic, values: Mapping, env: Mapping) -> sp.Basic:
    """A guard on index values (an Iverson bracket, a comparison, a conjunction) with Python's
    exact rational arithmetic: SymPy's relational machinery is a hundred times slower here."""
    if isinstance(expr, Iverson):
        return sp.S.One if _truth(expr.args[0], values, env) is sp.true else sp.S.Zero
    if isinstance(expr, sp.And):
        return sp.true if all(_truth(a, values, env) is sp.true for a in expr.args) else sp.false
    if isinstance(expr, sp.Or):
        return sp.true if any(_truth(a, values, env) is sp.true for a in expr.args) else sp.false
    if isinstance(expr, sp.Not):
        return sp.false if _truth(expr.args[0], values, env) is sp.true else sp.true
    lhs, rhs = (_number(side, values, env) for side in expr.args)
    if isinstance(lhs, (int, Fraction)) and isinstance(rhs, (int, Fraction)):
        return sp.true if _COMPARE[type(expr)](lhs, rhs) else sp.false
    return expr.func(lhs, rhs)


def _number(expr: sp.Basic, values: Mapping, env: Mapping):
    """An index expression (s·i + p − 1, u/2, Mod(u, 2)) as a Python int or Fraction when its symbols
    have values; otherwise SymPy's value."""
    if isinstance(expr, sp.Integer):
        return int(expr)
    if isinstance(expr, (sp.Idx, sp.Symbol)) and expr in env:
        value = env[expr]
        return int(value) if not isinstance(value, sp.Basic) or value.is_Integer else evaluate_index_form(expr, values, env)
    if isinstance(expr, sp.Rational):
        return Fraction(int(expr.p), int(expr.q))
    if expr.is_Add or expr.is_Mul or isinstance(expr, sp.Mod):
        parts = [_number(a, values, env) for a in expr.args]
        if all(isinstance(p, (int, Fraction)) for p in parts):
            if expr.is_Add:
                return sum(parts)
            if isinstance(expr, sp.Mod):
                return parts[0] % parts[1]
            out = 1
            for p in parts:
                out *= p
            return out.numerator if isinstance(out, Fraction) and out.denominator == 1 else out
    value = evaluate_index_form(expr, values, env)
    if value.is_Integer:
        return int(value)
    return Fraction(int(value.p), int(value.q)) if value.is_Rational else value


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
    from derive.windowsizes import fix_sizes, shape_of_label

    concrete = fix_sizes(concrete)  # a window's output has the size its input and the formula give
    arrays: dict[str, np.ndarray] = {}
    values: dict[tuple[str, tuple[int, ...]], sp.Rational] = {}
    for entry in sorted(index_expr.atoms(sp.Indexed), key=sp.default_sort_key):
        label = str(entry.base.label)
        if label in arrays:
            continue
        known = shape_of_label(label)
        if known is not None and len(known) == len(entry.indices):
            dims = [batch if d == "batch" else int(sp.sympify(d).xreplace(concrete)) for d in known]
        else:
            dims = [int((_index_range(i) + 1).xreplace(concrete)) for i in entry.indices]
        shape = tuple(dims) if len(dims) != 1 else (dims[0], 1)  # a vector is a column
        arr = np.empty(shape, dtype=object)
        for pos in np.ndindex(shape):
            numerator, denominator = rng.randint(1, 9), rng.randint(2, 9)
            arr[pos] = sp.Rational(numerator, denominator)
            values[(label, pos if len(dims) != 1 else pos[:1])] = Fraction(numerator, denominator)
        arrays[label] = arr
    result = evaluate_matrix_form(matrix_expr.xreplace(concrete), arrays)
    dims = [int((i.upper + 1).xreplace(concrete)) for i in free]
    from derive.indexeval import compiled, to_sympy

    index_form, point = compiled(index_expr), dict(concrete)
    for pos in np.ndindex(*dims) if dims else [()]:
        point.update(zip(free, pos))
        entry = to_sympy(index_form(values, point))  # the same exact values, as Python fractions
        got = _at(result, pos if len(pos) >= 2 else (pos[0], 0) if pos else (0, 0))  # a constant broadcasts
        if entry != got and not _difference_vanishes(entry - got):
            return False
    return True


def _index_range(index: sp.Expr) -> sp.Expr:
    """The last value of an index: its own upper bound, or for an affine index (τ − 1) that of the
    index it shifts (entries out of range are guarded by an Iverson bracket that is 0 there)."""
    if isinstance(index, sp.Idx):
        return index.upper
    inner = sorted(index.atoms(sp.Idx), key=sp.default_sort_key)
    if not inner:
        raise NotRecognised(f"index {index} has no range")
    slopes = {i: sp.diff(index, i) for i in inner}
    if all(d.is_positive or d.is_negative for d in slopes.values()):  # s·i + k, c·h·w + …: its largest value
        return sp.expand(index.xreplace({i: (i.upper if d.is_positive else i.lower) for i, d in slopes.items()}))
    return inner[0].upper


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
    """A size: the batch m, or the size of an axis (n_l, c_l, h_l, w_l: positive whole numbers)."""
    return s == notation.BATCH_SIZE or bool(s.is_integer and s.is_positive)
