"""Activation functions g(z), one entry each.

Element-wise activations are a SymPy expression in the scalar `z` of `derive.notation`. Softmax is
the one vector activation: its entry builds a_i = exp(z_i) / Σ_k exp(z_k) at index level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.errors import DeriveError
from derive.notation import Z


@dataclass(frozen=True)
class Activation:
    name: str
    title: str
    expr: sp.Expr | None  # g(z) for element-wise activations; None for softmax
    kind: str = "elementwise"  # or "softmax"
    output_only: bool = False
    in_unit_interval: bool = False  # range inside (0, 1): allowed before a log-loss
    kink_note: str | None = None  # convention used at a non-differentiable point
    params: tuple[tuple[str, sp.Expr], ...] = field(default=())

    @property
    def is_softmax(self) -> bool:
        return self.kind == "softmax"

    def softmax_entry(self, z_base: sp.IndexedBase, i: sp.Idx, k: sp.Idx) -> sp.Expr:
        """a_i = exp(z_i) / Σ_k exp(z_k); k is the summation index over the same layer."""
        if not self.is_softmax:
            raise TypeError(f"{self.name} is element-wise")
        return sp.exp(z_base[i]) / sp.Sum(sp.exp(z_base[k]), (k, k.lower, k.upper))

    def entry(self, z_entry: sp.Expr) -> sp.Expr:
        """g applied to one entry (element-wise activations)."""
        if self.is_softmax:
            raise TypeError("softmax is not element-wise")
        return self.expr.xreplace({Z: z_entry})


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", "identity", Z),
        Activation("sigmoid", "logistic sigmoid", 1 / (1 + sp.exp(-Z)), in_unit_interval=True),
        Activation("tanh", "hyperbolic tangent", sp.tanh(Z)),
        Activation(
            "relu",
            "rectified linear unit",
            sp.Max(0, Z),
            kink_note="relu_kink",
        ),
        Activation("softmax", "softmax", None, kind="softmax", output_only=True, in_unit_interval=True),
    )
}


def resolve_activation(text: str, *, option: str = "--act") -> Activation:
    """The catalog entry named `text`, or a one-line error listing the accepted names."""
    key = text.strip().lower()
    if key in ACTIVATIONS:
        return ACTIVATIONS[key]
    accepted = ", ".join(ACTIVATIONS)
    raise DeriveError(f"invalid value for {option}: unknown activation {text!r}; accepted: {accepted}")
