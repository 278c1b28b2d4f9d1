"""Recognition of index results as matrix operations, and its proof by exact evaluation."""

import pytest
import sympy as sp

from derive.matrixform import ColSums, MatProd, Ones, RowBroadcast, RowSums, Tr, entries_agree, to_matrix_form
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


def test_entry_check_proves_equal_values_written_over_different_denominators():
    # found by Hypothesis: the two sides of a typed activation's δ put atan(5) into denominators
    # written differently; expand alone leaves them apart, a common denominator shows the zero
    from derive.matrixform import _difference_vanishes

    t5, t56, t53 = sp.atan(5), sp.atan(sp.Rational(5, 6)), sp.atan(sp.Rational(5, 3))
    entry = -108 * (3 / (26 * (1 + t5**2)) + sp.Rational(45, 34) + 3 * t53) * t56 / 61
    got = -(162 / (793 * (1 + t5**2)) + sp.Rational(2430, 1037) + 324 * t53 / 61) * t56
    assert _difference_vanishes(entry - got)
    assert not _difference_vanishes(entry - got * sp.Rational(1001, 1000))


def test_typed_activation_with_nested_arctangents_is_derived():
    from derive.derivation import derive
    from derive.model import build_model, make_spec

    d = derive(build_model(make_spec(1, "atan(atan(3*z)) + 3*atan(z)*z", None, "1.5*atan(a-y)**2")))
    assert all(result.recognition_proved for result in d.sample.results.values())


@pytest.mark.parametrize("value", [sp.S.One, sp.Integer(-3), sp.sqrt(2)])
def test_a_constant_formula_is_that_constant_times_an_array_of_ones(value):
    """∂C/∂a of a linear loss is one number in every entry: c·𝟏 shaped like the activations (it
    was the bare number, which the entry check indexed out of range)."""
    q, s = index("q", L2), sample_index("s")
    for free, array in (((q,), sym("a", 2)), ((q, s), sym("A", 2))):
        matrix = to_matrix_form(value, free)
        assert matrix == value * Ones(array)
        assert entries_agree(value, matrix, free)
        assert not entries_agree(value, (value + 1) * Ones(array), free)


def test_a_number_multiplies_a_vector_and_a_broadcast_row_is_written_out():
    """1ᵀx of one sample is a number: it scales a vector (no ⊙ between a scalar and a vector). Over a
    minibatch 1ᵀX is a row, which the Hadamard product takes only once it is spread over the rows."""
    from derive.ops import ColSums
    from derive.printing import array_shape, latex

    a, y = Q("a", 4).symbol, Q("y").symbol
    A, Y = Q("A", 4).symbol, Q("Y").symbol
    sample = a * (a - y) - ColSums(a * (a - y)) * a
    assert array_shape(ColSums(a * (a - y))) == (1, 1) and array_shape(a) == ("n", 1)
    assert latex(sample, matrix=True) == (
        r"\left(a^{(4)} - y\right) \odot a^{(4)} - \left(\mathbf{1}^{\top} \left(\left(a^{(4)} - y\right) \odot a^{(4)}\right)"
        r"\right) a^{(4)}")
    batch = A * (A - Y) - ColSums(A * (A - Y)) * A
    assert array_shape(ColSums(A * (A - Y))) == (1, "n")
    assert latex(batch, matrix=True) == (
        r"\left(A^{(4)} - Y\right) \odot A^{(4)} - \left(\mathbf{1} \mathbf{1}^{\top} \left(\left(A^{(4)} - Y\right) \odot "
        r"A^{(4)}\right)\right) \odot A^{(4)}")
    # two vectors stay a Hadamard product
    assert latex(a * (a - y), matrix=True) == r"\left(a^{(4)} - y\right) \odot a^{(4)}"
