"""Derivations as a reader follows them: each kind of step explained in words once, then named.

The engine records every step with the rule that justifies it (`backprop.Step`). A document that
printed the rule's sentence before every step would say "the Kronecker delta keeps only the term
whose indices are equal" ten times. A `Narrator` keeps, for one document, which rules have been
explained: the first time a rule occurs its sentence leads into the equation; afterwards the step is
one more line of the same display, named by a short tag in the margin ("(collapse)"). Rules that a
section explains once for all (the chain rule, the local derivative, the collapse, the matrix form:
see `explain`) are tagged from the start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sympy as sp

from derive import document as blocks
from derive.backprop import Step

_HOLE = "\ue010"  # where a reference goes into a tag, after the tag's text is escaped


class Narrator:
    """Turns the engine's steps into `Derivation` blocks for one document (one format, one language)."""

    def __init__(self, text):
        self.text = text
        self.explained: set[str] = set()  # rule keys ("rule.chain_rule") explained in words already
        self.sentences: set[str] = set()  # sentences shown already (two rules may share one)

    def explain(self, *keys: str) -> None:
        """Mark rules as explained (by a section that describes them once for all)."""
        self.explained.update(keys)

    def tag(self, key: str, ref: str = "") -> str:
        """The short name of a rule, as plain text for the margin of a display (inside \\text{})."""
        words = self.text.raw(key).replace("{ref}", _HOLE)
        if self.text.fmt == "tex":
            from derive.present import tex_escape

            words = tex_escape(words)
        return words.replace(_HOLE, ref)

    def derivation(
        self,
        steps: Iterable[Step],
        tex: Callable[[Step], tuple[str, str]],
        *,
        table: str = "rule",
        intro: str = "",
        conclusion: str = "",
        ref: Callable[[Step], tuple[str, str]] = lambda step: ("", ""),
        label: str | None = None,
        relation: Callable[[Step], str] = lambda step: "=",
        figures: dict | None = None,
        chains: bool = False,
        direct: bool = False,
    ) -> blocks.Derivation:
        """A derivation block. `tex(step)` gives the LaTeX of both sides; `ref(step)` the reference a
        rule cites, as it goes into a sentence and into a tag; `label` names the last line (the
        result); `table` is the catalog table of the rules' sentences (its tags are in `table`_tag);
        `figures` fill a sentence's other placeholders. With `chains`, a side computation inside the
        derivation (a local derivative worked out on its own left side) is folded into the main
        chain (`_folded`), which then reads from its first line to its result in one display; only
        when the main line does not hold the side's factor does the side get a display of its own,
        led by "where", the main chain resuming after "so". With `direct` (the lesson), a local
        derivative and the collapse of its brackets print as one line, the collapsed result
        (`_direct`), and a sum whose local derivative keeps only the term of the unit wanted is
        written as that term from the start (`one_term`)."""
        steps = one_term(list(steps)) if direct else list(steps)
        folded: set[int] = set()
        if chains:
            steps, folded = _folded(steps)
        if direct:
            steps, folded = _direct(steps, folded)
        groups: list[tuple[str, list[blocks.Row]]] = []
        main = tex(steps[0])[0] if steps else ""
        for n, step in enumerate(steps):
            key = f"{table}.{step.rule}"
            in_sentence, in_tag = ref(step)
            logged = len(self.text.math_log)
            sentence = self.text(key, raw={"ref": in_sentence}, **(figures or {}))
            lhs, rhs = tex(step)
            row_label = label if n == len(steps) - 1 else None
            compact = key in self.explained or sentence in self.sentences or (n == 0 and intro) or n in folded
            if compact:  # the sentence is not printed: its formulas are no use of their symbols
                del self.text.math_log[logged:]
            if chains and compact and groups and lhs and _last_lhs(groups[-1][1]) != lhs:
                side = lhs != main and step.rule != "matrix_form"
                if side != (_last_lhs(groups[-1][1]) != main):  # into a side computation, or back
                    groups.append((self.text.raw("narrate.where" if side else "narrate.so"),
                                   [blocks.Row(lhs, rhs, self.tag(f"{_tags(table)}.{step.rule}", in_tag), row_label,
                                               relation(step))]))
                    continue
            if compact and groups:
                same = _last_lhs(groups[-1][1]) == lhs
                groups[-1][1].append(blocks.Row("" if same else lhs, rhs, self.tag(f"{_tags(table)}.{step.rule}", in_tag),
                                                row_label, relation(step)))
                continue
            if compact:  # the first line of a derivation whose intro says what it is
                self.sentences.add(sentence)  # the intro explained it: later uses are tagged
                groups.append(("", [blocks.Row(lhs, rhs, self.tag(f"{_tags(table)}.{step.rule}", in_tag), row_label,
                                               relation(step))]))
                continue
            self.sentences.add(sentence)
            groups.append((sentence, [blocks.Row(lhs, rhs, None, row_label, relation(step))]))
        return blocks.Derivation(tuple(blocks.Group(t, tuple(rows)) for t, rows in groups), intro, conclusion)


