"""Code for the formulas of a recurrence: the derived index forms read at one step t of a loop.

A network with a delayed input (see `LayerKind.delayed`) has formulas no whole-array operation
expresses: z[τ] reads h[τ − 1], the error of h[r] reads δ[r + 1] behind the guard [r + 1 ≤ T − 1],
a shared weight's gradient is Σ_τ over the steps. Generated code computes them in loops over the
steps; this module turns each derived formula into the statements of one step, with nothing
written by hand:

* a formula with a free time index (z[τ, i, s], δ[r, q, s]) is read at τ = t: the entries
  h[t − 1, k, s] become entries of one step's array `A1[t - 1]`, and the rest of the formula is an
  ordinary (units × samples) matrix expression, recognised and proved entry by entry by
  `matrixform` like any other;
* a formula that sums over the time index (∂C̄/∂W_hh = Σ_τ Σ_s …) is read without that sum: the
  statement adds one step's share to the gradient (`dW += …`);
* guards on the step ([t ≥ 1], [t + 1 ≤ T − 1], δ_{T−1, t}) become `if` statements around the terms
  they multiply;
* a formula without a time index that reads one fixed step (a = h[T − 1]) is an ordinary formula
  over that step's array.

Forward statements run in a loop t = 0 … T − 1, backward statements in a loop t = T − 1 … 0, so
that h[t − 1] and δ[t + 1] are there when step t reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.codegen import NumPyCodePrinter
from derive.indexing import Iverson, transform
from derive.matrixform import NotRecognised, entries_agree, to_matrix_form

STEP = sp.Symbol("step_t", integer=True, nonnegative=True)  # the loop's step, printed `t`
STEPS = sp.Symbol("steps_T", integer=True, positive=True)  # the number of steps, printed `T`


def is_time_size(symbol: sp.Basic) -> bool:
    """The size of a time axis (t_1, t_2, …: `Axis("t", layer)`)."""
    return isinstance(symbol, sp.Symbol) and symbol.name.startswith("t_")


def is_time_index(index: sp.Basic) -> bool:
    return isinstance(index, sp.Idx) and any(is_time_size(s) for s in sp.sympify(index.upper).free_symbols)


@dataclass(frozen=True)
class Statement:
    """One line of a step (or of the code outside the loops): `target op value`, run when `guard`
    (code of a condition on t, or "") holds. op is "=" or "+="."""

    target: str
    op: str
    value: str
    guard: str = ""
    next_step: bool = False  # it reads step t + 1 (an error arriving from the next step)
    form: sp.Expr | None = field(default=None, compare=False)  # the proved matrix form `value` prints
    conditions: tuple = field(default=(), compare=False)  # the guard's conditions on t (SymPy relations)


@dataclass(frozen=True)
class Block:
    """Statements outside any loop (loop None) or in a loop over the steps ("forward": 0 … T − 1,
    "backward": T − 1 … 0)."""

    loop: str | None
    statements: tuple[Statement, ...]


class StepPrinter(NumPyCodePrinter):
    """The NumPy printer with one step's arrays (`A1[t - 1]`), the step t and the length T."""

    def __init__(self, slices: dict[str, str]):
        super().__init__()
        self.slices = slices

    def _print_Symbol(self, expr):
        if expr == STEP:
            return "t"
        if expr == STEPS or is_time_size(expr):
            return "T"
        if expr.name in self.slices:
            return self.slices[expr.name]
        return super()._print_Symbol(expr)


