"""The training parts of the document: the derived update rule, the optimizer and initialisation sections.

Like `present`, nothing here derives anything: it prints the expressions of `training` and
`initialisation` with a LaTeX printer that knows the names of `notation`, takes prose from the
message catalog (tables `training`, `training_rule`, `optimizer*`, `initialisation`) and arranges
both into the blocks of `derive.document`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

import sympy as sp

from derive import document as blocks
from derive.backprop import Step
from derive.catalog.optimizers import choice_text, format_value
from derive.initialisation import N_IN, N_OUT, Initialisation
from derive.notation import LayerRef, size
from derive.present import Text, prose, sympy_text
from derive.present_functions import display_name, prose_name
from derive.narrate import Narrator
from derive.printing import DeriveLatexPrinter, _factor_rank, current_words
from derive.spec import MLPSpec
from derive.training import Training
from derive.notation import COEFFICIENTS, latex_name
from derive.verify import Report

APPROXIMATE_RULES = {"linearise", "linear_second_moment", "gaussian_variance", "linear_derivative"}
FLOAT_DIGITS = 10  # digits of floating-point constants in the documents


class TrainingLatexPrinter(DeriveLatexPrinter):
    """The document printer, plus the names of training, sums with limits and short floats."""

    def _print_Symbol(self, expr, style="plain"):
        name = latex_name(expr.name)
        return name if name is not None else super()._print_Symbol(expr, style=style)

    def _print_Indexed(self, expr):
        name = latex_name(str(expr.base.label))
        if name is None:
            return super()._print_Indexed(expr)
        indices = ",".join(self._print(i) for i in expr.indices)
        return f"{name}_{{{indices}}}"

    def _print_IndexedBase(self, expr):
        name = latex_name(str(expr.label))
        return name if name is not None else super()._print_IndexedBase(expr)

    def _print_Sum(self, expr):
        limits = expr.limits
        if all(isinstance(i, sp.Idx) and (lo, hi) == (i.lower, i.upper) for i, lo, hi in limits):
            return super()._print_Sum(expr)
        sums = " ".join(rf"\sum_{{{self._print(i)}={self._print(lo)}}}^{{{self._print(hi)}}}" for i, lo, hi in reversed(limits))
        return f"{sums} {self.parenthesize(expr.function, 40, strict=True)}"

    def _factor_order(self, factors: list) -> list:
        """Sizes, then hyper-parameters, then σ_w², then the rest in the base printer's order: η ∇C, λ θ."""
        return sorted(factors, key=lambda f: (_group(f), _factor_rank(f)))

    def _print_Infinity(self, expr):
        return r"\infty"

    def _print_NegativeInfinity(self, expr):
        return r"-\infty"

    def _print_Pi(self, expr):  # the base printer's fallback gives \text{\Pi}
        return r"\pi"

    def _print_Float(self, expr):
        return super()._print_Float(sp.Float(expr, FLOAT_DIGITS))

    def _helper_print_standard_power(self, expr, template):
        base = self.parenthesize(expr.base, 60)
        if "^" in base and not base.startswith(r"\left("):
            base = rf"\left({base}\right)"
        return template % (base, self._print(expr.exp))

    def _print_Derivative(self, expr):
        (variable, count), = expr.variable_count
        if count == 1:
            return super()._print_Derivative(expr)
        return rf"\frac{{\partial^{{{count}}} {self._print(expr.expr)}}}{{\partial {{{self._print(variable)}}}^{{{count}}}}}"


def _group(factor: sp.Basic) -> int:
    names = {s.name for s in factor.free_symbols}
    if not names or factor.has(sp.Indexed, sp.Function, sp.Sum):
        return 4
    if all(n.startswith("n_") for n in names):
        return 0
    if names <= COEFFICIENTS:
        return 1
    if names == {"var_w"}:
        return 2
    return 3


def tlatex(expr: sp.Basic) -> str:
    return _tlatex(expr, current_words())


