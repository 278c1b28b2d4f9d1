"""--format pdf: English with pdflatex, Chinese with XeLaTeX + ctex; one-line error without TeX."""

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from conftest import ROOT, need
from derive.cli import main
from derive.model import make_spec
from derive.run import generate
from derive.typeset import has_stamp, setup

ENGINES = {"en": ("pdflatex", "DERIVE_REQUIRE_TEX"), "zh": ("xelatex", "DERIVE_REQUIRE_XETEX")}
TITLE = {"en": "Backpropagation, derived", "zh": "反向传播的推导"}


@pytest.fixture(scope="module", params=["en", "zh"])
def built(request):
    lang = request.param
    engine, env = ENGINES[lang]
    need(shutil.which(engine) is not None, engine, env)
    spec = make_spec(3, "relu", None, "ce", formats="tex,pdf", lang=lang)
    return lang, generate(spec).files, generate(spec).files


def pdf_text(pdf: bytes, tmp_path) -> str:
    need(shutil.which("pdftotext") is not None, "pdftotext (poppler-utils)")
    (tmp_path / "d.pdf").write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(tmp_path / "d.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_pdf_has_title_notation_unnumbered_lesson_equations_summary_and_picture(built, tmp_path):
    lang, files, _ = built
    pdf = files["derivation.pdf"]
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    text = pdf_text(pdf, tmp_path)
    assert TITLE[lang] in text
    assert "??" not in text, "an unresolved cross-reference"
    for label in ("BP1", "BP2", "BP3", "BP4"):
        assert f"({label})" in text or f"（{label}）" in text  # Chinese tags in full-width brackets
    # the lesson numbers no display and cites none by its number, as its Markdown does: it names BP1-BP4
    # and cites sections ("the result above", "section 8"); review 21 found (8.1) and (8.2) its only
    # numbers. `full` numbers its results and cites them (test_bp1_carries_one_label…)
    assert not re.search(r"\((\d+|[A-D])\.\d+\)", text) and not re.findall(r"(?:eq\.|式) ?\d", text)
    tex = files["derivation.tex"].decode()
    assert r"\label{eq:" not in tex and r"\ref{eq:" not in tex and r"\begin{equation}" not in tex
    assert re.findall(r"(?:section|第) \d+", text)  # it cites sections instead
    assert r"\boxed" in tex and r"\begin{tikzpicture}" in tex and "longtable" in tex
    assert has_stamp(pdf, tex)


def test_pdf_is_byte_identical_for_the_same_command(built):
    _, first, second = built
    assert first["derivation.pdf"] == second["derivation.pdf"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_without_tex_the_error_says_what_to_install_and_nothing_is_written(lang, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "tanh", "--format", "md,pdf", "--lang", lang,
                                       "--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    engine = setup(lang).engine
    assert lines[0].startswith(f"derive: error: --format pdf needs {engine}, which is not installed; install TeX Live")
    assert setup(lang).packages in lines[0]
    assert not out.exists()


def test_gallery_pdfs_were_compiled_from_the_gallery_tex():
    for folder in ("mlp-L3-sigmoid-sigmoid-mse", "mlp-L3-sigmoid-sigmoid-mse-zh"):
        pdf = (ROOT / "outputs" / folder / "derivation.pdf").read_bytes()
        tex = (ROOT / "outputs" / folder / "derivation.tex").read_text()
        assert has_stamp(pdf, tex) and not has_stamp(pdf, tex + "%")


def test_commands_copy_back_exactly_and_the_pdf_says_what_it_is(built, tmp_path):
    """`--layers` stays two hyphens (T1 fonts would set an en dash, and a command copied from the PDF
    would fail); the PDF's information names its title, author, subject and keywords."""
    lang, files, _ = built
    text = pdf_text(files["derivation.pdf"], tmp_path)
    assert "--layers 3 --act relu --loss ce" in text.replace("\n", " ")
    need(shutil.which("pdfinfo") is not None, "pdfinfo (poppler-utils)")
    info = subprocess.run(["pdfinfo", str(tmp_path / "d.pdf")], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    assert fields["Title"].strip().startswith(TITLE[lang]) and fields["Author"].strip() == "derive"
    assert fields["Subject"].strip() and "derive-source-sha256-" in fields["Keywords"]
    assert len(fields["Keywords"].split(";")[0].split(",")) >= 3  # the document's own keywords, then the stamp


def test_the_algorithm_table_sets_each_line_of_code_whole_beside_its_formula(built, tmp_path):
    """In print each step's line of code sits beside its formula (zh review 17, layout item 3: stacked
    under it, the table took two pages), in a column wide enough that none is broken (as
    `A1 = (1/2)*np.tanh((1/2)*Z1) +` / `1/2` was in a column of half the page)."""
    from derive.present import messages

    lang, files, _ = built
    tex = files["derivation.tex"].decode()
    cells = re.findall(r"\$ & \{\\derivecodesize\\hangindent=1em \\texttt\{(.*)\}\\par\} \\\\", tex)
    lines = [re.sub(r"\\allowbreak\{\}|\\(?=[_&%#{}])", "", cell).replace("~", " ") for cell in cells]
    assert len(lines) == 15 and lines[0] == "Z1 = (W1 @ A0) + b1"
    # the formulas with a slash, ∂C̄/∂W⁽ˡ⁾ = (1/m) D⁽ˡ⁾ …, so that a row is one line high (zh review 26 §4),
    # where the Markdown keeps its fractions
    formulas = re.findall(r"(?m)^\d+ & (\$.*?\$) & \{\\derivecodesize", tex)
    assert len(formulas) == 15 and not any(r"\frac" in f for f in formulas)
    assert sum(r"\partial \bar{C}/\partial W^{(" in f and "(1/m)" in f for f in formulas) == 3
    # the contents' title above both columns, which start level (zh review 26 §4)
    assert tex.index(r"\section*{\contentsname}") < tex.index(r"\begin{multicols}{2}") < tex.index(r"\@starttoc{toc}")
    text = pdf_text(files["derivation.pdf"], tmp_path)
    body = text[:text.rindex(messages(lang)["section"]["code"])]  # before the appendix, which lists the code again
    printed = [re.sub(r"\s+", " ", line).strip() for line in body.splitlines()]
    assert all(any(line in row for row in printed) for line in lines), [line for line in lines
                                                                        if not any(line in row for row in printed)]
    # formula text (or the step's number) on the printed row of every line of code, to its left
    alone = [line for line in lines if not any(row.endswith(line) and row[:-len(line)].strip() for row in printed)]
    assert alone == []


def test_a_long_line_of_code_wraps_only_inside_brackets():
    from derive.present_lesson import tex_code

    tex = tex_code("A1 = (1/2)*np.tanh((1/2)*Z1) + 1/2")
    assert tex == r"\texttt{A1~=~(1/2)*np.tanh((1/2)*\allowbreak{}Z1)~+~1/2}"
    assert tex_code("db1 = (D/m).sum(axis=1, keepdims=True)") == r"\texttt{db1~=~(D/m).sum(axis=1, keepdims=True)}"
    assert tex_code("x = a**2*b") == r"\texttt{x~=~a**2*b}"  # outside brackets, and never inside **


def test_headings_references_and_the_subtitle_never_break_apart(built, tmp_path):
    """Review 16 §3: no section heading is the last line of a page (each asks for room first); a
    reference's word is tied to its number (eq.~9.3, 式~8.1); the worked example's picture floats inside its section
    instead of being pinned ([H] left half a page blank), the network's stands here or at a page's foot; the cost table's long count has plain
    parentheses, which may break; in Chinese the subtitle breaks only between its clauses and a
    caption reads 图 1 and a quad, not an ASCII colon."""
    lang, files, _ = built
    tex = files["derivation.tex"].decode()
    body = tex[tex.index(r"\begin{document}"):]
    # each asks for room by a test on the page, with no bonus for a break before it (zh review 26 §4)
    assert body.count(r"\section{") == len(re.findall(r"\\deriveheadspace\{\d+\\baselineskip\}\n\\section\{", body))
    assert r"\@secpenalty=\z@" in tex
    assert "~\\ref{" in body and not re.search(r"(eq\.|section|appendix|式|节|附录) \\ref\{", body)
    # the network's picture here or at a page's foot (no paragraph split by it, zh review 26 §4), the
    # worked example's floating inside its section
    assert body.count(r"\begin{figure}[htb]") == 1 and body.count(r"\begin{figure}[!hb]") == 1
    assert r"\begin{figure}[H]" not in body
    assert body.index(r"\begin{figure}[!hb]") < body.index(r"\label{fig:network}") < body.index(r"\begin{figure}[htb]")
    cost = body[body.index(r"\label{sec:cost}"):]
    cost = cost[:cost.index(r"\end{tabular}")]
    assert r"\left(" not in cost and "n_{0} n_{1}" in cost
    if lang == "zh":
        assert r"\mbox{单个样本的损失函数：交叉熵；}\allowbreak" in tex and r"\captionsetup{labelsep=quad}" in tex
    pages = pdf_text(files["derivation.pdf"], tmp_path).split("\f")
    titles = re.findall(r"\\section\{([^{}\\]*)\}", body)
    for number, page in enumerate(pages, start=1):
        lines = [re.sub(r"\s+", " ", line).strip() for line in page.splitlines() if line.strip()]
        last = lines[-2] if len(lines) > 1 and lines[-1].isdigit() else (lines[-1] if lines else "")
        # "12 Title" in English, "12. 标题" in Chinese (numbered as the Markdown is: zh review 21)
        assert not any(re.fullmatch(r"(\d+|[A-Z])\.? " + re.escape(title), last) for title in titles), (number, last)
    if lang == "zh":
        assert re.search(r"图\s*1\s+网络", "".join(pages)) and not re.search(r"图\s*1\s*[:：]", "".join(pages))
        assert re.search(r"(?m)^\s*4\.\s+网络结构与前向、反向计算", "\n".join(pages))  # a section's number with its point, as in the Markdown (4 since review 30: the table of symbols is appendix C)


def test_the_network_table_is_one_line_a_row_and_the_figure_is_cited_by_its_number(built, tmp_path):
    """zh review 17, layout items 1, 2 and 4, and review 18 defect 14: each layer's function on one
    line (1/(1 + e^{-z}), no displayed fraction to make every row tall); the text that reads the
    picture cites it as Figure 1 (图 1), which stands on that page or the next; the picture's
    lettering sets n, z and a in mathematics, italic as in the text."""
    lang, files, _ = built
    tex = files["derivation.tex"].decode()
    start = tex.index(r"\label{sec:network}")
    network = tex[start:tex.index(r"\label{sec:", start + 1)]  # to the next section (notation now comes first)
    table = network[network.index(r"\begin{tabular}"):network.index(r"\end{tabular}")]
    assert r"\displaystyle" not in table and r"\frac" not in table and r"\arraystretch" not in network[:network.index(table)]
    assert r"g(z) = \max(0, z)" in table  # no \left( gap after \max (zh review 24, PDF item 6)
    cite = {"en": r"Figure~\ref{fig:network} shows", "zh": r"图~\ref{fig:network} 画出了"}[lang]
    assert cite in network and network.index(cite) > network.index(r"\end{figure}")
    assert r"{\footnotesize $n_{0} = 4$}" in network and ("forward: $z$, $a$" in network or "前向：$z$、$a$" in network)
    pages = pdf_text(files["derivation.pdf"], tmp_path).split("\f")
    cited = next(n for n, page in enumerate(pages) if re.search(r"(Figure 1 shows|图 1 画出了)", re.sub(r"\s+", " ", page)))
    shown = next(n for n, page in enumerate(pages) if re.search(r"(Figure 1: The network|图\s*1\s+网络结构)", page))
    assert shown - cited in (0, 1), (cited, shown)


def test_bp1_carries_one_label_and_no_running_text_has_a_small_fraction(built):
    """zh review 17, layout items 5 and 6: the relu + softmax document's BP1 (δ = Jᵀ ∂C/∂a) is
    labelled (BP1) in place of an equation number in `full`, and the lesson's is the derivation's
    unnumbered matrix form; the box cites it by its section; an inline fraction in running text is
    written with a slash, displays keep \\frac; BP1's two cases are a display (zh review 21)."""
    from derive.slashed import _FRAC

    lang, files, _ = built
    tex = files["derivation.tex"].decode()
    (line,) = [line for line in tex.splitlines() if line.startswith(r"\delta^{(L)} &= J^{\top}") and ("notag" in line or r"\tag*" in line)
               and re.search("matrix form|矩阵形式", line)]
    # the lesson names BP1 twice only (before the proofs, in the box): here the derivation's matrix form,
    # unnumbered as every display of the lesson; `full` labels the line (BP1) in place of a number
    # (the Chinese PDF sets a step's tag at the right margin, \\tag*: zh issue 13)
    assert re.search(r"\\text\{\((matrix form)\)\} \\notag|\\tag\*\{（矩阵形式）\}", line), line
    full = generate(make_spec(3, "relu", None, "ce", formats="tex", lang=lang, detail="full")).files["derivation.tex"]
    (line,) = [line for line in full.decode().splitlines() if line.startswith(r"\delta^{(L)} &= J^{\top}") and "label" in line]
    assert re.search(r"\\tag\{BP1\}\\label\{eq:bp1-jacobian\}$", line) and r"\text{" not in line
    # `full` still numbers its results and cites them by number
    assert r"\label{eq:bp1-general}" in full.decode() and r"~\ref{eq:" in full.decode()
    assert r"\ref{eq:bp1-jacobian}" not in tex
    body = re.sub(r"\\begin\{(equation\*?|align\*?|aligned)\}.*?\\end\{\1\}", "", tex[tex.index(r"\begin{document}"):],
                  flags=re.S)
    inline = [m for m in re.findall(r"(?<!\\)\$([^$]+)\$", body) if r"\displaystyle" not in m]
    assert inline and not [m for m in inline if _FRAC.search(m)]
    # BP1's two cases (section 11) in a display of their own, each line tagged with its case: inline, the
    # softmax's broke after its ⊙ (zh review 21, PDF p. 9)
    cases = [line for line in tex.splitlines() if line.startswith(r"\delta^{(L)} &= \frac{\partial C}{\partial a^{(L)}} \odot")
             and re.search(r"(\\text|\\tag\*)\{[(（][^)）]*(output|输出)[)）]\}", line)]
    assert len(cases) == 2 and re.search(r"\\odot g'\(z\^\{\(L\)\}\) (&& \\text|\\tag\*)\{", cases[0]), cases
    assert r"\odot a^{(L)} - " in cases[1] and "softmax" in cases[1]


def test_the_appendix_code_wraps_instead_of_running_off_the_page(built, tmp_path):
    """A line of code longer than the page (the unpacking of `params`, 113 characters) breaks at a
    space with a continuation mark, so its end is printed; in plain verbatim it ran off the margin
    and pdftotext, like a reader, saw it cut (zh review 19, item 1). The listing is `--detail full`'s
    (the lesson's appendix A says what model.py holds; its table of section 16 pairs every line with
    its formula)."""
    lang, _, _ = built
    files = generate(make_spec(3, "relu", None, "ce", formats="tex,pdf", lang=lang, detail="full")).files
    tex = files["derivation.tex"].decode()
    code = [line for block in re.findall(r"\\begin\{Verbatim\}\[breaklines=true\]\n(.*?)\\end\{Verbatim\}", tex, re.S)
            for line in block.splitlines()]
    long = [line for line in code if len(line) > 90]
    assert long, "no line of the appendix code is long enough to test the wrapping"
    text = pdf_text(files["derivation.pdf"], tmp_path)
    for line in long:
        assert line.split()[-1] in text, line  # its last word is printed, not cut at the margin


def test_commands_stay_on_one_line_and_chinese_headings_are_set_in_hei(built, tmp_path):
    """zh review 24, PDF items 4 and 6: the colophon's commands never break inside (each is whole on
    one line of the last page); the Chinese headings and bold run-in headings are set in FandolHei,
    not in a bold Song, which looks blurred on screen."""
    lang, files, _ = built
    tex = files["derivation.tex"].decode()
    colophon = tex[tex.rindex(r"\rule{0.3\textwidth}"):]
    boxed = re.findall(r"\\mbox\{\\texttt\{(derive .*?)\}\}", colophon)
    assert boxed and len(boxed) == colophon.count(r"\texttt{derive "), colophon
    last = pdf_text(files["derivation.pdf"], tmp_path).split("\f")[-2]
    lines = [re.sub(r"\s+", " ", line) for line in last.splitlines()]
    for command in (b.replace("-{}", "-").replace(r"\_", "_") for b in boxed):
        assert any(command in line for line in lines), (command, lines)
    if lang == "zh":
        need(shutil.which("pdffonts") is not None, "pdffonts (poppler-utils)")
        (tmp_path / "f.pdf").write_bytes(files["derivation.pdf"])
        fonts = subprocess.run(["pdffonts", str(tmp_path / "f.pdf")], capture_output=True, text=True, check=True).stdout
        assert "FandolHei-Regular" in fonts and "FandolSong-Bold" not in fonts, fonts
