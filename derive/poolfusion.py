"""Max pooling before relu in the fused training step: the relu pass then runs over the pooled array.

A relu followed by max pooling, A = relu(Z), P = maxpool(A), costs three passes over the large
array Z in a training step: relu in the forward pass, and H(Z) and its product with the routed
error in the backward pass. Both are monotone, so they commute, and the step can pool first:

* forward:  maxpool(relu(Z)) = relu(maxpool(Z)) exactly (max is exact; −∞ padding never wins);
* backward: H(Z) ⊙ route_A(G) = route_Z(H(P) ⊙ G), where route_X(G) sends each window's error to
  the window's first maximum of X. If P > 0 the window's maximum is positive, so the first maximum
  of relu(Z) and of Z are the same entry, where H(Z) = 1; if P = 0 every entry of the window has
  Z ≤ 0, and the original sends the error to an entry where H(Z) = 0. With overlapping windows an
  entry receives the sum over the windows whose first maximum it is, each term zero or not by the
  same argument. Only zeros may differ in sign (−0 for 0), which no later sum sees.

The relu and its derivative then act on the pooled array (a quarter of Z for 2 × 2 windows), and
A itself is no longer computed. Only `sgd_step` is rewritten (its lowering may round differently,
see `Lowering`); `gradients_into` keeps the printed formulas, bit for bit. The rewrite is applied
only where A is read by nothing but the pooling and the error formula of this shape; the finite-
difference check of model.py and the tests comparing sgd_step with `gradients` cover it.
"""

from __future__ import annotations

import sympy as sp

from derive.convops import MaxPool, MaxPoolGrad
from derive.derivation import Derivation


def _is_relu_of(expr: sp.Expr) -> sp.Symbol | None:
    """Z when expr is max(0, Z) for an array symbol Z."""
    if isinstance(expr, sp.Max) and len(expr.args) == 2 and sp.S.Zero in expr.args:
        (inner,) = [a for a in expr.args if a != 0]
        return inner if isinstance(inner, sp.Symbol) else None
    return None


def _fused_error(expr: sp.Expr, Z: sp.Symbol, A: sp.Symbol, P: sp.Symbol) -> sp.Expr | None:
    """H(Z, 0) ⊙ MaxPoolGrad(G, A, …) → MaxPoolGrad(H(P, 0) ⊙ G, Z, …), or None for another shape."""
    if not expr.is_Mul or len(expr.args) != 2:
        return None
    step = [a for a in expr.args if isinstance(a, sp.Heaviside)]
    grad = [a for a in expr.args if isinstance(a, MaxPoolGrad)]
    if len(step) != 1 or len(grad) != 1:
        return None
    (step,), (grad,) = step, grad
    if step.args[0] != Z or len(step.args) < 2 or step.args[1] != 0 or grad.args[1] != A or grad.args[0].has(A):
        return None
    return MaxPoolGrad(sp.Heaviside(P, 0) * grad.args[0], Z, *grad.args[2:])


def pool_before_relu(derivation: Derivation, forms: dict) -> dict:
    """`forms` with each relu → max-pooling pair of the forward pass and its error rewritten (see the
    module docstring); every other formula unchanged."""
    network = derivation.model.network
    results = derivation.batch.results
    out = dict(forms)
    updates = [step.rhs for steps in derivation.updates.values() for step in steps]
    for node in network.layers:
        pooled = out.get(node.output)
        if not isinstance(pooled, MaxPool):
            continue
        A = pooled.args[0]
        relu_key = next((n.output for n in network.layers if results[n.output].matrix_lhs == A), None)
        Z = _is_relu_of(out[relu_key]) if relu_key is not None else None
        if Z is None:
            continue
        P = results[node.output].matrix_lhs
        readers = [k for k, f in out.items() if k not in (relu_key, node.output) and f.has(A)]
        if len(readers) != 1 or any(rhs.has(A) for rhs in updates):
            continue
        fused = _fused_error(out[readers[0]], Z, A, P)
        if fused is None:
            continue
        out[node.output] = sp.Max(0, MaxPool(Z, *pooled.args[1:]))
        out[readers[0]] = fused
    return out