@lru_cache(maxsize=4096)
def _tlatex(expr: sp.Basic, words: tuple) -> str:
    return TrainingLatexPrinter(words=words).doprint(expr)


def _sides(step: Step) -> tuple[str, str]:
    return tlatex(step.lhs), tlatex(step.rhs)


def _relation(step: Step) -> str:
    return r"\approx" if step.rule in APPROXIMATE_RULES else "="


def _steps(narrator: Narrator, steps, *, intro: str = "", conclusion: str = "", figures: dict | None = None
           ) -> blocks.Derivation:
    """A training derivation, narrated like the backward pass (`derive.narrate`)."""
    return narrator.derivation(steps, _sides, table="training_rule", intro=intro, conclusion=conclusion,
                               relation=_relation, figures=figures)


def _aligned(steps) -> blocks.Aligned:
    return blocks.Aligned(tuple(blocks.Row(tlatex(s.lhs), tlatex(s.rhs)) for s in steps))


def update_blocks(training: Training, text: Text, narrator: Narrator) -> list:
    """Gradient descent derived from the proximal model, then SGD and why it is unbiased."""
    return [
        blocks.Paragraph(text("training.update_derivation")),
        _steps(narrator, training.update_steps, conclusion=text("training.update_result")),
        blocks.Paragraph(text("training.minibatch_intro")),
        _steps(narrator, training.minibatch_steps, conclusion=text("training.minibatch_result")),
    ]


def optimizer_blocks(training: Training, spec: MLPSpec, text: Text, narrator: Narrator) -> list:
    """The optimizer section: its hyper-parameters and state, the update equations of step t (and
    with this run's values), and what SymPy derives about it."""
    opt, values = training.optimizer, training.values
    given = spec.optimizer.name != "sgd" or spec.optimizer.overrides
    opening = [
        blocks.Paragraph(text("optimizer.intro", raw={"title": text.title("optimizer_title", opt.name, opt.title)},
                              torch_class=opt.torch_class)),
        blocks.Paragraph(text("optimizer.chosen", choice=choice_text(spec.optimizer)) if given
                         else text("optimizer.chosen_default")),
    ]
    hyper = []  # its formulas count as used (the notation table) only where the table is printed
    for h in opt.hypers:
        default = h.torch_default if h.torch_default is not None else h.default
        hyper.append((prose(f"`{h.name}`", text.fmt), text.math(", ".join(tlatex(s) for s in h.symbols)),
                      text.plain(format_value(values[h.name])), text.plain(format_value(default)),
                      text(f"optimizer_hyper.{h.name}")))
    out = [
        *opening,
        blocks.Heading(text("optimizer.hyper_title")),
        blocks.Table(tuple(text(f"optimizer.{k}") for k in ("name", "symbol", "value", "torch_default", "meaning")),
                     tuple(hyper), (r"p{0.2\textwidth}", "l", r"p{0.1\textwidth}", r"p{0.1\textwidth}",
                                    r"p{0.33\textwidth}"), long=True),
    ]
    differs = {h.name: h for h in opt.hypers if h.torch_default is not None}
    if "lr" in differs:  # torch.optim.SGD's 0.001 barely moves these networks (catalog.optimizers)
        out.append(blocks.Paragraph(text("optimizer.lr_default", lr=format_value(differs["lr"].default),
                                         torch_lr=format_value(differs["lr"].torch_default))))
    if "momentum" in differs:
        out.append(blocks.Paragraph(text("optimizer.momentum_default")))
    out.append(blocks.Heading(text("optimizer.state_title")))
    if opt.state:
        state = tuple((prose(f"`{s.name}`", text.fmt), text.math(tlatex(s.symbol)), text.math(tlatex(s.initial)),
                       text(f"optimizer_state.{s.name}")) for s in opt.state)
        out.append(blocks.Table(tuple(text(f"optimizer.{k}") for k in ("state_name", "symbol", "initial", "meaning")),
                                state, ("l", "l", "l", r"p{0.45\textwidth}"), long=True))
    else:
        out.append(blocks.Paragraph(text("optimizer.state_none")))
    entrywise = any(step.rhs.has(sp.Pow) for step in training.equations)  # √, quotients, squares (Adam …)
    out += [blocks.Paragraph(text("optimizer.equations", raw={"entrywise": text("optimizer.entrywise") if entrywise else ""})),
            _aligned(training.equations)]
    if training.equations_with_values is not None:
        zeros = [tlatex(h.symbols[0]) for h in opt.hypers if h.kind == "real" and values[h.name] == 0]
        zeros_text = text.raw("refs.list_separator").join(f"${z}$" for z in zeros)
        out += [blocks.Paragraph(text("optimizer.with_values", zeros=zeros_text)),
                _aligned(training.equations_with_values)]
    out.append(blocks.Paragraph(text("optimizer.derived")))
    for fact in training.facts:
        out += [
            blocks.Heading(text(f"optimizer_fact.{fact.key}_title"), level="subsection"),
            _steps(narrator, fact.steps),
            blocks.Paragraph(text(f"optimizer_fact.{fact.key}_result", **_figures(fact.figures))),
        ]
    return out


