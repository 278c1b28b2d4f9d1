"""Section 8 of the relu + softmax lesson in the order a student follows (review 21: en defect 13, zh
items 3 and PDF p. 6): BP1 for any output activation first (δ = Jᵀ ∂C/∂a), then the softmax's J
computed and put in, then this network's loss; only the general form is called BP1."""

from __future__ import annotations

import re

import pytest

from conftest import generated
from derive.model import make_spec

GENERAL = r"\delta^{(L)} &= J^{\top} \frac{\partial C}{\partial a^{(L)}}"
SOFTMAX = r"\delta^{(L)} &= \frac{\partial C}{\partial a^{(L)}} \odot a^{(L)} - "
INNER = r"\sum_{j''} \left[j = j''\right]"  # the bracket inside the softmax's derivative, before it collapses


def _section(markdown: str, number: int) -> str:
    return markdown.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]


def _prose(section: str) -> str:
    return re.sub(r"\$\$.*?\$\$", "", section, flags=re.S)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_general_output_error_comes_before_the_softmax_instance(lang):
    files = generated(make_spec(3, "relu", "softmax", "ce", formats="md", lang=lang)).files
    section = _section(files["derivation.md"].decode(), 7)
    general, softmax, instance = (section.index(s) for s in (GENERAL, SOFTMAX, r"\delta^{(3)} = a^{(3)} - y"))
    assert general < softmax < instance
    # BP1 is named once, for the general form; the softmax's lines and this loss's are not called BP1
    assert "BP1" in _prose(section[:general]) and "BP1" not in _prose(section[general:])
    assert "J_{j'j} = \\partial a^{(L)}_{j'} / \\partial z^{(L)}_j" in _prose(section[:general])
    # the lesson leaves the inner bracket's collapse to the student; `full` keeps that line
    assert INNER not in section
    full = generated(make_spec(3, "relu", "softmax", "ce", formats="md", lang=lang, detail="full")).files
    full_section = _section(full["derivation.md"].decode(), 7)
    assert INNER in full_section and full_section.index(GENERAL) < full_section.index(SOFTMAX)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_sigmoid_output_error_reads_as_prose(lang):
    """en defect 13's clipped sentence and the one-symbol sentence that read "for the a second index"."""
    section = _section(generated(make_spec(3, "sigmoid", formats="md", lang=lang)).files["derivation.md"].decode(), 7)
    prose = _prose(section)
    assert "for the a " not in prose and "into BP1. This" not in prose


@pytest.mark.parametrize("config", [(3, "sigmoid", None, "mse"), (3, "relu", "softmax", "ce")], ids=["sigmoid", "relu-softmax"])
def test_no_paragraph_of_the_output_error_section_starts_with_a_pronoun(config):
    """Review 22, defect 4: the sentence that defines j′ stood between "Start where the loss is…" and
    "It depends on the loss only through…", so "It" had lost what it stood for. Every paragraph of
    the lesson's output-error section (§7 since the worked example moved to §11) names its subject."""
    section = _section(generated(make_spec(*config, formats="md")).files["derivation.md"].decode(), 7)
    paragraphs = [p.strip() for p in _prose(section).split("\n\n") if p.strip()]
    assert paragraphs and not [p[:40] for p in paragraphs if re.match(r"(It|This|They)\b", p)]
    assert any(p.startswith("The output error $\\delta^{(L)}$ depends on the loss only") for p in paragraphs)
