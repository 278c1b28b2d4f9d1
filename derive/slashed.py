"""Fractions in running text written with a slash: ∂C/∂a⁽ᴸ⁾, 1/(1 + e⁻ᶻ).

TeX sets an inline \\frac in script size, too small to read in a line of prose (review 17, layout
item 6); textbooks write a fraction in a sentence with a slash. Displayed formulas keep \\frac. The
rewrite is purely typographic: numerator and denominator are kept as written and put in parentheses
where the slash would otherwise take less than the fraction bar did (a sum, or a product in the
denominator), and the whole quotient where a neighbouring factor or a function name would otherwise
take part of it (\\tanh\\frac{z}{2} → \\tanh(z/2), \\frac{1}{m}\\delta → (1/m)\\delta).
"""

from __future__ import annotations

import re

_FRAC = re.compile(r"\\frac(?![A-Za-z])")
_COMMAND = re.compile(r"\\[A-Za-z]+\s*$")
# what may stand next to a quotient without binding to it: relations, sums, ⊙, ·, punctuation, brackets
_OPERATOR_AFTER = re.compile(r"\s*(?:$|[-+=<>,;)}\]&|]|\\(?:cdot|odot|times|le|ge|leq|geq|approx|neq|quad|qquad|"
                             r"right|Big|big|to|in|ll|gg|sim|equiv|,|;|!)(?![A-Za-z]))")
_OPERATOR_BEFORE = re.compile(r"(?:^|[-+=<>,;({\[&|]|\\(?:cdot|odot|times|le|ge|leq|geq|approx|neq|quad|qquad|"
                              r"left\(|left\[|left\||Big|big|to|in|ll|gg|sim|equiv|,|;|!))\s*$")


def _group(tex: str, start: int) -> tuple[str, int]:
    """The brace group starting at `start` (after spaces): its contents and the index after it."""
    while tex[start] == " ":
        start += 1
    if tex[start] == "\\":  # \frac\alpha2: a command as the argument
        name = re.match(r"\\(?:[A-Za-z]+|.)", tex[start:]).group(0)
        return name, start + len(name)
    if tex[start] != "{":  # \frac12: a single token
        return tex[start], start + 1
    depth, n = 0, start
    while n < len(tex):
        if tex[n] == "\\":  # an escaped brace \{ does not count
            n += 2
            continue
        depth += (tex[n] == "{") - (tex[n] == "}")
        if depth == 0:
            return tex[start + 1:n], n + 1
        n += 1
    raise ValueError(f"unbalanced braces in {tex!r}")


def _top_level(tex: str) -> str:
    """`tex` with every brace group and every \\left … \\right pair removed: what lies at its top level."""
    out, depth, n = [], 0, 0
    while n < len(tex):
        if tex.startswith(r"\left", n) and not tex[n + 5:n + 6].isalpha():
            depth, n = depth + 1, n + 5
        elif tex.startswith(r"\right", n) and not tex[n + 6:n + 7].isalpha():
            depth, n = depth - 1, n + 6
        else:
            ch = tex[n]
            depth += (ch == "{") - (ch == "}")
            if depth == 0 and ch not in "{}":
                out.append(ch)
            n += 1
    return "".join(out)


def _sum(tex: str) -> bool:
    """A sum or difference at the top level (a leading sign is not one)."""
    top = _top_level(tex).strip()
    return bool(re.search(r"(?<=\S)\s*[-+]", top[1:] if top[:1] in "+-" else top)) or r"\pm" in top


def _product(tex: str) -> bool:
    """Factors side by side at the top level (2 n, \\sum_j e^{z_j}); a differential ∂a counts as one."""
    top = _top_level(tex).strip()
    if top.startswith(r"\partial"):
        top = top[len(r"\partial"):].strip()
    return bool(re.search(r"\S\s+\S", top)) or r"\cdot" in top or r"\sum" in top


def _wrapped(tex: str, needed: bool) -> str:
    return f"({tex})" if needed else tex


def slashed(tex: str, spaced: bool = False) -> str:
    """Every \\frac in an inline formula written with a slash, innermost first (`spaced`: " / ", as
    the catalog's prose writes ∂C / ∂a beside it)."""
    match = _FRAC.search(tex)
    if match is None:
        return tex
    numerator, after_numerator = _group(tex, match.end())
    denominator, end = _group(tex, after_numerator)
    numerator, denominator = slashed(numerator, spaced), slashed(denominator, spaced)
    slash = " / " if spaced else "/"
    quotient = (f"{_wrapped(numerator, _sum(numerator))}{slash}"
                f"{_wrapped(denominator, _sum(denominator) or _product(denominator))}")
    before, after = tex[:match.start()], slashed(tex[end:], spaced)
    bound = not _OPERATOR_BEFORE.search(before) or not _OPERATOR_AFTER.match(after)
    joined = _wrapped(quotient, bound)
    if _COMMAND.search(before) and joined[:1].isalpha():  # \cdot a/b, not \cdota/b
        joined = " " + joined
    return before + joined + after


def slashed_inline(math: str) -> str:
    """An inline formula ($…$) for running text: display-style ones (a table's cells) keep \\frac."""
    if r"\displaystyle" in math:
        return math
    return f"${slashed(math[1:-1])}$" if math.startswith("$") and math.endswith("$") else slashed(math)


__all__ = ["slashed", "slashed_inline"]
