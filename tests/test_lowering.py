"""The in-place lowering (derive/workspace.py) on its own: every kind of expression it may meet.

Each expression is evaluated twice: as the plain code NumPyCodePrinter prints (what `gradients`
does) and as the lowered, allocated program (what `gradients_into` does). The results must be equal
bit for bit, which is what evaluating "in the printer's order" promises. The tests also check the
allocation rules the module docstring states.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.codegen import NumPyCodePrinter, helpers_used, logsumexp_helper, softmax_helper
from derive.matrixform import ColBroadcast, ColSums, MatProd, Ones, RowBroadcast, RowSums, Tr
from derive.notation import BATCH_SIZE, LEARNING_RATE, Q, quantity_of
from derive.rewrite import LogSumExp, Softmax, Softplus, scalar_onto_left_operand
from derive.workspace import CannotLower, Instruction, Lowering, Pool, Program, Transposed, Value, allocate, quantity_shape

DIMS = {"n0": 3, "n1": 4, "n2": 5, "m": 6}
A0, A1, W2, b2, Y = (Q("A", 0).symbol, Q("A", 1).symbol, Q("W", 2).symbol, Q("b", 2).symbol, Q("Y").symbol)
Z2 = Q("Z", 2).symbol
m, eta = BATCH_SIZE, LEARNING_RATE


def arguments() -> dict[str, Value]:
    from derive.model import build_model, make_spec

    network = build_model(make_spec(2, "sigmoid")).network
    out = {}
    for q in (Q("A", 0), Q("A", 1), Q("W", 2), Q("b", 2), Q("Y")):
        out[q.code()] = Value(quantity_shape(q, network), name=q.code(), argument=True)
    out["A0"] = Value(("n0", "m"), name="A0", argument=True)
    return out


def data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"A0": (3, 6), "A1": (4, 6), "W2": (5, 4), "b2": (5, 1), "Y": (5, 6)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def namespace(arrays: dict) -> dict:
    ns = {"np": np, "m": DIMS["m"], "lr": 0.3, **{k: v.copy() for k, v in arrays.items()}}
    for helper in (logsumexp_helper(), softmax_helper()):
        exec("\n".join(helper), ns)  # noqa: S102 - our own printer's output
    return ns


def lowered(statements, arrays, *, fold=False):
    """Run statements [(target, expr)] as a lowered program; return the namespace after it."""
    printer = NumPyCodePrinter()
    lowering = Lowering(printer, arguments(), exact=not fold)
    for target, expr in statements:
        lowering.statement(target, expr, comment=target)
    program = Program(lowering, [lowering.values[statements[-1][0]]])
    pool = Pool()
    allocate(program.instructions, pool, program.outputs)
    ns = namespace(arrays)
    for name, shape in zip(pool.names(), pool.shapes):
        ns[name] = np.full(tuple(DIMS.get(d, d) for d in shape), np.nan)
    for dim in ("m", "n0", "n1", "n2"):
        ns[f"mm_{dim}"] = np.matmul
    exec("\n".join(program.lines()), ns)  # noqa: S102
    return ns, program


def plain(statements, arrays):
    printer = NumPyCodePrinter()
    ns = namespace(arrays)
    for target, expr in statements:
        ns[target] = eval(printer._print(expr), ns)  # noqa: S307 - our own printer's output
    return ns


Z2_FORWARD = ("Z2", ColBroadcast(b2) + MatProd(W2, A1))
EXPRESSIONS = {
    "sigmoid via tanh": sp.tanh(A1 / 2) / 2 + sp.Rational(1, 2),
    "tanh derivative": (1 - A1**2) * A1,
    "negative first term": -(A1**2) + A1,
    "two negative terms": -2 * A1 - A1**3,
    "negated product": -A1 * sp.exp(A1),
    "division by a product": A1 / (m * eta),
    "negative power": (1 + A1**2) ** -1,
    "reciprocal square root": 1 / sp.sqrt(1 + A1**2),
    "rational power": sp.Abs(A1) ** sp.Rational(3, 2),
    "relu and its derivative": sp.Max(0, A1) + sp.Heaviside(A1, 0) * A1,
    "min of three": sp.Min(0, A1, 1 - A1),
    "softplus": Softplus(A1) - sp.log(1 + A1**2),
    "functions": sp.sin(A1) * sp.cos(A1) + sp.exp(-A1) - sp.tanh(3 * A1),
    "scalars first": 2 * m * A1 + eta / m,
    "row sums": RowSums(A1) / m + RowSums(A1 * A1),
    "column sums": ColSums(A1 * sp.exp(A1)) - 1,
    "products": MatProd(Tr(W2), Y) * A1,
    "product scaled": MatProd(Y / m, Tr(A1)) - W2,
    "log-sum-exp": A1 - RowBroadcast(LogSumExp(A1)),
    "softmax": Softmax(A1),
    "no in-place rule": sp.Piecewise((A1, A1 > 0), (2 * A1, True)),
    "broadcast sum": -sp.exp(A1) * RowBroadcast(2 * ColSums(A1) + ColSums(A1**2)),
    "array of ones": 3 * Ones(A1) - Ones(A1) * A1,
}


def test_a_broadcast_sum_is_printed_as_one_operand():
    """−exp(A)⊙(1 (S + T)) printed without parentheses read −exp(A)*S + T (the log-softmax error of
    |a − y|³ was wrong in every generated model.py)."""
    arrays = data()
    got = plain([("A2", EXPRESSIONS["broadcast sum"])], arrays)["A2"]
    a = arrays["A1"]
    expected = -np.exp(a) * (2 * a.sum(axis=0, keepdims=True) + (a**2).sum(axis=0, keepdims=True))
    assert np.allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_lowered_program_gives_the_numbers_of_the_printed_code(name):
    statements = [("A2", EXPRESSIONS[name])]
    arrays = data()
    expected = plain(statements, arrays)["A2"]
    ns, program = lowered(statements, arrays)
    assert np.array_equal(ns["A2"], expected), np.max(np.abs(ns["A2"] - expected))
    kinds = {i.kind for i in program.instructions}
    assert ("expression" in kinds) == (name == "no in-place rule")  # everything else runs in place


def test_a_chain_of_formulas_reuses_values_and_gives_the_same_numbers():
    statements = [
        Z2_FORWARD,
        ("A2", Softmax(Z2)),
        ("delta2", Q("A", 2).symbol * (Q("A", 2).symbol - Y) - Q("A", 2).symbol * ColSums(Q("A", 2).symbol * (Q("A", 2).symbol - Y))),
        ("dW2", scalar_onto_left_operand(MatProd(Q("Delta", 2).symbol, Tr(A1)) / m)),
    ]
    arrays = data(1)
    expected = plain(statements, arrays)
    ns, program = lowered(statements, arrays)
    assert np.array_equal(ns["dW2"], expected["dW2"])  # earlier results may be overwritten once dead
    # A4*(A4 - Y) appears twice in Δ and is computed once
    subtracts = [i for i in program.instructions if i.call == "np.subtract" and "Y" in [getattr(a, "name", None) for a in i.args]]
    assert len(subtracts) == 1


def test_folding_scalars_changes_the_order_not_the_value():
    expr = -eta * A1 / m + A1
    arrays = data(2)
    expected = plain([("A2", expr)], arrays)["A2"]
    ns, program = lowered([("A2", expr)], arrays, fold=True)
    np.testing.assert_allclose(ns["A2"], expected, rtol=1e-15, atol=1e-15)
    scalings = [i for i in program.instructions if i.call == "np.multiply"]
    assert len(scalings) == 1 and "lr" in program.lines()[-2]  # one multiplication by −lr/m


# --------------------------------------------------------------------------------------------------
# allocation


def test_in_place_chains_use_one_array_and_products_never_overwrite_their_operands():
    statements = [Z2_FORWARD, ("A2", sp.tanh(Z2 / 2) / 2 + sp.Rational(1, 2)), ("P", MatProd(Tr(W2), Q("A", 2).symbol))]
    _, program = lowered(statements, data())
    forward = [i for i in program.instructions if i.out.shape == ("n2", "m")]
    assert len({i.out.buffer for i in forward}) == 1  # Z2, then A2 computed over it, in place
    for ins in program.instructions:
        if ins.kind == "product":
            assert ins.out.buffer not in {v.buffer for v in ins.reads()}


def test_a_result_pinned_to_a_gradient_array_is_computed_there():
    printer = NumPyCodePrinter()
    lowering = Lowering(printer, arguments())
    value = lowering.statement("db2", RowSums(Y) / m, comment="db2", pin="db2")
    allocate(lowering.instructions, Pool(), [value])
    assert [i.out.buffer for i in lowering.instructions] == ["db2", "db2"]  # no scratch array at all


def test_after_an_in_place_update_later_formulas_read_the_new_values():
    printer = NumPyCodePrinter()
    lowering = Lowering(printer, arguments(), exact=False)
    lowering.statement("P", MatProd(Tr(W2), Y), comment="P")
    new = lowering.statement("W2", W2 - eta * MatProd(Y, Tr(A1)), comment="W2", pin="W2", update=True)
    lowering.statement("Q", MatProd(Tr(W2), Y), comment="Q")  # the same expression, after the update
    lowering.check_updates()
    readers = [i.args[0].value for i in lowering.instructions if i.kind == "product" and isinstance(i.args[0], Transposed)]
    assert readers == [lowering.arguments["W2"], new]  # recomputed from the new W2, not reused
    # the safety net: an instruction that still read the old W2 after the update is refused
    old = Transposed(lowering.arguments["W2"])
    lowering.instructions.append(Instruction("product", "mm_n2", (old, lowering.arguments["Y"]), Value(("n1", "m"))))
    with pytest.raises(CannotLower, match="W2 is updated in place before its last use"):
        lowering.check_updates()


def test_lowering_refuses_to_use_a_quantity_before_it_is_computed():
    with pytest.raises(CannotLower, match="delta2"):
        Lowering(NumPyCodePrinter(), arguments()).statement("x", Q("Delta", 2).symbol * 2, comment="x")


def test_helpers_are_listed_only_when_the_code_calls_them():
    printer = NumPyCodePrinter()
    printer._print(Softmax(A1))
    assert [h[0] for h in helpers_used(printer)] == ["def _softmax(X):"]


# --------------------------------------------------------------------------------------------------
# the rewrites the code forms use


def test_sigmoid_as_tanh_is_proved_and_the_proof_can_fail():
    from derive.rewrite import exp_identity_holds, sigmoid_tanh_identity

    lhs, rhs, proved = sigmoid_tanh_identity()
    assert proved
    u = next(iter(lhs.free_symbols))
    assert not exp_identity_holds(lhs, (1 + sp.tanh(u / 2)) / 2, u)  # the wrong sign is caught


def test_moving_a_scalar_onto_the_left_operand_is_exact_on_every_derived_gradient():
    import random

    from conftest import derivation_for
    from derive.codegen import backward_order
    from derive.matrixform import evaluate_matrix_form

    rng = random.Random(0)
    for config in [(3, "sigmoid", "ce", None), (2, "relu", "mse", None), (3, "tanh", "mse", "softmax")]:
        d = derivation_for(*config[:3], config[3])
        for key in backward_order(d):
            original = d.batch.results[key].matrix_rhs.xreplace({m: 3})
            rewritten = scalar_onto_left_operand(original)
            arrays = {}
            for s in original.free_symbols:  # width 2, batch 3
                rows, cols = {"W": (2, 2), "b": (2, 1)}.get(quantity_of(s.name).kind, (2, 3))
                arrays[s.name] = np.array([[sp.Rational(rng.randint(-9, 9), 7) for _ in range(cols)] for _ in range(rows)])
            left, right = evaluate_matrix_form(original, arrays), evaluate_matrix_form(rewritten, arrays)
            assert all(sp.expand(a - b) == 0 for a, b in zip(left.flat, right.flat)), key
            if key.kind in ("grad_W", "grad_b"):
                assert rewritten != original  # the rule applied: (Δ/m) Aᵀ and (Δ/m) 1


def test_the_recursion_is_recognised_as_linear_in_the_error_and_other_forms_are_not():
    from derive.stepcode import linear_in

    D, W3, A2 = Q("Delta", 3).symbol, Q("W", 3).symbol, Q("A", 2).symbol
    assert linear_in(A2 * (1 - A2) * MatProd(Tr(W3), D), D)
    assert linear_in(D * A2 - A2 * ColSums(A2 * D), D)
    for nonlinear in (D * D, D + A2, sp.tanh(D), MatProd(Tr(W3), D) * D, ColSums(D) * D, A2):
        assert not linear_in(nonlinear, D), nonlinear
