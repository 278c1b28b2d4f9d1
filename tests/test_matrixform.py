"""Recognition of index results as matrix operations, and its proof by exact evaluation."""

import pytest
import sympy as sp

from derive.matrixform import ColSums, MatProd, RowBroadcast, RowSums, Tr, entries_agree, to_matrix_form
from derive.notation import BATCH_SIZE, LayerRef, Q, index, sample_index

L2, L1 = LayerRef(2), LayerRef(1)


def sym(kind, layer=None):
    return Q(kind, layer).symbol


def cases():
    i, q, p = index("i", L2), index("q", L1), index("p", L2)
    qq = index("q", L2)
    s, t = sample_index("s"), sample_index("t")
    W, d, a1 = Q("W", 2).base, Q("delta", 2).base, Q("a", 1).base
    D, A1, A2, G = Q("Delta", 2).base, Q("A", 1).base, Q("A", 2).base, Q("grad_A", 2).base
    return [
        (sp.Sum(W[i, q] * d[i], (i, i.lower, i.upper)), (q,), MatProd(Tr(sym("W", 2)), sym("delta", 2))),
        (d[p] * a1[q], (p, q), MatProd(sym("delta", 2), Tr(sym("a", 1)))),
        (sp.Sum(D[p, t] * A1[q, t], (t, t.lower, t.upper)) / BATCH_SIZE, (p, q),
         MatProd(sym("Delta", 2), Tr(sym("A", 1))) / BATCH_SIZE),
        (sp.Sum(D[p, t], (t, t.lower, t.upper)) / BATCH_SIZE, (p,), RowSums(sym("Delta", 2)) / BATCH_SIZE),
        (A2[qq, s] * (G[qq, s] - sp.Sum(A2[i, s] * G[i, s], (i, i.lower, i.upper))), (qq, s),
         sym("A", 2) * (sym("grad_A", 2) - RowBroadcast(ColSums(sym("A", 2) * sym("grad_A", 2))))),
    ]


@pytest.mark.parametrize("index_expr, free, expected", cases())
def test_recognised_and_proved(index_expr, free, expected):
    matrix = to_matrix_form(index_expr, free)
    assert matrix == expected
    assert entries_agree(index_expr, matrix, free)


@pytest.mark.parametrize("index_expr, free, expected", cases())
def test_a_wrong_matrix_form_is_rejected(index_expr, free, expected):
    """The proof is not a formality: perturbing the matrix form makes it fail."""
    assert not entries_agree(index_expr, 2 * expected, free)
    if isinstance(expected, MatProd) and isinstance(expected.args[0], Tr):
        swapped = MatProd(expected.args[0].args[0], expected.args[1])  # forgot the transpose
        try:
            assert not entries_agree(index_expr, swapped, free)
        except ValueError:
            pass  # shapes do not even match: rejected as well
