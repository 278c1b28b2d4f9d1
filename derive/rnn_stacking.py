"""The step statements of a recurrent network rewritten onto PyTorch's stacked gate arrays.

An LSTM's derivation has one statement per gate (zᵢ = W_ii x + …, z_f = W_if x + …): four (H, n)
products per step where one (4H, n) product on `weight_ih` would do. Stacking is a layout choice,
not new mathematics, so nothing here is written by hand: each gate's arrays (its weights and
biases, its pre-activation, its value, their errors and gradients) are row blocks of one stacked
array, and two rules of block matrices merge the derived statements:

* rows: statements that become the same statement when every gate array is replaced by its stacked
  array — each reading its own gate's block, only through row-wise operations (element-wise ones,
  the left factor of a product, a sum over the samples) — compute consecutive row blocks of one
  result, so one statement on those rows computes them all ([W_ii; W_if] x = [W_ii x; W_if x]);
* columns: terms of a sum W_hiᵀ δᵢ + W_hfᵀ δ_f + … that become the same term, each with its own
  gate's block of both factors, are one product over the stacked rows ([W_hi; W_hf]ᵀ [δᵢ; δ_f]).

The merged statements keep the derived forms with the gate arrays renamed, and the generated code's
workspace form is checked against the readable form (`gradients`) on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from derive.convops import PositionMean
from derive.ops import ColBroadcast, MatProd, Op, RowSums, Tr

Rows = tuple[int, int] | None  # a range of gate blocks [lo, hi), or None: the whole array


@dataclass(frozen=True)
class Ref:
    """One array a statement reads or writes: `array` (its workspace name), the gate blocks `rows`
    of a stacked array, and the step `at` (a SymPy expression in the loop's step) or None."""

    array: str
    rows: Rows = None
    at: sp.Expr | None = None

    def symbol(self) -> sp.Symbol:
        return sp.Symbol(f"ref|{self.array}|{self.rows}|{self.at}", real=True)


@dataclass(frozen=True)
class Family:
    """A stacked array (PyTorch's layout) and the names of its row blocks, in PyTorch's gate order."""

    array: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Line:
    """A statement over workspace references: `target op form` when the `conditions` on t hold."""

    target: Ref
    op: str
    form: sp.Expr
    conditions: tuple = ()
    next_step: bool = False
    source: str = field(default="", compare=False)  # the statement of `gradients` it comes from
    also: tuple[str, ...] = field(default=(), compare=False)  # the other gates' arrays merged into it


class Refs:
    """The references of a set of lines, by symbol name."""

    def __init__(self):
        self.by_name: dict[str, Ref] = {}

    def symbol(self, ref: Ref) -> sp.Symbol:
        s = ref.symbol()
        self.by_name[s.name] = ref
        return s

    def of(self, symbol: sp.Symbol) -> Ref | None:
        return self.by_name.get(symbol.name)

    def read(self, form: sp.Expr) -> list[Ref]:
        return [self.by_name[s.name] for s in form.free_symbols if s.name in self.by_name]


def _member(families: list[Family], array: str) -> tuple[Family, int] | None:
    for family in families:
        if array in family.members:
            return family, family.members.index(array)
    return None


def _canonical(line: Line, refs: Refs, families: list[Family]) -> tuple[sp.Expr, int] | None:
    """The line with every gate array replaced by its whole stacked array, and the gate block of its
    target; None when the line is not row-wise in its target's block."""
    target = _member(families, line.target.array)
    if target is None or line.target.rows is not None:
        return None
    family, block = target
    mapping = {}
    for s in line.form.free_symbols:
        ref = refs.of(s)
        if ref is None:
            continue
        found = _member(families, ref.array)
        if found is None:
            continue
        if found[1] != block or ref.rows is not None:
            return None  # reads another gate's block: not the same statement on other rows
        mapping[s] = refs.symbol(Ref(found[0].array, "*", ref.at))
    if not _row_wise(line.form, set(mapping)):
        return None
    return line.form.xreplace(mapping), block


def _row_wise(expr: sp.Expr, gated: set) -> bool:
    """Every gate array is reached through row-wise operations only: element-wise ones, the left
    factor of a product, a sum or mean over the samples (columns), a column broadcast — never a
    transpose, the right factor of a product or any other operation."""
    if not expr.free_symbols & gated:
        return True
    if isinstance(expr, sp.Symbol):
        return True
    if isinstance(expr, MatProd):
        return not expr.args[1].free_symbols & gated and _row_wise(expr.args[0], gated)
    if isinstance(expr, (RowSums, PositionMean, ColBroadcast)):
        return _row_wise(expr.args[0], gated)
    if isinstance(expr, Op) or not (expr.is_Add or expr.is_Mul or expr.is_Pow or isinstance(expr, sp.Function)):
        return False
    return all(_row_wise(a, gated) for a in expr.args)


def _place(form: sp.Expr, refs: Refs, rows: tuple[int, int], count: int) -> sp.Expr:
    """The canonical form with its stacked arrays restricted to gate blocks `rows` (None when all)."""
    whole = rows == (0, count)
    mapping = {}
    for s in form.free_symbols:
        ref = refs.of(s)
        if ref is not None and ref.rows == "*":
            mapping[s] = refs.symbol(Ref(ref.array, None if whole else rows, ref.at))
    return form.xreplace(mapping)


def _symbols_written(line: Line) -> set[str]:
    return {line.target.array}


def _arrays_read(line: Line, refs: Refs) -> set[str]:
    return {r.array for r in refs.read(line.form)}


def merge_rows(lines: list[Line], refs: Refs, families: list[Family]) -> list[Line]:
    """Apply the rows rule until no more statements merge (see the module docstring)."""
    while True:
        merged = _merge_once(lines, refs, families)
        if merged is None:
            return lines
        lines = merged


def _merge_once(lines: list[Line], refs: Refs, families: list[Family]) -> list[Line] | None:
    canon = [_canonical(line, refs, families) for line in lines]
    for first, line in enumerate(lines):
        if canon[first] is None:
            continue
        family = _member(families, line.target.array)[0]
        group = {canon[first][1]: first}
        for k in range(first + 1, len(lines)):
            other = lines[k]
            c = canon[k]
            if (c is None or c[0] != canon[first][0] or other.op != line.op or other.conditions != line.conditions
                    or other.next_step != line.next_step or _member(families, other.target.array)[0] != family
                    or c[1] in group):
                continue
            between = lines[first + 1:k]
            # moving line k up to `first`: nothing in between may write what it reads or touch its target
            if any(_symbols_written(b) & (_arrays_read(other, refs) | {other.target.array}) for b in between):
                continue
            if any(other.target.array in _arrays_read(b, refs) for b in between):
                continue
            group[c[1]] = k
        blocks = sorted(group)
        if len(blocks) < 2:
            continue
        lo = blocks[0]
        run = [b for i, b in enumerate(blocks) if b == lo + i]  # the consecutive blocks from the first
        if len(run) < 2:
            continue
        rows = (run[0], run[-1] + 1)
        count = len(family.members)
        target = Ref(family.array, None if rows == (0, count) else rows, line.target.at)
        also = tuple(lines[group[b]].target.array for b in run if group[b] != first)
        new = replace(line, target=target, form=_place(canon[first][0], refs, rows, count), also=also)
        taken = {group[b] for b in run}
        return [new if i == first else x for i, x in enumerate(lines) if i == first or i not in taken]
    return None


def merge_columns(form: sp.Expr, refs: Refs, families: list[Family]) -> sp.Expr:
    """The columns rule on the terms of a sum: Σ_g W_gᵀ δ_g over consecutive gates g → Wᵀ δ."""
    if not form.is_Add:
        return form
    groups: dict[sp.Expr, dict[int, sp.Expr]] = {}
    rest = []
    for term in form.args:
        key = _column_term(term, refs, families)
        if key is None or key[1] in groups.setdefault(key[0], {}):
            rest.append(term)
        else:
            groups[key[0]][key[1]] = term
    out = list(rest)
    for canonical, by_block in groups.items():
        blocks = sorted(by_block)
        family = next(f for f in families for s in canonical.free_symbols
                      if refs.of(s) is not None and refs.of(s).array == f.array)
        count = len(family.members)
        if blocks == list(range(blocks[0], blocks[-1] + 1)) and len(blocks) > 1:
            out.append(_place(canonical, refs, (blocks[0], blocks[-1] + 1), count))
        else:
            out.extend(by_block.values())
    return sp.Add(*out)


def _column_term(term: sp.Expr, refs: Refs, families: list[Family]) -> tuple[sp.Expr, int] | None:
    """A term Wᵀ δ whose factors are the same gate's blocks of two stacked arrays: (canonical, block)."""
    if not (isinstance(term, MatProd) and isinstance(term.args[0], Tr)):
        return None
    left, right = term.args[0].args[0], term.args[1]
    found = []
    for s in (left, right):
        ref = refs.of(s) if isinstance(s, sp.Symbol) else None
        member = _member(families, ref.array) if ref is not None and ref.rows is None else None
        if member is None:
            return None
        found.append((s, ref, member))
    (_, _, (left_family, left_block)), (_, _, (right_family, right_block)) = found
    if left_block != right_block or len(left_family.members) != len(right_family.members):
        return None
    mapping = {s: refs.symbol(Ref(m[0].array, "*", ref.at)) for s, ref, m in found}
    return term.xreplace(mapping), found[0][2][1]