def _lesson_opening(training: Training, spec: MLPSpec, text: Text) -> list:
    """The lesson's words for an optimizer other than plain SGD: what moves the parameters, in the
    reader's terms (torch.optim, the options and the command line are `full`'s)."""
    opt = training.optimizer
    entrywise = any(step.rhs.has(sp.Pow) for step in training.equations)  # √, quotients, squares (Adam …)
    return [blocks.Paragraph(text("detail.optimizer_lesson",
                                  raw={"title": text.title("optimizer_title", opt.name, opt.title),
                                       "entrywise": text("optimizer.entrywise") if entrywise else ""}))]


def _short_update(training: Training, text: Text) -> list:
    """The optimizer's step as this run takes it (with its values where they simplify it), and the
    learning rate the generated code uses, beside the worked example's."""
    from derive.lesson.worked_example import LEARNING_RATE_VALUE

    equations = training.equations_with_values if training.equations_with_values is not None else training.equations
    rate = format_value(training.values["lr"])
    example = text("detail.learning_rate_example", example_lr=format_value(float(LEARNING_RATE_VALUE)),
                   times=f"{float(LEARNING_RATE_VALUE) / training.values['lr']:.0f}") \
        if "example" in text.defaults and training.values["lr"] > 0 \
        and float(LEARNING_RATE_VALUE) != training.values["lr"] else ""  # the same rate: nothing to compare
    return [_aligned(equations), blocks.Paragraph(text("detail.learning_rate", lr=rate, raw={"example": example}))]


def _figures(figures: dict) -> dict:
    """Figures for the prose: formulas printed like the equations, numbers kept as they are."""
    return {k: tlatex(v) if isinstance(v, sp.Basic) else v for k, v in figures.items()}


def _known(scale, text: Text) -> str:
    if scale.method == "offset":  # g(0) ≠ 0: the exact forward condition, whatever its number
        return text("initialisation.known_exact_forward")
    if scale.known is None:
        return ""
    if scale.gain is not None:
        return text("initialisation.known_Glorot_gain", gain=sp.latex(scale.gain))
    return text(f"initialisation.known_{scale.known}")


