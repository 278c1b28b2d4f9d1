"""Turn a derivation and its verification report into the document (derive.document) and JSON.

Nothing here derives anything: it prints the engine's expressions (LaTeX via `printing`, SymPy text
via `srepr`), looks up prose in the message catalog and arranges both into the sections and blocks
of a `Document`, which each format's template lays out. Prose in the catalog uses $…$ for
mathematics and `…` for code; `prose` converts it for Markdown, LaTeX or HTML.
"""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import replace
from functools import cache, lru_cache, partial
from html import escape as html_escape
from pathlib import Path

import sympy as sp

from derive import __version__
from derive import document as blocks
from derive.backprop import COST_KEY, Result, Step
from derive.codegen import CodePlan
from derive.derivation import Derivation
from derive.errors import ensure
from derive.detail import FOLDED, OPENING, brief, chosen_sections, is_lesson, omits_steps
from derive.notation import LayerRef, Q, index, quantity_of
from derive.present_functions import (
    activation_extras,
    derivative_json,
    function_json,
    activation_notes,
    layers_used,
    code_notes,
    display_name,
    loss_extras,
    penalty_notation,
)
from derive.lesson import Lesson, study
from derive.lesson.general import elementwise_forms, general_forms
from derive.lesson.paths import path_count, paths_blocks
from derive.narrate import Narrator, folds_local, one_term, sides
from derive import present_lesson as lesson_blocks
from derive.said_once import first_mention_only
from derive.present_notation import (CLAUSE, defines_in_passing, notation_blocks, notation_map_blocks, settle_clauses,
                                     symbols_in_appendix, used_latex, uses_pattern)
from derive.printing import latex, words
from derive.rewrite import exp_identity_holds
from derive.slashed import slashed, slashed_inline
from derive.spec import DEFAULT_DETAIL, NetSpec
from derive.verify import PREACTIVATION_BOUND, Report

LOCALE_DIR = Path(__file__).parent / "locale"


# --------------------------------------------------------------------------------------------------
# messages


@cache
def messages(lang: str = "en") -> dict[str, dict[str, str]]:
    return _parsed_catalog((LOCALE_DIR / f"{lang}.toml").read_bytes())


def _catalog_cache() -> Path | None:
    """The user's cache of parsed message catalogs (~/.cache/derive/catalogs-VERSION-pyXY, beside the
    compiled templates of `derive.render`); off with DERIVE_NO_TEMPLATE_CACHE, as those are."""
    import sys

    from derive.files import user_cache

    return user_cache(f"catalogs-{__version__}-py{sys.version_info[0]}{sys.version_info[1]}")


