"""Parameters of catalog entries (the slope of leaky_relu, the α of elu, the δ of huber).

A parameterised entry's expression holds a SymPy symbol per parameter; `leaky_relu:0.2` binds the
symbol to the exact rational 1/5 (parsed from the decimal text, never through a float), so the
derivation, the checks and the code all use the value the user typed. Values are checked against
the range in which the function is what its name says (a leaky_relu slope of 1.5 would make the
"leaky" branch the steeper one), with one-line errors.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

import sympy as sp

from derive.errors import DeriveError

MAX_PARAMETER = Decimal(10) ** 6
MAX_DIGITS = 30


@dataclass(frozen=True)
class Parameter:
    name: str
    symbol: sp.Symbol
    default: sp.Rational
    meaning: str
    lower: sp.Rational | None = None
    upper: sp.Rational | None = None
    lower_open: bool = False
    upper_open: bool = False

    def range_text(self) -> str:
        """'0 ≤ slope < 1', 'alpha > 0'."""
        parts = []
        if self.lower is not None:
            parts.append(f"{number_text(self.lower)} {'<' if self.lower_open else '≤'} ")
        parts.append(self.name)
        if self.upper is not None:
            parts.append(f" {'<' if self.upper_open else '≤'} {number_text(self.upper)}")
        if self.lower is None and self.upper is None:
            return f"{self.name} any number"
        return "".join(parts)

    def contains(self, value: sp.Rational) -> bool:
        if self.lower is not None and (value < self.lower or (self.lower_open and value == self.lower)):
            return False
        if self.upper is not None and (value > self.upper or (self.upper_open and value == self.upper)):
            return False
        return True


def number_text(value: sp.Rational) -> str:
    """Shortest exact decimal text of a rational with a finite decimal expansion ('0.01', '1'); else p/q."""
    value = sp.Rational(value)
    if value.is_Integer:
        return str(value)
    q, places = value.q, 0
    while q % 2 == 0 or q % 5 == 0:
        q //= 2 if q % 2 == 0 else 5
        places += 1
    if q != 1:
        return f"{value.p}/{value.q}"
    text = str(Decimal(value.p) / Decimal(value.q))
    return text if "E" not in text else format(Decimal(value.p) / Decimal(value.q), "f")


def parse_number(text: str, what: str, accepted: str) -> sp.Rational:
    """A decimal number as an exact rational: '0.01' → 1/100. No expressions, no infinities."""
    raw = text.strip()
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise DeriveError(f"{what}: {raw!r} is not a number; expected {accepted}") from None
    if not number.is_finite():
        raise DeriveError(f"{what}: {raw!r} is not a finite number; expected {accepted}")
    if abs(number) > MAX_PARAMETER or len(number.as_tuple().digits) > MAX_DIGITS:
        raise DeriveError(f"{what}: {raw!r} is too large or too long (limit 1e6, {MAX_DIGITS} digits); expected {accepted}")
    if number and number.adjusted() < -30:
        raise DeriveError(f"{what}: {raw!r} is too small (limit 1e-30); expected {accepted}")
    numerator, denominator = number.as_integer_ratio()
    return sp.Rational(numerator, denominator)


def bind_parameters(entry_name: str, params: tuple[Parameter, ...], texts: list[str], option: str) -> tuple[sp.Rational, ...]:
    """Values for an entry's parameters from `name:v1:v2` texts (defaults for those not given)."""
    usage = f"{entry_name}:" + ":".join(p.name.upper() for p in params) if params else entry_name
    if not params and texts:
        raise DeriveError(f"invalid value for {option}: {entry_name!r} takes no parameters; write {entry_name}")
    if len(texts) > len(params):
        raise DeriveError(
            f"invalid value for {option}: {entry_name!r} takes {len(params)} parameter"
            f"{'s' if len(params) != 1 else ''} ({', '.join(p.name for p in params)}), got {len(texts)}; write {usage}"
        )
    values = []
    for n, param in enumerate(params):
        if n >= len(texts):
            values.append(param.default)
            continue
        accepted = f"a number with {param.range_text()} ({param.meaning}), e.g. {entry_name}:{number_text(param.default)}"
        value = parse_number(texts[n], f"invalid value for {option}: parameter {param.name} of {entry_name}", accepted)
        if not param.contains(value):
            raise DeriveError(
                f"invalid value for {option}: parameter {param.name} of {entry_name} is {texts[n].strip()}; "
                f"expected {param.range_text()} ({param.meaning})"
            )
        values.append(value)
    return tuple(values)


def spec_text(entry_name: str, params: tuple[Parameter, ...], values: tuple[sp.Rational, ...]) -> str:
    """Canonical text of a bound entry: the bare name when every value is the default."""
    if all(v == p.default for p, v in zip(params, values)):
        return entry_name
    return entry_name + "".join(":" + number_text(v) for v in values)


class ParameterisedEntry:
    """What activations and losses share: their text, their bound parameters, their source.

    A mixin for the frozen dataclasses `Activation` and `Loss`, which hold `name`, `expr`, `params`,
    `values` and `source` (the user's text, for a user-written entry).
    """

    @property
    def is_custom(self) -> bool:
        return self.source is not None

    @property
    def spec_text(self) -> str:
        """What the spec records and the command line shows: 'relu', 'leaky_relu:0.2' or the user's text."""
        if self.source is not None:
            return self.source
        return spec_text(self.name, self.params, self.values) if self.params else self.name

    @property
    def parameter_text(self) -> str:
        """'alpha = 0.2' for a bound parameterised entry; '' otherwise."""
        return ", ".join(f"{p.name} = {number_text(v)}" for p, v in zip(self.params, self.values))

    def bind(self, values: tuple[sp.Rational, ...]):
        """The entry with its parameter symbols replaced by exact values."""
        if not self.params:
            return self
        expr = self.expr.xreplace({p.symbol: v for p, v in zip(self.params, values)})
        return replace(self, expr=expr, values=tuple(values))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def names_an_entry(name: str, colon: str, raw: str, variables: tuple[str, ...]) -> bool:
    """`raw` names a catalog entry (perhaps mistyped, perhaps with `:parameters`) rather than being an
    expression: a bare identifier, or one before a colon, that is not a variable. A Python keyword
    (`lambda z: z`) is left to the expression parser, which says what is wrong with the expression."""
    head = (name if colon else raw).strip()
    return bool(_NAME.fullmatch(head)) and not keyword.iskeyword(head) and head not in variables