def initialisation_blocks(init: Initialisation, network_sizes: tuple[int, ...], text: Text, narrator: Narrator,
                          starts=None) -> list:
    """The initialisation section: the variance relations, the scale derived for the input and for
    each hidden activation, what the derived variances do to this network, and the variance of
    every layer (`starts`: the default start against the exact forward variance, `lesson.saturation`)."""
    out = [
        blocks.Paragraph(text("initialisation.intro")),
        *_in_short(init, text),
        blocks.Paragraph(text("initialisation.assumptions")),
        _steps(narrator, init.forward, intro=text("initialisation.forward")),
        _steps(narrator, init.backward, intro=text("initialisation.backward")),
        blocks.Paragraph(text("initialisation.conditions")),
        _steps(narrator, init.conditions),
        blocks.Paragraph(text("initialisation.depends")),
        blocks.Heading(text("initialisation.input_title"), level="subsection"),
        _steps(narrator, init.input_steps),
        blocks.Paragraph(text("initialisation.result", variance=tlatex(init.input_steps[-1].rhs), raw={
            "known": text(f"initialisation.known_{init.layers[0].known}") if init.layers[0].known else ""})),
    ]
    for scale in init.activations:
        figures = scale.figures
        out += [
            blocks.Heading(text("initialisation.activation_title", name=display_name(scale.activation)), level="subsection"),
            _steps(narrator, scale.steps, figures=figures),
            blocks.Paragraph(text("initialisation.result", variance=tlatex(scale.variance),
                                  raw={"known": _known(scale, text)})),  # already in the format
        ]
        if scale.method in ("linearisation", "offset"):
            out += _linearisation_notes(scale, init.maps.get(scale.activation.name), text)
        if scale.method == "quadrature":
            out.append(blocks.Paragraph(text("initialisation.quadrature_note")))
    out += _variance_table(init, network_sizes, text)
    if init.path:
        out += _path_blocks(init, text) + _start_blocks(starts, text)
    return out


def _variance_table(init: Initialisation, network_sizes, text: Text) -> list:
    """The variance of every layer's initial weights, as a formula and at this network's sizes."""
    sizes = dict(network_sizes) if isinstance(network_sizes, dict) else {  # size symbol → value, or per layer
        size(LayerRef(l)): n for l, n in enumerate(network_sizes)}
    rows = []
    for layer in init.layers:
        value = layer.variance.xreplace(sizes)
        # a quadrature's constant to 4 digits, as the prose quotes it; the value column from the full one
        shown = layer.variance.xreplace({f: sp.Float(f"{float(f):.4g}") for f in layer.variance.atoms(sp.Float)})
        source = text("initialisation.input_source") if layer.source == "input" else text.plain(prose_name(layer.source))
        weight = str(layer.layer) if layer.weight.kind == "W" else f"{layer.layer} ({text.math(layer.weight.latex())})"
        rows.append((weight, source, text.math(tlatex(shown), display=True), f"{float(value):.4g}",
                     f"{float(sp.sqrt(value)):.4g}"))
    header = tuple(text(f"initialisation.{k}") for k in ("layer", "source", "variance", "value", "std"))
    return [blocks.Paragraph(text("initialisation.table_intro")),
            blocks.Table(header, tuple(rows), ("r", "l", "c", "c", "c"), tall=True)]


def offset_variance(init: Initialisation) -> tuple[list[str], float, int] | None:
    """Where an activation's output at 0 is not 0 (the sigmoid): its names, and the variance of the
    pre-activations the initial weights give the last layer (computed by quadrature), with its layer."""
    offsets = dict(init.offsets)
    shifted = [display_name(scale.activation) for scale in init.activations if "offset" in scale.figures]
    if not init.path or not shifted or init.path[-1][0] not in offsets or init.path[-1][1] <= 1 + 1e-9:
        return None  # the exact forward condition keeps it at 1 (up to rounding)
    last, final = init.path[-1]
    return shifted, final, last


def _in_short(init: Initialisation, text: Text) -> list:
    """Why-first, before the derivation: where an activation's output at 0 is not 0 (the sigmoid),
    what the derived rule keeps and what it costs, with this network's figures computed at the end."""
    shifted = [scale for scale in init.activations if scale.method == "offset"]
    if not shifted or not init.path:
        return []
    names = text.raw("refs.list_separator").join(display_name(scale.activation) for scale in shifted)
    product = float(np.prod([v for _, v in init.errors])) if init.errors else None
    key = "initialisation.in_short_exact" if product is not None else "initialisation.in_short_exact_forward"
    return [blocks.Paragraph(text(key, names=names, layer=init.path[-1][0],
                                  errors="" if product is None else f"{product:.2g}"))]


