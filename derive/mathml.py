"""LaTeX → MathML at build time, for the self-contained HTML document.

The web page renders its formulas with the browser's own MathML (Chromium ≥ 109, Firefox, Safari):
no script, no web font and no network. The conversion is done by the `latex2mathml` package, with
two adaptations, both checked by the tests:

- `aligned` (which latex2mathml does not know) is given to it as `align*`, the same two-column layout;
- every result is checked for the marks of a failed conversion (an alignment `&` left as an
  identifier, an `merror` element, a backslash command left as text), and a failure raises instead
  of writing a page with a broken formula.

MathML Core leaves a few presentation attributes to CSS (boxes, column alignment, bold digits);
`STYLE` in the HTML template supplies them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape

from derive.errors import DeriveError

_FAILED = re.compile(r"<mi>&amp;</mi>|<mi>&</mi>|<merror|<mtext>\\|<mi>\\|<mo>\\|<mtext>[^<]*\$")
# math inside text, \text{term $j$ of the sum} (a step's tag): latex2mathml would print the dollars as
# text, so the text is cut around it, \text{term }j\text{ of the sum}
_MATH_IN_TEXT = re.compile(r"\\text\{([^{}$]*)\$([^$]*)\$([^{}]*)\}")
_CAPITAL_GREEK = re.compile(r"<mi>(&#x00(?:39[1-9A-Fa-f]|3[Aa][0-9]);)</mi>")
_SEGMENTS = re.compile(r"(\$[^$]+\$|`[^`]+`|\*\*[^*]+\*\*|\*(?=\S)[^*]+(?<=\S)\*)")


def require() -> None:
    """Raise a one-line DeriveError if the converter is missing (it is a dependency of derive)."""
    try:
        import latex2mathml.converter  # noqa: F401
    except ImportError:
        raise DeriveError("--format html needs the latex2mathml package; install it with: pip install latex2mathml") from None


@lru_cache(maxsize=4096)
def to_mathml(tex: str, display: bool = False) -> str:
    """A <math> element for one LaTeX formula; raises ValueError if the conversion is not faithful."""
    from latex2mathml.converter import convert

    source = tex.replace(r"\begin{aligned}", r"\begin{align*}").replace(r"\end{aligned}", r"\end{align*}")
    while _MATH_IN_TEXT.search(source):
        source = _MATH_IN_TEXT.sub(r"\\text{\1}\2\\text{\3}", source)
    try:
        mathml = convert(source, display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises its own exception types for unknown commands
        raise ValueError(f"latex2mathml cannot convert {tex!r}: {error}") from error
    if _FAILED.search(mathml):
        raise ValueError(f"latex2mathml converted {tex!r} unfaithfully: {mathml[:200]}")
    # capital Greek letters are upright in TeX; MathML Core would slant a single-letter <mi>
    mathml = _CAPITAL_GREEK.sub(r'<mi mathvariant="normal">\1</mi>', mathml)
    # the alt text a reader can copy and a screen reader can fall back on
    return mathml.replace("<math ", f'<math alttext="{escape(tex.strip())}" ', 1)


def display(tex: str) -> str:
    return to_mathml(tex.strip(), display=True)


def inline(tex: str) -> str:
    return to_mathml(tex.strip(), display=False)


def html_prose(text: str) -> str:
    """Catalog Markdown-lite as HTML: $…$ as MathML, `…` as <code>, **…** as <strong>, *…* as <em>."""
    out = []
    for part in _SEGMENTS.split(text):
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(inline(part[1:-1]))
        elif part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{escape(part[1:-1])}</code>")
        elif part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(f"<strong>{html_prose(part[2:-2])}</strong>")  # a bold lead may hold a formula
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            out.append(f"<em>{html_prose(part[1:-1])}</em>")
        else:
            out.append(escape(part, quote=False))
    return "".join(out)
