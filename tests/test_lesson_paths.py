"""Section 12, the big picture as a sum over paths, at the worked example's numbers: every path from
one weight of layer 1 to the loss with its rates, the parts the paths through one unit of layer 2
share (their sum is that unit's error) and the sum of all products (the gradient). The numbers are
checked against the generated model.py, which computes its gradients by backpropagation."""

from __future__ import annotations

import re

import pytest
import sympy as sp

from conftest import generated
from derive.lesson import path_example as paths_module
from derive.lesson.path_example import path_example
from derive.lesson.worked_example import worked_example
from derive.model import make_spec
from derive.notation import Q
from derive.verify import load_module
from test_lesson import _array, repeated

CONFIGS = [(3, "sigmoid", None, "mse"), (3, "relu", None, "ce"), (2, "gelu", None, "nll"), (4, "tanh", None, "mse")]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "-".join(str(x) for x in c if x))
def paths_and_code(request):
    outcome = generated(make_spec(*request.param, formats="py"))
    example = worked_example(outcome.derivation)
    return outcome.derivation, example, path_example(outcome.derivation, example), \
        load_module(outcome.files["model.py"].decode())


def test_the_paths_add_up_to_what_the_generated_code_computes(paths_and_code):
    derivation, example, paths, model = paths_and_code
    L = derivation.model.depth
    assert len(paths.terms) == 2 ** (L - 1 + paths.vector)  # one unit per later layer (and an output at a softmax)
    params = {p.code(): _array(example, p) for node in derivation.model.network.layers for p in node.parameters}
    X, Y = _array(example, Q("a", 0)), _array(example, Q("y"))
    grads = model.gradients(params, X, Y)
    j1, k = paths.weight
    # every path's product, multiplied out here again from its printed factors
    total = sum(float(sp.Mul(*t.tail, *t.head)) for t in paths.terms)
    assert total == pytest.approx(grads["W1"][j1 - 1, k - 1], rel=1e-10, abs=1e-15)
    assert total == pytest.approx(float(paths.total), rel=1e-12, abs=1e-15)
    # the paths through one unit of layer 2, from that unit to the loss: its error, which for one
    # sample is the gradient of its bias
    for j2, through, _error in paths.shared:
        parts = sum(float(sp.Mul(*t.tail)) for t in paths.terms if t.units[0] == j2)
        assert parts == pytest.approx(grads["b2"][j2 - 1, 0], rel=1e-10, abs=1e-15)
        assert parts == pytest.approx(float(through), rel=1e-12, abs=1e-15)
    # the paths the lesson keeps where a one-hot target silences an output add up to the same
    if paths.silent:
        assert 0 < len(paths.counted) < len(paths.terms)
        assert sum(float(t.product) for t in paths.counted) == pytest.approx(grads["W1"][j1 - 1, k - 1], rel=1e-10, abs=1e-15)
        for j2, _through, _error in paths.shared:
            parts = sum(float(sp.Mul(*t.tail)) for t in paths.counted if t.units[0] == j2)
            assert parts == pytest.approx(grads["b2"][j2 - 1, 0], rel=1e-10, abs=1e-15)
    else:
        assert paths.counted == paths.terms
    # the factors from the weight to layer 2 are W⁽²⁾, the slope of layer 1 and the input, as given
    for t in paths.terms:
        assert t.head[0] == example.point[("W_2", (t.units[0] - 1, j1 - 1))]
        assert t.head[2] == example.point[("a_0", (k - 1,))]


