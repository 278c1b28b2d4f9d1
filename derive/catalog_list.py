"""`derive list`: the catalog as text — every activation and loss with its formula, the derivative
SymPy computes for it, the readable form the engine proves (for activations) and its parameters.

Nothing here is typed mathematics: formulas are SymPy's own text of the catalog expressions and of
their derivatives, computed when the command runs.
"""

from __future__ import annotations

import sympy as sp

from derive.catalog import ACTIVATIONS, LOSSES
from derive.catalog.activations import ALIASES as ACTIVATION_ALIASES
from derive.catalog.constants import NAMED_CONSTANTS
from derive.catalog.losses import ALIASES as LOSS_ALIASES
from derive.catalog.params import number_text
from derive.expr import ALLOWED_FUNCTIONS
from derive.notation import A, Z
from derive.present import messages
from derive.rewrite import activation_derivative

WIDTH = 14


def _parameters(entry) -> str:
    return "; ".join(
        f"{p.name} = {number_text(p.default)} by default ({p.meaning}; {p.range_text()}), "
        f"e.g. {entry.name}:{number_text(p.default)}"
        for p in entry.params
    )


def _row(name: str, lines: list[str]) -> list[str]:
    return [f"  {name:<{WIDTH}}{lines[0]}"] + [f"  {'':<{WIDTH}}{line}" for line in lines[1:]]


def _aliases(aliases: dict, name: str) -> list[str]:
    return [alias for alias, target in aliases.items() if target == name]


def catalog_text() -> str:
    words = messages("en")["catalog_list"]
    out = [words["activations"], ""]
    for name, entry in ACTIVATIONS.items():
        aliases = _aliases(ACTIVATION_ALIASES, name)
        if entry.is_vector:
            lines = [words["vector"]]
        else:
            lines = [f"g(z)  = {sp.sstr(entry.expr)}", f"g'(z) = {sp.sstr(sp.diff(entry.expr, Z))}   [{words['derivative']}]"]
            readable = activation_derivative(entry.bind(tuple(p.default for p in entry.params)))
            if readable.in_terms_of_output is not None:
                lines.append(f"      = {sp.sstr(readable.in_terms_of_output)}   [{words['in_terms_of_output']}]")
            elif readable.branch_form is not None:
                defaults = "".join(f", {p.name} = {number_text(p.default)}" for p in entry.params)
                lines.append(f"      = {sp.sstr(readable.branch_form)}   [{words['in_terms_of_output']}{defaults}]")
            if entry.params:
                lines.append(f"{words['parameters']}: {_parameters(entry)}")
        if aliases:
            lines.append("alias: " + ", ".join(aliases))
        out += _row(name, lines)
    out += ["", words["losses"], ""]
    for name, entry in LOSSES.items():
        lines = [f"l(a, y)  = {sp.sstr(entry.expr)}", f"dl/da    = {sp.sstr(sp.diff(entry.expr, A))}   [{words['derivative']}]",
                 f"targets: {entry.target}" + (f"; output: {entry.default_output} by default" if entry.default_output else "")]
        if entry.params:
            lines.append(f"{words['parameters']}: {_parameters(entry)}")
        aliases = _aliases(LOSS_ALIASES, name)
        if aliases:
            lines.append("alias: " + ", ".join(aliases))
        out += _row(name, lines)
    constants = ", ".join(f"{sp.sstr(c)} = {c.decimal}" for c in NAMED_CONSTANTS)
    out += ["", f"Constants: {constants}", "", words["expressions"].format(functions=", ".join(ALLOWED_FUNCTIONS))]
    return "\n".join(out)
