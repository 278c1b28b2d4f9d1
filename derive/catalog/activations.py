"""Activation functions g(z), one entry each.

Element-wise activations are a SymPy expression in the scalar `z` of `derive.notation`; parameters
(the slope of leaky_relu, the α of elu) are symbols bound to exact values when the entry is chosen
(`--act leaky_relu:0.2`). Softmax and log-softmax are the vector activations: their entries build
a_i = exp(z_i) / Σ_k exp(z_k) and a_i = z_i − log Σ_k exp(z_k) at index level (see `layers`).
Derivatives are never stored: `rewrite.activation_derivative` computes them.

Besides a name, `--act` accepts an expression in z (`derive.catalog.custom`), which becomes an entry
of the same kind.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import sympy as sp

from derive.catalog.constants import SELU_ALPHA, SELU_SCALE
from derive.catalog.params import Parameter, ParameterisedEntry, bind_parameters, names_an_entry
from derive.errors import DeriveError
from derive.notation import Z

VECTOR_KINDS = ("softmax", "log_softmax")


@dataclass(frozen=True)
class Activation(ParameterisedEntry):
    name: str  # catalog name, or "custom" for a user-written expression
    title: str
    expr: sp.Expr | None  # g(z) for element-wise activations; None for the vector activations
    kind: str = "elementwise"  # or "softmax", "log_softmax"
    output_only: bool = False
    in_unit_interval: bool = False  # range inside (0, 1): allowed before a log-loss
    params: tuple[Parameter, ...] = field(default=())
    values: tuple[sp.Rational, ...] = field(default=())  # bound parameter values (empty: the family)
    source: str | None = None  # the user's text, for a user-written activation

    @property
    def is_softmax(self) -> bool:
        return self.kind == "softmax"

    @property
    def is_log_softmax(self) -> bool:
        return self.kind == "log_softmax"

    @property
    def is_vector(self) -> bool:
        """Not element-wise: each output depends on every pre-activation of the layer."""
        return self.kind in VECTOR_KINDS

    def entry(self, z_entry: sp.Expr) -> sp.Expr:
        """g applied to one entry (element-wise activations)."""
        if self.is_vector:
            raise TypeError(f"{self.name} is not element-wise")
        return self.expr.xreplace({Z: z_entry})


ALPHA = sp.Symbol("alpha", real=True)
_SQRT2 = sp.sqrt(2)



def _activations() -> tuple[Activation, ...]:
    return (
        Activation("identity", "identity", Z),
        Activation("sigmoid", "logistic sigmoid", 1 / (1 + sp.exp(-Z)), in_unit_interval=True),
        Activation("tanh", "hyperbolic tangent", sp.tanh(Z)),
        Activation("relu", "rectified linear unit", sp.Max(0, Z)),
        Activation(
            "leaky_relu",
            "leaky rectified linear unit",
            sp.Piecewise((Z, Z > 0), (ALPHA * Z, True)),
            params=(Parameter("alpha", ALPHA, sp.Rational(1, 100), "the slope for z ≤ 0", sp.S.Zero, sp.S.One,
                              upper_open=True),),
        ),
        Activation(
            "elu",
            "exponential linear unit",
            sp.Piecewise((Z, Z > 0), (ALPHA * (sp.exp(Z) - 1), True)),
            params=(Parameter("alpha", ALPHA, sp.S.One, "the scale of the branch z ≤ 0", sp.S.Zero, sp.Integer(100),
                              lower_open=True),),
        ),
        Activation(
            "selu",
            "scaled exponential linear unit",
            SELU_SCALE * sp.Piecewise((Z, Z > 0), (SELU_ALPHA * (sp.exp(Z) - 1), True)),
        ),
        Activation("softplus", "softplus", sp.log(1 + sp.exp(Z))),
        Activation("softsign", "softsign", Z / (1 + sp.Abs(Z))),
        Activation("silu", "sigmoid linear unit (swish)", Z / (1 + sp.exp(-Z))),
        Activation("gelu", "Gaussian error linear unit (exact, with erf)", Z / 2 * (1 + sp.erf(Z / _SQRT2))),
        Activation(
            "gelu_tanh",
            "Gaussian error linear unit (tanh approximation)",
            Z / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (Z + sp.Rational(44715, 10**6) * Z**3))),
        ),
        Activation("mish", "mish", Z * sp.tanh(sp.log(1 + sp.exp(Z)))),
        Activation("hard_tanh", "hard hyperbolic tangent", sp.Piecewise((-1, Z <= -1), (1, Z >= 1), (Z, True))),
        Activation("softmax", "softmax", None, kind="softmax", output_only=True, in_unit_interval=True),
        Activation("log_softmax", "log-softmax", None, kind="log_softmax", output_only=True),
    )


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _activations()}
ALIASES = {"swish": "silu", "linear": "identity", "hardtanh": "hard_tanh", "logistic": "sigmoid"}



def hidden_names() -> list[str]:
    return [name for name, a in ACTIVATIONS.items() if not a.output_only]


def resolve_activation(text: str, *, option: str = "--act") -> Activation:
    """The catalog entry named by `text` (`name` or `name:value…`), or a user-written expression in z.

    Raises DeriveError with a one-line message for an unknown name, bad parameters or an expression
    that the safe parser refuses.
    """
    raw = str(text).strip()
    name, colon, rest = raw.partition(":")
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in ACTIVATIONS:
        entry = ACTIVATIONS[key]
        texts = rest.split(":") if colon else []
        return entry.bind(bind_parameters(key, entry.params, texts, option))
    if names_an_entry(name, colon, raw, ("z",)):
        accepted = ", ".join(ACTIVATIONS)
        close = difflib.get_close_matches(key, list(ACTIVATIONS) + list(ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DeriveError(
            f"invalid value for {option}: unknown activation {raw!r}{hint}; accepted: {accepted}, "
            f"or an expression in z such as 'z*tanh(z)'"
        )
    from derive.catalog.custom import custom_activation  # the parser is only needed for expressions

    return custom_activation(raw, option=option)
