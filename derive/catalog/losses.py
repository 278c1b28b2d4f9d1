"""Loss functions ℓ(a, y) for one output unit; the loss of a sample is Σ_i ℓ(a_i, y_i).

`target` states what the targets must satisfy; the engine uses it (softmax + cross entropy needs
Σ_i y_i = 1) and so do verification and the generated examples when they sample targets:
"real" (any number), "probability" (each y ≥ 0, Σ y = 1), "binary" (0 ≤ y ≤ 1) or "unit"
(0 < y < 1, for user-written losses that take log y).

Besides a name, `--loss` accepts an expression in a and y (`derive.catalog.custom`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import sympy as sp

from derive.catalog.params import Parameter, ParameterisedEntry, bind_parameters, names_an_entry
from derive.errors import DeriveError
from derive.notation import A, Y


@dataclass(frozen=True)
class Loss(ParameterisedEntry):
    name: str
    title: str
    expr: sp.Expr  # ℓ(a, y) per output unit
    target: str = "real"  # "real", "probability", "binary" or "unit"
    default_output: str | None = None  # output activation used when --out-act is not given
    needs_unit_interval: bool = False  # log(a) requires outputs in (0, 1)
    refused_outputs: tuple[str, ...] = ()  # output activations this loss does not make sense with
    required_output: str | None = None  # the only output activation this loss accepts
    params: tuple[Parameter, ...] = field(default=())
    values: tuple[sp.Rational, ...] = field(default=())
    source: str | None = None  # the user's text, for a user-written loss

    def entry(self, a_entry: sp.Expr, y_entry: sp.Expr) -> sp.Expr:
        return self.expr.xreplace({A: a_entry, Y: y_entry})


DELTA = sp.Symbol("delta", positive=True)


def _losses() -> tuple[Loss, ...]:
    r = A - Y
    return (
        Loss("mse", "squared error", r**2 / 2),  # of one sample; the cost, its mean over the samples, is the MSE
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
        Loss("mae", "absolute error", sp.Abs(r)),
        Loss(
            "huber",
            "Huber loss",
            sp.Piecewise((r**2 / 2, sp.Abs(r) <= DELTA), (DELTA * (sp.Abs(r) - DELTA / 2), True)),
            params=(Parameter("delta", DELTA, sp.S.One, "where the quadratic part turns linear", sp.S.Zero,
                              sp.Integer(10**6), lower_open=True),),
        ),
        Loss(
            "nll",
            "negative log-likelihood of log-probabilities",
            -Y * A,
            target="probability",
            default_output="log_softmax",
            required_output="log_softmax",
        ),
        Loss(
            "kl",
            "Kullback-Leibler divergence",
            Y * sp.log(Y / A),
            target="probability",
            default_output="softmax",
            needs_unit_interval=True,
        ),
    )


LOSSES: dict[str, Loss] = {l.name: l for l in _losses()}
ALIASES = {"cross_entropy": "ce", "kl_div": "kl"}



def resolve_loss(text: str) -> Loss:
    """The catalog loss named by `text` (`name` or `name:value`), or a user-written expression in a and y."""
    raw = str(text).strip()
    name, colon, rest = raw.partition(":")
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in LOSSES:
        entry = LOSSES[key]
        return entry.bind(bind_parameters(key, entry.params, rest.split(":") if colon else [], "--loss"))
    if names_an_entry(name, colon, raw, ("a", "y")):
        close = difflib.get_close_matches(key, list(LOSSES) + list(ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DeriveError(
            f"invalid value for --loss: unknown loss {raw!r}{hint}; accepted: {', '.join(LOSSES)}, "
            f"or an expression in a and y such as '(a-y)**4/4'"
        )
    from derive.catalog.custom import custom_loss

    return custom_loss(raw)
