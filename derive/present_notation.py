"""The notation table: every symbol the document uses, with its one meaning, and no other.

The table is built after the other sections, from the LaTeX they actually contain (`used_latex`): a
row whose symbol does not occur is left out (a sigmoid document has no [z > 0]), and a symbol that
occurs gets its row (L, n_l, m, θ, λ …). The notation section lists only the symbols of the forward
pass and the derivation (up to the algorithm, `MAIN_UNTIL`), so a student meets a short table first;
a symbol that training or an appendix introduces (the optimizer's t and g̃, the initialisation's E and
Var, the complex step's ζ) gets its row in a short table at the top of the section that first uses it. One symbol, one meaning: where two ideas would share a
letter, the printers give one of them another (the Kronecker delta is the bracket [i = q], δ the
error; the optimizer's gradient is g̃, g the activation; the sample index t prints as r, t is a
step). A second table maps this notation to Nielsen's, CS231n's and the E/t/o notation of many
Chinese textbooks. tests/test_lesson.py checks every gallery document against its table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from derive import document as blocks

_MATH = re.compile(r"\$([^$]+)\$")  # the formulas of a catalog message
_TEXT = re.compile(r"\\(?:text|mathrm|label|ref|eqref)\{(?!(?:Im|i)\})[^{}]*\}")  # \mathrm{i}, \mathrm{Im}: symbols


def _letter(ch: str) -> str:
    """A single letter as a symbol: not part of a command or of a longer word."""
    return rf"(?<![\\A-Za-z]){ch}(?![A-Za-z])"


# (symbol as the table shows it, catalog key, pattern that finds it in the document's LaTeX); in
# the order of the table
ROWS: tuple[tuple[str, str, str], ...] = (
    ("x", "notation.x", _letter("x")),
    ("y", "notation.y", _letter("y")),
    ("W^{(l)}", "notation.W", _letter("W")),
    ("b^{(l)}", "notation.b", _letter("b")),
    ("z^{(l)}", "notation.z", r"(?<![\\A-Za-z])z(?![A-Za-z])(?!\})"),
    ("a^{(l)}", "notation.a", _letter("a")),
    ("g^{(l)},\\ g", "notation.g", _letter("g")),
    ("L", "notation.L", _letter("L")),
    ("l", "notation.l", _letter("l")),
    ("n_{l},\\ n_{\\mathrm{in}},\\ n_{\\mathrm{out}}", "notation.n", r"(?<![\\A-Za-z])n_"),
    ("i, j, k, p, q", "notation.indices", r"_\{?[ijkpq]"),
    ("s, r", "notation.samples", r"_\{[^}]*[sr]\}|\\sum_\{[sr]\}"),
    ("m", "notation.m", _letter("m")),
    ("C", "notation.C", r"(?<![\\A-Za-z{])C(?![A-Za-z])"),
    ("\\bar{C}", "notation.Cbar", r"\\bar\{C\}"),
    ("\\mathcal{C}", "notation.Ccal", r"\\mathcal\{C\}"),
    ("\\tilde{C}", "notation.Ctilde", r"\\tilde\{C\}"),
    ("\\mathbf{C}", "notation.Cbold", r"\\mathbf\{C\}"),
    ("\\delta^{(l)}", "notation.delta", r"\\delta"),
    ("X, Y, Z^{(l)}, A^{(l)}", "notation.matrices", r"(?<![\\A-Za-z])[XYZA](?![A-Za-z])"),
    ("\\Delta", "notation.change", r"\\Delta(?![A-Za-z])"),
    ("D^{(l)}", "notation.Delta", _letter("D")),
    ("[P]", "notation.iverson", r"\\left\[|(?<![\\A-Za-z])\[[a-z][a-z0-9']* [=<>]"),  # [j = j'], also in prose
    ("\\odot", "notation.hadamard", r"\\odot"),
    ("J", "notation.J", _letter("J")),
    ("\\operatorname{diag}", "notation.diag", r"\\operatorname\{diag\}"),
    ("\\mathbf{1}", "notation.ones", r"\\mathbf\{1\}"),
    ("(\\cdot)^{\\top}", "notation.transpose", r"\\top"),
    ("\\eta", "notation.eta", r"\\eta"),
    ("\\theta", "notation.theta", r"\\theta"),
    ("\\nabla", "notation.nabla", r"\\nabla"),
    ("t", "notation.t", _letter("t")),
    ("G", "notation.gtilde", _letter("G")),
    ("\\lambda", "notation.lambda", r"\\lambda(?!_)"),
    ("M", "notation.M", _letter("M")),
    ("N", "notation.N", _letter("N")),
    ("\\xi", "notation.xi", r"\\xi"),
    ("\\mathbb{E}, \\operatorname{Var}", "notation.moments", r"\\mathbb\{E\}|\\operatorname\{Var\}"),
    ("\\mathcal{N}", "notation.normal", r"\\mathcal\{N\}"),
    ("\\sigma_{w}^{2}", "notation.var_w", r"\\sigma_\{w\}|\\sigma_w"),
    ("\\sigma_{z}", "notation.std", r"\\sigma_\{z\}|\\sigma_z"),
    ("H", "notation.H", _letter("H")),
    ("\\zeta", "notation.zeta", r"\\zeta"),
    ("\\mathrm{i},\\ \\mathrm{Im}", "notation.complex", r"\\mathrm\{Im\}|\\mathrm\{i\}"),
)


def used_latex(document_blocks: Iterable, logged: Iterable[str], keep_labels: bool = False) -> str:
    """All LaTeX of the blocks (displays, derivation lines) and of the prose (`logged`: the $…$ the
    message catalog wrote), without \\text{} and the like, for the patterns of `ROWS`; with
    `keep_labels`, upright labels (\\mathrm{ih}) stay, for tables whose rows tell them apart."""
    parts = list(logged)
    for block in document_blocks:
        if isinstance(block, blocks.Equation):
            parts.append(block.latex)
        elif isinstance(block, blocks.Aligned):
            parts += [f"{r.lhs} = {r.rhs}" for r in block.rows]
        elif isinstance(block, blocks.Derivation):
            parts += [f"{r.lhs} = {r.rhs}" for g in block.groups for r in g.rows]
    return (_LABELLESS if keep_labels else _TEXT).sub(" ", "\n".join(parts))


_LABELLESS = re.compile(r"\\(?:text|label|ref|eqref)\{[^{}]*\}")

# the last section whose symbols the notation section lists: the forward pass, the derivation and the
# box of the four equations (the minibatch's matrices and sample indices, θ, ∇ come where first used). A symbol that first appears after it (training, the appendices) is defined in a short table
# at the top of the section that first uses it, so that the first table a student reads holds only what
# the derivation needs.
MAIN_UNTIL = "summary"

# rows a first reader does not need to read the forward pass and the errors: even where the derivation
# uses them (the minibatch, the cost of a minibatch, the bracket of the local derivatives), they are
# defined in the section that first uses them, so the notation section's table stays short
DEFERRED = ("notation.samples", "notation.m", "notation.Cbar", "notation.matrices", "notation.ones",
            "notation.iverson")
# the lesson defers more (review 20, defect 4): a small change Δ, the other units j′ of a layer, the sizes
# n_in and n_out each get their definition where first used; its table keeps what a first reader needs
_SIZES = r"n_\{(?:\s*|\\mathrm\{(?:in|out)\})\}"
LEAN_ROWS = {"notation.indices": ("j', j''", "notation.index_other", r"(?<![A-Za-z\\])j'"),
             "notation.n": ("n_{\\mathrm{in}},\\ n_{\\mathrm{out}}", "notation.n_sizes", _SIZES)}
LEAN_DEFERRED = ("notation.change", "notation.index_other", "notation.n_sizes")


def split_rows(used: dict[str, str], rows: list[tuple[object, str, str]], pinned: dict[str, list] | None = None,
               until: str = MAIN_UNTIL, deferred: frozenset[int] = frozenset()) -> tuple[list, dict[str, list]]:
    """`rows` ((row, pattern, LaTeX of its meaning), in table order) shared out by the first section
    whose LaTeX (`used`: section key → LaTeX, in document order) matches the pattern: the main table
    for the sections up to `until`, else the section of first use. A meaning that names another
    symbol (the weights' n_l × n_{l-1}) counts as a use where its table stands, so that symbol is
    defined there too. `pinned` adds rows whose section is known (an optimizer's state symbols, in its
    section). The rows numbered in `deferred` go to the section of first use after the notation
    section (its key in `used`, with no LaTeX of its own) wherever that is. Returns (main rows,
    {section: rows})."""
    keys = list(used)
    last = keys.index(until) if until in keys else len(keys) - 1
    table_at = keys.index("notation") if "notation" in keys else 0
    place = {}  # row number -> the section (number) of its table: 0 for the main table
    found: dict[tuple[int, int], bool] = {}  # (row, section) -> its pattern occurs in the section's own LaTeX

    def uses(number: int, n: int) -> bool:
        """Whether section n uses row `number`: its LaTeX, searched once (only the meanings of the tables
        placed there change from one round to the next), and the meanings placed there."""
        pattern = rows[number][1]
        if meanings[n]:
            return re.search(pattern, used[keys[n]] + meanings[n]) is not None
        if (number, n) not in found:
            found[number, n] = re.search(pattern, used[keys[n]]) is not None
        return found[number, n]

    while True:
        meanings = {n: "" for n in range(len(keys))}
        for number, where in place.items():
            meanings[where] += "\n" + rows[number][2]
        moved = False
        for number in range(len(rows)):
            first = next((n for n in range(len(keys)) if uses(number, n)), None)
            bound = table_at if number in deferred else last
            where = None if first is None else (0 if first <= bound else first)
            if where is not None and where != place.get(number):
                place[number], moved = where, True
        if not moved:  # a row only ever moves to an earlier table, so this ends
            break
    main = [rows[n][0] for n in sorted(place) if place[n] == 0]
    local = {}
    for n in sorted(place):
        if place[n]:
            local.setdefault(keys[place[n]], []).append(rows[n][0])
    for key, extra in (pinned or {}).items():
        if extra and key in keys:
            (main if keys.index(key) <= last else local.setdefault(key, [])).extend(extra)
    return main, local


def _table(text, rows, long: bool = False):
    header = (text("notation.symbol"), text("notation.meaning"))
    return blocks.Table(header, tuple(rows), ("l", r"p{0.7\textwidth}"), long=long)


_RAW: dict[str, str] = {}  # a symbol as the table prints it -> its LaTeX (for SymbolSentence)
_PATTERN: dict[str, str] = {}  # a symbol as the table prints it -> the pattern of its uses (ROWS)
_KEY: dict[str, str] = {}  # a symbol as the table prints it -> the name of its row (change, eta, N)


def uses_pattern(printed: str) -> str | None:
    """The pattern that finds a use of a symbol of the table, given the symbol as the table prints it."""
    return _PATTERN.get(printed)


def hadamard_example(u=(1, 2), v=(3, 4)) -> str:
    """⊙ on two small vectors, as Nielsen shows it, on one line of a table cell:
    (1, 2)ᵀ ⊙ (3, 4)ᵀ = (1 · 3, 2 · 4)ᵀ = (3, 8)ᵀ, the products computed."""
    def column(entries):
        return r"(" + ", ".join(entries) + r")^{\top}"
    products = [str(x * y) for x, y in zip(u, v)]
    factors = [str(x) + r" \cdot " + str(y) for x, y in zip(u, v)]
    return (column([str(x) for x in u]) + r" \odot " + column([str(y) for y in v]) + " = "
            + column(factors) + " = " + column(products))


def symbols_in_appendix(text) -> bool:
    """Whether this document's table of symbols is an appendix, to look up, and the text defines each
    symbol where it first uses it (the MLP, since review 30's defect 2): its catalog names the section
    `notation` with a plain string; a document whose table stands at the front has a table there."""
    return isinstance(text.defaults.get("notation"), str)


def notation_blocks(text, used: dict[str, str], extra: list[tuple[str, str]], vector_activation: bool,
                    pinned: dict[str, list[tuple[str, str]]] | None = None,
                    unit_letters: bool = False) -> tuple[list, dict[str, list]]:
    """The notation section (the symbols of the forward pass and the derivation, each with its meaning,
    then the other notations) and, per later section, the short table of the symbols it introduces.
    `used` maps each section to the LaTeX it contains; `extra` rows belong to the main table, `pinned`
    rows to the section named; `unit_letters`: the derivations name units by layer (j, k, i)."""
    rows, deferred = [], set()
    everything = "\n".join(used.values())
    lean = text.is_lesson and unit_letters
    table = [r for row in ROWS for r in ((row, LEAN_ROWS[row[1]]) if lean and row[1] in LEAN_ROWS else (row,))]
    for symbol, key, pattern in table:
        deferred |= {len(rows)} if key in DEFERRED or (lean and key in LEAN_DEFERRED) else set()
        if key == "notation.index_other":  # the lesson's j′ (and j″), apart from the unit indices
            primes = sorted(i for i in indices_used(everything) if i.endswith("'") and i[0] == "j")
            symbol = ", ".join(primes) or "j'"
            key = "notation.index_others" if len(primes) > 1 else key
        key = key + "_vector" if key == "notation.g" and vector_activation else key
        if key == "notation.gtilde" and not re.search(r"\\lambda(?!_)", everything):
            key = "notation.gtilde_plain"  # no weight decay in this document: nothing is added to the gradient
        values = {"example": hadamard_example()} if key == "notation.hadamard" else {}
        meaning_source = text.raw(key)
        if unit_letters and key in ("notation.indices", "notation.n", "notation.J"):
            # the rows whose symbols a document may use only some of: they list those it uses
            symbol, key, meaning_source, values = _unit_row(text, key, everything, lean)
        # what a use contains (\eta, \Delta), to put a one-symbol sentence just before it
        _RAW[text.math(symbol)] = "[" if key == "notation.iverson" else symbol.split(",")[0].split("^")[0]
        _PATTERN[text.math(symbol)] = pattern
        _KEY[text.math(symbol)] = key.split(".", 1)[1]
        rows.append(((text.math(symbol), text(key, **values)), pattern,
                     _TEXT.sub(" ", "\n".join(_MATH.findall(meaning_source))).replace("{example}", " ")))
    main, local = split_rows(used, rows, {key: [(text.math(s), m) for s, m in extra]
                                          for key, extra in (pinned or {}).items()}, deferred=frozenset(deferred))
    main += [(text.math(symbol), meaning) for symbol, meaning in extra]
    section = [
        # the MLP's table is an appendix, to look up: its text defines every symbol where first used
        blocks.Paragraph(text("notation.intro_appendix" if symbols_in_appendix(text)
                              else "notation.intro")),
        _table(text, main, long=True),
    ]
    return section, {key: _local(text, key, rows) for key, rows in local.items()}


# the unit indices in table order, each with the catalog key of its clause; p and q (the entries of a
# parameter array) have one clause together
UNIT_INDICES = (("j", "index_j"), ("k", "index_k"), ("i", "index_i"), ("j'", "index_jprime"),
                ("j''", "index_jsecond"), ("k'", "index_kprime"))
_SUBSCRIPT = re.compile(r"_(?:\{((?:[^{}]|\{[^{}]*\})*)\}|([A-Za-z]))")


def indices_used(latex: str) -> set[str]:
    """The index letters (with their primes: j, j', j'') a document's LaTeX uses: in subscripts
    (W_{jk'}, \\sum_{j'}), in brackets ([j = j']) and as a formula of their own in prose ($j'$);
    a naming subscript (n_{\\mathrm{in}}) and a nested one (j_{1}) are not indices."""
    found = set()
    for match in _SUBSCRIPT.finditer(latex):
        content = match.group(1) if match.group(1) is not None else match.group(2)
        if "\\mathrm" in content or "\\text" in content:
            continue
        content = re.sub(r"_\{[^{}]*\}|_[0-9]|\\[A-Za-z]+", " ", content)
        found |= {letter + primes for letter, primes in re.findall(r"([a-z])('*)", content)}
    for left, right in re.findall(r"\[([a-z]'*) = ([a-z]'*)\]", latex):
        found |= {left, right}
    found |= set(re.findall(r"(?m)^\s*([a-z]'+)\s*$", latex))
    return found


def _unit_row(text, key: str, latex: str, lean: bool = False) -> tuple[str, str, str, dict]:
    """(symbol, catalog key, meaning's source, values) of a row that lists what the document uses: the
    unit indices it uses (a lesson has no k' and no p, q), the sizes n_in, n_out only where a formula
    has them, the Jacobian's entries named by the indices the derivation gives them (J_{j'j})."""
    if key == "notation.J":
        return "J", "notation.J_units", text.raw("notation.J_units"), {}
    if key == "notation.n":
        # n_{\mathrm{in}} as `used_latex` leaves it (its upright label taken out: n_{ })
        sized = not lean and re.search(_SIZES, latex) is not None  # the lesson: a row of their own
        chosen = "notation.n" if sized else "notation.n_layer"
        return ("n_{l},\\ n_{\\mathrm{in}},\\ n_{\\mathrm{out}}" if sized else "n_{l}"), chosen, text.raw(chosen), {}
    used = indices_used(latex)
    if lean:  # the other units of a layer have a row of their own, where first used
        used = {i for i in used if not (i.endswith("'") and i[0] == "j")}
    letters = [(letter, clause) for letter, clause in UNIT_INDICES if letter in used]
    if "j''" in used:  # one clause for the two other units of layer l
        letters = [(letter, "index_jprimes" if letter == "j'" else clause) for letter, clause in letters
                   if letter != "j''"]
    parameter = "p" in used or "q" in used
    clauses = text.raw("notation.index_separator").join(text.raw(f"notation.{clause}") for _, clause in letters)
    chosen = "notation.unit_indices_parameters" if parameter else "notation.unit_indices"
    meaning = text.raw(chosen).replace("{units}", clauses)
    shown = [letter for letter, _ in letters] + (["j''"] if "j''" in used else []) + (["p", "q"] if parameter else [])
    shown = sorted(shown, key=lambda s: ("ijkpq".index(s[0]), len(s)))
    return ", ".join(shown), chosen, meaning, {"units": clauses}


def _local(text, section: str, rows: list) -> list:
    """The symbols a later section introduces: one symbol is defined in a sentence (a table of one row
    would be machinery), more in a short table after the section's lead sentence."""
    if len(rows) == 1:
        (symbol, meaning), = rows
        return [blocks.SymbolSentence(text("notation.inline", raw={"symbol": symbol, "meaning": meaning}),
                                      symbol=_RAW.get(symbol, ""), key=_KEY.get(symbol, ""))]
    return [blocks.Paragraph(_lead(text, section)), _table(text, rows)]


# A clause of a catalog message that defines a symbol in the sentence that first uses it, marked with
# the name of the symbol's row: "change it by a little, $\Delta W$⟦change|($\Delta$ is a small
# change)⟧". It is kept (without its marks) in the section that introduces just that symbol, and
# dropped everywhere else: where the symbol is already defined, or comes with others in a table.
CLAUSE = re.compile(r"⟦([A-Za-z]+(?:\\?_[A-Za-z]+)*)\|(.*?)⟧", flags=re.S)  # var_w, var\_w in LaTeX


def defines_in_passing(section_blocks: Iterable, key: str) -> bool:
    """Whether a section's prose has a clause that defines the symbol of row `key` where it is used."""
    return any(_clause_key(match) == key for block in section_blocks for match in CLAUSE.finditer(_prose(block)))


def _clause_key(match: re.Match) -> str:
    """The row a clause names, as the catalog writes it (LaTeX escapes the underscore of var_w)."""
    return match.group(1).replace("\\_", "_")


def settle_clauses(section_blocks: tuple, keep: str = "") -> tuple:
    """The section's blocks with the defining clause of row `keep` kept and every other clause dropped."""
    def settle(value: str) -> str:
        return CLAUSE.sub(lambda m: m.group(2) if _clause_key(m) == keep else "", value)
    def settled(block):
        if "⟦" not in _prose(block):
            return block
        if isinstance(block, blocks.ItemList):
            return replace(block, intro=settle(block.intro), items=tuple(settle(item) for item in block.items))
        return replace(block, text=settle(block.text))
    return tuple(settled(block) for block in section_blocks)


def _prose(block) -> str:
    """The prose of a block that can hold a defining clause: a paragraph, a heading, a list."""
    if isinstance(block, blocks.ItemList):
        return "\n".join((block.intro, *block.items))
    return block.text if isinstance(block, (blocks.Paragraph, blocks.Heading)) else ""


def notation_map_blocks(text) -> list:
    """The appendix that maps this notation to Nielsen's, CS231n's and the E/t/o notation of Mitchell
    and other textbooks: looked up by a reader who knows one of them, not needed on a first read."""
    def theirs(write):  # another book's symbols are compared here, not used (CS231n's L is its loss)
        start = len(text.math_log)
        written = write()
        del text.math_log[start:]
        return written

    others = tuple((text(f"notation_map.{concept}"), text.math(text.raw(f"notation_map.{concept}_ours")),
                    *(theirs(lambda book=book: text.math(text.raw(f"notation_map.{concept}_{book}")))
                      for book in ("nielsen", "cs231n", "eto")))
                   for concept in MAP_CONCEPTS)
    header = tuple(text(f"notation_map.{column}") for column in ("concept", "ours", "nielsen", "cs231n", "eto"))
    out = [
        blocks.Paragraph(text("notation_map.intro")),
        # the names are short (at most "activation function", 平均损失（代价函数）): on one line each, so that
        # 代价函数 is not broken and the table, kept with its heading, needs a line a row (zh review 24, PDF 1-2)
        blocks.Table(header, others, ("l", "l", "l", "l", "l")),
        blocks.Paragraph(theirs(lambda: text("notation_map.note"))),
    ]
    # the textbooks of the language's own readers (`language.notation_books`: 邱锡鹏 and 周志华 for zh,
    # issue 13), in a second table of their own: seven columns would not fit the PDF's page
    books = text.raw("language.notation_books").split()
    if books:
        rows = tuple((text(f"notation_map.{concept}"), text.math(text.raw(f"notation_map.{concept}_ours")),
                      *(theirs(lambda book=book: text.math(text.raw(f"notation_map.{concept}_{book}"))) for book in books))
                     for concept in MAP_CONCEPTS)
        out += [blocks.Paragraph(text("notation_map.intro_books")),
                blocks.Table(tuple(text(f"notation_map.{column}") for column in ("concept", "ours", *books)),
                             rows, ("l",) * (2 + len(books))),
                blocks.Paragraph(theirs(lambda: text("notation_map.note_books")))]
    return out


def _lead(text, section: str) -> str:
    """The sentence before a section's own symbols: one per section (the same sentence in six sections
    would read as boilerplate), a general one for a section the catalog has none for."""
    return text(f"notation.here_{section}" if f"here_{section}" in text.catalog["notation"] else "notation.here")


# the concepts of the table that maps this notation to other texts' (the symbols are in the catalog)
MAP_CONCEPTS = ("weight", "preactivation", "activation", "function", "target", "loss", "cost", "error", "gradient", "rate")

__all__ = ["ROWS", "MAIN_UNTIL", "DEFERRED", "CLAUSE", "uses_pattern", "defines_in_passing", "settle_clauses", "notation_blocks", "notation_map_blocks", "split_rows", "used_latex", "MAP_CONCEPTS"]
