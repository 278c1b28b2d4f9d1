"""One document in every format: the same sections in the same order, and every in-page link lands.

The formats are rendered from one structure (derive/document.py); these tests read the written files
of every gallery entry, so a section that one template drops, or a link to an anchor that no heading
has, fails here whichever template or presenter caused it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from conftest import generated
from derive.present import anchor

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = sorted(p for p in (ROOT / "outputs").iterdir() if (p / "derivation.md").is_file())
_TEX_ESCAPES = {r"\_": "_", r"\&": "&", r"\%": "%", r"\#": "#", r"\{": "{", r"\}": "}"}


def markdown_sections(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(?m)^## (\d+|[A-Z])\. (.+)$", text)


def html_sections(page: str) -> list[tuple[str, str]]:
    return [(n, html.unescape(re.sub(r"<[^>]+>", "", title)))
            for n, title in re.findall(r'<h2 id="[^"]*">(\d+|[A-Z])\. (.*?)</h2>', page)]


def tex_sections(tex: str) -> list[tuple[str, str]]:
    """Sections as LaTeX numbers them: 1, 2, … (or the number a \\setcounter before one sets: a summary
    keeps the lesson's numbers) and after \\appendix A, B, …"""
    body, _, appendix = tex.partition("\\appendix")
    out, counter = [], 0
    for number, escaped_title in re.findall(r"(?:\\setcounter\{section\}\{(\d+)\})?\\section\{(.+?)\}\\label\{sec:", body):
        counter = int(number) + 1 if number else counter + 1
        out.append((str(counter), escaped_title))
    out += list(zip(iter("ABCDEFGH"), re.findall(r"\\section\{(.+?)\}\\label\{sec:", appendix)))
    for escaped, plain in _TEX_ESCAPES.items():
        out = [(n, t.replace(escaped, plain)) for n, t in out]
    return out


def _numbering(sections: list[tuple[str, str]], summary: bool = False) -> list[str]:
    """1, 2, …, n and then the appendices A, B, …; a summary (`--detail summary`) keeps the lesson's
    numbers, which rise but skip the sections it leaves out"""
    numbered = [n for n, _ in sections if n.isdigit()]
    if summary:
        assert [int(n) for n in numbered] == sorted({int(n) for n in numbered})
        return numbered + list("ABCDEFGH"[:len(sections) - len(numbered)])
    return [str(k) for k in range(1, len(numbered) + 1)] + list("ABCDEFGH"[:len(sections) - len(numbered)])


def markdown_anchors(text: str) -> set[str]:
    """The ids GitHub gives the headings (outside code blocks)."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return {anchor(title) for title in re.findall(r"(?m)^#{1,6} (.+)$", text)}


@pytest.fixture(scope="module", params=ENTRIES, ids=lambda p: p.name)
def entry(request) -> Path:
    return request.param


def test_the_gallery_has_entries_in_every_format():
    formats = {f.suffix for p in ENTRIES for f in p.glob("derivation.*")}
    assert len(ENTRIES) >= 9 and {".md", ".tex", ".html", ".ipynb"} <= formats


def test_every_format_has_the_same_sections_in_the_same_order(entry):
    expected = markdown_sections((entry / "derivation.md").read_text())
    # derive rnn's documents have their own, shorter set of sections (derive/rnn_document.py), and a
    # summary (--detail summary) six
    summary = entry.name.endswith("-summary")
    assert len(expected) >= (6 if summary else 8 if entry.name.startswith("rnn-") else 13)
    assert [n for n, _ in expected] == _numbering(expected, summary)
    assert tex_sections((entry / "derivation.tex").read_text()) == expected
    page = entry / "derivation.html"
    if page.is_file():
        assert html_sections(page.read_text()) == expected
        md_anchors = [anchor(f"{n}. {title}") for n, title in expected]
        assert re.findall(r'<h2 id="([^"]*)">', page.read_text()) == md_anchors  # the same ids as on GitHub
    notebook = entry / "derivation.ipynb"
    if notebook.is_file():
        cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "markdown"]
        headings = [re.match(r"## (\d+|[A-Z])\. (.+)", c).groups() for c in cells if c.startswith("## ")]
        assert headings[:len(expected)] == expected  # then the notebook's own sections: model, check, training


def test_every_markdown_link_resolves(entry):
    text = (entry / "derivation.md").read_text()
    anchors = markdown_anchors(text)
    links = re.findall(r"\]\(#([^)]*)\)", text)
    assert links, "the contents list links to every section"
    assert sorted(set(links) - anchors) == []


def test_every_html_link_resolves(entry):
    page = entry / "derivation.html"
    if not page.is_file():
        pytest.skip("no web page in this gallery entry")
    text = page.read_text()
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "an id used twice"
    links = re.findall(r'href="#([^"]*)"', text)
    # a summary links its six sections; it cites the lesson's others by number, without a link
    assert len(links) >= (6 if entry.name.endswith("-summary") else 13) and sorted(set(links) - set(ids)) == []


def test_every_latex_reference_has_its_label(entry):
    tex = (entry / "derivation.tex").read_text()
    labels = re.findall(r"\\label\{([^}]+)\}", tex)
    assert len(labels) == len(set(labels)), "a label defined twice"
    refs = re.findall(r"\\ref\{([^}]+)\}", tex)
    # a summary may cite only the lesson's sections, which it prints by number (no \ref)
    assert (refs or entry.name.endswith("-summary")) and sorted(set(refs) - set(labels)) == []


def test_the_checks_can_fail():
    """The extractors find what they look for, and a dangling link or a missing section shows."""
    md = "# T\n\n**Contents:** [1. A b](#1-a-b) · [2. C](#2-c)\n\n## 1. A b\n\ntext\n\n## 2. C\n"
    assert markdown_sections(md) == [("1", "A b"), ("2", "C")]
    assert {"1-a-b", "2-c"} <= markdown_anchors(md) and "3-d" not in markdown_anchors(md)
    page = '<h2 id="1-a-b">1. A b</h2>\n<h2 id="2-c">2. <em>C</em></h2>'
    assert html_sections(page) == [("1", "A b"), ("2", "C")]
    tex = r"\section{A b}\label{sec:a}" + "\n" + r"\section{C\_d}\label{sec:c}"
    assert tex_sections(tex) == [("1", "A b"), ("2", "C_d")]
    assert tex_sections(tex + "\n\\appendix\n" + r"\section{E}\label{sec:e}") == [("1", "A b"), ("2", "C_d"), ("A", "E")]
    assert _numbering([("1", "x"), ("2", "y"), ("A", "z")]) == ["1", "2", "A"]


def _skeleton(value, key: str = ""):
    """A block with its prose and formulas blanked out: what must not depend on the format."""
    if isinstance(value, dict):
        return {k: _skeleton(v, k) for k, v in value.items() if k not in ("svg", "tikz")}
    if isinstance(value, (list, tuple)):
        return [_skeleton(v) for v in value]
    if isinstance(value, str) and key not in ("kind", "level", "label", "anchor", "key", "relation"):
        return bool(value)
    return value


@pytest.mark.parametrize("config", [((3, "relu,tanh", None, "mse"), {"l2": "0.01"}),
                                    ((2, "tanh", "softmax", "ce"), {"optimizer": "adam", "lang": "zh"})],
                         ids=["mixed-penalty", "softmax-adam-zh"])
def test_every_format_is_built_from_one_structure(config):
    """The documents the presenters build for Markdown, LaTeX and HTML differ only in their strings."""
    from dataclasses import asdict

    from derive.codegen import plan_code
    from derive.model import make_spec
    from derive.present import build_document

    args, options = config
    outcome = generated(make_spec(*args, formats="md", **options))
    plan = plan_code(outcome.derivation)
    shapes = [_skeleton(asdict(build_document(outcome.derivation, outcome.report, plan, command="derive", fmt=fmt,
                                        lang=outcome.spec.lang, training=(outcome.training, outcome.initialisation))))
              for fmt in ("md", "tex", "html")]
    assert shapes[0] == shapes[1] == shapes[2]
    keys = [s["key"] for s in shapes[0]["sections"]]
    # review 30: the table of symbols is an appendix, beside the other notations; the worked example follows
    # the four equations (summary), the exercises the cost
    assert keys[:4] == ["learn", "forward", "loss", "network"]
    assert keys[-5:] == ["code", "verification", "notation", "notations", "answers"]
    assert keys[keys.index("summary") + 1] == "example" and keys[keys.index("cost") + 1] == "exercises"
    # the lesson (the default detail) folds the optimizer and the initialisation into its training section
    assert keys[-6] == "update_rule" and "optimizer" not in keys and "initialisation" not in keys and "example" in keys