def _folded(steps: list[Step]) -> tuple[list[Step], set[int]]:
    """One chain instead of a main chain interrupted by side computations: a factor worked out on its
    own (a local derivative ∂z/∂a and its collapse, or a part of the gradient such as the data term
    beside a penalty, itself with a local derivative inside) is put into the line of the main chain
    that holds it, one line per step of the side computation, so the derivation reads from its first
    line to its result without "where … so …". A main-chain line that only restates the line above
    is left out. If a side computation's factor is not in the main chain, the steps stay as they
    are. Also returns the positions of the folded lines: each is named by its tag in the margin."""
    if not steps:
        return steps, set()
    main = steps[0].lhs
    out: list[Step] = []
    folded: set[int] = set()
    template, known = None, {}  # the last main line as the engine wrote it; each factor's latest value
    for step in steps:
        side = step.lhs != main and step.rule != "matrix_form" and not step.matrix
        if side:
            if template is None or not (step.lhs in known or _put_in(template, known).has(step.lhs)):
                return steps, set()  # not a factor of the main chain: leave the derivation as it is
            known[step.lhs] = step.rhs
            folded.add(len(out))
            out.append(Step(main, _put_in(template, known), step.rule, step.matrix))
            continue
        if step.lhs == main:
            if known and out and step.rhs == out[-1].rhs:
                continue  # the folded line above already is this one
            template, known = step.rhs, {}
        out.append(step)
    return out, folded


LOCAL = ("local_derivative", "differentiate")  # the rules that differentiate a forward rule or the loss


def _direct(steps: list[Step], folded: set[int]) -> tuple[list[Step], set[int]]:
    """The local derivative as a student writes it: the line with the brackets [j = j'] and the lines
    that collapse them become one line, the engine's collapsed result, named "local derivative"
    (the text says in one line why only one term is left). Where the collapsed result still holds a
    bracket (the softmax's Jacobian), the lines stay as they are. Returns the steps and the positions
    of the lines named by their tag."""
    from derive.indexing import Iverson

    out: list[Step] = []
    kept: set[int] = set()
    n = 0
    while n < len(steps):
        step = steps[n]
        last = n
        while (step.rule in LOCAL and last + 1 < len(steps) and steps[last + 1].rule == "kronecker_collapse"
               and steps[last + 1].lhs == step.lhs):
            last += 1
        result = steps[last]
        if last > n and not result.rhs.has(Iverson, sp.KroneckerDelta):
            if folded & set(range(n, last + 1)):
                kept.add(len(out))
            out.append(Step(step.lhs, result.rhs, step.rule, result.matrix))
            n = last + 1
            continue
        if n in folded:
            kept.add(len(out))
        out.append(step)
        n += 1
    return out, kept


def one_term(steps: list[Step]) -> list[Step]:
    """The lesson's element-wise derivations without a sum that collapses at once (review 23, defect 4):
    where the engine's chain-rule sum (or the loss's sum, in its definition) runs over a second index
    p of the layer and the local derivative that follows carries the bracket [x = p] in every term
    (x the unit wanted: a_p depends on z_x only when p = x), the sum is written as its one term p = x,
    and the lines after it with p = x put in. The engine's lines decide: a local derivative without
    that bracket in every term (the softmax's Jacobian) leaves the steps as they are."""
    for n, step in enumerate(steps):
        summed = _sum_over(step)
        if summed is None:
            continue
        inner, p = summed
        wanted = _kept_index(steps[n + 1:], p)
        if wanted is None:
            continue
        one = inner.subs(p, wanted)
        rhs = sp.Derivative(one, *step.rhs.variables) if isinstance(step.rhs, sp.Derivative) else one
        rule = "one_term" if step.rule == "definition_loss" else step.rule
        return one_term([*steps[:n], Step(step.lhs, rhs, rule, step.matrix),
                         *(Step(s.lhs.subs(p, wanted), s.rhs.subs(p, wanted), s.rule, s.matrix) for s in steps[n + 1:])])
    return steps


def _sum_over(step: Step):
    """(the summand, the index) of a chain-rule line Σ_p … or of the loss's definition ∂/∂a (Σ_p …)."""
    expr = step.rhs.expr if step.rule == "definition_loss" and isinstance(step.rhs, sp.Derivative) else step.rhs
    if step.rule in ("chain_rule", "definition_loss") and isinstance(expr, sp.Sum) and len(expr.limits) == 1:
        return expr.function, expr.limits[0][0]
    return None


def _kept_index(later: list[Step], p):
    """The index x when the next local derivative that involves p is 0 unless p = x in every term."""
    for step in later:
        if step.rule not in LOCAL or not step.rhs.has(p):
            continue
        for delta in step.rhs.atoms(sp.KroneckerDelta):
            if p in delta.args:
                x = delta.args[0] if delta.args[1] == p else delta.args[1]
                vanishes = step.rhs.xreplace({delta: sp.S.Zero})
                vanishes = vanishes.doit() if vanishes.has(sp.Sum) else vanishes
                if x != p and sp.expand(vanishes) == 0:
                    return x
        return None
    return None


def folds_local(steps: list[Step], chains: bool = False) -> bool:
    """Whether the lesson prints a local derivative of these steps as one line (`_direct`)."""
    steps = _folded(list(steps))[0] if chains else list(steps)
    return len(_direct(steps, set())[0]) < len(steps)


def _put_in(expr, known: dict):
    """`expr` with every worked-out factor replaced by its value, nested ones too."""
    for _ in range(len(known) + 1):
        replaced = expr.xreplace(known)
        if replaced == expr:
            return expr
        expr = replaced
    return expr


def _tags(table: str) -> str:
    return {"rule": "tag", "training_rule": "training_tag"}[table]


def _last_lhs(rows: list[blocks.Row]) -> str:
    """The left side the last line continues (the nearest line above that has one)."""
    for row in reversed(rows):
        if row.lhs:
            return row.lhs
    return ""


def sides(matrix_printer: Callable[..., str]) -> Callable[[Step], tuple[str, str]]:
    """`tex` for steps of the backward pass, printed with the document printer (`printing.latex`)."""

    def tex(step: Step) -> tuple[str, str]:
        return matrix_printer(step.lhs, matrix=step.matrix), matrix_printer(step.rhs, matrix=step.matrix)

    return tex


__all__ = ["Narrator", "folds_local", "sides"]