class TimeSlicer:
    """Reads derived formulas at step t; collects the names of the step arrays it makes."""

    def __init__(self):
        self.slices: dict[str, str] = {}  # label of a step array → its code (A1[t - 1])
        self.steps: dict[str, tuple[str, sp.Expr]] = {}  # label of a step array → (array code, step)
        self.printer = StepPrinter(self.slices)

    # ---- reading a formula at step t

    def _step_entry(self, entry: sp.Indexed) -> sp.Basic:
        """h[t − 1, k, s] → (the array of step t − 1)[k, s]; other entries unchanged."""
        first = entry.indices[0]
        symbols = sp.sympify(first).free_symbols
        if not symbols & {STEP, STEPS} and not any(is_time_size(s) for s in symbols):
            return entry
        if any(isinstance(s, sp.Idx) for s in symbols):
            raise NotRecognised(f"entry {entry} reads a step through another index")
        at = sp.sympify(first).xreplace({s: STEPS for s in symbols if is_time_size(s)})
        from derive.notation import quantity_of

        quantity = quantity_of(str(entry.base.label))
        code = (quantity.code() if quantity is not None else str(entry.base.label)) + f"[{self.printer._print(at)}]"
        label = f"{entry.base.label}@{at}"  # `notation.quantity_of` reads the quantity before the @
        self.slices[label] = code
        self.steps[label] = (code.split("[", 1)[0], at)
        return sp.IndexedBase(label, real=True)[tuple(entry.indices[1:])]

    def at_step(self, expr: sp.Expr, time_index: sp.Idx | None) -> sp.Expr:
        """The formula read at step t: the time index set to t, entries of sequences as entries of
        one step's arrays, Kronecker deltas of steps as guards, guards and scalars moved out of sample sums."""
        if time_index is not None:
            expr = expr.xreplace({time_index: STEP})
        expr = expr.xreplace({s: STEPS for s in expr.free_symbols if is_time_size(s)})

        def rule(e):
            if isinstance(e, sp.Indexed):
                return self._step_entry(e)
            if isinstance(e, sp.KroneckerDelta) and e.has(STEP):
                return Iverson(sp.Eq(*e.args))
            if isinstance(e, sp.Sum) and e.function.is_Mul:
                bound = {lim[0] for lim in e.limits}
                outside = [f for f in e.function.args  # guards and scalars (1/m) that do not vary in the sum
                           if not f.free_symbols & bound and (isinstance(f, Iverson) or not f.atoms(sp.Indexed))]
                if outside:
                    inner = sp.Mul(*[f for f in e.function.args if f not in outside])
                    return sp.Mul(*outside) * sp.Sum(inner, *e.limits)
            return e

        return transform(expr, rule)

    def without_time_sum(self, expr: sp.Expr) -> tuple[sp.Expr, sp.Idx] | None:
        """Σ_τ (…) → (…, τ): one step's share of a sum over the steps; None if there is no such sum."""
        found = []

        def rule(e):
            if isinstance(e, sp.Sum):
                times = [lim for lim in e.limits if is_time_index(lim[0])]
                if times:
                    found.append(times[0][0])
                    rest = [lim for lim in e.limits if lim not in times]
                    return sp.Sum(e.function, *rest) if rest else e.function
            return e

        out = transform(expr, rule)
        return (out, found[0]) if len(found) == 1 else None

    # ---- statements

    def statements(self, target: str, expr: sp.Expr, free: tuple[sp.Idx, ...], accumulate: bool,
                   code_form=lambda e: e) -> list[Statement]:
        """The statements that compute `expr` (read at step t) into `target`: the unguarded terms,
        then each guarded group under its `if`. Every term's array form is proved equal to its index
        form entry by entry (`matrixform.entries_agree`) before it is printed."""
        groups: dict[tuple, list[sp.Expr]] = {}

        def distribute(e):  # r ⊙ ([t ≥ 1] W h[t − 1] + b): each guard onto the term it guards, the rest kept whole
            if e.is_Mul:
                for a in e.args:
                    if a.is_Add and a.has(Iverson):
                        rest = sp.Mul(*[f for f in e.args if f is not a])
                        return sp.Add(*[distribute(rest * term) for term in a.args])
            return e

        for term in sp.Add.make_args(transform(expr, distribute)):
            factors = sp.Mul.make_args(term)
            guards = tuple(sorted((f for f in factors if isinstance(f, Iverson)), key=sp.default_sort_key))
            groups.setdefault(guards, []).append(sp.Mul(*[f for f in factors if not isinstance(f, Iverson)]))
        out = []
        order = sorted(groups, key=lambda g: (len(g), sp.default_sort_key(sp.Tuple(*g))))
        first = True
        for guards in order:
            index_form = sp.Add(*groups[guards])
            matrix = to_matrix_form(index_form, free)
            if not entries_agree(index_form, matrix, free):
                raise AssertionError(f"step form {matrix} of {index_form} failed its entry check")
            form = code_form(matrix)
            value = self.printer._print(form)
            guard = " and ".join(self.printer._print(g.args[0]).strip("()") for g in guards)
            op = "+=" if accumulate or not first else "="
            if guard and op == "=":  # every term is guarded: start the step's value at zero
                out.append(Statement(target, "=", "0.0", form=sp.S.Zero))
                op = "+="
            # the guard the engine writes for a path through the next step: [t + 1 ≤ T − 1]
            reads_next = any(STEP + 1 in sp.preorder_traversal(g.args[0]) for g in guards)
            out.append(Statement(target, op, value, guard, reads_next, form, tuple(g.args[0] for g in guards)))
            first = False
        return out