def _path_blocks(init: Initialisation, text: Text) -> list:
    """What the derived variances do to this network, computed at its sizes: Var(z) layer by layer,
    the part of it the dropped constant g(0)² makes, the factor by which the errors' variance changes
    on the way back, and what the derivation therefore keeps and what it does not."""
    offsets, errors = dict(init.offsets), dict(init.errors)
    header = [text("initialisation.layer"), text("initialisation.path_variance")]
    header += [text("initialisation.path_offset")] if offsets else []
    header += [text("initialisation.path_error")] if errors else []
    number = lambda table, l: f"{table[l]:.4g}" if l in table else "—"  # noqa: E731  (a dash: does not apply)
    rows = tuple((str(l), f"{v:.4g}", *((number(offsets, l),) if offsets else ()), *((number(errors, l),) if errors else ()))
                 for l, v in init.path)
    intro = [text("initialisation.path")]
    exact = any(scale.method == "offset" for scale in init.activations)  # g(0)² counted, not dropped
    intro += [text("initialisation.path_offset_intro_exact" if exact else "initialisation.path_offset_intro")] if offsets else []
    intro += [text("initialisation.path_error_intro")] if errors else []
    firsts, lasts = init.path[0][0], init.path[-1][0]
    intro += [text("initialisation.path_dash_input")] if offsets and firsts not in offsets else []
    intro += [text("initialisation.path_dash_last")] if errors and lasts not in errors else []
    out = [blocks.Paragraph(text.raw("language.sentence_separator").join(intro)),
           blocks.Table(tuple(header), rows, ("r",) * len(header))]
    last, final = init.path[-1]
    kept = all(abs(v - 1) < 1e-9 for _, v in init.path)
    if kept:
        verdict = text("initialisation.path_kept")
    elif last in offsets and not exact:
        verdict = text("initialisation.path_moves", last=f"{final:.4g}", raw={"why": text(
            "initialisation.why_offset", offset=f"{offsets[last]:.4g}", rest=f"{final - offsets[last]:.4g}")})
    else:
        verdict = text("initialisation.path_moves", last=f"{final:.4g}", raw={"why": text("initialisation.why_slope")})
    sentences = [verdict]
    if errors:
        product = float(np.prod(list(errors.values())))
        trend = "kept" if abs(product - 1) < 1e-9 else ("shrink" if product < 1 else "grow")
        sentences.append(text(f"initialisation.errors_{trend}", product=f"{product:.4g}", last=last))
    out.append(blocks.Paragraph(text.raw("language.sentence_separator").join(sentences)))
    if any(scale.method == "linearisation" for scale in init.activations) and not kept:
        # what the derivation keeps exactly: a conclusion about the derivation, printed with it
        out.append(blocks.Paragraph(text("initialisation.keeps")))
    return out


def _start_blocks(starts, text: Text) -> list:
    """Is the derived start a good one: its saturated share and the errors' loss, against the usual rule's."""
    if starts is None:
        return []
    return [blocks.Paragraph(text("initialisation.start_exact", **start_figures(starts), raw={
        "flat": text("initialisation.start_flat_mse" if starts.squared_error else "initialisation.start_flat_ce")}))]


def start_figures(starts) -> dict:
    """The numbers of the comparison of the two starts, as the documents print them."""
    percent = lambda share: f"{100 * share:.3g}"  # noqa: E731
    last, variance = starts.default.variances[-1]
    return {"edge": f"{starts.edge:.3g}", "threshold": f"{starts.threshold:.2g}", "last": last,
            "variance": f"{variance:.4g}", "share": percent(starts.default.flat_share),
            "errors": f"{starts.default.errors:.2g}", "usual_variance": f"{starts.usual.variances[-1][1]:.4g}",
            "usual_share": percent(starts.usual.flat_share), "usual_errors": f"{starts.usual.errors:.2g}",
            "usual_gain": starts.usual_gain, "activation": display_name(starts.activation)}


