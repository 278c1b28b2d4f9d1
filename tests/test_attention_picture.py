"""The picture of the attention matrix: in the Markdown, HTML and LaTeX of an attention network, in both
languages, the same bytes every time, and with the causal mask blanking exactly the cells u > j."""

from __future__ import annotations

from pathlib import Path

import pytest

from derive.attention_picture import ATTENTION_FILE, CELL, attention_layout, grid_origins
from derive.model import make_net_spec
from derive.run import generate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORDS = {k: k for k in ("scores", "weights", "softmax", "rows", "backward", "query", "key", "error_tex", "error_plain")}


def blank_cells(tokens: int, causal: bool) -> list[set[tuple[int, int]]]:
    """The dashed (blank) cells of the score grid and of the weight grid, as (query j, key u)."""
    pic = attention_layout(tokens, causal, 1, WORDS)
    x0, x1, top = grid_origins(tokens)
    grids = [set(), set()]
    for box in pic.boxes:
        if box.dashed:
            grid = 0 if box.x < x1 else 1
            grids[grid].add((round((box.y - top) / CELL), round((box.x - (x0, x1)[grid]) / CELL)))
    return grids


@pytest.mark.parametrize("tokens", [1, 3, 4, 6])
def test_the_causal_mask_blanks_exactly_the_cells_above_the_diagonal(tokens):
    above = {(j, u) for j in range(tokens) for u in range(tokens) if u > j}
    assert blank_cells(tokens, True) == [above, above]
    assert blank_cells(tokens, False) == [set(), set()]


def test_a_masked_weight_reads_0_and_one_row_is_followed_forward_and_back():
    pic = attention_layout(4, True, 1, WORDS)
    _, x1, top = grid_origins(4)
    zeros = [t for t in pic.texts if t.label.plain == "0" and t.anchor == "middle" and t.y > top]
    assert all(t.x > x1 for t in zeros)
    assert len(zeros) == 6  # one in each blank weight cell, none in the score grid
    assert len([b for b in pic.boxes if not b.dashed and b.fill != "#fdf6e3"]) == 2 * 3  # row 2: keys 0, 1, 2
    assert {line.colour for line in pic.lines if line.arrow} == {"#1f5fbf", "#c0392b"}


@pytest.fixture(scope="module", params=["en", "zh"])
def documents(request):
    spec = make_net_spec(str(EXAMPLES / "transformer_block.toml"), formats="md,html,tex", lang=request.param)
    return request.param, generate(spec, compile_pdf=False).files


def test_the_picture_is_in_markdown_html_and_latex(documents):
    lang, files = documents
    caption = {"en": "The attention matrix of one head of layer 2", "zh": "第 2 层一个头在短序列上的注意力矩阵"}[lang]
    md, html, tex = (files[name].decode() for name in ("derivation.md", "derivation.html", "derivation.tex"))
    assert f"]({ATTENTION_FILE})" in md and caption in md
    assert files[ATTENTION_FILE].decode().count("<rect") == 1 + 2 * 3 * 3  # background and two 3 × 3 grids
    assert 'id="attention-arrow-forward"' in html and caption in html
    label = tex.index(r"\label{fig:attention}")
    figure = tex[tex.rindex(r"\begin{tikzpicture}", 0, label):label]
    assert figure.count("rectangle") == 2 * 3 * 3
    assert "dashed" not in figure  # this block is not causal: no cell is blank


def test_the_picture_is_the_same_every_time(documents):
    lang, files = documents
    spec = make_net_spec(str(EXAMPLES / "transformer_block.toml"), formats="md", lang=lang)
    assert generate(spec, compile_pdf=False).files[ATTENTION_FILE] == files[ATTENTION_FILE]
