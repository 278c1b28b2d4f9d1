"""--lang: the documents in another language have translated prose and exactly the same formulas."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import generated
from derive.cli import main
from derive.model import make_spec
from derive.present import messages


@pytest.fixture(scope="module")
def both():
    """The complete documents (`--detail full`: every formula; the lesson's are a subset, test_detail)."""
    return {lang: generated(make_spec(3, "relu", None, "ce", formats="md,tex", lang=lang, detail="full")).files
            for lang in ("en", "zh")}


def display_math(markdown: str) -> list[str]:
    """The displayed formulas, without the names of the steps in their margins (in the document's language)
    and with the sign of scientific notation as English writes it (Chinese writes 1.234 \\times 10^{-3})."""
    return [without_text(m).replace(r"\times 10^", r"\cdot 10^") for m in re.findall(r"\$\$(.*?)\$\$", markdown, flags=re.S)]


def without_text(formula: str) -> str:
    return re.sub(r"\\text\{(?:[^{}]|\{[^{}]*\})*\}", r"\\text{}", formula)


def margin_tags(tex: str) -> str:
    """A step's tag as a column after the rows (English) or at the right margin (Chinese, `\\tag*`):
    the same tag either way."""
    return re.sub(r" \\tag\*\{((?:[^{}]|\{[^{}]*\})*)\}", r" && \\text{\1}", tex).replace(r" \notag", "")


def test_margin_tags_are_compared_as_the_same_tag():
    assert margin_tags(r"a &= b \tag*{（定义）} \\*") == r"a &= b && \text{（定义）} \\*"
    assert margin_tags(r"a &= b && \text{(definition)} \notag") == r"a &= b && \text{(definition)}"
    assert without_text(margin_tags(r"a \tag*{（定义）}")) != without_text(margin_tags(r"a"))


def test_formulas_are_the_same_in_every_language(both):
    en, zh = (both[l]["derivation.md"].decode() for l in ("en", "zh"))
    assert display_math(en) == display_math(zh) and len(display_math(en)) > 40
    tex_en, tex_zh = ([without_text(margin_tags(body)).replace(r"\times 10^", r"\cdot 10^") for _, body in re.findall(r"\\begin\{(equation|align)\}(.*?)\\end\{\1\}",
                                                                    both[l]["derivation.tex"].decode(), re.S)]
                      for l in ("en", "zh"))
    assert tex_en == tex_zh and len(tex_en) > 10


def test_chinese_documents_carry_the_chinese_catalog(both):
    zh = both["zh"]["derivation.md"].decode()
    catalog = messages("zh")
    for key in ("want", "network_passes", "notation", "forward", "method", "output_error", "recursion", "summary", "example",
                "verification"):
        assert f". {catalog['section'][key]}" in zh
    assert f"\\text{{（{catalog['tag']['chain_rule']}）}}" in zh and catalog["activation_title"]["relu"] in zh
    assert catalog["notation"]["eta"] in zh  # the notation table
    # no English sentence or margin tag of the catalog is left in the Chinese document
    english = messages("en")
    for key in ("chain_rule", "local_derivative", "collapse", "matrix_form"):
        assert english["method"][key].split("**")[1] not in zh
    for key in ("chain_rule", "local_derivative", "kronecker_collapse", "matrix_form"):
        assert f"\\text{{({english['tag'][key]})}}" not in zh
    assert "--lang zh" in zh  # the command that reproduces it
    tex = both["zh"]["derivation.tex"].decode()
    assert r"\usepackage[UTF8,fontset=fandol]{ctex}" in tex and "fontenc" not in tex


def test_english_is_the_default_and_its_folder_is_unchanged():
    spec = make_spec(3, "sigmoid")
    assert spec.lang == "en" and spec.slug() == "mlp-L3-sigmoid-sigmoid-mse"
    assert make_spec(3, "sigmoid", lang="zh").slug() == "mlp-L3-sigmoid-sigmoid-mse-zh"
    assert spec.formats == ("md", "tex", "py", "json")


def test_unknown_language_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "tanh", "--lang", "fr", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip() == "derive: error: invalid value for --lang: 'fr'; accepted: en, zh"
    assert not (tmp_path / "o").exists()


def test_cross_references_resolve_in_every_format(both):
    for lang in ("en", "zh"):
        tex = both[lang]["derivation.tex"].decode()
        refs = set(re.findall(r"\\ref\{([^}]+)\}", tex))
        labels = set(re.findall(r"\\label\{([^}]+)\}", tex))
        assert refs and refs <= labels, refs - labels
        assert {"eq:bp1", "eq:bp2", "eq:bp3", "eq:bp4"} <= labels  # the results the key equations stand for
        assert {"eq:bp3-batch", "eq:bp4-batch", "eq:upstream-l"} <= refs
        assert "eq:upstream-out" in labels  # put into BP1 right below it (the softmax's BP1 is derived first)
        md = both[lang]["derivation.md"].decode()
        anchors = set(re.findall(r"\]\(#([^)]+)\)", md))
        contents = md.split("\n## ", 1)[0]
        assert anchors and all(f"(#{a})" in contents for a in anchors)  # every link goes to a section heading


def _prose(markdown: str) -> str:
    """The Markdown without math, code spans and code blocks."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def test_chinese_prose_joins_its_lists_and_clauses_with_chinese_punctuation():
    # a network whose code notes list several stable forms (erf helper, log-softmax) and whose kink
    # notes list layers: the joins come from the catalog, not from English ", " / "; " / " and "
    md = generated(make_spec(3, "gelu", None, "nll", formats="md", lang="zh")).files["derivation.md"].decode()
    prose = _prose(md)
    han = r"[\u4e00-\u9fff\uff08\uff09\u3001\u3002\uff0c\uff1b]"
    joined = re.findall(rf"{han}\s*[;,]\s|[;,]\s*{han}", prose)
    assert not joined, joined[:5]
    assert "；" in prose


def test_chinese_prose_spaces_digits_from_han_characters():
    """The Chinese catalog writes a space between a Han character and a digit (“保留 4 位”), as it
    does around Latin words and inline math: “保留4 位” was printed four times (review 24)."""
    import re

    from derive.present import messages

    adjacent = re.compile(r"[\u4e00-\u9fff][0-9]|[0-9][\u4e00-\u9fff]")
    for table, entries in messages("zh").items():
        for key, text in entries.items():
            if not isinstance(text, str):
                continue
            prose = re.sub(r"\$[^$]*\$|`[^`]*`", "", text)  # math and code set their own spacing
            assert not adjacent.search(prose), f"{table}.{key}: {adjacent.search(prose).group()!r}"


def test_chinese_lesson_names_the_zero_rows_and_the_chinese_textbooks():
    """zh issue 13: section 11 (the worked example) names the rows and the column an inactive unit leaves at 0 (computed,
    and checked against the gradients), and appendix C maps the notation of 邱锡鹏 and 周志华; the
    English lesson keeps its general sentence and its one table."""
    docs = {lang: generated(make_spec(3, "relu", None, "ce", formats="md", lang=lang, detail="lesson")).files["derivation.md"].decode()
            for lang in ("en", "zh")}
    zh, en = docs["zh"], docs["en"]
    assert r"$\partial C / \partial W^{(1)}$ 的第 2 行和 $\partial C / \partial b^{(1)}$ 的第 2 个分量都为 0" in zh
    assert r"$\partial C / \partial W^{(2)}$ 的第 2 列也为 0" in zh
    assert "第 $l$ 层第 $j$ 个神经元未激活时" not in zh
    assert "| 量 | 本章 | 邱锡鹏 | 周志华 |" in zh and r"$-e_{h},\ -g_{j}$" in zh
    assert "Qiu" not in en and "the zero rows" in en


# zh review 33, B-1 and B-2: one name for the complex-step method and one for the bracket [P]
RETIRED_TERMS = ("示性函数", "复步长检验", "复步长导数", "复步长微分")


@pytest.fixture(scope="module")
def zh_relu_lesson():
    """The Chinese relu + softmax + cross-entropy lesson, which the gallery does not hold."""
    return generated(make_spec(3, "relu", None, "ce", formats="md", lang="zh", detail="lesson")).files["derivation.md"].decode()


def test_chinese_catalog_names_the_method_and_the_bracket_one_way():
    """Every Chinese message says 复步长法 and 指示函数: none of the names the review found beside them."""
    for table, entries in messages("zh").items():
        for key, text in entries.items():
            if isinstance(text, str):
                assert not [t for t in RETIRED_TERMS if t in text], f"{table}.{key}"


def test_chinese_gallery_and_lessons_use_the_unified_terms(zh_relu_lesson):
    """No Chinese document of the gallery, nor the relu + softmax lesson (not in the gallery), uses a
    retired name; the relu lesson names the bracket 指示函数 and both lessons the method 复步长法."""
    root = Path(__file__).resolve().parent.parent / "outputs"
    chinese = sorted(root.glob("*-zh/derivation.md"))
    assert len(chinese) >= 5, chinese
    relu = zh_relu_lesson
    documents = {path.parent.name: path.read_text(encoding="utf-8") for path in chinese} | {"relu-softmax-zh": relu}
    for name, md in documents.items():
        assert not [t for t in RETIRED_TERMS if t in md], name
    assert "指示函数 $[P]$ 在条件 $P$ 成立时取 1" in relu and "复步长法（complex-step method）" in relu
    assert "复步长法（complex-step method）" in documents["mlp-L3-sigmoid-sigmoid-mse-zh"]


def test_chinese_lessons_read_as_written_in_chinese(zh_relu_lesson):
    """zh review 33, F1-F3, F5 and D: BP4's shorthand is a formula, not a bracket longer than the rule;
    an error near 0 says the loss is flat in that direction (not 'the unit is near optimal'); the paths
    are not 'labelled by' their units; the float64 paragraph has no bracket; the ReLU is one of the
    main reasons, not the reason; the larger step's error is given as 约为."""
    relu = zh_relu_lesson
    sigmoid = (Path(__file__).resolve().parent.parent / "outputs" / "mlp-L3-sigmoid-sigmoid-mse-zh" / "derivation.md").read_text(encoding="utf-8")
    for md in (relu, sigmoid):
        assert r"可简记为 $a_{\text{入}}\, \delta_{\text{出}}$。" in md and "输入端的激活值乘以输出端的误差项" not in md
        assert "损失在这个方向上已接近极小" in md and "接近最优" not in md
        assert "第一列注明路径在第 1 层之后经过的神经元" in md and "标记。" not in md
        assert "（精确值" not in md and "舍入后的差商如下：" in md
        assert "主要原因之一" in md and "主要原因。" not in md and "主要原因就在这里" not in md
        assert "再算一次，相对误差约为 $" in md
    assert "一般情形数的" not in relu and "出现两次" not in relu
    # the answer to the minibatch exercise says it lists the errors and activations first (C, last note)
    assert "下面先列出两个样本的误差项和激活值" in sigmoid and "下面依次是两个样本" not in sigmoid
    assert r"所以 $n_{3}$ 要乘两次，和式共有 $n_{2} n_{3} n_{3} = 5 \cdot 3 \cdot 3 = 45$ 项。" in relu
