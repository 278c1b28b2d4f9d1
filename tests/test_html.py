"""derivation.html: one self-contained page whose formulas are MathML, checked in headless Chromium."""

import json
import re
import shutil

import pytest

from conftest import ROOT, need, run_node
from derive.mathml import display, inline

GALLERY_PAGES = {
    "en": ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse" / "derivation.html",
    "zh": ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse-zh" / "derivation.html",
}
SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.mark.parametrize("lang", GALLERY_PAGES)
def test_page_is_self_contained(lang):
    page = GALLERY_PAGES[lang].read_text()
    assert page.startswith("<!DOCTYPE html>") and f'<html lang="{"en" if lang == "en" else "zh-Hans"}">' in page
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(http" not in page
    assert not re.search(r'(src|href)="(?!#)', page), "every link must point inside the page"
    assert "<svg" in page  # the picture is inline


@pytest.mark.parametrize("lang", GALLERY_PAGES)
def test_every_formula_is_mathml(lang):
    page = GALLERY_PAGES[lang].read_text()
    outside = re.sub(r"<math.*?</math>|<code>.*?</code>|<pre>.*?</pre>|<style>.*?</style>|<svg.*?</svg>", "", page, flags=re.S)
    assert "$" not in outside and "\\frac" not in outside and "\\delta" not in outside
    assert page.count("<math ") > 100 and page.count('display="block"') > 30  # the lesson: 42
    assert "<menclose notation=\"box\">" in page and "<mtable" in page


@pytest.mark.parametrize("page", sorted((ROOT / "outputs").glob("*/derivation.html")), ids=lambda p: p.parent.name)
def test_no_gallery_page_shows_markup_as_text(page):
    """A formula converted twice (prose filled into prose) shows its MathML as escaped text."""
    html = page.read_text()
    assert "&lt;math" not in html and "&lt;mrow" not in html


# every LaTeX construct the printer and the catalog use, with the MathML element that must come out
FEATURES = {
    r"\begin{aligned} a &= b \\ c &= d && \text{(BP1)} \end{aligned}": "<mtable",
    r"\boxed{\delta^{(3)} = a - y}": '<menclose notation="box">',
    r"a \odot b": "&#x02299;",
    r"\left(\left(W^{(l+1)}\right)^{\top} \delta^{(l+1)}\right)": 'stretchy="true"',
    r"\mathbf{1}": 'mathvariant="bold"',
    r"X^{\top}": "&#x022A4;",
    r"\frac{\partial C}{\partial z^{(l)}_{i}}": "<mfrac>",
    r"\sum_{i=0}^{n_{l} - 1} y_{i}": "<munderover>",
    r"\partial": "&#x02202;",
    r"\text{(BP2)}": "<mtext>(BP2)</mtext>",
    r"\tfrac12": "<mfrac>",
    r"y_i \le 1": "&#x02264;",
    r"y_i \ge 0": "&#x02265;",
    r"\left[z^{(l)} > 0\right]": "[",
    r"[\,\cdot > 0\,]": "<mspace",
    r"\bar{C}": "<mover>",
    r"\Delta^{(l)}": 'mathvariant="normal"',
    r"e^{-\log(1 + e^{-z})}": "<msup>",
    r"\begin{aligned} a &= b && \text{(term $j$ of the sum)} \end{aligned}": "<mtext>(term&#x000A0;</mtext><mi>j</mi>",  # a step's tag
}


@pytest.mark.parametrize("tex", FEATURES)
def test_latex_features_convert_to_mathml(tex):
    assert FEATURES[tex] in display(tex)
    assert inline(tex).startswith("<math ")


@pytest.mark.parametrize("tex", [r"\notamacro{x}", r"a & b"])
def test_unfaithful_conversions_are_refused(tex):
    with pytest.raises(ValueError):
        display(tex)


@pytest.mark.parametrize("lang", GALLERY_PAGES)
def test_page_renders_in_chromium_without_errors(lang, node_modules):
    need(shutil.which("chromium") is not None, "Debian's chromium", "DERIVE_REQUIRE_BROWSER")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"derivation-{lang}.png"
    report = json.loads(run_node("browser_check.cjs", [str(GALLERY_PAGES[lang]), str(shot)], node_modules))
    assert report["console_errors"] == [] and report["page_errors"] == []
    assert report["requests"] == [], "the page asked for something outside itself"
    assert report["math"] > 100 and report["merror"] == 0
    assert report["not_laid_out"] == [], "formulas the browser did not render as MathML"
    assert report["empty"] == [], "formulas rendered with no size"
    assert report["boxed_border"] == "solid"  # the boxed key equations have their box
    assert report["svg"] >= 17  # the network's units
    assert report["dollars_in_text"] == 0
    markdown = GALLERY_PAGES[lang].with_suffix(".md").read_text()
    assert report["headings"] == re.findall(r"(?m)^## ((?:\d+|[A-Z])\. .+)$", markdown)  # every section, as in Markdown
    assert shot.stat().st_size > 20_000 and (SCREENSHOTS / f"derivation-{lang}-full.png").stat().st_size > 100_000


@pytest.mark.parametrize("config", [(3, "relu,tanh", None, "mse"), (1, "identity", None, "mse"), (2, "tanh", "softmax", "ce")])
def test_every_template_branch_converts_and_is_deterministic(config):
    """Mixed hidden activations (per-layer recursions), no hidden layer, softmax: every formula of
    these pages converts (a failed conversion raises) and the same command gives the same bytes."""
    from derive.model import make_spec
    from derive.run import generate

    spec = make_spec(*config, formats="html")
    page = generate(spec).files["derivation.html"]
    assert page == generate(spec).files["derivation.html"]
    assert page.count(b"<math ") > 50
