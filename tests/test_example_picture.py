"""The worked example's network drawn (review 23, defect 10): every number in the picture is the
example's, on the edge or at the unit it belongs to; the paths of section 12 are the orange edges; the
figure is numbered and cited in §12 and §17, in both languages, as SVG and as TikZ."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from conftest import generated
from derive import pictures
from derive.example_picture import ALONG_CROSSING, ALONG_STRAIGHT, FILE, layout, picture_block
from derive.lesson import study
from derive.lesson.worked_example import entries
from derive.model import make_spec
from derive.notation import Q
from derive.present import Text
from derive.present_lesson import _number, _stated

CONFIGS = {"sigmoid": (3, "sigmoid", None, "mse"), "relu-ce": (3, "relu", None, "ce")}
NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module", params=list(CONFIGS))
def drawn(request):
    outcome = generated(make_spec(*CONFIGS[request.param], formats="md,tex"))
    lesson = study(outcome.derivation)
    return outcome, lesson


def _texts(svg: str) -> list[tuple[float, float, str]]:
    root = ET.fromstring(svg)
    return [(float(t.get("x")), float(t.get("y")), t.text) for t in root.iter(f"{NS}text")]


def test_every_number_is_the_worked_examples_at_its_place(drawn):
    outcome, lesson = drawn
    example = lesson.example
    block = picture_block(lesson, outcome.derivation, Text("en", "md", detail="lesson", paths="12"))
    texts = [label for _, _, label in _texts(block.svg)]
    minus = lambda s: s.replace("-", "−")  # noqa: E731
    for l in range(1, 4):
        for (j,), z in entries(example, Q("z", l)):
            assert minus(f"z = {_number(z)}") in texts
        for (j,), a in entries(example, Q("a", l)):
            assert minus(f"a = {_number(a)}") in texts
    assert minus(f"C = {_number(example.loss)}") in texts
    assert [t for t in texts if t.startswith("x")] == [minus(f"x{s} = {_stated(v)}") for s, ((_,), v) in
                                                       zip("₁₂", entries(example, Q("a", 0)))]
    # each weight stands on its own edge, near the unit it feeds where edges cross (review 25, defect 8)
    edges = [line for line in _lines(block.svg) if line[4] in (pictures.EDGE_COLOUR, pictures.PATH_COLOUR)]
    assert len(edges) == 12
    placed = {(x, y): label for x, y, label in _texts(block.svg)}
    for l in range(1, 4):
        for (j, k), w in entries(example, Q("W", l)):
            x1, y1, x2, y2, _ = edges[4 * (l - 1) + 2 * j + k]
            along = ALONG_STRAIGHT if j == k else ALONG_CROSSING
            x, y = x1 + along * (x2 - x1), y1 + along * (y2 - y1)
            assert placed[(round(x, 2), round(y + 4, 2))] == minus(_stated(w)), (l, j, k)
            if j != k:  # the crossing edge, at the label's x, is at least a third of a row away
                cx1, cy1, cx2, cy2, _ = edges[4 * (l - 1) + 2 * k + j]
                other_y = cy1 + (x - cx1) / (cx2 - cx1) * (cy2 - cy1)
                assert abs(other_y - y) >= abs(y2 - y1) / 3, (l, j, k)


def _lines(svg: str) -> list[tuple]:
    root = ET.fromstring(svg)
    return [(float(e.get("x1")), float(e.get("y1")), float(e.get("x2")), float(e.get("y2")), e.get("stroke"))
            for e in root.iter(f"{NS}line")]


def test_the_orange_edges_are_the_paths_of_section_12(drawn):
    outcome, lesson = drawn
    block = picture_block(lesson, outcome.derivation, Text("en", "md", detail="lesson", paths="12"))
    orange = [line for line in _lines(block.svg) if line[4] == pictures.PATH_COLOUR]
    assert lesson.paths.weight == (1, 1)
    assert len(orange) == 1 + 2 + 4  # into unit 1 of layer 1, out of it to both of layer 2, all of W⁽³⁾
    # every path of the table runs on orange edges only: its units, joined, are orange edges
    ends = {((round(a, 2), round(b, 2)), (round(c, 2), round(d, 2))) for a, b, c, d, _ in orange}
    assert len(ends) == 7


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_figure_is_numbered_and_cited_in_sections_11_and_12(config, lang):
    """Figure 2 stands in the worked example (section 11, right after the four equations since review
    30, defect 1) and the paths of section 12 cite it back."""
    files = generated(make_spec(*CONFIGS[config], formats="md,tex", lang=lang)).files
    md, tex = files["derivation.md"].decode(), files["derivation.tex"].decode()
    figure = {"en": "Figure 2", "zh": "图 2"}[lang]
    paths = md[md.index("\n## 12. "):md.index("\n## 13. ")]
    example = md[md.index("\n## 11. "):md.index("\n## 12. ")]
    assert figure in paths and figure in example and f"]({FILE})" in example
    assert example.count({"en": "Figure 2: ", "zh": "图 2　"}[lang]) == 1  # the caption's tag
    assert tex.count(r"\label{fig:example}") == 1 and tex.count(r"~\ref{fig:example}") == 2
    assert files[FILE].decode().startswith("<svg")


def test_the_layout_is_deterministic_and_fits_the_page():
    from derive.pictures import Label

    columns = [[[Label("$x$", "x")]] * 2] + [[[Label("$b$", "b = 0.1")] * 3] * 2] * 3
    weights = {(l, j, k): Label("$0.5$", "0.5") for l in range(1, 4) for j in range(2) for k in range(2)}
    args = (columns, weights, [Label("$y$", "y₁ = 1")] * 2, Label("$C$", "C = 0.2678"), set(), ["input"] * 4)
    first, second = layout(*args), layout(*args)
    assert pictures.svg(first, "t") == pictures.svg(second, "t") and pictures.tikz(first) == pictures.tikz(second)
    assert first.width * pictures.TIKZ_SCALE <= pictures.TEXT_WIDTH_CM  # no shrinking: the numbers keep their size
    assert r"\resizebox" not in pictures.tikz(first)


def test_a_penalty_keeps_the_figure_without_its_orange_paths():
    outcome = generated(make_spec(3, "sigmoid", None, "mse", formats="md", l2="0.01"))
    lesson = study(outcome.derivation)
    md = outcome.files["derivation.md"].decode()
    # a penalty leaves the paths table out, but the example's network is still drawn, without orange edges
    block = picture_block(lesson, outcome.derivation, Text("en", "md", detail="lesson", paths="12"))
    assert block is not None and pictures.PATH_COLOUR not in block.svg
    assert re.search(r"Figure 2: The network of the worked example", md)
