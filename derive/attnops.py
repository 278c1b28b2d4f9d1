"""Whole-array operations of attention: the softmax over the key axis (with the causal mask) and the
sum over the key axis, with their recognition in index expressions.

Attention arrays keep the derivation's index order with the sample index last: scores and weights
are (H, T, T, m) per minibatch — heads, query tokens j, key tokens u — and (H, T, T) per sample.
Both operations act along the key axis, the last axis but the sample's:

* `KeySoftmax(S, causal, batch)`: α[h,j,u] = M[j,u] e^{S[h,j,u]} / Σ_u′ M[j,u′] e^{S[h,j,u′]}, M the
  causal mask [u ≤ j] or 1; computed without overflow (the largest visible score subtracted first);
* `KeySum(X, batch)`: Σ_u X[h,j,u], kept as an axis of length 1 so that it broadcasts back (the
  "rowsum" of the readable score error dS = A ⊙ (dA − rowsum(dA ⊙ A))).

Each is an `ops.Op`: exact evaluation for the entry-by-entry proofs, LaTeX, NumPy code calling a
helper printed into model.py, and the workspace lowering.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from derive.indexing import Iverson
from derive.ops import Op, _code_operand

HELPERS = {
    "_key_softmax": '''def _key_softmax(S, causal, batch, out=None):
    """Softmax over the key axis of scores S (heads, queries, keys[, samples]); with `causal`, key u
    is seen by query j only when u <= j (a weight of exactly 0 otherwise). Computed in `out` (a new
    array without it) pass by pass: the largest visible score subtracted, exp and the division by the
    sum in place, so that the workspace form allocates only the row maxima and sums."""
    axis = -2 if batch else -1
    T = S.shape[axis]
    keep = np.tril(np.ones((T, T), dtype=bool)).reshape((T, T) + (1,) * (-axis - 1)) if causal else True
    top = np.max(S.real, axis=axis, keepdims=True, where=keep, initial=-np.inf)
    E = np.subtract(S, top, out=np.empty_like(S) if out is None else out)
    if causal:
        np.copyto(E, -np.inf, where=~keep)  # a masked score never reaches exp (no overflow)
    np.exp(E, out=E)
    return np.divide(E, np.sum(E, axis=axis, keepdims=True), out=E)''',
    "_key_sum": '''def _key_sum(X, batch, out=None):
    """Σ over the key axis of X (heads, queries, keys[, samples]), kept as an axis of length 1."""
    return np.sum(X, axis=-2 if batch else -1, keepdims=True, out=out)''',
}


class KeyMask(Iverson):
    """The causal mask [u ≤ j] as a factor of attention's rules: an Iverson bracket that SymPy may
    reorder and collect like any number (the plain bracket of a relation is not known to commute,
    which keeps equal factors such as 1/Σ from combining)."""

    is_commutative = True


def causal_mask(j, u) -> sp.Expr:
    """[u ≤ j]: query token j sees the key tokens up to itself."""
    return KeyMask(sp.Le(u, j))


_namespace: dict = {"np": np}
for _source in HELPERS.values():
    exec(_source, _namespace)  # noqa: S102 - our own source, printed into model.py as well
key_softmax = _namespace["_key_softmax"]


def _use(printer, name: str) -> None:
    printer.helpers.add(name)


def _key_axis(batch) -> int:
    return -2 if int(batch) else -1


class KeySoftmax(Op):
    """The softmax over the key axis. Args: the scores, 1 for the causal mask (else 0), 1 for a
    minibatch (else 0)."""

    nargs = 3

    @property
    def operands(self):
        return self.args[:1]

    def evaluate(self, value):
        S = value(self.args[0])
        axis, causal = _key_axis(self.args[2]), bool(int(self.args[1]))
        if S.dtype != object:  # numbers (the complex-step reference): the helper of model.py
            return key_softmax(S, causal, bool(int(self.args[2])))
        S = np.moveaxis(S, axis, -1)
        out = np.empty(S.shape, dtype=object)
        T = S.shape[-1]
        query_axis = S.ndim - 2 if int(self.args[2]) == 0 else S.ndim - 3  # after the move
        for pos in np.ndindex(*S.shape[:-1]):
            j = pos[query_axis]
            seen = [u for u in range(T) if not causal or u <= j]
            total = sum(sp.exp(S[pos + (u,)]) for u in seen)
            for u in range(T):
                out[pos + (u,)] = sp.exp(S[pos + (u,)]) / total if u in seen else sp.S.Zero
        return np.moveaxis(out, -1, axis)

    def _derive_latex(self, printer, **_):
        name = r"\operatorname{softmax}_{\text{keys}}"
        mask = r"\mathcal{M} \odot " if int(self.args[1]) else ""
        inner = printer._print(self.args[0])
        return rf"{name}\left({mask}{inner}\right)" if not mask else rf"{name}\left({inner}; \mathcal{{M}}\right)"

    def _numpycode(self, printer, **_):
        _use(printer, "_key_softmax")
        return f"_key_softmax({printer._print(self.args[0])}, {bool(int(self.args[1]))}, {bool(int(self.args[2]))})"

    def lower(self, lowering):
        _use(lowering.printer, "_key_softmax")
        return lowering.helper_call(self, "_key_softmax", self.args[:1],
                                    f"{bool(int(self.args[1]))}, {bool(int(self.args[2]))}")

    def shape(self, shape_of):
        return shape_of(self.args[0])


class KeySum(Op):
    """Σ over the key axis, kept as an axis of length 1. Args: the array, 1 for a minibatch."""

    nargs = 2

    @property
    def operands(self):
        return self.args[:1]

    def evaluate(self, value):
        x = value(self.args[0])
        return x.sum(axis=_key_axis(self.args[1]), keepdims=True)

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{rowsum}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer, **_):
        _use(printer, "_key_sum")
        return f"_key_sum({_code_operand(printer, self.args[0])}, {bool(int(self.args[1]))})"

    def lower(self, lowering):
        _use(lowering.printer, "_key_sum")
        return lowering.helper_call(self, "_key_sum", self.args[:1], str(bool(int(self.args[1]))))

    def shape(self, shape_of):
        x = list(shape_of(self.args[0]))
        x[_key_axis(self.args[1])] = 1
        return tuple(x)


ATTENTION_FUNCTIONS = (KeySoftmax, KeySum)


def recognise(expr: sp.Expr, free: tuple) -> sp.Expr | None:
    """KeySoftmax(S) for M[j,u] e^{S[h,j,u(,s)]} / Σ_w M[j,w] e^{S[h,j,w(,s)]} read at `free` =
    (h, j, u(, s)); None for anything else."""
    if not expr.is_Mul or len(free) not in (3, 4):
        return None
    batch = len(free) == 4
    h, j, u = free[:3]
    factors = list(expr.args)
    exps = [f for f in factors if isinstance(f, sp.exp)]
    masks = [f for f in factors if isinstance(f, Iverson)]
    norms = [f for f in factors if f.is_Pow and f.exp == -1 and isinstance(f.base, sp.Sum)]
    if len(exps) != 1 or len(norms) != 1 or len(masks) > 1 or len(exps) + len(norms) + len(masks) != len(factors):
        return None
    entry = exps[0].args[0]
    if not isinstance(entry, sp.Indexed) or tuple(entry.indices) != tuple(free):
        return None
    causal = bool(masks)
    if causal and masks[0] != causal_mask(j, u):
        return None
    total = norms[0].base
    if len(total.limits) != 1:
        return None
    w, low, high = total.limits[0]
    if (low, high) != (u.lower, u.upper) and (low, high) != (w.lower, w.upper):
        return None
    expected = sp.exp(entry.base[(h, j, w, *free[3:])])
    if causal:
        expected = causal_mask(j, w) * expected
    if total.function != expected:
        return None
    from derive import notation

    return KeySoftmax(notation._vector_symbol(str(entry.base.label)), sp.Integer(causal), sp.Integer(batch))


__all__ = ["KeyMask", "causal_mask", "KeySoftmax", "KeySum", "ATTENTION_FUNCTIONS", "HELPERS", "recognise"]