def _parsed_catalog(source: bytes) -> dict:
    """A catalog's TOML parsed, kept between runs as Python keeps bytecode: a catalog is 230 kB of
    TOML, about 25 ms to parse and under 1 ms to load in marshal form. The stored form is named by
    the SHA-256 of the source, so a changed catalog is parsed again; a cache that cannot be read or
    written is skipped."""
    import hashlib
    import marshal
    import os

    folder = _catalog_cache()
    path = folder / f"{hashlib.sha256(source).hexdigest()}.marshal" if folder is not None else None
    if path is not None:
        try:
            return marshal.loads(path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            pass
    data = tomllib.loads(source.decode())
    if path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial_path = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial_path.write_bytes(marshal.dumps(data))
            os.replace(partial_path, path)
        except (OSError, ValueError):
            pass
    return data


_SEGMENTS = re.compile(r"(\$[^$]+\$|`[^`]+`|\*\*[^*]+\*\*|\*(?=\S)[^*]+(?<=\S)\*)")  # math, code, bold, *italic* (a title)
_MATH = re.compile(r"\$([^$]+)\$")
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Plain text for LaTeX: special characters escaped, and `--` kept as two hyphens (T1 fonts
    would join them into an en dash, and a command copied from the PDF would fail)."""
    return re.sub(r"-(?=-)", "-{}", "".join(_TEX_SPECIAL.get(ch, ch) for ch in text))


COMMAND_ON_ONE_LINE = 72  # characters of a derive command that a line holds in monospace (\small or not)


def tex_code_span(code: str) -> str:
    """`code` in LaTeX monospace. A derive command never breaks inside an option and its value: on
    one line when it fits (the colophon broke `derive mlp --layers 3` over two: zh review 24, PDF
    item 6), else only before an option, so a reader who copies it sees each option whole."""
    if not code.startswith("derive "):
        return r"\texttt{" + tex_escape(code) + "}"
    if len(code) <= COMMAND_ON_ONE_LINE:
        return r"\mbox{\texttt{" + tex_escape(code) + "}}"
    return " ".join(r"\mbox{\texttt{" + tex_escape(group) + "}}" for group in re.split(r" (?=--)", code))


def prose(text: str, fmt: str) -> str:
    """Catalog text for a format: Markdown keeps it; LaTeX escapes plain text, converts `code` and
    writes an inline fraction with a slash (derive.slashed); HTML escapes plain text and renders math as MathML (see `derive.mathml`)."""
    if fmt == "md":
        return text
    if fmt == "html":
        from derive.mathml import html_prose

        return html_prose(text)
    out = []
    for part in _SEGMENTS.split(text):
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(slashed_inline(part))  # an inline fraction with a slash: \frac in a line is too small
        elif part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(tex_code_span(part[1:-1]))
        elif part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(r"\textbf{" + prose(part[2:-2], fmt) + "}")  # a bold lead may hold a formula
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            out.append(r"\emph{" + prose(part[1:-1], fmt) + "}")
        else:
            out.append(tex_escape(part).replace("δ", r"$\delta$"))
    return "".join(out)


class Text:
    """Formats catalog messages for one language and output format."""

    def __init__(self, lang: str, fmt: str, *, detail: str = "full", **defaults):
        self.catalog = messages(lang)
        self.lang = lang
        self.fmt = fmt
        self.defaults = defaults  # values every message may use, e.g. section numbers
        self.math_log: list[str] = []  # the formulas the prose wrote, in LaTeX (for the notation table)
        # how much the document prints (`derive.detail`); a document of another network (graph,
        # recurrent) has no detail to choose and prints as `full`
        self.detail = detail

    @property
    def is_lesson(self) -> bool:
        """Whether this document is the lesson (`derive.detail.is_lesson`)."""
        return is_lesson(self.detail)

    def __call__(self, key: str, raw: dict[str, str] | None = None, **values) -> str:
        """The message `key` with its {placeholders} filled. `values` are text in the catalog's
        Markdown-lite, converted with the message; `raw` values are already in the output format
        (a LaTeX \\ref, an HTML link) and are put in after the conversion, untouched."""
        template = self.raw(key)
        raw = raw or {}
        for n, name in enumerate(raw):
            template = template.replace("{" + name + "}", f"\ue000{n}\ue001")
        filled = fill(template, {**self.defaults, **values})
        self.math_log += _MATH.findall(CLAUSE.sub("", filled))  # a defining clause's formulas are not a use
        out = prose(filled, self.fmt)
        for n, value in enumerate(raw.values()):
            out = out.replace(f"\ue000{n}\ue001", value)
        return out

    def math(self, tex: str, display: bool = False) -> str:
        """An inline formula in this format's prose: $…$ (in LaTeX optionally in display style), or
        MathML in HTML."""
        self.math_log.append(tex)
        if display and self.fmt == "tex":
            tex = rf"\displaystyle {tex}"
        return prose(f"${tex}$", self.fmt)

    def plain(self, value: str) -> str:
        """Text that is not catalog prose (a number, a name such as leaky_relu) made safe for the format."""
        return {"html": html_escape, "tex": tex_escape}.get(self.fmt, str)(value)

    def raw(self, key: str) -> str:
        """The message exactly as written in the catalog (settings such as `language.tex_preamble`)."""
        section, name = key.split(".", 1)
        # the lesson's own wording: table `lesson_example` holds the lesson's `example.*` keys that say
        # less than `full`'s (what they leave out, `full` keeps), or that only the lesson says
        shorter = self.catalog.get(f"lesson_{section}", {}) if self.is_lesson else {}
        return shorter[name] if name in shorter else self.catalog[section][name]

    def title(self, table: str, name: str, fallback: str) -> str:
        """The display title of a catalog entry (activation, loss) in this language; entries the
        message catalog does not know keep the title they were registered with."""
        text = self.catalog.get(table, {}).get(name)
        return prose(text if text is not None else fallback, self.fmt)


def fill(template: str, values: dict) -> str:
    """Replace {name} placeholders that have a value; TeX groups such as {iq} are left alone."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


# --------------------------------------------------------------------------------------------------
# equations


def equation(lhs: sp.Basic, rhs: sp.Basic, matrix: bool = False) -> dict:
    """An equation as template data: both sides, and the whole (`lhs = rhs`)."""
    left, right = latex(lhs, matrix=matrix), latex(rhs, matrix=matrix)
    return {"lhs": left, "rhs": right, "latex": f"{left} = {right}"}


def result_equation(result: Result, matrix: bool = True) -> dict:
    if matrix and result.matrix_rhs is not None:
        return equation(result.matrix_lhs, result.matrix_rhs, matrix=True)
    return equation(result.lhs, result.rhs)


def anchor(title: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --------------------------------------------------------------------------------------------------
# sections: each builder returns the blocks of one section of the document (derive.document)


def _aligned(equations: list[dict], boxed: bool = False, tags: list[str] | None = None) -> blocks.Aligned:
    tags = tags or [None] * len(equations)
    return blocks.Aligned(tuple(blocks.Row(e["lhs"], e["rhs"], tag) for e, tag in zip(equations, tags)), boxed=boxed)


def _network(derivation: Derivation, text: Text, picture: blocks.Picture, lesson: Lesson, refs: Refs,
             short: bool = False) -> list:
    """The big picture, after the motivation of section 1: the network and the picture of both passes,
    the paths along which one weight reaches the loss (counted for this network), what a unit's error
    means and why it is computed backwards (why with respect to z waits for section `parameters`)."""
    model = derivation.model
    depth = model.depth
    rows = [("0", str(model.sizes[0]), text("network.input"), "")]
    # each function on one line, a fraction with a slash (1/(1 + e^{-z})): a displayed fraction made
    # every row tall (zh review 17, layout item 4); a function by cases still needs the room
    formulas = [slashed(_activation_formula(act, layer)["latex"]) for layer, act in enumerate(model.activations, 1)]
    tall = any(r"\begin" in f for f in formulas)
    for layer, formula in enumerate(formulas, 1):
        act = model.activations[layer - 1]
        rows.append((str(layer), str(model.sizes[layer]), prose(display_name(act), text.fmt), text.math(formula, display=tall)))
    header = tuple(text(f"network.{key}") for key in ("layer", "units", "activation", "function"))
    return [
        blocks.Paragraph(text("network.intro" if depth > 1 else "network.intro_single", depth=_counted(text, depth), plural="s" if depth > 1 else "",
                              hidden_count=_counted(text, depth - 1), hidden_plural="s" if depth != 2 else "")),
        blocks.Table(header, tuple(rows), ("r", "r", "l", "l"), tall=tall),
        blocks.Paragraph(text("network.sizes_note")),
        picture,
        blocks.Paragraph(_passes(text)),
        *([] if short else _network_lesson(model, text, refs)),
    ]


def _passes(text: Text) -> str:
    """How to read the picture, led by its number (Figure 1): in LaTeX it floats and may stand on the
    next page (review 18, defect 14); Markdown and HTML number it too, so that the formats agree."""
    passes = text("network.passes")
    figure = text("refs.figure", raw={"number": r"\ref{fig:network}"})  # Markdown, HTML: `number_pictures`
    return text("network.figure_passes", raw={"figure": _tie(figure) if text.fmt == "tex" else figure,
                                              "passes": passes})


def _network_lesson(model, text: Text, refs: Refs) -> list:
    """What the big picture teaches beyond the network's shape, one idea a paragraph: the demon, the
    error it measures, why the errors are computed backwards, and the paths whose shared parts they are."""
    depth = model.depth
    return [
        # the lesson tells Nielsen's demon in the text; full, in a note under the error's paragraph
        *([blocks.Paragraph(text("big_picture.demon"))] if text.is_lesson else []),
        blocks.Paragraph(text("big_picture.error", raw={"saturation": refs.section("meaning")}),
                         note=text("big_picture.error_note")),  # what δ means (near 0: best or saturated)
        # why z and not a is said after BP3 and BP4 (section `parameters`), whose short products are the reason
        *([blocks.Paragraph(text("big_picture.backwards"))] if depth > 1 else []),  # one layer: nothing to pass back
        # last, the paths: the errors are what paths that meet at a unit share
        # (the lesson counts them in one place, section `paths`, beside their table: review 23, defect 1)
        *([_paths(model, text, refs)] if depth > 1 and not text.is_lesson else []),  # one layer: a single path
    ]


def _paths(model, text: Text, refs: Refs) -> blocks.Paragraph:
    """The preview of the paths: a weight of layer 1 reaches the loss along paths, one unit per later
    layer and, after a softmax, one output, counted here as the section after the four equations
    counts them (derive.lesson.paths; review 23, zh item 1: one count in both places)."""
    vector = model.activations[-1].is_vector
    formula, _ = path_count(model.sizes, vector)
    key = "big_picture.paths_vector" if vector else "big_picture.paths"
    return blocks.Paragraph(text(key, count=formula, raw={"paths": refs.section("paths")}))


def _activation_formula(act, layer) -> dict:
    a = Q("a", layer)
    if act.is_vector:
        from derive.layers import Node, activation_kind

        i = index("i", LayerRef(layer))
        entry = Node(activation_kind(act), LayerRef(layer), (Q("z", layer),)).entry(i, None)
        (named,) = unit_letters([Step(a.base[i], entry, "definition")])  # a_j over the sum of j', as in section 4
        return equation(named.lhs, named.rhs)
    return equation(sp.Function("g")(sp.Symbol("z")), act.expr)


def _unit_letters(result: Result) -> dict:
    """z of a general layer entry by entry with the letters the text uses throughout: j for a unit of
    layer l, k for a unit of layer l - 1 (the engine's i and j)."""
    letters = {}
    for name, new in (("i", "j"), ("j", "k")):
        for old in (s for s in result.rhs.atoms(sp.Idx) | result.lhs.atoms(sp.Idx) if s.label.name == name):
            letters[old] = sp.Idx(sp.Symbol(new, integer=True), (old.lower, old.upper))
    return equation(result.lhs.xreplace(letters), result.rhs.xreplace(letters))


def _layer_offset(i: sp.Idx, home: str) -> int | None:
    """Where the layer an index runs over lies from `home` (the layer of the derived quantity): 0, -1,
    +1; None for a sample index or an index that does not run over units."""
    size = i.upper + 1
    if not isinstance(size, sp.Symbol) or not size.name.startswith("n_"):
        return None
    tag = size.name[2:]
    if home.isdigit() and tag.isdigit():
        return int(tag) - int(home)
    return {"l": 0, "lp1": 1, "lm1": -1}.get(tag) if home == "l" else None


UNIT_LETTERS = {0: "j", -1: "k", 1: "i"}  # a unit of layer l, of layer l - 1, of layer l + 1 (Nielsen's j, k)


def unit_letters(steps: list[Step]) -> list[Step]:
    """A derivation with its unit indices named by layer, one convention throughout the lesson: j for
    a unit of the layer of the derived quantity, k for one of the layer before, i for one of the layer
    after; an index that runs over the same layer as one already named takes a prime (j'), so the
    derived entry keeps the plain letter. The steps are unchanged but for the names of their indices."""
    return list(_named_units(tuple(steps)))


@lru_cache(maxsize=None)
def _named_units(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """`unit_letters`, memoised: every document format names the same derivations (a tenth of a
    document's time when computed again)."""
    if not steps:
        return steps
    first = steps[0].lhs
    derived = list(dict.fromkeys(i for i in sp.preorder_traversal(first) if isinstance(i, sp.Idx)))  # in order
    units = [i for i in derived if (i.upper + 1).is_Symbol and (i.upper + 1).name.startswith("n_")]
    if not units:
        return steps
    home = (units[0].upper + 1).name[2:]
    everything = set().union(*(st.lhs.atoms(sp.Idx) | st.rhs.atoms(sp.Idx) for st in steps))
    names, taken = {}, set()
    for i in [*units, *sorted(everything - set(units), key=str)]:  # the derived entry's indices first
        offset = _layer_offset(i, home)
        if offset not in UNIT_LETTERS or i in names:
            continue
        letter = UNIT_LETTERS[offset]
        while letter in taken:
            letter += "'"
        taken.add(letter)
        names[i] = sp.Idx(sp.Symbol(letter, integer=True), (i.lower, i.upper))
    return tuple(replace(st, lhs=st.lhs.xreplace(names), rhs=st.rhs.xreplace(names)) for st in steps)


def _forward(derivation: Derivation, text: Text) -> list:
    """The general layer l (weighted sums) for one sample, then each layer's activation as derived."""
    sample_z, _ = derivation.general_forward
    l = LayerRef.symbolic()
    j = index("j", l)
    g = sp.Function(f"g^{{({l.latex()})}}")
    out = [
        blocks.Paragraph(text("forward.intro")),
        blocks.Paragraph(text("forward.index")),
        _aligned([_unit_letters(sample_z), equation(Q("a", l).base[j], g(Q("z", l).base[j]))]),
        blocks.Paragraph(text("forward.vector_rows")),  # the index order said where W is first used
        _aligned([result_equation(sample_z), equation(Q("a", l).symbol, g(Q("z", l).symbol))]),
    ]
    if not text.is_lesson:  # the lesson's table of section `network` already gives each layer's function
        # the minibatch's matrices wait for the minibatch form and the algorithm, where they are used
        out += [blocks.Paragraph(text("forward.activations")),
                _aligned([result_equation(derivation.sample.results[Q("a", k)])
                          for k in range(1, derivation.model.depth + 1)])]
    for layer, act in enumerate(derivation.model.activations, start=1):
        if act.is_vector and not text.is_lesson:  # softmax couples the units of its layer: its entries as
            # derived (the lesson's table of section `network` already shows them)
            a = derivation.sample.results[Q("a", layer)]
            # the lesson's letters: a_j over the sum of j' (j'' inside its derivative), as in the derivations
            (named,) = unit_letters([Step(a.lhs, a.rhs, "definition")])
            out += [blocks.Paragraph(text("forward.softmax" if act.is_softmax else "vector_extra.log_softmax_forward")),
                    blocks.Equation(equation(named.lhs, named.rhs)["latex"])]
    return out


def _loss(derivation: Derivation, text: Text) -> list:
    model = derivation.model
    from derive.notation import A as a_sym, Y as y_sym

    notes, targets = [], []
    if model.loss.target == "probability":  # right under the loss it is a condition of
        targets.append(blocks.Paragraph(text("loss.probability")))
    elif model.loss.target == "binary":
        notes.append(text("loss.binary"))
    extras = loss_extras(derivation, text)
    penalty = extras["penalty"]
    out = []
    if penalty:
        out += [blocks.Paragraph(penalty["intro"]), blocks.Equation(penalty["total"]["latex"]),
                blocks.Paragraph(penalty["layer_intro"]), blocks.Equation(penalty["layer"]["latex"])]
    sample = derivation.sample.results[COST_KEY]
    out += [
        # the MLP defines C and y here, in the sentence (its table of symbols is an appendix)
        blocks.Paragraph(text("loss.sample_defined" if symbols_in_appendix(text) else "loss.sample")),
        blocks.Equation(_cost_equation(sample), label="eq:loss"),
        *targets,
    ]
    if extras["conventions"]:  # the derivative whose pieces the conventions below fix, for one output
        out += [blocks.Paragraph(text("loss_extra.derivative")), blocks.Equation(_output_derivative(sample, a_sym, y_sym))]
    out += [
        blocks.Paragraph(text("loss.batch")),
        # the cost as the mean of the samples' losses, which is what the engine's minibatch cost is
        # (tests/test_lesson.py checks it); its entries wait for the minibatch form
        blocks.Equation(r"\bar{C} = \frac{1}{m} \sum_{r} C_{r}", label="eq:cost"),
        # the two assumptions, before anything is derived; that Nielsen states them too, and his letters, in a note
        blocks.Paragraph(text("loss.assumptions"), note=text("loss.assumptions_note")),
    ]
    if penalty:
        out.append(blocks.Paragraph(penalty["batch"]))
    return out + [blocks.Paragraph(note) for note in notes + extras["notes"]]


def _output_derivative(sample: Result, a: sp.Symbol, y: sp.Symbol) -> str:
    """∂C/∂a⁽ᴸ⁾_j of a loss that sums one function f(a, y) over the output units: f's derivative by a,
    at the output and target of unit j (SymPy's derivative, printed with the document's letters)."""
    (term,) = [t for t in sp.preorder_traversal(sample.rhs) if isinstance(t, sp.Sum)][:1] or [None]
    if term is None:
        raise ValueError("the loss of one sample is not a sum over the output units")
    body, (i, *_) = term.function, term.limits[0]
    output = next(x for x in body.atoms(sp.Indexed) if x.indices == (i,) and x.base.label.name.startswith("a"))
    target = next(x for x in body.atoms(sp.Indexed) if x.indices == (i,) and x != output)
    f = sp.diff(body.xreplace({output: a, target: y}), a).xreplace({a: output, y: target})
    j = sp.Idx(sp.Symbol("j", integer=True), (i.lower, i.upper))
    lhs = r"\frac{\partial C}{\partial " + latex(output.xreplace({i: j})) + "}"
    return lhs + " = " + latex(f.xreplace({i: j}))


def _cost_equation(result: Result) -> str:
    """The loss (or cost) entry by entry, its sum over the output units written with j, the letter of a
    unit of the layer at hand throughout the lesson (the engine names it i)."""
    names = {i: sp.Idx(sp.Symbol("j", integer=True), (i.lower, i.upper))
             for i in (result.lhs.atoms(sp.Idx) | result.rhs.atoms(sp.Idx)) if i.label.name == "i"}
    if any(i.label.name == "j" for i in result.rhs.atoms(sp.Idx)):
        names = {}  # j is taken: keep the engine's letters
    return equation(result.lhs.xreplace(names), result.rhs.xreplace(names))["latex"]


def _run_in_detail(detail: str, text: Text, leads_on: bool, name: str = "") -> str:
    """'(title):' before the formula a run-in heading leads on to, '(title).' when nothing follows, with
    the language's brackets and marks; a LaTeX \\paragraph sets its title apart, so it needs no colon."""
    mark = text.raw("refs.run_in_end") if not leads_on else "" if text.fmt == "tex" else text.raw("refs.run_in_lead")
    if detail == name:  # "softmax (softmax)" says nothing twice
        return mark
    return text.raw("refs.run_in").replace("{detail}", detail) + mark


def _logistic_steps(d) -> list[tuple[str, str]] | None:
    """For the logistic sigmoid g = 1/(1 + e^{-z}): g' = e^{-z}/(1 + e^{-z})² = g · e^{-z}/(1 + e^{-z})
    = g (1 - g), each line checked to equal the derivative; None for any other activation.

    Every expression here is a rational function of e^{-z}, so an identity is checked by cancelling
    the difference in e^{z/2} (`rewrite.exp_identity_holds`: exact, and a fraction of `simplify`'s
    time); an activation written otherwise (with tanh) keeps its own derivative and proof."""
    z = sp.Symbol("z")
    e, g = sp.exp(-z), 1 / (1 + sp.exp(-z))
    if d.in_terms_of_output is None:
        return None
    expr = d.activation.expr.subs({s: z for s in d.activation.expr.free_symbols})
    if not exp_identity_holds(expr, g, z, rewrite=False):
        return None
    lines = [(latex(e / (1 + e) ** 2), e / (1 + e) ** 2),
             (f"{latex(g)} \\cdot {latex(e / (1 + e))}", g * (e / (1 + e))),
             (f"{latex(g)} \\left(1 - {latex(g)}\\right)", g * (1 - g)),
             ("g(z) \\left(1 - g(z)\\right)", g * (1 - g))]
    derivative = sp.diff(g, z)
    ensure(all(exp_identity_holds(value, derivative, z, rewrite=False) for _, value in lines),
           "each line of the logistic slope's steps equals g'(z)")
    return [("g'(z)" if n == 0 else "", tex) for n, (tex, _) in enumerate(lines)]


def _activations(derivation: Derivation, text: Text, output_section: int) -> list:
    z, g = sp.Symbol("z"), sp.Function("g")
    gz = g(z)
    activations = derivation.model.activations
    rewritten = any(d.in_terms_of_output is not None or d.branch_form is not None for d in derivation.activation_derivatives)
    out = [blocks.Paragraph(text("activations.intro" if rewritten else "activations.intro_plain"))]
    for d in derivation.activation_derivatives:
        layers = [node.layer.number for node in derivation.model.network.layers
                  if getattr(node.kind, "activation", None) == d.activation]
        extras = activation_extras(d, text)
        title = text.title("activation_title", d.activation.name, d.activation.title)
        name = prose(display_name(d.activation), text.fmt)
        used = layers_used(text, layers)
        detail = used if title == name else text("activations.title_used", raw={"title": title, "used": used})
        notes = activation_notes(d, text)
        out += [
            blocks.Heading(name, _run_in_detail(detail, text, True, name)),
            blocks.Equation(equation(gz, d.activation.expr)["latex"]),
            *([blocks.Paragraph(" ".join(notes))] if notes else []),
        ]
        stepped = d.branch_form is None and d.kink_convention and d.in_terms_of_output is None
        # the lesson leaves out the derivative on its own where the sigmoid's proof starts from it
        proved = text.is_lesson and d.in_terms_of_output is not None and _logistic_steps(d) is not None
        if not stepped and not proved:
            out += [blocks.Paragraph(text("activations.computed")),
                    blocks.Equation(equation(sp.Derivative(gz, z), d.computed)["latex"])]
        notes = []
        if d.in_terms_of_output is not None:
            steps = _logistic_steps(d)
            out += [blocks.Paragraph(text("activations.readable")),
                    blocks.Equation(f"g'(z) = {latex(d.in_terms_of_output)}")]
            if steps is not None:  # the sigmoid: the identity derived by hand, in two lines
                out += [blocks.Paragraph(text("activations.proof_logistic")),
                        blocks.Aligned(tuple(blocks.Row(lhs, rhs) for lhs, rhs in steps))]
            else:
                notes.append(text(f"activations.proof_{d.proof}"))
        elif d.branch_form is None:
            if not d.computed.has(sp.Symbol("z", real=True)):
                notes.append(text("activations.constant"))
            elif not d.conventions:
                notes.append(text("activations.none"))
        if extras["branches"]:
            out += [blocks.Paragraph(text("kinks_extra.branches")), blocks.Equation(extras["branches"]["latex"])]
            if d.in_terms_of_output is None:
                out.append(blocks.Paragraph(text("kinks_extra.branch_proof",
                                                 methods="`, `".join(sorted(set(d.branch_proofs))))))
        if extras["pieces"]:
            out.append(blocks.ItemList(tuple(p["where"] + text.raw("refs.label_separator") + text.math(p["latex"])
                                             for p in extras["pieces"]),
                                       intro=extras["pieces_intro"]))
        out += [blocks.Paragraph(kink) for kink in extras["kinks"]]
        if stepped and d.in_terms_of_output is None:  # the pieces and the kink first, then the one formula for both
            out += [blocks.Paragraph(text("activations.convention")), blocks.Equation(f"g'(z) = {latex(d.derivative)}")]
        if d.kinks and d.kinks_located:  # the kink's sentence already gives the value used there
            extras["conventions"] = [c for key, c in zip(d.conventions, extras["conventions"]) if key != "step"]
        if extras["conventions"]:
            out.append(blocks.Paragraph(" ".join([text("kinks_extra.convention_intro"), *extras["conventions"]])))
        out += [blocks.Paragraph(note) for note in notes]
    for act in dict.fromkeys(a for a in activations if a.is_vector):  # one sentence led by its bold name, no heading alone
        out.append(blocks.Paragraph(text("activations.softmax" if act.is_softmax else "vector_extra.log_softmax_note",
                                         output_section=output_section)))
    return out


def _steps(narrator: Narrator, steps: list[Step], *, intro: str = "", ref=lambda step: ("", ""),
           label: str | None = None, conclusion: str = "", letters: bool = False,
           direct: str = "", direct_values: dict | None = None) -> blocks.Derivation:
    """A derivation of the backward pass, narrated (`derive.narrate`): `ref(step)` gives the reference a
    step's rule cites, in a sentence and in a tag; `label` names the result for cross-references;
    `letters`: unit indices named by layer (`unit_letters`); `direct` (the lesson): the catalog key of
    the sentence that says why the local derivative leaves one term, which then prints as one line
    (`narrate._direct`), filled with `direct_values`."""
    steps = unit_letters(list(steps)) if letters else list(steps)
    return narrator.derivation(steps, sides(latex), intro=intro, ref=ref, label=label,
                               conclusion=conclusion or _direct_reason(narrator.text, steps, direct, letters,
                                                                       direct_values),
                               relation=_relation, chains=letters, direct=bool(direct))


def _direct_reason(text: Text, steps: list[Step], key: str, chains: bool, values: dict | None = None) -> str:
    """The sentence why a local derivative leaves one term, where the lesson prints it as one line; where
    the sum is written as its one term from the start (`narrate.one_term`), why there is only that one."""
    if key and one_term(list(steps)) != list(steps):
        return text(f"{key}_one", **(values or {}))
    return text(key, **(values or {})) if key and folds_local(steps, chains) else ""


def _relation(step: Step) -> str:
    """An update is an assignment (W ← W − η ∂C̄/∂W); every other step an equation."""
    return r"\leftarrow" if step.rule == "gradient_descent" else "="


# LaTeX labels of the sections (\label{sec:…}) where they differ from the section's key
TEX_SECTION_LABELS = {"output_error": "output", "update_rule": "update"}


class Refs:
    """Cross-references to earlier results. The LaTeX document numbers its equations, so it cites the
    equation (\\ref of its label); Markdown and HTML number none, so they link to the section that
    holds it; nor does the lesson in any format (`numbered`), so its PDF and its Markdown read alike.
    The words around the number ("eq.", "section") come from the message catalog."""

    def __init__(self, text: Text, sections: dict[str, blocks.Section], absent: dict[str, int | str] | None = None,
                 aliases: dict[str, str] | None = None, numbered: bool = True):
        self.text = text
        self.numbered = numbered and text.fmt == "tex"  # the lesson numbers no equation: it cites as Markdown does
        self.sections = sections
        self.absent = absent or {}  # sections a shorter document leaves out: cited by number, without a link
        self.aliases = aliases or {}  # sections a shorter document folds into another: cited as that one

    def equation(self, label: str, section: str) -> str:
        section = self.aliases.get(section, section)
        if section in self.absent:
            return self.section(section)
        if self.numbered:
            return _tie(self.text("refs.equation", raw={"number": rf"\ref{{{label}}}"}))
        return self.section(section)

    def section(self, key: str) -> str:
        key = self.aliases.get(key, key)
        if key in self.absent:
            number = str(self.absent[key])
            return _tie(self.text("refs.appendix" if not number.isdigit() else "refs.section", raw={"number": number}))
        s = self.sections[key]
        links = {
            "tex": lambda: rf"\ref{{{s.label}}}",
            "md": lambda: f"[{s.number}](#{s.anchor})",
            "html": lambda: f'<a href="#{s.anchor}">{s.number}</a>',
        }
        return _tie(self.text("refs.appendix" if s.appendix else "refs.section", raw={"number": links[self.text.fmt]()}))

    def plain(self, label: str, section: str) -> str:
        """The same reference as plain text, for the margin of a display (no link can go there)."""
        section = self.aliases.get(section, section)
        if self.numbered and section not in self.absent:
            return _tie(self.text.raw("refs.equation").replace("{number}", rf"\ref{{{label}}}"))
        return self.plain_section(section)

    def plain_section(self, key: str) -> str:
        key = self.aliases.get(key, key)
        if key in self.absent:
            return _tie(self.text.raw("refs.section").replace("{number}", str(self.absent[key])))
        s = self.sections[key]
        number = rf"\ref{{{s.label}}}" if self.text.fmt == "tex" else str(s.number)
        return _tie(self.text.raw("refs.section").replace("{number}", number))

    def both(self, label: str, section: str) -> tuple[str, str]:
        return self.equation(label, section), self.plain(label, section)

    def above(self, label: str | None = None) -> tuple[str, str]:
        """A result from earlier in the section that cites it, for a sentence and for a tag. LaTeX cites
        its numbered equation (`label`); otherwise the only number to give would be that of the section
        the reader is in ("by section 8" inside section 8), so the reference says "above" in the
        language's words."""
        if self.numbered and label is not None:
            return self.equation(label, ""), self.plain(label, "")
        return self.text("refs.above"), self.text.raw("refs.above_tag")


def unbroken_clauses(line: str) -> str:
    """LaTeX for a line of clauses (…：平方误差；代价函数：…) that breaks only between them, in a language
    whose lines may otherwise break inside a word (平方误/差)."""
    clauses = [c for c in re.split(r"(?<=[；。;])", line) if c]
    return r"\allowbreak ".join(rf"\mbox{{{c}}}" for c in clauses)


def _tie(reference: str) -> str:
    """A LaTeX reference whose word never ends a line without its number: eq.~9.3, 式~8.1."""
    return reference.replace(r" \ref{", r"~\ref{")


def _split_hidden(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """A hidden-layer derivation: first ∂C/∂a (through the layer above), then δ."""
    cut = next(n for n, s in enumerate(steps) if s.rule == "definition_delta")
    return steps[:cut], steps[cut:]


def _upstream_ref(refs: Refs, label: str):
    """∂C/∂a, derived earlier in the same section as the δ that substitutes it."""
    return lambda step: refs.above(label) if step.rule == "substitute_upstream" else ("", "")


def _instance(result: Result, intro: str, label: str) -> blocks.Derivation:
    """A general equation's instance for this network, in one line: its activation's g' (and its
    loss's ∂C/∂a) put in, the result in matrix form, labelled for cross-references."""
    e = result_equation(result)
    return blocks.Derivation((blocks.Group("", (blocks.Row(e["lhs"], e["rhs"], label=label),)),), intro=intro)


def _output_error(derivation: Derivation, text: Text, refs: Refs, narrator: Narrator, direct: bool = False) -> list:
    """BP1 (`direct`, the lesson: each local derivative as one line, with the sentence that says why)."""
    depth, sample = derivation.model.depth, derivation.sample
    forms = general_forms(derivation)
    why = _direct_reasons(text, direct)
    if forms is not None and not forms.vector:  # derived once with a general g, then this network's g' put in
        upstream = sample.steps[Q("grad_a", depth)]
        general = unit_letters(list(forms.output.steps))
        output = latex(unit_letters(upstream)[0].lhs.variables[0])
        return [
            blocks.Paragraph(text("output_error.intro")),
            narrator.derivation(general, _output_sides, chains=True, direct=direct,
                                conclusion=_direct_reason(text, general, why["output"], True),
                                intro=text("output_error.general_first"), relation=_relation, label="eq:bp1-general"),
            blocks.Paragraph(text("output_error.meaning")),
            _steps(narrator, upstream, label="eq:upstream-out", letters=True,
                   direct=why["loss"], direct_values={"output": output},
                   intro=text("output_error.upstream_instance", output=output)),
            _instance(sample.results[Q("delta", depth)], text("output_error.instance"), "eq:bp1"),
        ]
    if forms is not None and forms.vector:  # BP1 for any output activation first, then the softmax's J put in
        upstream = sample.steps[Q("grad_a", depth)]
        output = latex(unit_letters(upstream)[0].lhs.variables[0])
        probability = derivation.model.loss.target == "probability" and derivation.model.loss.name == "ce"
        general, softmax = _jacobian_first(narrator, unit_letters(list(forms.output.steps)), text.is_lesson)
        return [
            blocks.Paragraph(text("output_error.intro")),
            blocks.Derivation((blocks.Group("", general),), intro=text("output_error.general_jacobian")),
            blocks.Derivation((blocks.Group("", softmax),), intro=text("output_error.softmax_jacobian")),
            blocks.Paragraph(text("output_error.softmax_jacobian_result",
                                  elementwise=slashed(general_bp1(elementwise_forms())["rhs"], spaced=True))),
            _steps(narrator, upstream, label="eq:upstream-out", letters=True,
                   direct=why["loss"], direct_values={"output": output},
                   intro=text("output_error.upstream_instance", output=output)),
            _instance(sample.results[Q("delta", depth)],
                      text("output_error.instance_vector_ce" if probability else "output_error.instance_vector"), "eq:bp1"),
        ]
    output = latex(unit_letters(sample.steps[Q("grad_a", depth)])[0].lhs.variables[0])
    return [
        blocks.Paragraph(text("output_error.intro")),
        _steps(narrator, sample.steps[Q("grad_a", depth)], label="eq:upstream-out", letters=True,
               direct=why["loss"], direct_values={"output": output},
               intro=text("output_error.upstream", output=output)),
        _steps(narrator, sample.steps[Q("delta", depth)], intro=text("output_error.delta"), direct=why["output"],
               ref=_upstream_ref(refs, "eq:upstream-out"), label="eq:bp1", letters=True),  # boxed once, in section `summary`
        blocks.Paragraph(text("output_error.meaning_vector" if derivation.model.activations[-1].is_vector
                              else "output_error.meaning")),
        *_general_output(derivation, text, narrator),
    ]


def _jacobian_first(narrator: Narrator, steps: list[Step], lesson: bool) -> tuple[tuple, tuple]:
    """The softmax's output error in the order a student follows: the definition and the chain-rule
    line, which hold for any output activation, gathered into BP1 (δ = Jᵀ ∂C/∂a); then the rest of
    the engine's derivation, which puts the softmax's J into the chain-rule line and ends in its
    matrix form. The second display starts at the local derivative; the lesson prints it with its
    inner bracket already collapsed (Σ_j'' [j = j''] e^{z_j''} = e^{z_j}, a step the student does
    alone), `full` keeps that line too."""
    derived = narrator.derivation(steps, _output_sides, chains=True, relation=_relation, label="eq:bp1-general",
                                  intro="-")
    rows = [row for group in derived.groups for row in group.rows]
    assert all(not group.text for group in derived.groups[1:]), "a softmax line the method section did not explain"
    matrix = narrator.tag("tag.matrix_form")
    jacobian = (blocks.Row(JACOBIAN_BP1["lhs"], JACOBIAN_BP1["rhs"], matrix, "eq:bp1-jacobian") if lesson else
                blocks.Row(JACOBIAN_BP1["lhs"], JACOBIAN_BP1["rhs"], "BP1", "eq:bp1-jacobian", named=True))
    general = (rows[0], rows[1], jacobian)
    rest = rows[2:]
    local, collapse = narrator.tag("tag.local_derivative"), narrator.tag("tag.kronecker_collapse")
    if lesson and len(rest) > 1 and rest[0].tag == local and rest[1].tag == collapse:
        rest = [replace(rest[1], tag=local)] + rest[2:]
    return general, (replace(rest[0], lhs=rows[0].lhs), *rest[1:])


def _as_output(tex: str) -> str:
    """The general output form is derived for a layer l with the loss right after it; printed for L."""
    return tex.replace("{(l)}", "{(L)}")


def _output_sides(step: Step) -> tuple[str, str]:
    return tuple(_as_output(side) for side in sides(latex)(step))


# BP1 for any output activation: the chain-rule line of section `output_error`, δ_j = Σ_j' ∂C/∂a_j' J_j'j,
# is entry j of Jᵀ ∂C/∂a (J the Jacobian ∂a/∂z); the engine's lines derive it for the softmax and for g
JACOBIAN_BP1 = {"lhs": r"\delta^{(L)}", "rhs": r"J^{\top} \frac{\partial C}{\partial a^{(L)}}"}


def _counted(text: Text, n: int) -> str:
    """A count in running text as the language writes it: numerals in both languages now (the Chinese
    catalog's small_numbers is empty, as its counts elsewhere are digits), spaced from Chinese characters."""
    words = text.raw("language.small_numbers").split()
    if n < len(words):
        return words[n]
    space = text.raw("language.number_space")
    return f"{space}{n}{space}"


def general_bp1(forms) -> dict:
    return {"lhs": _as_output(latex(forms.output.result.matrix_lhs, matrix=True)),
            "rhs": _as_output(latex(forms.output.result.matrix_rhs, matrix=True))}


def general_bp2(forms) -> dict:
    return result_equation(forms.hidden.result)


def _general_output(derivation: Derivation, text: Text, narrator: Narrator) -> list:
    """BP1 for any loss (and, for an element-wise output, any activation g), derived by the same walk."""
    forms = general_forms(derivation)
    if forms is None:
        return []
    vector = "_vector" if forms.vector else ""
    return [
        narrator.derivation(unit_letters(list(forms.output.steps)), _output_sides, chains=True,
                            intro=text(f"output_error.general{vector}"),
                            relation=_relation, label="eq:bp1-general"),
        blocks.Paragraph(text(f"output_error.general_instance{vector}")),
    ]


def _recursion(derivation: Derivation, text: Text, refs: Refs, narrator: Narrator, direct: bool = False) -> list:
    """δ of a general hidden layer l when every hidden layer has the same activation, else layer by
    layer; then the result for each hidden layer of this network (`direct`: as in `_output_error`)."""
    depth, sample, general = derivation.model.depth, derivation.sample, derivation.general
    why = _direct_reasons(text, direct)
    if depth == 1:
        return [blocks.Paragraph(text("recursion.none"))]
    out = []
    forms = general_forms(derivation) if general is not None else None
    if forms is not None and forms.hidden is not None:  # derived once with a general g, then this network's g'
        l = LayerRef.symbolic()
        up, _ = _split_hidden(general.steps[Q("delta", l)])
        out += [
            blocks.Paragraph(text("recursion.intro")),
            _steps(narrator, up, intro=text("recursion.upstream"), label="eq:upstream-l", letters=True,
                   direct=why["upstream"]),
            _steps(narrator, _split_hidden(list(forms.hidden.steps))[1], intro=text("recursion.delta_general"),
                   ref=_upstream_ref(refs, "eq:upstream-l"), label="eq:bp2-general", letters=True,
                   direct=why["hidden"]),
            blocks.Paragraph(text("recursion.meaning")),
            _instance(general.results[Q("delta", l)], text("recursion.instance"), "eq:bp2"),
        ]
    elif general is not None:
        l = LayerRef.symbolic()
        up, de = _split_hidden(general.steps[Q("delta", l)])
        out += [
            blocks.Paragraph(text("recursion.intro")),
            _steps(narrator, up, intro=text("recursion.upstream"), label="eq:upstream-l", letters=True,
                   direct=why["upstream"]),
            _steps(narrator, de, intro=text("recursion.delta"), ref=_upstream_ref(refs, "eq:upstream-l"),
                   label="eq:bp2", letters=True, direct=why["hidden"]),
            blocks.Paragraph(text("recursion.meaning")),
        ]
        forms = general_forms(derivation)
        if forms is not None:
            out += [
                _steps(narrator, _split_hidden(list(forms.hidden.steps))[1], intro=text("recursion.general"),
                       ref=_upstream_ref(refs, "eq:upstream-l"), label="eq:bp2-general", letters=True),
                blocks.Paragraph(text("recursion.general_instance")),
            ]
    else:
        out.append(blocks.Paragraph(text("recursion.mixed")))
    if text.is_lesson and general is not None and forms is not None and forms.hidden is not None:
        return out  # the lesson: the general BP2 with this network's g' is enough; each layer's is in the algorithm
    out.append(blocks.Paragraph(text("recursion.per_layer_intro")))
    rows = []
    for layer in range(depth - 1, 0, -1):
        if general is None:
            up, de = _split_hidden(sample.steps[Q("delta", layer)])
            label = f"eq:upstream-{layer}"
            out += [
                blocks.Heading(text("recursion_layer.title", layer=layer)),
                _steps(narrator, up, intro=text("recursion_layer.upstream", layer=layer), label=label, letters=True),
                _steps(narrator, de, intro=text("recursion_layer.delta", layer=layer),
                       ref=_upstream_ref(refs, label), letters=True),
            ]
        rows.append(result_equation(sample.results[Q("delta", layer)]))
    if general is not None:
        out.append(_aligned(rows))
    else:
        out.append(blocks.Paragraph(text("recursion_layer.results")))
        out.append(_aligned(rows))
    return out


def _per_layer(p, depth: int) -> list:
    """∂C/∂W and ∂C/∂b of every layer of this network, from the last."""
    return [_aligned([result_equation(p.results[Q("grad_W", k)]), result_equation(p.results[Q("grad_b", k)])])
            for k in range(depth, 0, -1)]


def _parameters(derivation: Derivation, text: Text, narrator: Narrator, direct: bool = False) -> list:
    """BP3 and BP4 (`direct`: as in `_output_error`), then why the error is taken with respect to z:
    the reason is these two short products, so it is given here, where they have been derived."""
    depth, general = derivation.model.depth, derivation.general
    layer = LayerRef.symbolic() if general is not None else LayerRef(depth)
    derived = general if general is not None else derivation.sample
    why = _direct_reasons(text, direct and general is not None)  # the reasons name a general layer l
    return [
        blocks.Paragraph(text("parameters.intro")),
        _steps(narrator, derived.steps[Q("grad_b", layer)], intro=text("parameters.biases"), label="eq:bp3", letters=True,
               direct=why["bias"]),
        _steps(narrator, derived.steps[Q("grad_W", layer)], intro=text("parameters.weights"), label="eq:bp4", letters=True,
               direct=why["weight"]),
        *([blocks.Paragraph(text("parameters.instances", layers=_layer_list(depth, text)))] if general is not None
          else [blocks.Paragraph(text("parameters.per_layer")), *_per_layer(derivation.sample, depth)]),
        blocks.Paragraph(text("parameters.why_z")),
    ]


def _direct_reasons(text: Text, direct: bool) -> dict[str, str]:
    """The catalog keys of the sentences, one per kind of local derivative, that say why only one term
    of the chain-rule sum is left (the lesson prints that term at once); empty where every line is
    printed (`full`). The lesson's catalog (`lesson_*`) says it once, at the output layer, and leaves the
    later ones to the margin's name."""
    kinds = ("output", "loss", "upstream", "hidden", "bias", "weight")
    return {kind: f"direct.{kind}" if direct else "" for kind in kinds}


def _layer_list(depth: int, text: Text) -> str:
    """'3, 2, 1': the layers of this network, from the output down (inside a formula, in every language)."""
    return ", ".join(str(k) for k in range(depth, 0, -1))


def _minibatch(derivation: Derivation, text: Text, narrator: Narrator) -> list:
    """Short, after section `parameters`: the sum over the samples stated once, the errors column by
    column, and each gradient as its collapsed index form and its matrix form (the moves are those of
    the per-sample derivation, not repeated)."""
    depth, batch = derivation.model.depth, derivation.batch
    derived = derivation.general_batch if derivation.general is not None else batch
    layer = LayerRef.symbolic() if derivation.general is not None else LayerRef(depth)
    rows = []
    for kind, label, name in (("grad_b", "eq:bp3-batch", "BP3"), ("grad_W", "eq:bp4-batch", "BP4")):
        steps = unit_letters(list(derived.steps[Q(kind, layer)]))
        index = next(s for s in reversed(steps) if s.rule != "matrix_form")  # the sum over the samples, collapsed
        matrix = steps[-1]
        rows += [blocks.Row(*sides(latex)(index), narrator.tag("minibatch.tag_mean", name)),
                 blocks.Row(*sides(latex)(matrix), narrator.tag("tag.matrix_form"), label)]
    return [
        blocks.Paragraph(text("minibatch.intro")),
        blocks.Paragraph(text("minibatch.assumptions")),
        *([] if text.is_lesson else  # the lesson's table of section 16 has every D line
          [_aligned([result_equation(batch.results[Q("delta", k)]) for k in range(depth, 0, -1)])]),
        blocks.Paragraph(text("minibatch.gradients")),
        blocks.Derivation((blocks.Group("", tuple(rows)),)),  # numbered: the update rule cites BP3, BP4 of a minibatch
        *([blocks.Paragraph(text("minibatch.instances", layers=_layer_list(depth, text)))] if derivation.general is not None
          else [blocks.Paragraph(text("minibatch.per_layer")), *_per_layer(batch, depth)]),
    ]


def _update_rule(derivation: Derivation, text: Text, refs: Refs, training: tuple | None, narrator: Narrator) -> list:
    """Gradient descent derived (with training), then the update of this network's parameters."""
    def gradient_ref(step):
        if step.rule != "substitute_gradient":
            return "", ""
        kind = quantity_of(str(step.lhs)).kind
        return refs.both("eq:bp4-batch" if kind == "W" else "eq:bp3-batch", "minibatch")

    out = [blocks.Paragraph(text("update.intro"))]
    if training is not None:
        from derive.present_training import update_blocks

        out += update_blocks(training[0], text, narrator)
    key = "l" if "l" in derivation.updates else str(derivation.model.depth)
    return out + [_steps(narrator, derivation.updates[key], intro=text("update.rule"), ref=gradient_ref)]


def _training_lesson(derivation: Derivation, text: Text, refs: Refs, training: tuple, narrator: Narrator) -> list:
    """The lesson's one training section: the update of this network's parameters, the step the code
    takes and the start (`present_training_lesson`); `full` derives each in a section of its own."""
    from derive.present_training_lesson import training_lesson_blocks

    # the update is displayed once, as the algorithm's last step (section `algorithm`; review 23, defect 2)
    update = [blocks.Paragraph(text("training_lesson.step_back"))]
    return training_lesson_blocks(update, training, derivation.model, text)


def _learn(lesson: Lesson, text: Text, refs: Refs) -> list:
    """The opening, why before how: what is wanted (the rate of change of the loss with every
    parameter), why not by nudging each parameter (the cost counted for this network), and what the
    reader will be able to do. No equation is boxed before it is derived (section `summary`)."""
    # the table of symbols is an appendix, to look up (review 30, defect 2): the text defines each where first used
    symbols = [blocks.Paragraph(text("learn.symbols"))] if symbols_in_appendix(text) else []
    return [*lesson_blocks.motivation_blocks(lesson, text, refs, opening=True),
            *([] if text.is_lesson else lesson_blocks.goal_blocks(text, lesson, ahead=True)),  # the lesson starts at once
            *symbols]


def _summary(derivation: Derivation, text: Text, refs: Refs, lesson: Lesson) -> list:
    """The four equations, boxed once after they are derived, each with its meaning and the
    equation that derives it."""
    rows = _summary_rows(derivation, batch=False)
    where = {"BP1": refs.equation("eq:bp1", "output_error"),
             "BP2": refs.equation("eq:bp2", "recursion") if derivation.general is not None else refs.section("recursion"),
             "BP3": refs.equation("eq:bp3", "parameters"), "BP4": refs.equation("eq:bp4", "parameters")}
    tags = list(dict.fromkeys(tag for tag, _ in rows))
    coupled = derivation.model.activations[-1].is_vector  # softmax: no single slope per output
    meanings = [text(f"learn.{tag.lower()}" + ("_vector" if tag == "BP1" and coupled else ""), raw={"where": where[tag]})
                for tag in tags]
    forms = general_forms(derivation)
    if forms is None or forms.hidden is None or derivation.general is None:
        if text.is_lesson:  # this network's equations, no general form: no claim for any g
            return _in_words(text, meanings, [], "_network")
        return lesson_blocks.learn_blocks(text, rows, meanings, lesson, goals=False)
    # the bullets cite the general forms that the box shows
    where |= {"BP1": refs.equation("eq:bp1-general", "output_error"), "BP2": refs.equation("eq:bp2-general", "recursion")}
    meanings = [text(f"learn.{tag.lower()}" + ("_vector" if tag == "BP1" and coupled else ""), raw={"where": where[tag]})
                for tag in tags]
    # the general form first (derived with a general g and a general loss), then this network's instance
    general = [("BP1", general_bp1(forms)), ("BP2", general_bp2(forms)),
               *[(tag, e) for tag, e in rows if tag in ("BP3", "BP4")]]
    cases = []
    if forms.vector:  # the box holds the BP1 of every text (Jᵀ ∂C/∂a); its element-wise and softmax cases beneath
        general[0] = ("BP1", JACOBIAN_BP1)
        # cited by its section: its one label is its name, BP1, which the box's line already reads
        meanings[0] = text("learn.bp1_jacobian", raw={"where": refs.section("output_error")})
        # the two instances in a display of their own: inline, the softmax's broke after ⊙ (zh review 21)
        lhs = JACOBIAN_BP1["lhs"]
        cases = [blocks.ItemList((text("learn.case_elementwise_jacobian"), text("learn.case_softmax_jacobian")),
                                 intro=text("learn.cases")),
                 blocks.Derivation((blocks.Group("", (
                     blocks.Row(lhs, general_bp1(elementwise_forms())["rhs"], text.raw("tag.case_elementwise")),
                     blocks.Row(lhs, general_bp1(forms)["rhs"], text.raw("tag.case_softmax")))),),
                     intro=text("learn.cases_put_in"))]
    instance = [(tag, e) for tag, e in rows if tag in ("BP1", "BP2")]
    if text.is_lesson:  # the box stands in section `method`, where the proofs begin: here what it says in words
        return _in_words(text, meanings, cases, "_vector" if forms.vector else "")
    return lesson_blocks.learn_blocks(text, general, meanings, lesson, instance=instance,
                                      vector="_vector" if forms.vector else "", goals=False, cases=cases)


def _in_words(text: Text, meanings: list[str], cases: list, kind: str) -> list:
    """The lesson's section `summary`: the four equations, boxed in section `method` before their
    proofs, said in words with a reference back to the box, not displayed a second time (review 23,
    defect 2); after a softmax, the two cases of its Jacobian, which the box leaves general (`kind`:
    "_vector" after a softmax, "_network" where the box holds this network's equations only)."""
    back = blocks.Paragraph(text("learn.in_words" + kind))
    return [back, blocks.ItemList(tuple(meanings), intro=text("learn.meanings")), *cases]


def _preview(derivation: Derivation, text: Text) -> list:
    """The four equations stated before they are proved, each with one line of meaning, so that every
    derivation that follows has a visible goal (Nielsen's order: state, then prove). They are the
    engine's general forms, the ones section `summary` boxes once they are proved (the equations
    of this network where no general form was derived)."""
    forms = general_forms(derivation)
    rows = _summary_rows(derivation, batch=False)
    coupled = derivation.model.activations[-1].is_vector
    if forms is not None and forms.hidden is not None and derivation.general is not None:
        rows = [("BP1", JACOBIAN_BP1 if forms.vector else general_bp1(forms)), ("BP2", general_bp2(forms)),
                *[(tag, e) for tag, e in rows if tag in ("BP3", "BP4")]]
    tags = list(dict.fromkeys(tag for tag, _ in rows))
    meanings = [text(f"preview.{tag.lower()}" + ("_vector" if tag == "BP1" and coupled else "")) for tag in tags]
    if text.is_lesson:  # stated and boxed once, where the proofs begin; section `summary` says them in words
        # under the box, what its g' and J stand for (review 27, item 4): section 2 defines g per layer
        symbols = [blocks.Paragraph(text("preview.symbols_vector" if forms.vector else "preview.symbols"))] \
            if forms is not None and forms.hidden is not None and derivation.general is not None else []
        return [blocks.Paragraph(text("preview.intro")),  # (review 23, defect 2: not a second display there)
                blocks.Aligned(tuple(blocks.Row(e["lhs"], e["rhs"], tag) for tag, e in rows), boxed=True), *symbols]
    display = blocks.Derivation((blocks.Group("", tuple(blocks.Row(e["lhs"], e["rhs"], tag) for tag, e in rows)),))
    return [blocks.Paragraph(text("preview.intro")), display, blocks.ItemList(tuple(meanings))]


def _summary_rows(derivation: Derivation, batch: bool) -> list[tuple[str, dict]]:
    """BP1 output error, BP2 recursion, BP3 bias and BP4 weight gradients, general where possible."""
    depth = derivation.model.depth
    results = (derivation.batch if batch else derivation.sample).results
    general_pass = derivation.general_batch if batch else derivation.general
    general = general_pass.results if general_pass is not None else None
    l = LayerRef.symbolic()
    rows = [("BP1", result_equation(results[Q("delta", depth)]))]
    if general is not None and not batch:
        rows.append(("BP2", result_equation(general[Q("delta", l)])))
    else:
        rows += [("BP2", result_equation(results[Q("delta", k)])) for k in range(depth - 1, 0, -1)]
    if general is not None:
        rows.append(("BP3", result_equation(general[Q("grad_b", l)])))
        rows.append(("BP4", result_equation(general[Q("grad_W", l)])))
    else:
        for k in range(depth, 0, -1):
            rows.append(("BP3", result_equation(results[Q("grad_b", k)])))
            rows.append(("BP4", result_equation(results[Q("grad_W", k)])))
    return rows


def verification_blocks(items: list[str], text: Text) -> list:
    """The checks as a list and the verdict after it, a paragraph of its own (it is not one of them)."""
    return [blocks.Paragraph(text("verification.intro")), blocks.ItemList(tuple(items[:-1])), blocks.Paragraph(items[-1])]


def _verification(report: Report, text: Text, penalty: bool = False, short: bool = False) -> list[str]:
    """The certificate: every check with its figures (`short`: the generated-code check without the
    description of its method)."""
    paragraphs = []
    s = report.check("symbolic")
    if "error" in s.figures:
        paragraphs.append(text("verification_extra.symbolic_error", error=s.figures["error"]))
    elif s.ran:
        f = s.figures
        chained = f.get("method") == "chained"  # local derivatives chained: no expanded loss
        paragraphs.append(text("verification.symbolic_chained" if chained else "verification.symbolic",
                               raw={"agreement": _agreement(f, text)}, width=f["width"], depth=f["depth"],
                               partials=f["partials"], entries=f.get("entries", 0)))
    else:
        paragraphs.append(text("verification.symbolic_skipped", **s.figures))
    if s.ran and s.figures.get("samples"):  # a network that couples its samples: a minibatch was expanded
        paragraphs.append(text("verification_norm.symbolic_coupled", samples=s.figures["samples"]))
    f = report.check("minibatch").figures
    if f.get("reason") == "couples_samples":
        paragraphs.append(text("verification_norm.minibatch_coupled"))
    elif "error" in f:
        paragraphs.append(text("verification_extra.minibatch_error", error=f["error"]))
    else:
        paragraphs.append(text("verification.minibatch", raw={"agreement": _agreement(f, text)}, samples=f["samples"],
                               partials=f["partials"]))
    f = report.check("derivatives").figures
    paragraphs.append(
        text(
            "verification.derivatives_directional" if f.get("method") == "directional"
            else "detail.derivatives" if short else "verification.derivatives",
            directions=f.get("directions", 0),
            per_parameter=f.get("per_parameter", 0),
            step=_number(f["step"]),
            sizes=text.raw("refs.list_separator").join(map(str, f["sizes"])),
            samples=f["samples"],
            bound=f"{f['bound']:g}",
            partials=f["partials"],
            smallest=_number(f["smallest_gradient"]),
            largest=_number(f["largest_gradient"]),
            error=_number(f["largest_error"]),
            tolerance=_number(f["tolerance"]),
            raw={"loss_agreement": text("verification.loss_close", error=_number(f["loss_error"]))},
        )
    )
    if f["bound"] != PREACTIVATION_BOUND:
        paragraphs.append(text("verification_extra.derivative_bound", usual=f"{PREACTIVATION_BOUND:g}",
                               bound=f"{f['bound']:g}"))
    stability = report.check("stability")
    if stability.ran:
        paragraphs.append(text("verification.stability", largest=_number(stability.figures["largest_preactivation"])))
    else:
        exact = stability.figures["largest_exact"]
        if exact == "inf":
            paragraphs.append(text("verification_extra.stability_unreachable"))
        else:
            paragraphs.append(text("verification_extra.stability_inherent", exact=_number(exact)))
    workspace = next((c for c in report.checks if c.name == "workspace" and c.ran), None)
    if workspace is not None:
        f = workspace.figures
        paragraphs.append(
            text(
                ("workspace.verification" if f["float32_error"] is not None else "workspace.verification_no_float32")
                if f["exact"] else "workspace.verification_inexact",
                partials=f["partials"],
                raw={"step_agreement": text("workspace.step_exact") if f["step_error"] == "0"
                     else text("workspace.step_close", error=_number(f["step_error"]))},
                float32_error=_number(f["float32_error"] or "0"),
                float32_own_error=_number(f["float32_own_error"] or "0"),
                float32_tolerance=_number(f["float32_tolerance"]),
            )
        )
    if penalty:
        paragraphs.append(text("verification_extra.penalty"))
    paragraphs.append(text("verification.recognition", formulas=report.check("recognition").figures["formulas"]))
    found = report.check("readable_forms").figures["found"]
    if found:
        paragraphs.append(text("verification.readable_one") if found == 1  # one identity: named, not counted
                          else text("verification.readable", found=found, plural="ies"))
    from derive.present_training import verification_paragraphs  # training checks (verify_training)

    paragraphs += verification_paragraphs(report, text)
    paragraphs.append(text("verification.passed" if report.passed else "verification.failed"))
    return paragraphs


def _agreement(f: dict, text: Text) -> str:
    """How two evaluations agreed: exactly (rational arithmetic), in every one of their digits, or to
    a relative difference below a power of ten."""
    if f["exact"]:
        return text("verification.symbolic_exact")
    if f["largest_difference"] == "0":
        return text("verification.symbolic_digits_equal", digits=f["digits"])
    return text("verification.symbolic_digits", digits=f["digits"], difference=_number(f["largest_difference"]))


def _number(bound: str) -> str:
    """'1e-9' → $10^{-9}$; '0' stays."""
    if bound == "0":
        return "$0$"
    if bound.startswith("1e1e"):  # 10^(10^k), for values far beyond any float
        return f"$10^{{10^{{{int(bound[4:])}}}}}$"
    mantissa, _, exponent = bound.replace("e+", "e").partition("e")
    if not exponent:
        return f"${bound}$"
    prefix = "" if mantissa in ("1", "1.0") else f"{mantissa} \\times "
    return f"${prefix}10^{{{int(exponent)}}}$"


def _backprop_walkthrough(plan: CodePlan, text: Text) -> list:
    """The lesson's walk through `backprop` (review 30, defect 7; Nielsen walks through his code): the
    function as model.py has it (the same template part renders both), then what its lines do, in the
    order of the algorithm. Only for a loop with hidden layers: forward loop, output layer, BP1, and a
    backward loop that takes BP4 and BP3 and then BP2."""
    from derive.layer_loop import layer_loop
    from derive.render import render

    loop = layer_loop(plan)
    if loop is None or not loop.forward_hidden or loop.error_below is None:
        return []
    core = render("model_core.py.j2", code_context(plan, title="", command="")).rstrip("\n").split("\n")
    start = core.index("def backprop(params, X, Y):")
    body = core[start:]
    lines = [body[0], *body[next(n for n, line in enumerate(body) if line.strip().startswith("_check_inputs")):]]
    expected = ["_check_inputs(", "L = ", "m = ", "W = ", "b = ", "A, Z, delta, dW, db = ", "for l in range(1, L):"]
    if [line.strip()[:len(e)] for line, e in zip(lines[1:], expected)] != expected:
        raise AssertionError("backprop no longer reads as its walk-through says")  # the prose follows these lines
    return [blocks.Paragraph(text("code_lesson.walk_intro")), blocks.Code(tuple(lines)),
            blocks.Paragraph(text("code_lesson.walk_forward")), blocks.Paragraph(text("code_lesson.walk_backward"))]


def _code(plan: CodePlan, derivation: Derivation, text: Text, short: bool = False) -> list:
    """What model.py holds and where it is; in full, its forward pass, loss and gradients as generated
    (`short`: the algorithm table has already shown the backward pass line by line; the lesson leaves
    out the notes on the generator's options and the workspace form, which are the reference's)."""
    lesson = text.is_lesson
    stable = []
    acts = derivation.model.activations
    # the lesson says the sigmoid's tanh form once, beside the table of section 16, and proves it below
    # (review 27, item 3): its appendix does not name it a third time
    if any(a.name == "sigmoid" for a in acts) and not (lesson and lesson_blocks.tanh_proof(derivation, plan, text)):
        stable.append(text("code.stable_sigmoid", form=lesson_blocks.code_sigmoid_tex()))  # as the code writes it
    if any(a.is_softmax for a in acts):
        stable.append(text("code.stable_softmax"))
    from derive.notation import A as a_symbol

    if derivation.model.loss.expr.has(sp.log(a_symbol), sp.log(1 - a_symbol)):
        which = "log-softmax" if derivation.model.activations[-1].is_softmax else "log-sigmoid"
        stable.append(text("code.stable_log", which=which))
    phrases, sentences = code_notes(derivation, plan, text)
    stable += phrases
    # the stable forms are already converted to the output format: inserted raw, not converted twice
    intro = text("code_lesson.intro_plain" if lesson and not stable else "code_lesson.intro" if lesson else "code.intro",
                 raw={"stable": text.raw("refs.clause_separator").join(stable) if stable else text("code.stable_none")})
    # `update`'s torch.optim.SGD arguments (weight_decay, the step count in `state`) are not the lesson's:
    # its appendix no longer names them (review 30, defect 7); `full` documents the optimizer
    # `loss` keeps its public name but returns the minibatch's cost C̄ (review 30, defect 8): said plainly
    if derivation.model.penalty is None:  # with a penalty, `loss` adds it (the note on the penalty says so)
        intro = text.raw("language.sentence_separator").join((intro, text("code.cost")))
    if short:
        return [blocks.Paragraph(intro), blocks.Paragraph(text("detail.code_location"))]
    from derive.layer_loop import layer_loop

    if lesson:  # the table of the algorithm already pairs every line of `gradients` with its formula
        walk = _backprop_walkthrough(plan, text)
        return [blocks.Paragraph(intro), *lesson_blocks.tanh_proof(derivation, plan, text), *map(blocks.Paragraph, sentences),
                # with the walk through `backprop`, its paragraph introduces the loop (no second sentence on it)
                blocks.Paragraph(text("code_lesson.loop" if layer_loop(plan) is not None and not walk else "code_lesson.table")),
                *walk]
    from derive.render import render

    # forward, loss and gradients exactly as model.py has them: the same template part renders both
    core = render("model_core.py.j2", code_context(plan, title="", command="")).rstrip("\n").split("\n")
    out = [blocks.Paragraph(intro), *map(blocks.Paragraph, sentences),
           blocks.Paragraph(text("code.backward")), blocks.Code(tuple(core))]
    if layer_loop(plan) is not None:
        out.append(blocks.Paragraph(text("code.loop")))
    out.append(blocks.Paragraph(text("code.init")))
    if plan.workspace is not None and not lesson:
        out.append(blocks.Paragraph(text("workspace.code")))
    return out


def _formulas(block) -> str:
    """The LaTeX of a block: its displays and the formulas of its prose (a list's items too), written
    $…$ in Markdown and LaTeX and kept as the alt text of MathML on the web, so every format finds the
    same first use."""
    prose_text = getattr(block, "text", "") + "".join(getattr(block, "items", ()))
    if isinstance(block, blocks.Table):  # a table's cells (the big picture's formulas of each layer)
        prose_text += "\n".join(cell for row in block.rows for cell in row)
    inline = re.findall(r"\$([^$]+)\$", prose_text) + [html.unescape(a) for a in re.findall(r'alttext="([^"]*)"', prose_text)]
    return used_latex((block,), ()) + "\n" + "\n".join(inline)


def _leads_in(block) -> bool:
    """Whether a block is a paragraph that ends in a colon: it leads into the block after it."""
    return isinstance(block, blocks.Paragraph) and re.search(r"[:：]\s*$", block.text) is not None


def _uses(block, symbol: str) -> bool:
    """Whether a block's formulas contain the LaTeX of a symbol (\\eta not \\etaX)."""
    source = _formulas(block)
    pattern = r"\[[a-z]" if symbol == "[" else re.escape(symbol) + r"(?![A-Za-z])"  # the bracket: [j = j'], [z > 0]
    return re.search(pattern, source) is not None


# the sections of a lesson, in order; the document of any network (`present_graph`) has its own core
# the lesson: why, the forward pass and the loss written down, each symbol defined where first used (review
# 23, defect 1: before the picture's demon and "why backwards" use them; review 30, defect 2: no table of
# symbols before the first idea, the table is appendix `notation`), the picture, the derivation of BP1-BP4
# in order, the four equations boxed once, what they say, then at once the worked example (review 30,
# defect 1: the paths, the bound and the loss's comparison look back at its numbers, none borrowed ahead),
# the algorithm beside its code (with the example's update step), the cost, the exercises (where everything
# they need has been taught); then the reference part
LESSON_SECTIONS = ("learn", "forward", "loss", "network", "activations", "method", "output_error",
                   "recursion", "parameters", "summary", "example", "paths", "meaning", "loss_choice", "minibatch",
                   "algorithm", "cost", "exercises", "update_rule")
TRAINING_SECTIONS = ("optimizer", "initialisation")  # how parameters move and start, after the update rule
APPENDICES = ("code", "verification", "notations", "answers")  # answers: the MLP lesson's exercises
# the MLP's appendices: its table of symbols is a reference beside the other books' notations
MLP_APPENDICES = ("code", "verification", "notation", "notations", "answers")
REFERENCE = ("update_rule", *TRAINING_SECTIONS, *APPENDICES)  # after the lesson, marked as reference


def section_keys(core: tuple[str, ...], training: tuple | None, lesson: Lesson, answers: bool = False,
                 appendices: tuple[str, ...] = APPENDICES) -> list[str]:
    """The sections of one document: the core, training (with its derivations), the appendices
    (`answers`: the appendix with the answers to the exercises of the worked example, and the
    section of the exercises)."""
    keys = [k for k in core if (k != "loss_choice" or lesson.comparison is not None)
            and (k not in ("example", "exercises") or lesson.example is not None)
            and (k != "exercises" or answers)]
    if training is not None:
        keys += TRAINING_SECTIONS
    return keys + [k for k in appendices if k != "answers" or (answers and lesson.example is not None)]


def section_heads(keys: list[str], text: Text, titles: dict[str, str] | None = None,
                  numbers: dict[str, int | str] | None = None, part: bool = True) -> dict[str, blocks.Section]:
    """Numbers (1, 2, … and A, B for the appendices), titles, anchors and labels of the sections
    (`titles`: a catalog key for a section whose title differs from its key's; `numbers`: the
    numbers of the complete document, which a summary keeps so that its citations of the lesson
    hold; `part`: whether the reference part is marked)."""
    heads, numbers = {}, numbers or section_numbers(keys)
    for key in keys:
        number = numbers[key]
        title = text((titles or {}).get(key, f"section.{key}"))
        heads[key] = blocks.Section(key, number, title, anchor(f"{number}. {title}"),
                                    "sec:" + TEX_SECTION_LABELS.get(key, key))
    first = next((k for k in keys if k in REFERENCE), None)
    if first is not None and part:  # the lesson ends here: what follows is looked up, not read in order
        last = numbers[keys[keys.index(first) - 1]] if keys.index(first) > 0 else numbers[first]  # the lesson's last
        heads[first] = replace(heads[first], part=text("part.reference"), part_intro=text("part.reference_intro", last=last))
    return heads


def section_numbers(keys: list[str]) -> dict[str, int | str]:
    """1, 2, … for the sections, A, B, … for the appendices: the keys of `MLP_APPENDICES` at the end of
    the document (a graph document's notation, its section 2, is numbered)."""
    tail = len(keys)
    while tail > 0 and keys[tail - 1] in MLP_APPENDICES:
        tail -= 1
    numbered, appendices = keys[:tail], keys[tail:]
    return {k: (numbered.index(k) + 1 if k in numbered else "ABCDEFGH"[appendices.index(k)]) for k in keys}


def metadata(text: Text, title: str) -> tuple[tuple[str, str], ...]:
    """The PDF's information: title, author, subject, keywords (plain text, escaped for LaTeX)."""
    plain = re.sub(r"[`$*]", "", title)
    return (("pdftitle", tex_escape(plain)), ("pdfauthor", "derive"),
            ("pdfsubject", tex_escape(text.raw("doc.pdf_subject"))),
            ("pdfkeywords", tex_escape(text.raw("doc.pdf_keywords"))))


# sections whose first paragraph comes before the table of the symbols they introduce
INTRO_BEFORE_SYMBOLS = ("verification",)
# sections whose table of new symbols stands just before the first block that uses one of them (the
# loss: the cost of a minibatch comes after the loss of one sample, which needs none of them; the
# checks: a box the reader works through may come before the list whose complex step needs them)
SYMBOLS_WHERE_USED = ("loss", "verification")


def assemble_document(text: Text, keys: list[str], heads: dict, content: dict, notation,
                      omitted: tuple[str, ...] = (), opening: tuple = (), **fields) -> blocks.Document:
    """Build every section in order (the notation tables last: they list what the others use) and the
    document around them; formulas print with this language's words (a piecewise "if"). The notation
    table of a shorter document also lists what the `omitted` sections (of the lesson) use, so that it
    is the lesson's table and a symbol the shorter text takes from them is defined. `opening`: blocks that open the first section (what a shorter document is)."""
    built, used = {}, {}
    start = len(text.math_log)
    lesson_latex = "\n".join(used_latex(tuple(content[key]()), ()) for key in omitted)
    lesson_latex += "\n" + "\n".join(text.math_log[start:])
    del text.math_log[start:]
    for key in keys:  # in document order, each with the LaTeX it uses (its formulas and its prose's)
        used[key] = lesson_latex if key == "notation" and omitted else ""  # the notation section holds its place
        if key != "notation":
            start = len(text.math_log)
            built[key] = tuple(content[key]())
            used[key] = used_latex(built[key], text.math_log[start:])
    # the table of symbols counts as read at the start wherever it stands (the MLP's is an appendix, a
    # reference linked from section 1): the symbols the derivation needs are its rows, and a later section
    # opens with those it introduces
    order = [k for k in keys if k != "notation"]
    if "notation" in used:
        order.insert(1 if len(order) > 0 else 0, "notation")
    main, introduced = notation({k: used[k] for k in order})
    built["notation"] = tuple(main)
    for key, lead in introduced.items():  # the symbols a later section introduces, at its top
        # (after the opening paragraph where that paragraph says what the section is: the checks)
        at = 1 if key in INTRO_BEFORE_SYMBOLS and built[key] else 0
        one = lead[0] if len(lead) == 1 and getattr(lead[0], "symbol", "") else None
        if one is not None and defines_in_passing(built[key], one.key):  # the sentence of first use says it
            built[key] = settle_clauses(built[key], keep=one.key)
            continue
        if one is not None:  # one symbol: its own sentence just before its first use
            at = next((n for n, block in enumerate(built[key]) if _uses(block, one.symbol)), at)
            if at > 0 and _leads_in(built[key][at - 1]):  # not between a sentence and the display it leads into
                at -= 1
        elif key in SYMBOLS_WHERE_USED:  # a table just before the first block that uses one of its symbols
            patterns = [p for row in lead[-1].rows if (p := uses_pattern(row[0]))]
            at = next((n for n, block in enumerate(built[key]) if any(re.search(p, _formulas(block)) for p in patterns)), at)
        joins = one is not None and text.catalog["language"].get("symbol_sentence_opens_paragraph")
        field_name = _opens_paragraph(built[key], at) if joins else ""
        if field_name:  # the sentence opens the paragraph it stood before, rather than stand alone
            block = built[key][at]
            joined = one.text + text.raw("language.sentence_separator") + getattr(block, field_name)
            built[key] = built[key][:at] + (replace(block, **{field_name: joined}),) + built[key][at + 1:]
            continue
        built[key] = built[key][:at] + tuple(lead) + built[key][at:]
    built = {key: settle_clauses(section) for key, section in built.items()}  # the clauses not needed
    built = first_mention_only(built, keys)  # a gloss marked ⟪…⟫ said once, where first met
    built = {key: tuple(b for b in section if not _empty(b)) for key, section in built.items()}
    built[keys[0]] = tuple(opening) + built[keys[0]]  # what the document is, before its first section's own text
    built = number_notes(built, keys)
    built = number_pictures(built, keys, text)
    if text.fmt == "tex" and text.catalog["language"].get("tex_unbroken_clauses") and "subtitle" in fields:
        fields["subtitle"] = unbroken_clauses(fields["subtitle"])
    return blocks.Document(
        contents=text("doc.contents"),
        version=__version__,
        html_lang=text.raw("language.html_lang"),
        tag_brackets=(text.raw("language.tag_open"), text.raw("language.tag_close")),
        tags_right=bool(text.raw("language.tex_tags_right")),
        numbered=not text.is_lesson,
        tex_preamble=text.raw("language.tex_preamble").strip(),
        sections=tuple(replace(heads[key], blocks=built[key]) for key in keys),
        **fields,
    )


def _opens_paragraph(section: tuple, at: int) -> str:
    """The field ("text", or a derivation's or list's "intro") of the block at `at` whose prose a symbol's
    defining sentence can open, rather than stand alone before it; "" where there is none, or where it is
    a run-in bold heading's paragraph or one with a footnote."""
    if at >= len(section):
        return ""
    block = section[at]
    if type(block) is blocks.Paragraph and not block.note:
        field_name = "text"
    elif isinstance(block, (blocks.Derivation, blocks.ItemList)) and block.intro:
        field_name = "intro"
    else:
        return ""
    bold = getattr(block, field_name).lstrip().startswith(("**", "\\textbf", "<strong>", "<b>"))
    return "" if bold else field_name


def _empty(block) -> bool:
    """A paragraph whose message the lesson leaves empty (it is printed by `--detail full` only)."""
    return isinstance(block, blocks.Paragraph) and not block.text.strip() and not block.note


def number_notes(built: dict[str, tuple], keys: list[str]) -> dict[str, tuple]:
    """The footnotes numbered 1, 2, … in document order, the same in every format."""
    count = 0

    def numbered(block):
        nonlocal count
        if not getattr(block, "note", ""):
            return block
        count += 1
        return replace(block, number=count)

    return {key: tuple(numbered(block) for block in built[key]) for key in keys}


def number_pictures(built: dict[str, tuple], keys: list[str], text: Text) -> dict[str, tuple]:
    """The pictures numbered 1, 2, … in document order, as LaTeX numbers its figures: each caption's
    `tag` says its number (图 1, Figure 1; the LaTeX template leaves it to \\caption), and outside
    LaTeX each reference to it (\\ref{fig:…}) in prose is replaced by it."""
    numbers = {}
    for key in keys:
        for block in built[key]:
            if isinstance(block, blocks.Picture) and block.label:
                numbers[block.label] = str(len(numbers) + 1)
    if not numbers:
        return built

    def resolved(prose: str) -> str:
        return re.sub(r"\\ref\{([^}]*)\}", lambda m: numbers.get(m.group(1), m.group(0)), prose)

    def numbered(block):
        if isinstance(block, blocks.Picture) and block.label in numbers:
            return replace(block, tag=text("refs.figure_caption", raw={"number": numbers[block.label]}))
        if type(block) is blocks.Paragraph and "\\ref{" in block.text and text.fmt != "tex":
            return replace(block, text=resolved(block.text))
        return block

    return {key: tuple(numbered(block) for block in built[key]) for key in keys}


def optimizer_notation(training: tuple | None, text: Text) -> list[tuple[str, str]]:
    """The optimizer's hyper-parameters and state as rows of the notation table."""
    if training is None:
        return []
    from derive.present_training import tlatex

    opt = training[0].optimizer
    rows = [(", ".join(tlatex(s) for s in h.symbols), text(f"optimizer_hyper.{h.name}")) for h in opt.hypers
            if h.name not in ("lr", "weight_decay")]
    rows += [(tlatex(s.symbol), text(f"optimizer_state.{s.name}")) for s in opt.state]
    return rows


def _loss_title(model, text: Text) -> str:
    if model.loss.is_custom:
        return display_name(model.loss)
    return text.raw(f"loss_title.{model.loss.name}") if model.loss.name in text.catalog.get("loss_title", {}) \
        else model.loss.title


def picture_loss(model, text: Text) -> str:
    """The loss as the network's picture names it: its title in the document's language, or a user's
    expression as written."""
    return model.loss.source if model.loss.is_custom else _loss_title(model, text)


def build_document(
    derivation: Derivation, report: Report, plan: CodePlan, *, command: str, fmt: str, lang: str = "en",
    training: tuple | None = None, lesson: Lesson | None = None, detail: str = DEFAULT_DETAIL,
) -> blocks.Document:
    """The document in one format: the sections `detail` chooses (see `derive.detail`), with their
    blocks; a section keeps its number in the complete document, so a citation of one left out holds."""
    lesson = lesson if lesson is not None else study(derivation)
    model = derivation.model
    depth = model.depth
    core = LESSON_SECTIONS if depth > 1 else tuple(k for k in LESSON_SECTIONS if k != "paths")  # one layer: one path
    every = section_keys(core, training, lesson, answers=True, appendices=MLP_APPENDICES)
    keys = chosen_sections(detail, every)
    numbers = section_numbers(every)
    # the lesson folds the optimizer and the initialisation into its one training section (§ update_rule)
    folded = training is not None and any(k in every and k not in keys for k in FOLDED.get(detail, ()))
    aliases = {k: "update_rule" for k in FOLDED.get(detail, ())} if folded else {}
    text = Text(lang, fmt, detail=detail,
                **(numbers | {k: numbers["update_rule"] for k in aliases}))
    hidden_names = text.raw("refs.list_separator").join(
        dict.fromkeys(display_name(a) for a in model.activations[:-1])) or "—"
    # "network", not "the big picture": that is section 12's (Nielsen's) name, and one document keeps one of each
    titles = ({"learn": "section.want", "network": "section.network_passes"}
              | ({"update_rule": "section.training_lesson"} if folded else {}))
    heads = section_heads(keys, text, titles,  # the MLP opens with the question, no box
                          numbers=numbers, part="learn" in keys and not folded)  # a reference part only in full
    refs = Refs(text, heads, absent={k: n for k, n in numbers.items() if k not in keys and k not in aliases},
                aliases=aliases, numbered=not text.is_lesson)
    narrator = Narrator(text)
    short = partial(brief, detail)
    direct = omits_steps(detail)  # the lesson writes each local derivative at once; `full` prints every step
    from derive import present_practice as practice

    loss_titles = {name: text.raw(f"loss_title.{name}") for name in text.catalog["loss_title"]}
    content = {
        "learn": lambda: _learn(lesson, text, refs),
        "network": lambda: _network(derivation, text, network_picture(derivation, text), lesson, refs,
                                    short("network")),
        "summary": lambda: _summary(derivation, text, refs, lesson),
        "forward": lambda: _forward(derivation, text),
        "loss": lambda: _loss(derivation, text),
        "activations": lambda: _activations(derivation, text, numbers["output_error"]),
        "method": lambda: [*_preview(derivation, text),
                           *lesson_blocks.method_blocks(text, narrator, paths=False, letters=True, direct=direct,
                                                        vector=derivation.model.activations[-1].is_vector)],
        "output_error": lambda: _output_error(derivation, text, refs, narrator, direct),
        "loss_choice": lambda: lesson_blocks.loss_choice_blocks(lesson, derivation, text, narrator, refs,
                                                                relabel=unit_letters),
        "recursion": lambda: _recursion(derivation, text, refs, narrator, direct),
        "parameters": lambda: _parameters(derivation, text, narrator, direct),
        "paths": lambda: paths_blocks(model.sizes, model.activations[-1].is_vector, text, refs,
                                      example=lesson.paths if "example" in every else None,
                                      # the worked example's figure draws these paths (a chain's, as they are)
                                      figure=lesson_blocks.figure_reference(text, "fig:example")
                                      if lesson.paths is not None and "example" in every else ""),
        "meaning": lambda: lesson_blocks.meaning_blocks(lesson, derivation, text, refs,
                                                        init=training[1] if training is not None else None,
                                                        bound=True, example_ratio=True),
        "minibatch": lambda: _minibatch(derivation, text, narrator),
        # the worked example, continued: its update step, once the update has been given
        "algorithm": lambda: lesson_blocks.algorithm_blocks(derivation, plan, text, refs)
        + (lesson_blocks.example_update_blocks(lesson, derivation, text, refs) if "example" in every else []),
        "example": lambda: lesson_blocks.example_blocks(lesson, derivation, text, refs, exercise=False, update=False,
                                                        ratio=False),
        "exercises": lambda: practice.exercise_blocks(lesson, derivation, report, text, loss_titles),
        "answers": lambda: practice.answer_blocks(lesson, derivation, report, text, loss_titles),
        "cost": lambda: lesson_blocks.cost_blocks(lesson, text),
        "update_rule": lambda: _training_lesson(derivation, text, refs, training, narrator) if folded
        else _update_rule(derivation, text, refs, training, narrator),
        "code": lambda: _code(plan, derivation, text, short("code")),
        "notations": lambda: notation_map_blocks(text),
        "verification": lambda: practice.gradient_check_blocks(lesson, derivation, report, text, refs)
        if text.is_lesson else verification_blocks(
            _verification(report, text, model.penalty is not None, short("verification")), text),
    }
    if training is not None:
        from derive.present_training import initialisation_blocks, optimizer_blocks

        content["optimizer"] = lambda: optimizer_blocks(training[0], model.spec, text, narrator)
        from derive.lesson.saturation import compare_starts

        content["initialisation"] = lambda: initialisation_blocks(training[1], model.sizes, text, narrator,
                                                                  starts=compare_starts(model, training[1]))
    opening = (blocks.Paragraph(text(OPENING[detail])),) if detail in OPENING else ()  # once, at the top
    vector = any(a.is_vector for a in model.activations)
    notation = lambda used: notation_blocks(  # noqa: E731
        text, used, penalty_notation(derivation, text), vector, {"optimizer": optimizer_notation(training, text)},
        unit_letters=True)
    # with hidden layers the title counts them too, the way textbooks name a network (zh review 26, item 16)
    title_key, title_values = (("doc.title_hidden", {"depth": str(depth), "hidden": str(depth - 1),
                                                     "hidden_plural": "s" if depth > 2 else ""}) if depth > 1
                               else ("doc.title", {"depth": str(depth), "plural": ""}))
    title = text(title_key, **title_values)
    with words(**{"if": text.raw("formula.if"), "otherwise": text.raw("formula.otherwise"),
                   "times": text.raw("formula.times")}):
        return assemble_document(
            text, keys, heads, content, notation, opening=opening,
            omitted=tuple(k for k in every[:every.index("summary")] if k not in keys),
            title=title,
            subtitle=text("doc.subtitle", hidden=hidden_names, output=display_name(model.activations[-1]),
                          loss=_loss_title(model, text)),
            generated=text("doc.generated", version=__version__, command=command,
                           verification_section=numbers["verification"]) + more_detail(text, detail, command),
            metadata=metadata(text, fill(text.raw(title_key), title_values)),
        )


def more_detail(text: Text, detail: str, command: str) -> str:
    """The sentence closing a shorter document: which command prints what it leaves out (the same
    command with `--detail full`, and for the summary also the lesson), after the colophon."""
    if not omits_steps(detail):
        return ""
    bare = re.sub(r" --detail \S+", "", command)
    full = re.sub(r"^(derive \S+ .*?)(?= --lang |$)", r"\1 --detail full", bare, count=1)
    return text.raw("language.sentence_separator") + text(f"detail.more_{detail}", lesson=bare, full=full)


PICTURE_FILE = "network.svg"  # the Markdown document shows the picture from this file beside it


def _path_units(text: Text, depth: int) -> str:
    """The sentence naming the orange path's units k, j₁, …, j_L as the sum over paths names them."""
    units = ("、" if text.lang == "zh" else ", ").join(f"$j_{{{l}}}$" for l in range(1, depth + 1))
    return text("picture.path_units", units=units)


def network_picture(derivation: Derivation, text: Text) -> blocks.Picture:
    """The picture of the network for this format: TikZ for LaTeX, SVG for everything else."""
    from derive import pictures

    model = derivation.model
    words = {key: text.raw(f"picture.{key}") for key in
             ("input", "layer", "loss", "units", "forward", "backward", "more_layers")}
    layout = pictures.layout(model.sizes, tuple(display_name(a).strip('`') for a in model.activations), picture_loss(model, text), words)
    alt = text.raw("picture.alt")
    path = any(line.colour == pictures.PATH_COLOUR for line in layout.lines)  # one path drawn (section paths)
    separator = text.raw("language.sentence_separator")
    weight = ""
    if layout.weight is not None:  # the named weight, and why its indices read j then k
        layer, j, k = layout.weight
        weight = separator + text("picture.weight", name=Q("W", layer).latex() + "_{" + (f"{j},{k}" if max(j, k) > 9 else f"{j}{k}") + "}",
                                  j=j, k=k, layer=layer, previous=layer - 1, matrix=Q("W", layer).latex(),
                                  z=Q("z", layer).latex(), a=Q("a", layer - 1).latex(), b=Q("b", layer).latex())
    return blocks.Picture(
        # the ellipsis is mentioned only where one is drawn (a wide layer, or layers left out)
        caption=text("picture.caption" if layout.dots else "picture.caption_all")
        + (separator + text("picture.path_before_weight" if weight else "picture.path")
           if path and "paths" in text.defaults else "") + weight
        # the path's units named last, after the parallel orange/black sentences (zh review 21)
        + (separator + _path_units(text, model.depth) if path and "paths" in text.defaults else ""),
        alt=alt,
        file=PICTURE_FILE,
        svg=pictures.svg(layout, alt) if text.fmt != "tex" else None,
        tikz=pictures.tikz(layout) if text.fmt == "tex" else None,
        label="fig:network",
        # after the table of layers where it fits, else at the foot of a page, never between the two
        # parts of a paragraph that runs over a page
        foot=True,
    )


def code_context(plan: CodePlan, *, title: str, command: str) -> dict:
    from derive.layer_loop import loop_context

    cache_names = ["A0"] + [a.target for a in plan.forward]
    return {
        "title": title,
        "version": __version__,
        "command": command,
        "sizes": repr(tuple(plan.sizes)),
        "helpers": plan.helpers,
        "own_functions": list(plan.own_functions),
        "parameters": plan.parameters,
        # only weights W{l} and biases b{l}: init_params's docstring can give their shapes
        "plain_layers": all(re.fullmatch(r"[Wb]\d+", name) for name in plan.parameters),
        "forward": [{"target": a.target, "value": a.value} for a in plan.forward],
        "cache": cache_names,
        "loss_value": plan.loss_value,
        "loss_uses": plan.loss_uses,
        "backward": [{"target": a.target, "value": a.value} for a in plan.backward],
        "backward_uses": plan.backward_uses,
        "constants": [{"target": c.target, "value": c.value, "comment": c.comment} for c in plan.constants],
        "loss_params": list(plan.loss_params),
        "sizes_used": [{"target": a.target, "value": a.value} for a in plan.sizes_used],
        "forward_sizes": [{"target": a.target, "value": a.value} for a in plan.forward_sizes],
        "workspace_extra": [{"target": a.target, "value": a.value} for a in plan.workspace_extra],
        "dropout": plan.dropout,
        "batchnorm": plan.batchnorm,
        "workspace": _workspace_context(plan),
        "checks": _input_check_context(plan.input_check),
        "loop": loop_context(plan),
    }


def _dims_text(dims) -> str:
    """("n1", "n0") / ("n1", 1): a shape of size names as the generated code writes it."""
    items = [f'"{d}"' if isinstance(d, str) else str(d) for d in dims]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _input_check_context(check) -> dict:
    from derive.codegen_inputs import TARGET_SUM_TOLERANCE

    return {
        "x_dims": _dims_text(check.x_dims),
        "y_dims": _dims_text(check.y_dims),
        "parameters": [(name, _dims_text(dims)) for name, dims in check.parameters],
        "fast": list(check.fast),
        "targets_sum_to_one": check.targets_sum_to_one,
        "target_sum_tolerance": TARGET_SUM_TOLERANCE,
    }


def _workspace_context(plan: CodePlan) -> dict | None:
    w = plan.workspace
    if w is None:
        return None
    program = lambda p: {"bindings": list(p.bindings), "body": list(p.body)}  # noqa: E731
    return {
        "dims": list(w.dims),
        "gradients": [list(g) for g in w.gradients],
        "scratch": [list(s) for s in w.scratch],
        "layouts": any(axes for _, _, axes in w.scratch),  # _filled takes a memory order only when one is used
        "products": [list(p) for p in w.products],
        "constants": [list(c) for c in w.constants],
        "windows": list(w.windows),
        "gradients_into": program(w.gradients_into),
        "sgd_step": program(w.sgd_step),
        "scaled_errors": w.scaled_errors,
        "size_sources": list(w.size_sources),
        "unpack": w.unpack,
        "unpack_value": w.unpack_value,
        "layer_count": w.layer_count,
        "layer_names": w.layer_names,
        "min_of": w.min_of,
        "sizes_expr": w.sizes_expr,
        "x_shape": w.x_shape,
        "y_shape": w.y_shape,
        "sample_axis": "1" if w.x_shape.count(",") == 1 else "-1",  # X[:, batch] / X[..., batch]
    }


# --------------------------------------------------------------------------------------------------
# JSON


@lru_cache(maxsize=None)
def sympy_text(expr: sp.Basic) -> str:
    """`sympy.srepr` of an expression, built node by node so that shared sub-trees print once.

    The text is the same constructor form as srepr's, and `sympy.sympify` rebuilds the expression.
    """
    if expr.is_Atom or not expr.args:
        return sp.srepr(expr)
    return f"{type(expr).__name__}({', '.join(sympy_text(arg) for arg in expr.args)})"


def _side(expr: sp.Basic, matrix: bool) -> dict:
    return {"latex": latex(expr, matrix=matrix), "sympy": sympy_text(expr)}


def _json_step(step: Step) -> dict:
    return {"rule": step.rule, "form": "matrix" if step.matrix else "index",
            "lhs": _side(step.lhs, step.matrix), "rhs": _side(step.rhs, step.matrix)}


def _json_result(result: Result) -> dict:
    return {
        "index": {"lhs": _side(result.lhs, False), "rhs": _side(result.rhs, False),
                  "free_indices": [str(i) for i in result.free]},
        "matrix": None if result.matrix_rhs is None else {
            "lhs": _side(result.matrix_lhs, True), "rhs": _side(result.matrix_rhs, True),
            "checked_entry_by_entry": result.recognition_proved},
    }


def _labelled(p, prefix: str = "") -> dict[str, tuple[list | None, Result | None]]:
    """A pass's steps and results under the labels of their quantities ('z_1', 'delta_3', 'cost')."""
    keys = list(dict.fromkeys([*p.results, *p.steps]))
    return {prefix + key.label: (p.steps.get(key), p.results.get(key)) for key in keys}


def _spec_json(model) -> dict:
    """What was derived: an MLP's options, or a network file's layers (with the file's text)."""
    spec = model.spec
    if isinstance(spec, NetSpec):
        return {"architecture": "network", "file": spec.path, "input": spec.input_units,
                "layers": [{"kind": layer.kind, **dict(layer.options), "name": layer.name, "input": layer.input,
                            "from": layer.skip, "activation": layer.activation} for layer in spec.layers],
                "loss": spec.loss, "sizes": list(model.sizes), "l2": spec.l2, "l1": spec.l1,
                "penalise_bias": spec.penalise_bias,
                "nodes": [{"kind": node.kind.name, "output": node.output.label, "inputs": [q.label for q in node.inputs],
                           "parameters": [p.label for p in node.parameters]} for node in model.network.layers]}
    return {"architecture": "mlp", "layers": spec.layers, "activations": list(spec.activations),
            "loss": spec.loss, "sizes": list(spec.sizes),
            "l2": spec.l2, "l1": spec.l1, "penalise_bias": spec.penalise_bias}


def json_document(derivation: Derivation, report: Report, *, command: str) -> dict:
    """derivation.json: the spec, every step (LaTeX and SymPy `srepr` of each side), the final
    formulas, the activation derivatives and the verification figures. The spec is what was derived,
    not which files were asked for: every choice of --format writes the same bytes here."""
    passes = {"sample": _labelled(derivation.sample), "batch": _labelled(derivation.batch)}
    if derivation.general is not None:
        passes["general"] = _labelled(derivation.general) | _labelled(derivation.general_batch, "batch_")
    return {
        "tool": {"name": "derive", "version": __version__},
        "command": command,
        "spec": _spec_json(derivation.model),
        "functions": function_json(derivation),
        "notes": {
            "sympy": "Each 'sympy' field is sympy.srepr of the expression: sympy.sympify(text) rebuilds it; "
            "matrix forms also need the names MatProd, Tr, RowSums, ColSums, ColBroadcast, RowBroadcast "
            "from derive.matrixform as locals, and the SELU constants SeluScale, SeluAlpha from "
            "derive.catalog.constants.",
            "forms": "'index' formulas hold entry by entry; 'matrix' formulas hold for whole arrays, "
            "where * between arrays is the entry-wise product.",
        },
        "steps": {name: {key: [_json_step(s) for s in steps] for key, (steps, _) in p.items() if steps is not None} for name, p in passes.items()}
        | {"update": {key: [_json_step(s) for s in steps] for key, steps in derivation.updates.items()}},
        "formulas": {name: {key: _json_result(r) for key, (_, r) in p.items() if r is not None}
                     for name, p in passes.items()},
        "activation_derivatives": [
            {
                "activation": d.activation.name,
                "g": sympy_text(d.activation.expr),
                "derivative_computed": sympy_text(d.computed),
                "derivative_used": sympy_text(d.derivative),
                "in_terms_of_output": None if d.in_terms_of_output is None else sympy_text(d.in_terms_of_output),
                "proof": d.proof,
                "kink_convention": d.kink_convention,
                **derivative_json(d),
            }
            for d in derivation.activation_derivatives
        ],
        "verification": {
            "passed": report.passed,
            "checks": [{"name": c.name, "ran": c.ran, "passed": c.passed, "figures": c.figures} for c in report.checks],
        },
    }
