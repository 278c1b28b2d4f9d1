"""Section 17 of the relu + softmax lesson: the worked example's ratio of the largest errors set
against the bound max|δ⁽¹⁾| ≤ ‖W⁽²⁾‖₁ ‖W⁽³⁾‖₁ · 1 · 1 · max|δ⁽³⁾| (review 21, defect 11), every
number recomputed here from the example's printed input and parameters with PyTorch."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import generated
from derive.model import make_spec

torch = pytest.importorskip("torch")


def _section(markdown: str, number: int) -> str:
    return markdown.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]


def _matrix(section: str, name: str) -> np.ndarray:
    """A stated matrix or column of the example, as printed (x, y, W^{(l)}, b^{(l)})."""
    body, transposed = re.search(rf"(?m)^{re.escape(name)} &= \\begin\{{pmatrix\}} (.*?) \\end\{{pmatrix\}}(\^\{{\\top\}})?",
                                 section).groups()
    rows = np.array([[float(v) for v in row.split("&")] for row in body.split(r"\\")])
    return rows.T if transposed else rows


@pytest.fixture(scope="module", params=["en", "zh"])
def example(request):
    markdown = generated(make_spec(3, "relu", "softmax", "ce", formats="md", lang=request.param)).files["derivation.md"]
    # the example states its numbers in section 11; section 13 sets its ratio against the bound
    return request.param, _section(markdown.decode(), 11), _section(markdown.decode(), 13)


def test_the_relu_example_states_the_weights_bound_and_its_ratio_lies_below_it(example):
    lang, stated, section = example
    x, y = _matrix(stated, "x"), _matrix(stated, "y")
    weights = {l: torch.tensor(_matrix(stated, f"W^{{({l})}}"), dtype=torch.float64) for l in (1, 2, 3)}
    biases = {l: torch.tensor(_matrix(stated, f"b^{{({l})}}"), dtype=torch.float64, requires_grad=True)
              for l in (1, 2, 3)}
    a, z = torch.tensor(x, dtype=torch.float64), {}
    for l in (1, 2, 3):
        z[l] = weights[l] @ a + biases[l]
        z[l].retain_grad()
        a = torch.relu(z[l]) if l < 3 else torch.softmax(z[l], dim=0)
    loss = -(torch.tensor(y, dtype=torch.float64) * torch.log(a)).sum()
    loss.backward()
    ratio = z[1].grad.abs().max().item() / z[3].grad.abs().max().item()
    sums = {l: weights[l].abs().sum(dim=0).max().item() for l in (2, 3)}
    bound = sums[2] * sums[3]  # the ReLU's largest slope is 1
    assert ratio <= bound
    assert bound > 1.2 * ratio  # the example is not at its bound: the inactive units pass nothing back
    quoted = re.search(r"(?:is |的 )(\d\.\d+)(?: times| 倍)", section).group(1)
    assert float(quoted) == pytest.approx(ratio, rel=5e-4)
    for l, value in sums.items():
        assert f"${value:.4g}$ ($W^{{({l})}}$)" in section or f"$\\lVert W^{{({l})}} \\rVert_1 = {value:.4g}$" in section
    said = {"en": f"the ratio is at most {bound:.4g}.", "zh": f"所以这个比值不超过 {bound:.4g}。"}[lang]
    assert said in section, said
    assert ("between 0 and 1" in section and "inactive units" in section) if lang == "en" else "未激活的神经元" in section


def test_the_bound_is_the_engines_own_and_not_stated_for_the_sigmoid_without_its_slopes():
    """The sigmoid lesson keeps its bound with the slopes 1/4 · 1/4; the ReLU sentence is its own."""
    markdown = generated(make_spec(3, "sigmoid", formats="md")).files["derivation.md"].decode()
    section = _section(markdown, 13)
    assert r"\frac{1}{4} \cdot \frac{1}{4}" in section and "How large could it be" not in section
