"""Every math span of every Markdown document parses with KaTeX in strict mode.

GitHub, VS Code and Jupyter render `$…$`/`$$…$$` with KaTeX or MathJax; KaTeX is the stricter, so a
document it accepts renders in all of them. Runs the npm `katex` package with Node.js.
"""

import json
import re


from conftest import ROOT, run_node
from conftest import generated
from derive.model import make_spec


def math_spans(markdown: str) -> list[dict]:
    """Display blocks $$…$$ and inline $…$ outside code, as KaTeX would receive them."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    spans = [{"tex": m.strip(), "display": True} for m in re.findall(r"\$\$(.*?)\$\$", text, flags=re.S)]
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    spans += [{"tex": m, "display": False} for m in re.findall(r"\$([^$\n]+)\$", text)]
    return spans


def documents() -> dict[str, str]:
    """Every Markdown document of the gallery, plus configurations the gallery does not hold."""
    docs = {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / "outputs").glob("*/derivation.md"))}
    for config in [(3, "relu,tanh", None, "mse"), (2, "identity", "softmax", "ce")]:
        for lang in ("en", "zh"):
            spec = make_spec(*config, formats="md", lang=lang)
            docs[f"{spec.slug()} (generated)"] = generated(spec).files["derivation.md"].decode()
    return docs


def test_every_math_span_parses_with_katex(node_modules):
    docs = documents()
    assert len(docs) >= 10
    formulas = [dict(span, doc=name) for name, text in docs.items() for span in math_spans(text)]
    assert len(formulas) > 1000
    out = json.loads(run_node("katex_check.cjs", [], node_modules, stdin=json.dumps(formulas)))
    assert out["checked"] == len(formulas)
    assert out["failures"] == [], out["failures"][:5]


def test_the_katex_check_can_fail(node_modules):
    bad = [{"tex": r"\begin{aligned} a &= b", "display": True}, {"tex": r"\notamacro{x}", "display": False},
           {"tex": "a é b", "display": False}]  # strict mode: Unicode text in math
    out = json.loads(run_node("katex_check.cjs", [], node_modules, stdin=json.dumps(bad)))
    assert len(out["failures"]) == 3


def test_math_spans_are_found_in_tables_prose_and_blocks():
    spans = math_spans("| $x$ | y |\n\ntext $a_{1}$ and `$not$`\n\n$$\nb\n$$\n```\n$c$\n```\n")
    assert spans == [{"tex": "b", "display": True}, {"tex": "x", "display": False}, {"tex": "a_{1}", "display": False}]
