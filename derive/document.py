"""The document as plain data: one structure that every format's template walks.

Markdown, LaTeX, HTML and the notebook are the same sections in the same order, so a section (or a
paragraph of one) cannot exist in one format and not in another. The presenters (`present`,
`present_training`) build a `Document` once per format, because prose and cross-references are
written differently in each (a LaTeX \\ref, a Markdown link, MathML in HTML); each template then
only lays the blocks out, with one macro per block kind, and holds no mathematics and no prose.

Blocks hold strings and tuples only: prose already converted for the format, formulas as LaTeX
(the HTML template turns them into MathML), code as plain lines. The set of kinds is small and
general, so that every layer kind contributes its section data from the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of prose. `note`: a footnote to it (another book cited, not needed to follow the
    text), numbered `number` in the document (`number_notes`); Markdown and LaTeX print it as their
    footnote, the web page as a note under the paragraph."""

    text: str
    kind: str = field(default="paragraph", init=False)
    note: str = field(default="", kw_only=True)
    number: int = field(default=0, kw_only=True)


@dataclass(frozen=True)
class SymbolSentence(Paragraph):
    """The sentence that defines the one symbol a later section adds ("Write $\\eta$ for the learning
    rate."), printed as a paragraph; `symbol` (its LaTeX) lets the section put it just before the
    block that first uses the symbol rather than at its top, where it would dangle. `key` names its
    row of the notation table: a section whose sentence of first use defines the symbol in passing (a
    catalog clause marked with that key) keeps the clause instead of this sentence."""

    symbol: str = ""
    key: str = ""


@dataclass(frozen=True)
class Heading:
    """A heading inside a section. `level` "paragraph" is a run-in bold heading (LaTeX \\paragraph),
    which may have a `detail` after the bold title (with its own leading space, if the language uses one)
    and a `text` that runs on after it; "subsection"
    is an unnumbered subsection."""

    title: str
    detail: str = ""
    text: str = ""
    level: str = "paragraph"
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Equation:
    """One displayed formula; `label` is the LaTeX label that later text cites (eq:bp1)."""

    latex: str
    label: str | None = None
    boxed: bool = False
    kind: str = field(default="equation", init=False)


@dataclass(frozen=True)
class Row:
    """One line of an aligned display: lhs = rhs (or another `relation`, such as \\approx), with an
    optional tag in the margin (BP1, or the name of the step that gave the line) and the LaTeX
    `label` under which later text cites it. An empty lhs continues the line above (= …). A `named`
    row's tag is the equation's name: LaTeX prints it in place of a number, so the equation carries
    one label, (BP1), and not a name and a number."""

    lhs: str
    rhs: str
    tag: str | None = None
    label: str | None = None
    relation: str = "="
    named: bool = False


@dataclass(frozen=True)
class Aligned:
    """Equations aligned at their = signs; `boxed` frames them (the summary)."""

    rows: tuple[Row, ...]
    boxed: bool = False
    kind: str = field(default="aligned", init=False)


@dataclass(frozen=True)
class Group:
    """Part of a derivation: the sentence that justifies its first line (empty when the step was
    explained before), then its lines, each later one named by a tag in the margin."""

    text: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Derivation:
    """Steps from a starting equation to a result (see `derive.narrate`): an `intro` sentence before
    them, and a `conclusion` that, when there is one, closes the derivation's paragraph."""

    groups: tuple[Group, ...]
    intro: str = ""
    conclusion: str = ""
    kind: str = field(default="derivation", init=False)


@dataclass(frozen=True)
class Table:
    """`columns` is the column layout in LaTeX's notation (l, r, c, p{width}; HTML right-aligns the
    r columns); a `long` table may break across pages; a `tall` one holds displayed fractions and
    gets more room between its rows. A `code` table holds a line of code in its last column: in
    LaTeX that column is set small, as wide as its longest line (within limits), and the formulas
    take the rest of the line, so each formula and its code sit side by side."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    columns: str
    long: bool = False
    tall: bool = False
    code: bool = False
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Code:
    """Program text, line by line, exactly as it is to be shown (the templates escape it)."""

    lines: tuple[str, ...]
    language: str = "python"
    kind: str = field(default="code", init=False)


@dataclass(frozen=True)
class ItemList:
    """A bulleted list; `intro` is the sentence that leads into it, when the list completes it."""

    items: tuple[str, ...]
    intro: str = ""
    kind: str = field(default="list", init=False)


@dataclass(frozen=True)
class Picture:
    """The picture in both drawings: SVG (Markdown shows it from `file`, HTML inline) and TikZ."""

    caption: str
    alt: str
    file: str
    svg: str | None
    tikz: str | None
    label: str
    kind: str = field(default="picture", init=False)
    # "Figure 1: " before the caption where the format does not number figures itself (Markdown, HTML),
    # so that they number the picture as LaTeX does (`number_pictures`)
    tag: str = field(default="", kw_only=True)
    # here or at the foot of a page (LaTeX [!hb]), never at the top of the next: floated there it stood
    # inside the paragraph that ran over the break (zh review 26 §4: §5's demon paragraph, Figure 1)
    foot: bool = field(default=False, kw_only=True)


Block = Paragraph | Heading | Equation | Aligned | Derivation | Table | Code | ItemList | Picture


@dataclass(frozen=True)
class Section:
    """A section: `number` is 1, 2, … or, for an appendix, A, B, …; `anchor` is the id of its heading
    in Markdown and HTML, `label` its LaTeX label."""

    key: str
    number: int | str
    title: str
    anchor: str
    label: str
    blocks: tuple[Block, ...] = ()
    part: str = ""  # a part begins here (the reference after the lesson): its title
    part_intro: str = ""  # and the sentence that says what it holds

    @property
    def appendix(self) -> bool:
        return isinstance(self.number, str)


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    generated: str
    contents: str  # the word that heads the list of sections
    version: str
    html_lang: str
    tex_preamble: str
    sections: tuple[Section, ...]
    metadata: tuple[tuple[str, str], ...] = ()  # PDF information as plain text: title, author, subject, keywords
    tag_brackets: tuple[str, str] = ("(", ")")  # around a margin tag: (definition), or full-width （定义）
    tags_right: bool = False  # LaTeX: the margin tags at the right margin (\\tag*), not in a column after the rows
    numbered: bool = True  # LaTeX numbers its results and cites them (eq. 9.1); the lesson numbers none, as Markdown

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    @property
    def picture(self) -> Picture | None:
        return next((b for s in self.sections for b in s.blocks if isinstance(b, Picture)), None)
