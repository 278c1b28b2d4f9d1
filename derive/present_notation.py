"""The notation table: every symbol the document uses, with its one meaning, and no other.

The table is built after the other sections, from the LaTeX they actually contain (`used_latex`): a
row whose symbol does not occur is left out (a sigmoid document has no [z > 0]), and a symbol that
occurs gets its row (L, n_l, m, θ, λ …). One symbol, one meaning: where two ideas would share a
letter, the printers give one of them another (the Kronecker delta is the bracket [i = q], δ the
error; the optimizer's gradient is g̃, g the activation; the sample index t prints as r, t is a
step). A second table maps this notation to Nielsen's, CS231n's and the E/t/o notation of many
Chinese textbooks. tests/test_lesson.py checks every gallery document against its table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from derive import document as blocks

_TEXT = re.compile(r"\\(?:text|mathrm|label|ref|eqref)\{(?!(?:Im|i)\})[^{}]*\}")  # \mathrm{i}, \mathrm{Im}: symbols


def _letter(ch: str) -> str:
    """A single letter as a symbol: not part of a command or of a longer word."""
    return rf"(?<![\\A-Za-z]){ch}(?![A-Za-z])"


# (symbol as the table shows it, catalog key, pattern that finds it in the document's LaTeX); in
# the order of the table
ROWS: tuple[tuple[str, str, str], ...] = (
    ("x", "notation.x", _letter("x")),
    ("y", "notation.y", _letter("y")),
    ("W^{(l)}", "notation.W", _letter("W")),
    ("b^{(l)}", "notation.b", _letter("b")),
    ("z^{(l)}", "notation.z", r"(?<![\\A-Za-z])z(?![A-Za-z])(?!\})"),
    ("a^{(l)}", "notation.a", _letter("a")),
    ("g^{(l)},\\ g", "notation.g", _letter("g")),
    ("L", "notation.L", _letter("L")),
    ("l", "notation.l", _letter("l")),
    ("n_{l},\\ n_{\\mathrm{in}},\\ n_{\\mathrm{out}}", "notation.n", r"(?<![\\A-Za-z])n_"),
    ("i, j, k, p, q", "notation.indices", r"_\{?[ijkpq]"),
    ("s, r", "notation.samples", r"_\{[^}]*[sr]\}|\\sum_\{[sr]\}"),
    ("m", "notation.m", _letter("m")),
    ("C", "notation.C", r"(?<![\\A-Za-z{])C(?![A-Za-z])"),
    ("\\bar{C}", "notation.Cbar", r"\\bar\{C\}"),
    ("\\mathcal{C}", "notation.Ccal", r"\\mathcal\{C\}"),
    ("\\tilde{C}", "notation.Ctilde", r"\\tilde\{C\}"),
    ("\\mathbf{C}", "notation.Cbold", r"\\mathbf\{C\}"),
    ("\\ell", "notation.ell", r"\\ell"),
    ("\\delta^{(l)}", "notation.delta", r"\\delta"),
    ("X, Y, Z^{(l)}, A^{(l)}", "notation.matrices", r"(?<![\\A-Za-z])[XYZA](?![A-Za-z])"),
    ("\\Delta^{(l)}", "notation.Delta", r"\\Delta\^"),
    ("[P]", "notation.iverson", r"\\left\["),
    ("\\odot", "notation.hadamard", r"\\odot"),
    ("\\mathbf{1}", "notation.ones", r"\\mathbf\{1\}"),
    ("(\\cdot)^{\\top}", "notation.transpose", r"\\top"),
    ("\\eta", "notation.eta", r"\\eta"),
    ("\\theta", "notation.theta", r"\\theta"),
    ("\\nabla", "notation.nabla", r"\\nabla"),
    ("t", "notation.t", _letter("t")),
    ("\\tilde{g}", "notation.gtilde", r"\\tilde\{g\}"),
    ("\\lambda", "notation.lambda", r"\\lambda(?!_)"),
    ("M", "notation.M", _letter("M")),
    ("N", "notation.N", _letter("N")),
    ("\\xi", "notation.xi", r"\\xi"),
    ("\\mathbb{E}, \\operatorname{Var}", "notation.moments", r"\\mathbb\{E\}|\\operatorname\{Var\}"),
    ("\\mathcal{N}(0, \\sigma^{2})", "notation.normal", r"\\mathcal\{N\}"),
    ("\\sigma_{w}^{2}", "notation.var_w", r"\\sigma_\{w\}|\\sigma_w"),
    ("\\sigma_{z}", "notation.std", r"\\sigma_\{z\}|\\sigma_z"),
    ("H", "notation.H", _letter("H")),
    ("\\zeta", "notation.zeta", r"\\zeta"),
    ("\\mathrm{i},\\ \\mathrm{Im}", "notation.complex", r"\\mathrm\{Im\}|\\mathrm\{i\}"),
)


def used_latex(document_blocks: Iterable, logged: Iterable[str]) -> str:
    """All LaTeX of the blocks (displays, derivation lines) and of the prose (`logged`: the $…$ the
    message catalog wrote), without \\text{} and the like, for the patterns of `ROWS`."""
    parts = list(logged)
    for block in document_blocks:
        if isinstance(block, blocks.Equation):
            parts.append(block.latex)
        elif isinstance(block, blocks.Aligned):
            parts += [f"{r.lhs} = {r.rhs}" for r in block.rows]
        elif isinstance(block, blocks.Derivation):
            parts += [f"{r.lhs} = {r.rhs}" for g in block.groups for r in g.rows]
    return _TEXT.sub(" ", "\n".join(parts))


def notation_blocks(text, used: str, extra: list[tuple[str, str]], vector_activation: bool) -> list:
    """The notation section: the symbols used, each with its meaning, then the other notations."""
    rows = []
    for symbol, key, pattern in ROWS:
        if re.search(pattern, used):
            meaning = text(key + "_vector") if key == "notation.g" and vector_activation else text(key)
            rows.append((text.math(symbol), meaning))
    rows += [(text.math(symbol), meaning) for symbol, meaning in extra]
    header = (text("notation.symbol"), text("notation.meaning"))
    others = tuple((text(f"notation_map.{concept}"), *(text.math(text.raw(f"notation_map.{concept}_{book}"))
                                                        for book in ("ours", "nielsen", "cs231n", "eto")))
                   for concept in MAP_CONCEPTS)
    map_header = tuple(text(f"notation_map.{column}") for column in ("concept", "ours", "nielsen", "cs231n", "eto"))
    return [
        blocks.Paragraph(text("notation.intro")),
        blocks.Table(header, tuple(rows), ("l", r"p{0.7\textwidth}"), long=True),
        blocks.Paragraph(text("notation_map.intro")),
        blocks.Table(map_header, others, (r"p{0.24\textwidth}", "l", "l", "l", "l")),
        blocks.Paragraph(text("notation_map.note")),
    ]


# the concepts of the table that maps this notation to other texts' (the symbols are in the catalog)
MAP_CONCEPTS = ("weight", "preactivation", "activation", "target", "loss", "cost", "error", "gradient", "rate")

__all__ = ["ROWS", "notation_blocks", "used_latex", "MAP_CONCEPTS"]
