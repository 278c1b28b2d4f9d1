"""Loss functions ℓ(a, y) for one output unit; the loss of a sample is Σ_i ℓ(a_i, y_i).

`target` states what the targets must satisfy; the engine uses it (softmax + cross entropy needs
Σ_i y_i = 1) and so do verification and the generated examples when they sample targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import DeriveError
from derive.notation import A, Y


@dataclass(frozen=True)
class Loss:
    name: str
    title: str
    expr: sp.Expr  # ℓ(a, y) per output unit
    target: str = "real"  # "real", "probability" (each y ≥ 0, Σ y = 1) or "binary" (0 ≤ y ≤ 1)
    default_output: str | None = None  # output activation used when --out-act is not given
    needs_unit_interval: bool = False  # log(a) requires outputs in (0, 1)
    refused_outputs: tuple[str, ...] = ()  # output activations this loss does not make sense with

    def entry(self, a_entry: sp.Expr, y_entry: sp.Expr) -> sp.Expr:
        return self.expr.xreplace({A: a_entry, Y: y_entry})


LOSSES: dict[str, Loss] = {
    l.name: l
    for l in (
        Loss("mse", "mean squared error", (A - Y) ** 2 / 2),
        Loss(
            "ce",
            "categorical cross entropy",
            -Y * sp.log(A),
            target="probability",
            default_output="softmax",
            needs_unit_interval=True,
        ),
        Loss(
            "bce",
            "binary cross entropy",
            -(Y * sp.log(A) + (1 - Y) * sp.log(1 - A)),
            target="binary",
            default_output="sigmoid",
            needs_unit_interval=True,
            # each output is an independent probability; softmax outputs are coupled, and log(1 - a)
            # of a softmax output has no overflow-free form for the generated code
            refused_outputs=("softmax",),
        ),
    )
}


def resolve_loss(text: str) -> Loss:
    key = text.strip().lower()
    if key in LOSSES:
        return LOSSES[key]
    raise DeriveError(f"invalid value for --loss: unknown loss {text!r}; accepted: {', '.join(LOSSES)}")
