"""Turn a derivation and its verification report into plain data for the templates.

Nothing here derives anything: it prints the engine's expressions (LaTeX via `printing`, SymPy text
via `srepr`), looks up prose in the message catalog and arranges both into dictionaries and lists
that the templates lay out. Prose in the catalog uses $…$ for mathematics and `…` for code;
`prose` converts it for Markdown or LaTeX.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache, lru_cache
from pathlib import Path

import sympy as sp

from derive import __version__
from derive.backprop import Result, Step
from derive.codegen import CodePlan
from derive.derivation import Derivation
from derive.notation import BATCH_COST, COST, LayerRef, Q, index, quantity_of, size_latex
from derive.present_functions import (
    activation_extras,
    derivative_json,
    function_json,
    activation_notes,
    code_notes,
    display_name,
    loss_extras,
    penalty_notation,
)
from derive.printing import latex
from derive.rewrite import logistic_as_tanh
from derive.verify import PREACTIVATION_BOUND, Report

LOCALE_DIR = Path(__file__).parent / "locale"


# --------------------------------------------------------------------------------------------------
# messages


@cache
def messages(lang: str = "en") -> dict[str, dict[str, str]]:
    with open(LOCALE_DIR / f"{lang}.toml", "rb") as handle:
        return tomllib.load(handle)


_SEGMENTS = re.compile(r"(\$[^$]+\$|`[^`]+`|\*\*[^*]+\*\*)")
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def prose(text: str, fmt: str) -> str:
    """Catalog text for a format: Markdown keeps it; LaTeX escapes plain text and converts `code`;
    HTML escapes plain text and renders math as MathML (see `derive.mathml`)."""
    if fmt == "md":
        return text
    if fmt == "html":
        from derive.mathml import html_prose

        return html_prose(text)
    out = []
    for part in _SEGMENTS.split(text):
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(part)
        elif part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(r"\texttt{" + tex_escape(part[1:-1]) + "}")
        elif part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(r"\textbf{" + tex_escape(part[2:-2]) + "}")
        else:
            out.append(tex_escape(part).replace("δ", r"$\delta$"))
    return "".join(out)


class Text:
    """Formats catalog messages for one language and output format."""

    def __init__(self, lang: str, fmt: str, **defaults):
        self.catalog = messages(lang)
        self.lang = lang
        self.fmt = fmt
        self.defaults = defaults  # values every message may use, e.g. section numbers

    def __call__(self, key: str, raw: dict[str, str] | None = None, **values) -> str:
        """The message `key` with its {placeholders} filled. `values` are text in the catalog's
        Markdown-lite, converted with the message; `raw` values are already in the output format
        (a LaTeX \\ref, an HTML link) and are put in after the conversion, untouched."""
        template = self.raw(key)
        raw = raw or {}
        for n, name in enumerate(raw):
            template = template.replace("{" + name + "}", f"\ue000{n}\ue001")
        out = prose(fill(template, {**self.defaults, **values}), self.fmt)
        for n, value in enumerate(raw.values()):
            out = out.replace(f"\ue000{n}\ue001", value)
        return out

    def raw(self, key: str) -> str:
        """The message exactly as written in the catalog (settings such as `language.tex_preamble`)."""
        section, name = key.split(".", 1)
        return self.catalog[section][name]

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
    if matrix:
        return equation(result.matrix_lhs, result.matrix_rhs, matrix=True)
    return equation(result.lhs, result.rhs)


def step_data(step: Step, text: Text, ref: str = "", label: str | None = None) -> dict:
    """One step: its justification (with `ref`, the reference its rule's message may cite), the
    equation, and the `label` under which the LaTeX document numbers it for later references."""
    return {"text": text(f"rule.{step.rule}", raw={"ref": ref}), **equation(step.lhs, step.rhs, step.matrix),
            "rule": step.rule, "label": label}


def anchor(title: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --------------------------------------------------------------------------------------------------
# sections


def _network(derivation: Derivation, text: Text) -> dict:
    model = derivation.model
    rows = [{"layer": "0", "units": str(model.spec.sizes[0]), "activation": text("network.input"), "formula": ""}]
    for layer in range(1, model.depth + 1):
        act = model.activations[layer - 1]
        rows.append(
            {
                "layer": str(layer),
                "units": str(model.spec.sizes[layer]),
                "activation": prose(display_name(act), text.fmt),
                "formula": _activation_formula(act, layer),
            }
        )
    return {"rows": rows}


def _activation_formula(act, layer) -> str:
    a = Q("a", layer)
    if act.is_vector:
        from derive.layers import ActivationLayer

        i = index("i", LayerRef(layer))
        return equation(a.base[i], ActivationLayer(LayerRef(layer), act).entry(i, None))
    return equation(sp.Function("g")(sp.Symbol("z")), act.expr)


def _notation(text: Text, extra: list[tuple[str, str]] = ()) -> list[dict]:
    l = LayerRef.symbolic()
    rows = [
        ("x", "notation.x"),
        ("y", "notation.y"),
        (Q("W", l).latex(), "notation.W"),
        (Q("b", l).latex(), "notation.b"),
        (Q("z", l).latex(), "notation.z"),
        (Q("a", l).latex(), "notation.a"),
        ("g^{(l)}", "notation.g"),
        ("C", "notation.C"),
        (latex(BATCH_COST), "notation.Cbar"),
        (Q("delta", l).latex(), "notation.delta"),
        (f"X, Y, {Q('Z', l).latex()}, {Q('A', l).latex()}", "notation.matrices"),
        (Q("Delta", l).latex(), "notation.Delta"),
        (r"\delta_{iq}", "notation.kronecker"),
        (r"\odot", "notation.hadamard"),
        (r"\mathbf{1}", "notation.ones"),
        (r"[\,\cdot > 0\,]", "notation.iverson"),
        (r"\eta", "notation.eta"),
    ]
    return [{"symbol": symbol, "meaning": text(key)} for symbol, key in rows] + [
        {"symbol": symbol, "meaning": meaning} for symbol, meaning in extra]


def _forward(derivation: Derivation, text: Text) -> dict:
    """The general layer l (weighted sums), then each layer's activation as derived."""
    sample_z, batch_z = derivation.general_forward
    l = LayerRef.symbolic()
    i = index("i", l)
    g = sp.Function(f"g^{{({l.latex()})}}")
    activation_index = equation(Q("a", l).base[i], g(Q("z", l).base[i]))
    activation_vector = equation(Q("a", l).symbol, g(Q("z", l).symbol))
    activation_batch = equation(Q("A", l).symbol, g(Q("Z", l).symbol))
    layers = []
    for layer in range(1, derivation.model.depth + 1):
        a = derivation.sample.results[f"a_{layer}"]
        entry = {"layer": str(layer), "vector": result_equation(a), "index": None, "intro": None}
        act = derivation.model.activations[layer - 1]
        if act.is_vector:
            entry["index"] = result_equation(a, matrix=False)
            entry["intro"] = text("forward.softmax" if act.is_softmax else "vector_extra.log_softmax_forward")
        layers.append(entry)
    return {
        "index": [result_equation(sample_z, matrix=False), activation_index],
        "vector": [result_equation(sample_z), activation_vector],
        "batch": [result_equation(batch_z), activation_batch],
        "layers": layers,
    }


def _loss(derivation: Derivation, text: Text) -> dict:
    model = derivation.model
    from derive.notation import A as a_sym, Y as y_sym

    notes = []
    if model.loss.target == "probability":
        notes.append(text("loss.probability"))
    elif model.loss.target == "binary":
        notes.append(text("loss.binary"))
    ell = sp.Function(r"\ell")(a_sym, y_sym)
    extras = loss_extras(derivation, text)
    return {
        "per_unit": equation(ell, model.loss.expr),
        "sample": result_equation(derivation.sample.results["cost"], matrix=False),
        "batch": result_equation(derivation.batch.results["cost"], matrix=False),
        "notes": notes + extras["notes"],
        "derivative": extras["derivative"],
        "derivative_intro": text("loss_extra.derivative"),
        "penalty": extras["penalty"],
    }


def _activations(derivation: Derivation, text: Text, output_section: int) -> list[dict]:
    out = []
    z, g = sp.Symbol("z"), sp.Function("g")
    gz = g(z)
    activations = derivation.model.activations
    for d in derivation.activation_derivatives:
        layers = [n + 1 for n, a in enumerate(activations) if a == d.activation]
        entry = {
            "name": prose(display_name(d.activation), text.fmt),
            "title": text.title("activation_title", d.activation.name, d.activation.title),
            "definition": equation(gz, d.activation.expr),
            "computed": equation(sp.Derivative(gz, z), d.computed),
            "facts": " ".join(activation_notes(d, text, layers)),
            "notes": [],
            "readable": None,
            "convention": None,
            "branch_note": None,
            **activation_extras(d, text),
        }
        if d.in_terms_of_output is not None:
            entry["readable"] = {"lhs": "g'(z)", "rhs": latex(d.in_terms_of_output), "latex": f"g'(z) = {latex(d.in_terms_of_output)}"}
            entry["notes"].append(text(f"activations.proof_{d.proof}"))
        elif d.branch_form is not None:
            entry["branch_note"] = text("kinks_extra.branch_proof", methods="`, `".join(sorted(set(d.branch_proofs))))
        elif d.kink_convention:
            entry["convention"] = {"lhs": "g'(z)", "rhs": latex(d.derivative), "latex": f"g'(z) = {latex(d.derivative)}"}
        elif not d.computed.has(sp.Symbol("z", real=True)):
            entry["notes"].append(text("activations.constant"))
        elif not d.conventions:
            entry["notes"].append(text("activations.none"))
        out.append(entry)
    for act in dict.fromkeys(a for a in activations if a.is_vector):
        out.append({"name": prose(act.name, text.fmt), "title": text.title("activation_title", act.name, act.title),
                    "definition": None, "computed": None, "readable": None,
                    "convention": None, "notes": [text("activations.softmax" if act.is_softmax else "vector_extra.log_softmax_note",
                                             output_section=output_section)], "facts": "",
                    "branches": None, "pieces": [], "kinks": [], "conventions": [], "branch_note": None})
    return out


def _steps(steps: list[Step], text: Text, ref=lambda step: "", label: str | None = None) -> list[dict]:
    """Template data for a derivation; `ref(step)` gives the reference a step's justification cites,
    `label` names the last equation (the result) for cross-references."""
    return [step_data(s, text, ref(s), label if n == len(steps) - 1 else None) for n, s in enumerate(steps)]


# LaTeX labels of the sections (\label{sec:…} in derivation.tex.j2)
TEX_SECTION_LABELS = {"output_error": "output", "update_rule": "update"}


class Refs:
    """Cross-references to earlier results. The LaTeX document numbers its equations, so it cites the
    equation (\\ref of its label); Markdown and HTML number none, so they link to the section that
    holds it. The words around the number ("eq.", "section") come from the message catalog."""

    def __init__(self, text: Text, sections: list[dict]):
        self.text = text
        self.sections = {s["key"]: s for s in sections}

    def equation(self, label: str, section: str) -> str:
        if self.text.fmt == "tex":
            return self.text("refs.equation", raw={"number": rf"\ref{{{label}}}"})
        return self.section(section)

    def section(self, key: str) -> str:
        s = self.sections[key]
        links = {
            "tex": lambda: rf"\ref{{sec:{TEX_SECTION_LABELS.get(key, key)}}}",
            "md": lambda: f"[{s['number']}](#{s['anchor']})",
            "html": lambda: f'<a href="#{s["anchor"]}">{s["number"]}</a>',
        }
        return self.text("refs.section", raw={"number": links[self.text.fmt]()})


def _split_hidden(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """A hidden-layer derivation: first ∂C/∂a (through the layer above), then δ."""
    cut = next(n for n, s in enumerate(steps) if s.rule == "definition_delta")
    return steps[:cut], steps[cut:]


def _summary(derivation: Derivation) -> dict:
    return {"sample": _summary_rows(derivation, batch=False), "batch": _summary_rows(derivation, batch=True)}


def _summary_rows(derivation: Derivation, batch: bool) -> list[dict]:
    """BP1 output error, BP2 recursion, BP3 bias and BP4 weight gradients, general where possible."""
    depth = derivation.model.depth
    results = (derivation.batch if batch else derivation.sample).results
    general = derivation.general.results if derivation.general is not None else None
    prefix = "batch_" if batch else ""
    rows = [("BP1", result_equation(results[f"delta_{depth}"]))]
    if general is not None and not batch:
        rows.append(("BP2", result_equation(general["delta_l"])))
    else:
        rows += [("BP2", result_equation(results[f"delta_{l}"])) for l in range(depth - 1, 0, -1)]
    if general is not None:
        rows.append(("BP3", result_equation(general[f"{prefix}grad_b_l"])))
        rows.append(("BP4", result_equation(general[f"{prefix}grad_W_l"])))
    else:
        for l in range(depth, 0, -1):
            rows.append(("BP3", result_equation(results[f"grad_b_{l}"])))
            rows.append(("BP4", result_equation(results[f"grad_W_{l}"])))
    return [{"label": label, **eq} for label, eq in rows]


def _per_layer(p, depth: int) -> list[dict]:
    out = []
    for layer in range(depth, 0, -1):
        out.append(
            {
                "layer": str(layer),
                "delta": result_equation(p.results[f"delta_{layer}"]),
                "grad_W": result_equation(p.results[f"grad_W_{layer}"]),
                "grad_b": result_equation(p.results[f"grad_b_{layer}"]),
            }
        )
    return out


def _verification(report: Report, text: Text, penalty: bool = False) -> list[str]:
    paragraphs = []
    s = report.check("symbolic")
    if "error" in s.figures:
        paragraphs.append(text("verification_extra.symbolic_error", error=s.figures["error"]))
    elif s.ran:
        f = s.figures
        paragraphs.append(text("verification.symbolic", raw={"agreement": _agreement(f, text)}, width=f["width"],
                               depth=f["depth"], partials=f["partials"]))
    else:
        paragraphs.append(text("verification.symbolic_skipped", **s.figures))
    f = report.check("minibatch").figures
    if "error" in f:
        paragraphs.append(text("verification_extra.minibatch_error", error=f["error"]))
    if "error" not in f:
        paragraphs.append(text("verification.minibatch", raw={"agreement": _agreement(f, text)}, samples=f["samples"],
                               partials=f["partials"]))
    f = report.check("derivatives").figures
    paragraphs.append(
        text(
            "verification.derivatives",
            step=_number(f["step"]),
            sizes=", ".join(map(str, f["sizes"])),
            samples=f["samples"],
            bound=f"{f['bound']:g}",
            partials=f["partials"],
            smallest=_number(f["smallest_gradient"]),
            largest=_number(f["largest_gradient"]),
            error=_number(f["largest_error"]),
            tolerance=_number(f["tolerance"]),
            loss_error=_number(f["loss_error"]),
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
                step_error=_number(f["step_error"]),
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
        paragraphs.append(text("verification.readable", found=found, plural="y" if found == 1 else "ies"))
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


def _code(plan: CodePlan, derivation: Derivation, text: Text) -> dict:
    stable = []
    acts = derivation.model.activations
    if any(a.name == "sigmoid" for a in acts):
        stable.append(text("code.stable_sigmoid", form=latex(logistic_as_tanh(-sp.Symbol("z", real=True)))))
    if any(a.is_softmax for a in acts):
        stable.append(text("code.stable_softmax"))
    from derive.notation import A as a_symbol

    if derivation.model.loss.expr.has(sp.log(a_symbol), sp.log(1 - a_symbol)):
        stable.append(text("code.stable_log"))
    phrases, sentences = code_notes(derivation, plan, text)
    stable += phrases
    return {
        "notes": sentences,
        # the stable forms are already converted to the output format: inserted raw, not converted twice
        "intro": text("code.intro", raw={"stable": text.raw("refs.clause_separator").join(stable) if stable else text("code.stable_none")}),
        "backward": [f"{a.target} = {a.value}" for a in plan.backward],
        "init": text("code.init"),
        "workspace": text("workspace.code") if plan.workspace is not None else None,
    }


def document_context(
    derivation: Derivation, report: Report, plan: CodePlan, *, command: str, fmt: str, lang: str = "en",
    training: tuple | None = None,
) -> dict:
    """Everything the Markdown and LaTeX templates need, as plain strings, lists and dicts."""
    model = derivation.model
    depth = model.depth
    hidden = model.uniform_hidden_activation
    hidden_names = ", ".join(dict.fromkeys(display_name(a) for a in model.activations[:-1])) or "—"
    section_keys = [
        "network", "notation", "forward", "loss", "activations", "output_error", "recursion",
        "parameters", "minibatch", "update_rule", "summary", "code", "verification",
    ]
    if training is not None:  # how parameters move and start (derive/training.py, derive/initialisation.py)
        after = section_keys.index("update_rule") + 1
        section_keys[after:after] = ["optimizer", "initialisation"]
    numbers = {key: n + 1 for n, key in enumerate(section_keys)}
    text = Text(lang, fmt, **numbers)
    titles = {key: text(f"section.{key}") for key in section_keys}
    sections = [{"key": k, "number": numbers[k], "title": titles[k], "anchor": anchor(f"{numbers[k]}. {titles[k]}")}
                for k in section_keys]
    refs = Refs(text, sections)
    sample, general = derivation.sample, derivation.general

    def upstream_ref(label, section):
        return lambda step: refs.equation(label, section) if step.rule == "substitute_upstream" else ""

    output_upstream = _steps(sample.steps[f"grad_a_{depth}"], text, label="eq:upstream-out")
    output_delta = _steps(sample.steps[f"delta_{depth}"], text, ref=upstream_ref("eq:upstream-out", "output_error"))

    recursion = {"intro": text("recursion.intro"), "general": None, "layers": [], "note": None}
    if depth == 1:
        recursion["note"] = text("recursion.none")
    else:
        if general is not None:
            up, de = _split_hidden(general.steps["delta_l"])
            recursion["general"] = {"upstream": _steps(up, text, label="eq:upstream-l"),
                                    "delta": _steps(de, text, ref=upstream_ref("eq:upstream-l", "recursion")),
                                    "result": result_equation(general.results["delta_l"])}
        else:
            recursion["note"] = text("recursion.mixed")
        for layer in range(depth - 1, 0, -1):
            entry = {"layer": str(layer), "result": result_equation(sample.results[f"delta_{layer}"])}
            if general is None:
                up, de = _split_hidden(sample.steps[f"delta_{layer}"])
                label = f"eq:upstream-{layer}"
                entry["upstream"] = _steps(up, text, label=label)
                entry["delta"] = _steps(de, text, ref=upstream_ref(label, "recursion"))
                entry["upstream_text"] = text("recursion_layer.upstream", layer=layer)
                entry["delta_text"] = text("recursion_layer.delta", layer=layer)
            recursion["layers"].append(entry)

    param_key = "l" if general is not None else str(depth)
    param_pass = general if general is not None else sample
    parameters = {
        "weights": _steps(param_pass.steps[f"grad_W_{param_key}"], text, label="eq:bp4"),
        "biases": _steps(param_pass.steps[f"grad_b_{param_key}"], text, label="eq:bp3"),
        "per_layer": _per_layer(sample, depth),
    }
    batch = derivation.batch
    minibatch = {
        "errors": [result_equation(batch.results[f"delta_{l}"]) for l in range(depth, 0, -1)],
        "weights": _steps((general.steps["batch_grad_W_l"] if general else batch.steps[f"grad_W_{depth}"]), text,
                          label="eq:bp4-batch"),
        "biases": _steps((general.steps["batch_grad_b_l"] if general else batch.steps[f"grad_b_{depth}"]), text,
                         label="eq:bp3-batch"),
        "per_layer": _per_layer(batch, depth),
    }
    update_key = "l" if "l" in derivation.updates else str(depth)

    def gradient_ref(step):
        if step.rule != "substitute_gradient":
            return ""
        kind = quantity_of(str(step.lhs)).kind
        return refs.equation("eq:bp4-batch" if kind == "W" else "eq:bp3-batch", "minibatch")

    update = _steps(derivation.updates[update_key], text, ref=gradient_ref)
    summary_refs = [("BP1", refs.equation("eq:bp1", "output_error"))]
    if depth > 1:
        summary_refs.append(("BP2", refs.equation("eq:bp2", "recursion") if general is not None else refs.section("recursion")))
    summary_refs += [("BP3", refs.equation("eq:bp3", "parameters")), ("BP4", refs.equation("eq:bp4", "parameters"))]

    return {
        "lang": lang,
        "version": __version__,
        "command": command,
        "title": text("doc.title", depth=depth, plural="s" if depth > 1 else ""),
        "subtitle": text("doc.subtitle", hidden=hidden_names, output=display_name(model.activations[-1]),
                         loss=(text.raw(f"loss_title.{model.loss.name}") if model.loss.name in text.catalog.get("loss_title", {})
                               else model.loss.title) if not model.loss.is_custom else display_name(model.loss)),
        "generated": text("doc.generated", version=__version__, command=command, verification_section=numbers["verification"]),
        "contents": text("doc.contents"),
        "sections": sections,
        "n": numbers,
        "titles": titles,
        "t": {
            key: text(key)
            for key in (
                "network.layer", "network.units", "network.activation", "network.function", "network.sizes_note",
                "notation.intro", "notation.symbol", "notation.meaning",
                "forward.intro", "forward.index", "forward.vector", "forward.batch", "forward.activations",
                "forward.softmax",
                "loss.per_unit", "loss.sample", "loss.batch", "kinks_extra.branches", "kinks_extra.convention_intro",
                "activations.intro", "activations.computed", "activations.readable", "activations.convention",
                "output_error.intro", "output_error.upstream", "output_error.delta", "output_error.result",
                "recursion.per_layer_intro", "recursion.upstream", "recursion.delta",
                "parameters.intro", "parameters.weights", "parameters.biases", "parameters.per_layer",
                "minibatch.intro", "minibatch.errors", "minibatch.weights", "minibatch.biases", "minibatch.per_layer",
                "update.intro", "update.rule", "summary.intro", "summary.sample", "summary.batch", "code.backward",
                "verification.intro",
            )
        },
        "network_intro": text(
            "network.intro", depth=depth, plural="s" if depth > 1 else "", hidden_count=depth - 1,
            hidden_plural="s" if depth != 2 else "",
        ),
        "network": _network(derivation, text),
        "notation": _notation(text, penalty_notation(derivation, text)),
        "forward": _forward(derivation, text),
        "loss": _loss(derivation, text),
        "activations": _activations(derivation, text, numbers["output_error"]),
        "output_error": {"upstream": output_upstream, "delta": output_delta,
                         "result": result_equation(sample.results[f"delta_{depth}"])},
        "recursion": recursion,
        "parameters": parameters,
        "minibatch": minibatch,
        "update": update,
        "picture": network_picture(derivation, text),
        "language": {"html_lang": text.raw("language.html_lang"), "tex_engine": text.raw("language.tex_engine"),
                     "tex_preamble": text.raw("language.tex_preamble").strip()},
        "summary": _summary(derivation),
        "summary_refs": text("refs.summary", raw={"refs": text.raw("refs.separator").join(
            text("refs.item", raw={"name": name, "ref": ref}) for name, ref in summary_refs)}),
        "code": _code(plan, derivation, text),
        "verification": _verification(report, text, derivation.model.penalty is not None),
        "passed": report.passed,
        "hidden_activation": hidden.name if hidden else None,
        "sizes_latex": [size_latex(LayerRef(l)) for l in range(depth + 1)],
        "cost_latex": latex(COST),
        "training": _training(training, derivation, text),
    }


PICTURE_FILE = "network.svg"  # the Markdown document shows the picture from this file beside it


def network_picture(derivation: Derivation, text: Text) -> dict:
    """The picture of the network for this format: TikZ for LaTeX, SVG for everything else."""
    from derive import pictures

    model = derivation.model
    words = {key: text.raw(f"picture.{key}") for key in
             ("input", "layer", "loss", "units", "forward", "backward", "more_layers")}
    layout = pictures.layout(model.spec.sizes, tuple(a.name for a in model.activations), model.loss.name, words)
    alt = text.raw("picture.alt")
    return {
        "caption": text("picture.caption"),
        "alt": alt,
        "file": PICTURE_FILE,
        "tikz": pictures.tikz(layout) if text.fmt == "tex" else None,
        "svg": pictures.svg(layout, alt) if text.fmt != "tex" else None,
    }


def _training(training: tuple | None, derivation: Derivation, text: Text) -> dict | None:
    if training is None:
        return None
    from derive.present_training import training_context

    return training_context(*training, derivation.model.spec, text)


def code_context(plan: CodePlan, *, title: str, command: str) -> dict:
    cache_names = ["A0"] + [a.target for a in plan.forward]
    return {
        "title": title,
        "version": __version__,
        "command": command,
        "sizes": repr(tuple(plan.sizes)),
        "helpers": plan.helpers,
        "parameters": plan.parameters,
        "forward": [{"target": a.target, "value": a.value} for a in plan.forward],
        "cache": cache_names,
        "loss_value": plan.loss_value,
        "loss_uses": plan.loss_uses,
        "backward": [{"target": a.target, "value": a.value} for a in plan.backward],
        "backward_uses": plan.backward_uses,
        "constants": [{"target": c.target, "value": c.value, "comment": c.comment} for c in plan.constants],
        "loss_params": list(plan.loss_params),
        "sizes_used": [{"target": a.target, "value": a.value} for a in plan.sizes_used],
        "workspace": _workspace_context(plan),
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
        "products": [list(p) for p in w.products],
        "constants": [list(c) for c in w.constants],
        "gradients_into": program(w.gradients_into),
        "sgd_step": program(w.sgd_step),
        "scaled_errors": w.scaled_errors,
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
        "matrix": {"lhs": _side(result.matrix_lhs, True), "rhs": _side(result.matrix_rhs, True),
                   "checked_entry_by_entry": result.recognition_proved},
    }


def json_document(derivation: Derivation, report: Report, *, command: str) -> dict:
    """derivation.json: the spec, every step (LaTeX and SymPy `srepr` of each side), the final
    formulas, the activation derivatives and the verification figures. The spec is what was derived,
    not which files were asked for: every choice of --format writes the same bytes here."""
    spec = derivation.model.spec
    passes = {"sample": derivation.sample, "batch": derivation.batch}
    if derivation.general is not None:
        passes["general"] = derivation.general
    return {
        "tool": {"name": "derive", "version": __version__},
        "command": command,
        "spec": {"architecture": "mlp", "layers": spec.layers, "activations": list(spec.activations),
                 "loss": spec.loss, "sizes": list(spec.sizes),
                 "l2": spec.l2, "l1": spec.l1, "penalise_bias": spec.penalise_bias},
        "functions": function_json(derivation),
        "notes": {
            "sympy": "Each 'sympy' field is sympy.srepr of the expression: sympy.sympify(text) rebuilds it; "
            "matrix forms also need the names MatProd, Tr, RowSums, ColSums, ColBroadcast, RowBroadcast "
            "from derive.matrixform as locals, and the SELU constants SeluScale, SeluAlpha from "
            "derive.catalog.constants.",
            "forms": "'index' formulas hold entry by entry; 'matrix' formulas hold for whole arrays, "
            "where * between arrays is the entry-wise product.",
        },
        "steps": {name: {key: [_json_step(s) for s in steps] for key, steps in p.steps.items()} for name, p in passes.items()}
        | {"update": {key: [_json_step(s) for s in steps] for key, steps in derivation.updates.items()}},
        "formulas": {name: {key: _json_result(r) for key, r in p.results.items()} for name, p in passes.items()},
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
