"""The selector of max pooling: [x_k is the first maximum of x_0 … x_{n−1}].

max(x_0, …, x_{n−1}) = Σ_k x_k · FirstMax(k, x_0, …, x_{n−1}). The selector is 1 for exactly one k:
the first index whose value is the largest (PyTorch's max_pool2d sends the error of a window to
that entry when several are equal). It is constant wherever the maximum is unique, so its partial
derivatives are 0 there; at a tie the maximum has no derivative and the selector states which
one-sided derivative the formulas use. With numbers for its arguments it evaluates to 0 or 1.
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
