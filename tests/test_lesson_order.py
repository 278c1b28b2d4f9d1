"""Review 30 (issue 13), the lesson's order and pacing: the worked example comes right after the four
equations, so no section before it borrows its numbers and the sections that use them look back; the
exercises stand where everything they need has been taught, and none says "read … first"; the table of
symbols is an appendix to look up, each symbol being defined in the text where it is first used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GALLERY = Path(__file__).resolve().parents[1] / "outputs"
LESSONS = ("mlp-L3-sigmoid-sigmoid-mse", "mlp-L3-relu-softmax-ce", "mlp-L3-sigmoid-sigmoid-mse-zh",
           "mlp-L3-sigmoid-sigmoid-mse-full")
TITLES = {"example": ("A worked example", "算例"), "summary": ("The four equations in words", "四个方程的含义",
                                                              "The four equations of backpropagation"),
          "exercises": ("Exercises", "习题"), "notation": ("Notation", "记号"), "paths": ("The big picture: sums over paths",
                                                                                         "整体来看：对所有路径求和"),
          "meaning": ("What the equations say about learning", "从方程看学习快慢"), "forward": ("Forward pass", "前向计算"),
          "loss": ("Loss", "损失函数"), "verification": ("Verification", "验证")}


def parts(md: str) -> list[tuple[str, str, str]]:
    """(number, title, body) of every numbered section and appendix, in document order."""
    found = list(re.finditer(r"(?m)^## ([0-9]+|[A-Z])\. (.*)$", md))
    return [(m.group(1), m.group(2), md[m.end():found[n + 1].start() if n + 1 < len(found) else len(md)])
            for n, m in enumerate(found)]


def find(md: str, key: str) -> int:
    """The position (in `parts`) of the section with this key's title."""
    return next(n for n, (_, title, _) in enumerate(parts(md)) if title in TITLES[key])


def cites(body: str, number: str) -> bool:
    """Whether prose cites section `number` (a Markdown link to it, "section N", "第 N 节")."""
    return bool(re.search(rf"\]\(#{number}-|section {number}\b|sections? \[{number}\]|第 \[?{number}\]?", body))


def lesson(name: str) -> str:
    return (GALLERY / name / "derivation.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", LESSONS)
def test_the_worked_example_follows_the_four_equations_and_nothing_borrows_its_numbers_ahead(name):
    md = lesson(name)
    sections = parts(md)
    example = find(md, "example")
    number = sections[example][0]
    assert example == find(md, "summary") + 1  # right after the four equations
    # the numbers of its forward pass and errors (four significant figures), none printed before it
    figures = set(re.findall(r"-?\d\.\d{3,4}(?: \\cdot 10\^\{-?\d+\})?", sections[example][2]))
    assert len(figures) > 10
    before = "".join(body for _, _, body in sections[:example])
    assert not {f for f in figures if f in before}, name
    assert not any(cites(body, number) for _, _, body in sections[:example]), name
    for phrase in ("ahead of time", "need not turn", "does not need that section", "提前用到", "不必先看"):
        assert phrase not in md, phrase
    # the paths and the bound on the errors look back at it, by its number
    for key in ("paths", "meaning"):
        at = find(md, key)
        assert at > example and cites(sections[at][2], number), key


def test_a_test_of_the_order_can_fail():
    md = "## 1. A\n\nSee [section 3](#3-a-worked-example).\n\n## 2. Q\n\n## 3. A worked example\n\n"
    assert cites(parts(md)[0][2], "3") and not cites(parts(md)[1][2], "3")
    assert find(md, "example") == 2


@pytest.mark.parametrize("name", LESSONS)
def test_no_exercise_says_read_something_first(name):
    """The exercises have a section of their own after everything they need (review 30, defect 11):
    none asks to read a later section or an appendix first, and the gradient check says what it needs."""
    md = lesson(name)
    sections = parts(md)
    at = find(md, "exercises")
    number, _, body = sections[at]
    items = [line for line in body.splitlines() if line.startswith("- **")]
    assert len(items) == 9, items
    for item in items:
        assert not re.search(r"\bread\b[^.]*\bfirst\b", item, re.I) and "先读" not in item and "先看" not in item, item
        cited = re.findall(r"section (\d+)|第 (\d+) 节", item)
        assert all(int(a or b) < int(number) for a, b in cited), item
        assert not re.search(r"appendix [A-Z]|附录", item), item  # exercise 5 says what it needs itself
    script = next(item for item in items if "`model.py`" in item and "W1[0, 0]" in item)
    assert ("central difference quotient" in script or "中心差商" in script) and "10^{-8}" in script
    # only appendices follow the exercises, and the training section the lesson folds
    later = [title for n, title, _ in sections[at + 1:] if n.isdigit()]
    assert later in ([], ["Training the network"], ["训练网络"], ["Gradient-descent update", "Optimizer", "Initialisation"]), later


@pytest.mark.parametrize("name", LESSONS)
def test_two_conceptual_exercises_are_answered_in_symbols(name):
    """Nielsen's two conceptual exercises: another activation in one layer (its own g⁽ˡ⁾, a symbol the
    document already has, so none is added), and a network of linear units; their answers are general
    statements in the document's notation."""
    md = lesson(name)
    sections = parts(md)
    exercises = sections[find(md, "exercises")][2]
    answers = sections[-1][2]
    assert "$g^{(l)}$" in exercises and "$g(z) = z$" in exercises
    assert r"\odot {g^{(L)}}'(z^{(L)})" in answers and r"\odot {g^{(l)}}'(z^{(l)})" in answers
    assert r"\delta^{(1)} = (W^{(2)})^{\top} \cdots (W^{(L)})^{\top} \, \partial C / \partial a^{(L)}" in answers
    assert r"W^{(L)} \cdots W^{(1)} x" in answers


@pytest.mark.parametrize("name", LESSONS)
def test_the_table_of_symbols_is_an_appendix_and_the_text_defines_each_where_first_used(name):
    md = lesson(name)
    sections = parts(md)
    at = find(md, "notation")
    assert not sections[at][0].isdigit() and at > find(md, "verification")  # an appendix, after the checks
    assert re.search(rf"appendix {sections[at][0]}\b|附录 {sections[at][0]}", sections[0][2])  # section 1 points to it
    assert "| Symbol |" not in sections[0][2] + sections[1][2] and "| 符号 |" not in sections[0][2] + sections[1][2]
    forward = sections[find(md, "forward")][2].split("\n\n")[1]  # its first paragraph
    for symbol in ("$L$", "$l$", "$x = a^{(0)}$", "$n_{l}$", "$W^{(l)}$", "$b^{(l)}$", "$z^{(l)}$", "$g^{(l)}$", "$a^{(l)}$"):
        assert symbol in forward, symbol
    loss = sections[find(md, "loss")][2].split("\n\n")[1]
    assert "$C$" in loss and "$y$" in loss