def test_the_relu_example_keeps_its_traced_paths_alive():
    """Review 23, defect 6: the relu example's one inactive unit lies off the paths of W⁽¹⁾₁₁, so no
    path is 0 for a slope: the zero rows are those whose output has rate ∂C/∂a = −y/a = 0 (a target of
    0), at most half of them, and both errors of layer 2 are not 0."""
    outcome = generated(make_spec(3, "relu", None, "ce", formats="py"))
    example = worked_example(outcome.derivation)
    paths = path_example(outcome.derivation, example)
    assert paths.weight == (1, 1)
    slope_zero = [t for t in paths.terms if any(f == 0 for f in t.tail[3::2] + t.head[1:2])]
    assert slope_zero == []
    zero_rows = [t for t in paths.terms if t.product == 0]
    assert len(zero_rows) == paths.zero <= len(paths.terms) // 2
    assert all(example.point[("y", (t.units[-1] - 1,))] == 0 for t in zero_rows)
    assert all(error != 0 for _, _, error in paths.shared)
    # the softmax's off-diagonal rates are used: a path may cross to the other output
    assert any(t.tail[1] < 0 for t in paths.terms)


def test_the_agreement_check_can_fail(monkeypatch):
    outcome = generated(make_spec(3, "sigmoid", None, "mse", formats="py"))
    example = worked_example(outcome.derivation)
    slope = paths_module._slope  # one slope a thousandth off: the paths no longer add up to the errors
    monkeypatch.setattr(paths_module, "_slope", lambda activation, value: slope(activation, value) * sp.Rational(1001, 1000))
    with pytest.raises(AssertionError):
        path_example(outcome.derivation, example)


def _section(markdown: str, number: int) -> str:
    return markdown[markdown.index(f"\n## {number}. "):markdown.index(f"\n## {number + 1}. ")]


@pytest.mark.parametrize("config", [(3, "sigmoid", None, "mse"), (3, "relu", None, "ce")], ids=["sigmoid", "relu-ce"])
@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("detail", ["lesson", "full"])
def test_section_12_prints_the_paths_and_the_gradient_of_section_11(config, lang, detail):
    md = generated(make_spec(*config, formats="md", lang=lang, detail=detail)).files["derivation.md"].decode()
    assert repeated(md) == {}
    paths = _section(md, 12)
    rows = re.findall(r"(?m)^\| \$\((\d(?:, \d)+)\)\$ \|", paths)
    # the softmax's 8 paths at full; the lesson keeps the 4 that end at the target's output, saying so
    # before the table (review 25, defect 9), and names the other 4 after it
    one_hot = config[1] == "relu" and detail == "lesson"
    assert len(rows) == (8 if config[1] == "relu" and not one_hot else 4) and len(set(rows)) == len(rows)
    if one_hot:
        assert all(row.endswith(", 1") for row in rows)
        before, after = paths[:paths.index("| $(")], paths[paths.index("| $("):]
        # in the paragraph that opens the table (the one on its columns stands between them since review 30)
        assert r"\frac{\partial C}{\partial a^{(3)}_{2}} = 0" in before.split("\n\n")[-3]
        assert ("The other 4 paths end at output 2" if lang == "en" else "其余 4 条路径到达输出 2") in after
    # the sum of the products ends in the gradient of W⁽¹⁾₁₁ printed by the worked example
    total = re.search(r"\\frac\{\\partial C\}\{\\partial W\^\{\(1\)\}_\{11\}\} &= (?:.* = )?(.+?)\s*$", paths, re.M)
    example = _section(md, 11)
    matrix = re.search(r"\\frac\{\\partial C\}\{\\partial W\^\{\(1\)\}\} &= \\begin\{pmatrix\} (.+?) &", example)
    assert total and matrix and total.group(1) == matrix.group(1)
    # the shared parts: δ⁽²⁾ of section 12 as printed in section 11
    errors = re.search(r"\\delta\^\{\(2\)\} &= \\begin\{pmatrix\} (.+?) & (.+?) \\end", example)
    for j2, printed in ((1, errors.group(1)), (2, errors.group(2))):
        assert re.search(r"\\delta\^\{\(2\)\}_\{%d\} &= .* = %s\s*(\\\\)?$" % (j2, re.escape(printed)), paths, re.M), j2
    # the discovery argument leads into the grouped equations, BP1, BP2 and BP4
    assert all(tag in paths for tag in ("BP1", "BP2", "BP4"))
    # review 22, defect 3: the lesson says that every factor stands in the table, not "listed there" in §17
    if detail == "lesson":
        assert "listed there" not in paths and "列在那里" not in paths
        # review 30, defect 1: the worked example comes before this section, which looks back at it (by
        # its number) instead of borrowing its numbers ahead of time
        assert "ahead of time" not in paths and "提前用到了" not in paths
        assert re.search(r"worked example of section \[11\]\(#11-" if lang == "en" else r"第 \[11\]\(#11-[^)]*\) 节的算例", paths)
    assert ("discovered backpropagation" in paths) if lang == "en" else ("这正是反向传播的基本思想" in paths)


