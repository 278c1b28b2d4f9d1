"""The selector of max pooling: [x_k is the first maximum of x_0 … x_{n−1}].

max(x_0, …, x_{n−1}) = Σ_k x_k · FirstMax(k, x_0, …, x_{n−1}). The selector is 1 for exactly one k:
the first index whose value is the largest (PyTorch's max_pool2d sends the error of a window to
that entry when several are equal). It is constant wherever the maximum is unique, so its partial
derivatives are 0 there; at a tie the maximum has no derivative and the selector states which
one-sided derivative the formulas use. With numbers for its arguments it evaluates to 0 or 1.

With padding (PyTorch pads a max-pooling window with −∞) a window at the border has fewer entries:
`FirstMaxInside(k, g_0, …, g_{n−1}, x_0, …, x_{n−1})` takes, for each entry, the index guard g_j
(1 if the entry lies inside the input, 0 if it is padding) and selects among the entries inside
only, so a padded position never wins — what −∞ does, without a −∞ in the rule.
"""

from __future__ import annotations

import sympy as sp


class FirstMax(sp.Function):
    """FirstMax(k, x_0, …, x_{n−1}) = 1 if x_k > x_j for every j < k and x_k ≥ x_j for every j > k, else 0."""

    @classmethod
    def eval(cls, k, *xs):
        if not k.is_Integer or not all(x.is_number for x in xs):
            return None
        values = [complex(x).real if not x.is_real else x for x in xs]
        best = max(range(len(values)), key=lambda j: (values[j], -j))
        return sp.S.One if best == int(k) else sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.S.Zero  # piecewise constant: no change away from ties

    def _derive_latex(self, printer, **_):
        k, *xs = self.args
        return rf"\left[\operatorname{{argmax}}_{{\text{{first}}}} = {printer._print(k)}\right]"


class FirstMaxInside(FirstMax):
    """FirstMaxInside(k, g_0, …, g_{n−1}, x_0, …, x_{n−1}) = 1 if g_k = 1 and x_k is the first maximum
    of the entries x_j with g_j = 1, else 0 (an entry with g_j = 0 is padding: −∞)."""

    @classmethod
    def eval(cls, k, *args):
        n = len(args) // 2
        guards, xs = args[:n], args[n:]
        if not k.is_Integer or not all(g.is_number for g in guards) or not all(x.is_number for x in xs):
            return None
        inside = [j for j in range(n) if g_is_one(guards[j])]
        if not inside:
            return None  # a window of padding only: refused before any rule is written (layers/conv.py)
        values = {j: complex(xs[j]).real if not xs[j].is_real else xs[j] for j in inside}
        best = max(inside, key=lambda j: (values[j], -j))
        return sp.S.One if best == int(k) else sp.S.Zero


def g_is_one(guard) -> bool:
    """An index guard's value: 1 (inside) or 0 (padding)."""
    if guard not in (0, 1):
        raise ValueError(f"an index guard is 0 or 1, not {guard}")
    return guard == 1
