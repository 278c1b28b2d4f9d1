"""The lesson's one training section: the update, the step `model.py` takes, and the start.

A first-time student needs three facts to train the network whose gradient the lesson derived: the
update with the minibatch gradient, the learning rate the code uses, and the initial variances with
what they do to this network, with the short trade-off of a sigmoid's start in numbers. `--detail
full` keeps the rest (the proximal model, every option of the optimizer, the derivation of the
variances in general). Here the variance of a layer is derived in three lines from the condition
Var z = 1 (review 30, defect 3), with E[g(z)²] as `initialisation` computed it; the rest arranges
results that `training`, `initialisation` and `lesson.saturation` computed.
"""

from __future__ import annotations

import sympy as sp

from derive import document as blocks
from derive.catalog.optimizers import format_value
from derive.initialisation import G, N_IN, N_OUT, STD, Initialisation
from derive.notation import Expectation, Z
from derive.present import Text
from derive.present_functions import listed, prose_name
from derive.present_training import _known, _lesson_opening, _short_update, _variance_table


def training_lesson_blocks(update: list, training: tuple, model, text: Text) -> list:
    """The update rule (`update`: its sentence and its display, from the derivation's update steps), the optimizer in a sentence or
    two, the initial variances with why layer 1 differs, and one computed sentence of their effect."""
    from derive.lesson.worked_example import LEARNING_RATE_VALUE

    steps, init = training
    plain = model.spec.optimizer.name == "sgd" and not model.spec.optimizer.overrides
    out = list(update)
    if plain:
        out.append(blocks.Paragraph(text("training_lesson.sgd", lr=format_value(steps.values["lr"]),
                                         example_lr=format_value(float(LEARNING_RATE_VALUE)))))
    else:  # another optimizer: its step with this run's values, as the reference prints it
        out += _lesson_opening(steps, model.spec, text) + _short_update(steps, text)
    out.append(blocks.Paragraph(text("training_lesson.start")))
    derived = _derivation(init, text)
    out += derived
    out += _variance_table(init, model.sizes, text)
    out += [] if derived else _rules_sentence(init, text)  # the derivation names the rules itself
    out.append(blocks.Paragraph(_effect(init, model, text, derived=bool(derived))))
    return out


def _moment(scale) -> sp.Expr | None:
    """E[g(z)²] for z ~ N(0, 1), as `initialisation` computed it (exactly, or by quadrature), where the
    layer's variance is 1 / (n_in E[g(z)²]) — the forward condition at unit variance; else None (a
    linearised rule, such as tanh's, is derived otherwise and left to `--detail full`)."""
    found = [step.rhs for step in scale.steps if step.lhs == Expectation(G(Z) ** 2)
             and not step.rhs.has(sp.Integral, Expectation)]
    if not found:
        return None
    moment = found[-1].xreplace({STD: 1})
    if not moment.is_number or not moment > 0:
        return None
    constant = sp.cancel(scale.variance.xreplace({N_OUT: N_IN}) * N_IN)
    if not constant.is_number or abs(float(constant) * float(moment) - 1) > 1e-12:
        return None
    return moment


def _figure(value: sp.Expr) -> str:
    """An exact value as SymPy prints it (½, 2); a computed one to four significant figures."""
    return sp.latex(value) if value.is_Rational else f"{float(value):.4g}"