def test_no_table_where_the_gradient_is_not_a_sum_over_paths():
    """With a penalty the gradient of a weight has its own term; the section keeps its general form."""
    outcome = generated(make_spec(3, "sigmoid", None, "mse", formats="md", l2="0.01"))
    assert path_example(outcome.derivation, worked_example(outcome.derivation)) is None
    paths = _section(outcome.files["derivation.md"].decode(), 12)
    assert "| $(" not in paths and "BP4" in paths


def _value(cell: str) -> float:
    """A cell of the path table holding one number, $-0.4962$ or $1.592 \\cdot 10^{-3}$."""
    found = re.fullmatch(r"\$(-?[\d.]+)(?: \\cdot 10\^\{(-?\d+)\})?\$", cell.strip())
    assert found, cell  # one number, never a product of several
    return float(found.group(1)) * 10 ** int(found.group(2) or 0)


@pytest.mark.parametrize("config", [(3, "sigmoid", None, "mse"), (3, "relu", None, "ce")], ids=["sigmoid", "relu-ce"])
@pytest.mark.parametrize("detail", ["lesson", "full"])
def test_the_path_table_has_one_factor_per_column_and_names_the_tail(config, detail):
    """Review 30, defect 12: the first column packed four factors into one cell. Now every factor has
    its own column, loss end first: the tail from z⁽²⁾_{j₂} to the loss (4 factors, softmax crossing
    included), a column with the tail's product, named as the tail, then the 3 factors from the weight
    to z⁽²⁾_{j₂} and the path's product. The tails of the rows through one unit of layer 2 add up to the
    δ⁽²⁾ printed below the table."""
    md = generated(make_spec(*config, formats="md", detail=detail)).files["derivation.md"].decode()
    paths = md.split("## 12. ", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in paths.splitlines() if line.startswith("| $(")]
    header, *rows = [line.strip("| ").split(" | ") for line in lines]
    assert len(header) == 1 + 4 + 1 + 3 + 1 and header[5].startswith("tail $z^{(2)}_{j_2}")
    assert header[1].startswith(r"$\frac{\partial C}{\partial a^{(3)}_{j_{3}") and header[7] == "$g'(z^{(1)}_{1})$"
    assert "The first 4 make up the path's tail" in paths and "The last 3 lead from the weight" in paths
    tails = {}
    for name, *cells, product in rows:
        factors = [_value(cell) for cell in cells]
        tail, head = factors[:4], factors[5:]
        assert factors[4] == pytest.approx(tail[0] * tail[1] * tail[2] * tail[3], rel=2e-3), name
        assert _value(product) == pytest.approx(factors[4] * head[0] * head[1] * head[2], rel=2e-3, abs=1e-12), name
        j2 = name.strip("$()").split(", ")[0]
        tails[j2] = tails.get(j2, 0.0) + factors[4]
    for j2, total in tails.items():
        printed = re.search(r"\\delta\^\{\(2\)\}_\{%s\} &= .* = (.+?)\s*(\\\\)?$" % j2, paths, re.M).group(1)
        assert total == pytest.approx(_value(f"${printed}$"), rel=2e-3), j2