def _linearisation_notes(scale, found, text: Text) -> list:
    """What the linearisation leaves out, computed: the whole second moment E[g(z)²] (with g(0)²) at
    σ_z = 1, and where the variance goes through many such layers (the fixed points of its map)."""
    figures = scale.figures
    out = [blocks.Paragraph(text("initialisation.linear_note", **figures))]
    if found is None:
        return out
    if scale.method == "offset":
        out.append(blocks.Paragraph(text("initialisation.offset_note_exact", **(figures | {"convention": tlatex(scale.convention)}))))
    gain = f"{float(found.gain):.4g}" if scale.method == "offset" else tlatex(found.gain)  # a quadrature's number
    points = text.raw("refs.list_separator").join(f"{v:.4g}" for v in found.fixed_points)
    slopes = text.raw("refs.list_separator").join(f"{v:.2g}" for v in found.slopes)
    kind = "settles_unit" if scale.method == "offset" and found.kind == "settles" else found.kind
    out.append(blocks.Paragraph(text(f"initialisation.map_{kind}", gain=gain, points=points, slopes=slopes,
                                     low=f"{found.grid[0]:g}", high=f"{found.grid[1]:g}", count=found.grid[2])))
    return out


def verification_paragraphs(report: Report, text: Text) -> list[str]:
    """The paragraphs of the verification section for the checks of `verify_training`."""
    out = []
    names = {c.name for c in report.checks}
    if "optimizer_code" in names:
        f = report.check("optimizer_code").figures
        out.append(text("verification_training.optimizer", optimizer_section=text.defaults.get("optimizer", ""), **f))
    if "initial_weights" in names:
        f = report.check("initial_weights").figures
        out.append(text("verification_training.initialisation", **f))
    if "training_loop" in names:
        f = report.check("training_loop").figures
        key = "training_diverged" if f.get("diverged") else "training_classification" if f["classification"] else "training"
        out.append(text(f"verification_training.{key}", **f))
    return out


def _json_steps(steps) -> list[dict]:
    return [{"rule": s.rule, "lhs": {"latex": tlatex(s.lhs), "sympy": sympy_text(s.lhs)},
             "rhs": {"latex": tlatex(s.rhs), "sympy": sympy_text(s.rhs)}} for s in steps]


def training_json(training: Training, init: Initialisation) -> dict:
    """The training part of derivation.json: the same steps as the documents, LaTeX and srepr."""
    opt = training.optimizer
    return {
        "notes": "Each 'sympy' field is sympy.srepr of the expression; sympy.sympify(text, locals=...) rebuilds it "
                 "with Expectation and Variance from derive.notation as locals.",
        "update_rule": _json_steps(training.update_steps),
        "minibatch": _json_steps(training.minibatch_steps),
        "optimizer": {
            "name": opt.name,
            "torch": opt.torch_class,
            "torch_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in opt.torch_kwargs(training.values).items()},
            "equations": _json_steps(training.equations),
            "derived": {fact.key: {"steps": _json_steps(fact.steps), "figures": _figures(fact.figures)}
                        for fact in training.facts},
        },
        "initialisation": {
            "forward": _json_steps(init.forward),
            "backward": _json_steps(init.backward),
            "conditions": _json_steps(init.conditions),
            "input": _json_steps(init.input_steps),
            "activations": {
                s.activation.name: {"method": s.method, "variance": sympy_text(s.variance), "known": s.known,
                                    "gain": None if s.gain is None else sympy_text(s.gain), "steps": _json_steps(s.steps)}
                for s in init.activations
            },
            "layers": [{"layer": l.layer, "source": l.source, "variance": sympy_text(l.variance),
                        "variance_latex": tlatex(l.variance), "known": l.known} for l in init.layers],
            "symbols": {"n_in": str(N_IN), "n_out": str(N_OUT)},
        },
    }


__all__ = ["initialisation_blocks", "optimizer_blocks", "training_json", "update_blocks",
           "verification_paragraphs", "tlatex"]
