"""The two block-matrix rules that put a recurrent network's gate statements on PyTorch's stacked
arrays (derive/rnn_stacking.py), on small made-up statements: what merges, and what must not."""

from __future__ import annotations

import sympy as sp

from derive.ops import MatProd, Tr
from derive.rnn_stacking import Family, Line, Ref, Refs, merge_columns, merge_rows
from derive.timeloop import STEP

FAMILIES = [Family("W", ("Wa", "Wb", "Wc")), Family("Z", ("Za", "Zb", "Zc")), Family("G", ("Ga", "Gb", "Gc"))]


def line(refs: Refs, target: str, form) -> Line:
    return Line(Ref(target, None, STEP), "=", form)


def sym(refs: Refs, array: str, at=STEP) -> sp.Symbol:
    return refs.symbol(Ref(array, None, at if array not in ("Wa", "Wb", "Wc") else None))


def test_statements_that_differ_only_in_their_gate_merge_into_one_on_the_stacked_rows():
    refs = Refs()
    x = sym(refs, "x")
    lines = [line(refs, f"Z{g}", MatProd(sym(refs, f"W{g}"), x)) for g in "abc"]
    merged = merge_rows(lines, refs, FAMILIES)
    assert len(merged) == 1 and merged[0].target == Ref("Z", None, STEP)
    assert merged[0].form == MatProd(refs.symbol(Ref("W", None, None)), x)


def test_only_consecutive_gates_merge():
    refs = Refs()
    lines = [line(refs, f"G{g}", sp.tanh(sym(refs, f"Z{g}"))) for g in "ac"]
    lines.insert(1, line(refs, "Gb", sym(refs, "Zb") ** 2))
    merged = merge_rows(lines, refs, FAMILIES)
    assert len(merged) == 3  # a and c are not neighbours in the stacked array


def test_a_statement_reading_another_gates_block_does_not_merge():
    refs = Refs()
    lines = [line(refs, "Ga", sym(refs, "Za") * sym(refs, "Zb")), line(refs, "Gb", sym(refs, "Zb") * sym(refs, "Za"))]
    assert len(merge_rows(lines, refs, FAMILIES)) == 2


def test_a_gate_array_as_the_right_factor_of_a_product_does_not_merge():
    refs = Refs()
    y = sym(refs, "y")
    lines = [line(refs, f"G{g}", MatProd(Tr(y), sym(refs, f"Z{g}"))) for g in "ab"]
    assert len(merge_rows(lines, refs, FAMILIES)) == 2  # yᵀ [Za Zb] is not [yᵀ Za; yᵀ Zb]


def test_a_sum_of_block_products_becomes_one_product_over_the_stacked_rows():
    refs = Refs()
    terms = [MatProd(Tr(sym(refs, f"W{g}")), sym(refs, f"Z{g}", STEP + 1)) for g in "abc"]
    merged = merge_columns(sp.Add(*terms), refs, FAMILIES)
    assert merged == MatProd(Tr(refs.symbol(Ref("W", None, None))), refs.symbol(Ref("Z", None, STEP + 1)))
    mixed = [MatProd(Tr(sym(refs, "Wa")), sym(refs, "Zb", STEP + 1)), terms[2]]
    assert merge_columns(sp.Add(*mixed), refs, FAMILIES) == sp.Add(*mixed)  # blocks do not match
