"""The lesson's one training section: the update, the step `model.py` takes, and the start.

A first-time student needs three facts to train the network whose gradient the lesson derived: the
update with the minibatch gradient, the learning rate the code uses, and the initial variances with
what they do to this network, with the short trade-off of a sigmoid's start in numbers. `--detail
full` keeps the rest (the proximal model, every option of the optimizer, the derivation of the
variances), so nothing here derives: it arranges results that `training`, `initialisation` and
`lesson.saturation` computed.
"""

from __future__ import annotations

from derive import document as blocks
from derive.catalog.optimizers import format_value
from derive.initialisation import Initialisation
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
    out += _variance_table(init, model.sizes, text)
    out += _rules_sentence(init, text)
    out.append(blocks.Paragraph(_effect(init, model, text)))
    return out


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


def _effect(init: Initialisation, model, text: Text) -> str:
    """What the start does to this network, computed: the variance of the last pre-activations and,
    for a saturating output under squared error or binary cross entropy, the share that starts flat,
    and what the errors pay for it; `full` weighs it against the usual rule."""
    from derive.lesson.saturation import compare_starts
    from derive.present_training import start_figures

    more = text("training_lesson.more")
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