def _derivation(init: Initialisation, text: Text) -> list:
    """Where σ_w² comes from, in three lines (review 30, defect 3): with the weights independent, of mean
    0, and the pre-activations before standard normal, Var z = n σ_w² E[g(z)²]; set to 1, σ_w² =
    1/(n E[g(z)²]); then E[g(z)²] of each activation the later layers receive, computed, and the
    constant 1/E[g(z)²] the table prints. Nothing where a layer's rule is not of this form."""
    later = {layer.source for layer in init.layers[1:]}
    scales = [scale for scale in init.activations if scale.activation.name in later]
    if init.layers[0].source != "input" or not scales or len(scales) != len(later):
        return []
    moments = [(scale, _moment(scale)) for scale in scales]
    if any(moment is None for _, moment in moments):
        return []
    values = [text("training_lesson.derive_value", moment=_figure(moment), constant=_figure(1 / moment), raw={
                   "activation": text.plain(prose_name(scale.activation.name)),
                   "how": text("training_lesson.derive_exact" if moment.is_Rational else "training_lesson.derive_numeric"),
                   "name": "" if scale.method == "offset" else _known(scale, text)})  # the offset rule has no other name
              for scale, moment in moments]
    first = init.layers[0].known
    join = text.raw("language.sentence_separator").join
    return [blocks.Paragraph(text("training_lesson.derive")),
            blocks.Equation(r"\operatorname{Var}\bigl(z^{(l)}_j\bigr) = n_{l-1}\, \sigma_w^2\, \mathbb{E}\bigl[g(z)^2\bigr] = 1"
                            r" \quad\Longrightarrow\quad \sigma_w^2 = \frac{1}{n_{l-1}\, \mathbb{E}\bigl[g(z)^2\bigr]}"),
            blocks.Paragraph(join([*values, text("training_lesson.derive_input", raw={
                "name": text(f"initialisation.known_{first}") if first else ""})]))]


def _rules_sentence(init: Initialisation, text: Text) -> list:
    """Which rule each layer uses, and why the rule changes after layer 1: each layer's variance
    depends on what it receives (the standardised input, or an activation's output)."""
    later = [layer.source for layer in init.layers[1:] if layer.source != "input"]
    if init.layers[0].source != "input" or not later:
        return []
    sources = [text.plain(prose_name(source)) for source in dict.fromkeys(later)]
    known = {scale.activation.name: _known(scale, text) for scale in init.activations}
    names = [_bare(n) for n in dict.fromkeys(known.get(source, "") for source in later) if n]
    first = init.layers[0].known
    if first is None or not names:
        return [blocks.Paragraph(text("training_lesson.rules", raw={"sources": listed(sources, text)}))]
    return [blocks.Paragraph(text("training_lesson.rules_named", raw={
        "sources": listed(sources, text), "later": _spaced(listed(names, text)),
        "first": _spaced(_bare(text(f"initialisation.known_{first}")))}))]


def _bare(phrase: str) -> str:
    """A rule's name from the catalog's clause that follows a variance (", LeCun initialisation",
    "，即 LeCun 初始化"), to stand in another sentence."""
    return phrase.lstrip(", ，即")


def _spaced(name: str) -> str:
    """A name put after the word before it: a space before a Latin name, none before a Han one."""
    return name if "\u2e80" <= name[:1] else " " + name


def _effect(init: Initialisation, model, text: Text, derived: bool = False) -> str:
    """What the start does to this network, computed: the variance of the last pre-activations and,
    for a saturating output under squared error or binary cross entropy, the share that starts flat,
    and what the errors pay for it; `full` weighs it against the usual rule."""
    from derive.lesson.saturation import compare_starts
    from derive.present_training import start_figures

    more = text("training_lesson.more_update" if derived else "training_lesson.more")
    if not init.path:
        return more
    last, variance = init.path[-1]
    join = text.raw("language.sentence_separator").join
    starts = compare_starts(model, init)
    if starts is not None:  # two or three plain sentences; `full` weighs the two starts (review 27, item 2)
        (scale,) = [s for s in init.activations if s.activation.name == starts.activation.name]
        offset = scale.figures["offset"]  # g(0), the output the derived variance allows for
        # the lesson states the Gaussian assumption beside the share, so two digits are all it claims
        figures = start_figures(starts) | {"share": f"{100 * starts.default.flat_share:.2g}"}
        return join((text("training_lesson.allows", offset=offset, **figures),
                     text("training_lesson.errors", **figures), text("training_lesson.more_flat")))
    if all(abs(v - 1) < 1e-9 for _, v in init.path):
        return join((text("training_lesson.kept", last=last), more))
    return join((text("training_lesson.moves", last=last, variance=f"{variance:.4g}"), more))


__all__ = ["training_lesson_blocks"]
