"""LaTeX for the engine's expressions, following the conventions of `notation`.

A subclass of SymPy's LaTeX printer (dispatch on `_print_<Class>`), not string post-processing:
indexed entries print as W^{(3)}_{pq}, sums as Σ_i over their index, Kronecker deltas as δ_{ip},
∂C/∂… derivatives as fractions, and in matrix form products of arrays print as Hadamard products ⊙
while matrix products, transposes and broadcasts print as in a linear-algebra textbook; a factor
that is a single number (1ᵀx of one sample's vector) multiplies as a scalar, in front, not with ⊙,
and a row or column that NumPy broadcasts across a minibatch is written out (𝟏 1ᵀX ⊙ A). The output
uses only macros KaTeX, MathJax (GitHub) and plain LaTeX (amsmath) all know.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from functools import lru_cache

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from derive import notation
from derive.ops import MATRIX_FUNCTIONS, ColBroadcast, Einsum, MatProd, Op, RowBroadcast, _Broadcast



def is_array_valued(expr: sp.Basic) -> bool:
    """Does a matrix-form expression denote an array (as opposed to a scalar such as 1/m)?"""
    if isinstance(expr, MATRIX_FUNCTIONS):
        return True
    if isinstance(expr, sp.Symbol):
        q = notation.quantity_of(expr.name)
        return q is not None
    return any(is_array_valued(arg) for arg in expr.args)


def array_shape(expr: sp.Basic) -> tuple | None:
    """The shape of a matrix-form expression as far as products need it: each axis 1 or "n" (longer
    than 1; its length does not matter here). None where it cannot be told (arrays of more than two
    axes, an operation without a shape rule), and the printer then writes the product as it stands."""
    try:
        if isinstance(expr, _Broadcast):
            return None  # written out already
        if isinstance(expr, Op):
            shape = expr.shape(_known_shape)
        elif isinstance(expr, sp.Symbol):
            q = notation.quantity_of(expr.name)
            shape = (1, 1) if q is None else ("n", 1) if q.rank == 1 else ("n",) * q.rank
        else:
            shapes = [array_shape(a) for a in expr.args if is_array_valued(a)]
            if not shapes:
                return (1, 1)
            if any(s is None or len(s) != len(shapes[0]) for s in shapes):
                return None
            shape = tuple(1 if all(s[k] == 1 for s in shapes) else "n" for k in range(len(shapes[0])))
    except (_NoShape, NotImplementedError, KeyError, IndexError, TypeError, ValueError):
        return None
    shape = tuple(1 if d == 1 else "n" for d in shape)
    return shape if len(shape) == 2 else None


_COST_NAMES = {"cost_now", "cost_any", "Cbar", "Cbar_data", "C_data"}  # a cost, printed before the terms added to it

def _nested_sums(expr: sp.Basic) -> int:
    """How many sums a term is built from, not counting an index's range (r + 1, not 1 + r: the Idx r
    carries the bounds (0, T − 1), which are not part of the printed term)."""
    if expr.is_Atom or isinstance(expr, (sp.Idx, sp.Indexed, sp.IndexedBase)):
        return 0
    return int(isinstance(expr, sp.Add)) + sum(_nested_sums(a) for a in expr.args)


class _NoShape(Exception):
    pass


def _known_shape(expr: sp.Basic) -> tuple:
    shape = array_shape(expr)
    if shape is None:
        raise _NoShape
    return shape


_UPSTREAM_KINDS = {"y", "Y", "delta", "Delta", "grad_a", "grad_A"}


def _factor_rank(factor: sp.Basic) -> int:
    """Where a factor goes in a printed product: Σ and matrix products, parameters, upstream
    quantities (targets, errors, ∂C/∂a), Kronecker deltas, derivatives, entries, compound terms."""
    if isinstance(factor, sp.Symbol) and factor in (notation.L2_STRENGTH, notation.L1_STRENGTH):
        return -1  # a penalty strength leads its term: λ₂ W, λ₁ Σ |W|
    if isinstance(factor, sp.NumberSymbol):
        return -1  # a named constant leads too: λ_selu (…)
    if isinstance(factor, (sp.Sum, MatProd, Einsum)) or (isinstance(factor, sp.Pow) and isinstance(factor.base, sp.Sum)):
        return 0
    labels = {str(e.base.label) for e in factor.atoms(sp.Indexed)} | {s.name for s in factor.atoms(sp.Symbol)}
    kinds = {q.kind for q in map(notation.quantity_of, labels) if q is not None}
    if isinstance(factor, (sp.Indexed, sp.Symbol)) and kinds == {"W"}:
        return 1
    if kinds & (_UPSTREAM_KINDS | notation.DERIVATIVE_KINDS) and not isinstance(factor, sp.Derivative):
        return 2
    if isinstance(factor, sp.KroneckerDelta):
        return 3
    if isinstance(factor, sp.Derivative):
        return 4
    if factor.is_Atom or isinstance(factor, (sp.Indexed, sp.Function)):
        return 5
    return 6


def ordered_factors(factors: list[sp.Basic]) -> list[sp.Basic]:
    return sorted(factors, key=_factor_rank)  # stable: SymPy's order within a rank


def decimal_text(number: sp.Basic) -> str | None:
    """A parameter such as 1/100 or 44715/10⁶ as the decimal it was given as ('0.01', '0.044715').

    Only rationals whose denominator is a multiple of 100 dividing a power of ten qualify, so that
    halves, thirds and tenths keep printing as fractions.
    """
    if not isinstance(number, sp.Rational) or number.is_Integer or number.q % 100:
        return None
    q, twos, fives = number.q, 0, 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    places = max(twos, fives)
    if q != 1 or places > 12:
        return None
    digits = str(abs(number.p) * 10**places // number.q).rjust(places + 1, "0")
    return ("-" if number < 0 else "") + digits[:-places] + "." + digits[-places:]


# the words a formula needs in the document's language (a piecewise function's "if"/"otherwise");
# set by the presenter for the document it builds (`words`), English otherwise
_WORDS: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "derive_formula_words", default=(("if", "if"), ("otherwise", "otherwise")))


@contextmanager
def words(**values: str):
    """Formulas printed inside this block use these words (keys `if`, `otherwise`)."""
    token = _WORDS.set(tuple(sorted({**dict(_WORDS.get()), **values}.items())))
    try:
        yield
    finally:
        _WORDS.reset(token)


def current_words() -> tuple[tuple[str, str], ...]:
    return _WORDS.get()


def times_sign() -> str:
    """The sign of scientific notation in the document's language: 1.234 \\cdot 10^{-3} in English,
    1.234 \\times 10^{-3} in Chinese (the convention of Chinese textbooks and standards)."""
    return dict(_WORDS.get()).get("times", r"\cdot")


# what makes an argument taller than a line, so that its brackets must grow with it (\left( \right))
TALL_MARKS = (r"\frac", r"\sum", r"\prod", r"\int", r"\begin", r"\left", r"\binom", r"\sqrt")


class DeriveLatexPrinter(LatexPrinter):
    """LaTeX printer for index-form (default) and matrix-form (`matrix=True`) expressions."""

    printmethod = "_derive_latex"

    def __init__(self, *, matrix: bool = False, settings: dict | None = None,
                 words: tuple[tuple[str, str], ...] | None = None):
        super().__init__(settings or {})
        self.matrix = matrix
        self.words = dict(words if words is not None else _WORDS.get())

    # ---- names

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name == "C_s" and self.words.get("summed_loss"):  # samples coupled: the errors of m C̄ = Σ C
            return r"(m \bar{C})"
        q = notation.quantity_of(expr.name)
        if q is not None:
            if q.kind in notation.DERIVATIVE_KINDS:
                cost = r"\mathbf{C}" if q.is_batch else "C"
                return rf"\frac{{\partial {cost}}}{{\partial {q.latex()}}}"
            return q.latex()
        if expr.name in notation.SCALAR_LATEX:
            return notation.SCALAR_LATEX[expr.name]
        if expr.name.startswith("n_"):
            return f"n_{{{expr.name[2:].replace('p', '+').replace('m', '-')}}}"
        return super()._print_Symbol(expr, style=style)

    def _print_Idx(self, expr: sp.Idx) -> str:
        if notation.is_sample_index(expr):  # the engine's s and t: printed s and r (t is a time step)
            return notation.SAMPLE_INDEX_LATEX[str(expr.label)]
        return self._print(expr.label)

    def _index_string(self, indices) -> str:
        names = [self._print(i) for i in indices]
        return "".join(names) if all(len(n.rstrip("'")) == 1 for n in names) else ",".join(names)  # W_{ij'}

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        q = notation.quantity_of(str(expr.base.label))
        if q is None:
            return super()._print_Indexed(expr)
        idx = self._index_string(expr.indices)
        if q.kind in notation.DERIVATIVE_KINDS and not q.is_batch:
            return rf"\frac{{\partial C}}{{\partial {q.latex_entry(idx)}}}"
        if q.kind in notation.DERIVATIVE_KINDS and self.words.get("summed_loss"):  # samples coupled: m C̄ = Σ C
            return rf"\frac{{\partial (m \bar{{C}})}}{{\partial {q.latex_entry(idx)}}}"
        if q.kind in notation.DERIVATIVE_KINDS:
            sample = self._print(expr.indices[1])
            return rf"\frac{{\partial C_{{{sample}}}}}{{\partial {q.latex_entry(idx)}}}"
        return q.latex_entry(idx)

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        q = notation.quantity_of(str(expr.label))
        return q.latex() if q is not None else super()._print_IndexedBase(expr)

    def _print_Add(self, expr: sp.Add, order=None) -> str:
        """Positive terms first, a cost before what is added to it (𝒞 + ∇𝒞·Δθ + …, C̄ + ½λΣθ², as a
        textbook writes a Taylor model or a penalty), then sums and matrix products before the rest (W a + b,
        not b + W a)."""
        terms = sorted(
            self._as_ordered_terms(expr, order=order),
            key=lambda t: (t.could_extract_minus_sign(), not (t.is_Symbol and t.name in _COST_NAMES),
                           not t.has(sp.Sum, MatProd), _nested_sums(t)),  # −y log a before −(1 − y) log(1 − a)
        )
        tex = ""
        for n, term in enumerate(terms):
            if n == 0:
                pass
            elif term.could_extract_minus_sign():
                tex += " - "
                term = -term
            else:
                tex += " + "
            term_tex = self._print(term)
            if self._needs_add_brackets(term):
                term_tex = rf"\left({term_tex}\right)"
            tex += term_tex
        return tex

    # ---- calculus

    def _print_Sum(self, expr: sp.Sum) -> str:
        sums = " ".join(rf"\sum_{{{self._print(limit[0])}}}" for limit in reversed(expr.limits))
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True)
        if expr.function.could_extract_minus_sign() and not body.startswith(r"\left("):
            body = rf"\left({body}\right)"
        return f"{sums} {body}"

    def _print_Function(self, expr, exp=None) -> str:
        if isinstance(expr, AppliedUndef):  # g(z), \ell(a, y): plain function notation
            args = ", ".join(self._print(a) for a in expr.args)
            name = expr.func.__name__
            tex = f"{name}({args})"
            return f"{tex}^{{{exp}}}" if exp else tex
        return super()._print_Function(expr, exp=exp)

    def _hprint_variadic_function(self, expr, exp=None) -> str:
        """max(0, z) and min(…) with plain parentheses: SymPy's \\left( \\right) sets a gap after
        \\max ("max (0, z)": zh review 24, PDF item 6); a tall argument (a fraction, a sum, a
        matrix, already-sized brackets) keeps brackets that grow with it."""
        args = sorted(expr.args, key=sp.default_sort_key)
        body = ", ".join(self._print(a) for a in args)
        name = str(expr.func).lower()
        tall = any(mark in body for mark in TALL_MARKS)
        tex = rf"\{name}\left({body}\right)" if tall else rf"\{name}({body})"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    _print_Max = _print_Min = _hprint_variadic_function  # SymPy binds its own helper to these names

    def _print_KroneckerDelta(self, expr, exp=None) -> str:
        """The Kronecker delta as the Iverson bracket [i = q] (δ is the error): a power of it is itself."""
        left, right = (self._print(a) for a in expr.args)
        return rf"\left[{left} = {right}\right]"

    def _print_Iverson(self, expr, exp=None) -> str:
        condition = expr.args[0]
        parts = condition.args if isinstance(condition, sp.And) else (condition,)
        return r"\left[" + r" \wedge ".join(self._print(c) for c in parts) + r"\right]"

    def _print_Piecewise(self, expr) -> str:
        """Cases with "if" and "otherwise" in the document's language."""
        rows = []
        for value, condition in expr.args:
            if condition is sp.true:
                rows.append(rf"{self._print(value)} & \text{{{self.words['otherwise']}}}")
            else:
                rows.append(rf"{self._print(value)} & \text{{{self.words['if']} }}{self._print(condition)}")
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _print_Heaviside(self, expr, exp=None) -> str:
        if expr.args[1] == 0:  # the step with value 0 at 0: an Iverson bracket [x > 0]
            tex = rf"\left[{self._print(expr.args[0])} > 0\right]"
        else:
            tex = rf"H\left({self._print(expr.args[0])}\right)"
        return rf"{tex}^{{{exp}}}" if exp else tex

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        (variable, count), = expr.variable_count
        if isinstance(expr.expr, AppliedUndef) and expr.expr.args == (variable,) and count == 1:
            return f"{expr.expr.func.__name__}'({self._print(variable)})"  # g'(z)
        top = self._print(expr.expr)
        order = "" if count == 1 else f"^{{{count}}}"
        bottom = self._print(variable) + order
        if isinstance(expr.expr, (sp.Symbol, sp.Indexed)):
            return rf"\frac{{\partial{order} {top}}}{{\partial {bottom}}}"
        return rf"\frac{{\partial{order}}}{{\partial {bottom}}}\left({top}\right)"

    def _helper_print_standard_power(self, expr, template: str) -> str:
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"])
        if ("^" in base or "_" in base) and not base.startswith(r"\left("):
            base = rf"\left({base}\right)"  # a^{(3)}_{q} squared: avoid a double superscript
        return template % (base, self._print(expr.exp))

    # ---- matrix form (each operation prints itself: derive/ops.py)

    def _print_Mul(self, expr: sp.Mul) -> str:
        if not (self.matrix and is_array_valued(expr)):
            return self._print_index_mul(expr)
        sign = ""
        if expr.could_extract_minus_sign():
            expr, sign = -expr, "- "
        factors = sp.Mul.make_args(expr)
        scalar = sp.Mul(*[f for f in factors if not is_array_valued(f)])  # e.g. η/m, printed in front
        arrays = [f for f in factors if is_array_valued(f)]
        over = [f for f in arrays if f.is_Pow and f.exp.is_negative]
        if over:  # entry-wise division by an array: a fraction
            numer = sp.Mul(*[f for f in arrays if f not in over])
            denom = sp.Mul(*[1 / f for f in over])
            tex = rf"\frac{{{self._print(numer)}}}{{{self._print(denom)}}}"
        else:
            numbers, hadamard = self._by_shape(ordered_factors(arrays))
            tex = " ".join([rf"\left({self._print(f)}\right)" for f in numbers]
                           + [r" \odot ".join(self._hadamard_operand(f, len(hadamard)) for f in hadamard)])
        if scalar == 1:
            return sign + tex
        prefix = super()._print_Mul(scalar) if scalar.is_Mul else self._print(scalar)
        return sign + prefix + " " + tex

    @staticmethod
    def _by_shape(factors: list) -> tuple[list, list]:
        """The factors of a product of arrays split into those that are one number (1ᵀx of a vector, a
        scalar: they multiply, in front) and the entry-wise factors, where a row or a column that
        broadcasts against a larger factor is written out as the broadcast (𝟏 r, c 𝟏ᵀ)."""
        shapes = [array_shape(f) for f in factors]
        if None in shapes or len(factors) < 2:
            return [], factors
        numbers = [f for f, shape in zip(factors, shapes) if shape == (1, 1)]
        if len(numbers) == len(factors):
            return [], factors
        rest = [(f, shape) for f, shape in zip(factors, shapes) if shape != (1, 1)]
        rows = "n" if any(shape[0] == "n" for _, shape in rest) else 1
        columns = "n" if any(shape[1] == "n" for _, shape in rest) else 1
        out = []
        for f, shape in rest:
            if shape[0] == 1 and rows == "n":
                f = RowBroadcast(f)
            elif shape[1] == 1 and columns == "n":
                f = ColBroadcast(f)
            out.append(f)
        return numbers, out

    def _print_NumberSymbol(self, expr) -> str:
        """π, e and the catalog's named constants: their own LaTeX (this printer's `printmethod`
        differs from SymPy's, so the objects' `_latex` methods are not found by dispatch)."""
        return expr._latex(self)

    def _print_Rational(self, expr: sp.Rational) -> str:
        decimal = decimal_text(expr)
        return decimal if decimal is not None else super()._print_Rational(expr)

    def _print_index_mul(self, expr: sp.Mul) -> str:
        """A product in textbook order: sums first, then upstream quantities, then local factors."""
        sign = ""
        if expr.could_extract_minus_sign():
            expr, sign = -expr, "- "
        coefficient, rest = expr.as_coeff_Mul()
        if decimal_text(coefficient) is not None and rest != 1:  # 0.01 z, not z/100
            return sign + decimal_text(coefficient) + " " + self.parenthesize(rest, PRECEDENCE["Mul"])
        numer, denom = sp.fraction(expr, exact=True)
        if denom != 1:  # 1/m in front of a sum or a derivative, not a fraction of fractions
            if numer.has(sp.Sum, sp.Derivative) and not denom.has(sp.Indexed, sp.Sum):
                return sign + rf"\frac{{1}}{{{self._print(denom)}}} " + self._print_index_mul_factors(numer)
            return sign + super()._print_Mul(expr)
        return sign + self._print_index_mul_factors(expr)

    product_separator = " "  # between the factors of a product (a worked example uses a dot)

    def _print_index_mul_factors(self, expr: sp.Expr) -> str:
        coefficient, rest = expr.as_coeff_Mul()
        factors = self._factor_order(list(sp.Mul.make_args(rest)))
        parts = [] if coefficient == 1 else [self._print(coefficient)]
        for n, factor in enumerate(factors):
            tex = self._print(factor)
            if self._needs_mul_brackets(factor, first=(n == 0 and not parts), last=(n == len(factors) - 1)):
                tex = rf"\left({tex}\right)"
            parts.append(tex)
        return self.product_separator.join(parts)

    def _factor_order(self, factors: list) -> list:
        """The order in which the factors of a product are written (printers of other sections differ)."""
        return ordered_factors(factors)

    def _hadamard_operand(self, factor: sp.Basic, count: int) -> str:
        tex = self._print(factor)
        if count > 1 and (factor.is_Add or isinstance(factor, (MatProd, Einsum, _Broadcast))):
            return rf"\left({tex}\right)"
        if factor.is_Add and count == 1:
            return rf"\left({tex}\right)"
        return tex


def latex(expr: sp.Basic, *, matrix: bool = False) -> str:
    """LaTeX of an index-form (default) or matrix-form expression (memoised: documents reuse them)."""
    return _latex(expr, matrix, _WORDS.get())


@lru_cache(maxsize=4096)
def _latex(expr: sp.Basic, matrix: bool, words: tuple[tuple[str, str], ...]) -> str:
    return DeriveLatexPrinter(matrix=matrix, words=words).doprint(expr)
