"""The document of a network that is not a chain of dense layers (`derive net`): its graph, each
node's forward rule, the backward pass node by node (where paths meet, their sum), the gradient of
every parameter, and the loss, activation, training, code and verification sections it shares with
the MLP document (`present`). Built from the same blocks (`derive.document`) for every format.

Nothing here names a layer kind: a kind's words come from the message catalog's `[kind]` table, or
from the kind's own `name` when the catalog has none (a kind added outside the package).
"""

from __future__ import annotations

import sympy as sp

from derive import __version__
from derive import document as blocks
from derive.backprop import Result
from derive.codegen import CodePlan
from derive.derivation import Derivation
from derive.layers import Node
from derive.notation import BATCH_SIZE, LayerRef, Q, Quantity
from derive.ops import Einsum
from derive.lesson import Lesson, study
from derive.narrate import Narrator
from derive.present import (
    PICTURE_FILE,
    Refs,
    Text,
    _activations,
    _aligned,
    _code,
    _loss,
    _loss_title,
    _steps,
    _verification,
    verification_blocks,
    assemble_document,
    metadata,
    optimizer_notation,
    picture_loss,
    prose,
    result_equation,
    section_heads,
    section_keys,
    section_numbers,
)
from derive.present_functions import display_name, penalty_notation
from derive import present_lesson as lesson_blocks
from derive.present_notation import notation_blocks, notation_map_blocks
from derive.lesson.graph_bound import error_bound
from derive.lesson.practice import shrunk_sizes
from derive.present_practice import check_box_blocks
from derive.printing import latex, words
from derive.verify import Report

# as the MLP lesson: why, the symbols (before the picture uses them), the picture, the derivations, their
# results boxed once, what they say, the algorithm beside its code, the example and the cost; then the
# reference part
SECTIONS = ("learn", "notation", "network", "forward", "loss", "activations", "method", "backward", "parameters",
            "summary", "meaning", "loss_choice", "minibatch", "algorithm", "example", "cost", "update_rule")


def _layers(derivation: Derivation) -> dict[int, list[Node]]:
    out: dict[int, list[Node]] = {}
    for node in derivation.model.network.layers:
        out.setdefault(node.layer.number, []).append(node)
    return out


def _layer_words(text: Text, nodes: list[Node]) -> str:
    """'dense, tanh' for a dense node followed by its activation; a kind's word otherwise (raw text)."""
    words = []
    for node in nodes:
        activation = getattr(node.kind, "activation", None)
        kind = text.catalog.get("kind", {}).get(node.kind.name, node.kind.name.replace("_", " "))
        words.append(kind if activation is None else display_name(activation))
    return ", ".join(words)


def _layer_text(text: Text, nodes: list[Node]) -> str:
    return text.plain(_layer_words(text, nodes))


def _network(derivation: Derivation, text: Text, picture: blocks.Picture, lesson: Lesson, refs: Refs) -> list:
    network = derivation.model.network
    layers = _layers(derivation)
    rows = [("0", str(network.sizes[0]), text("network.input"), "", text.math("x"))]
    for number, nodes in layers.items():
        reads = ", ".join(text.math(q.latex()) for q in _reads(nodes))
        computes = ", ".join(text.math(result_equation(derivation.sample.results[n.output])["latex"]) for n in nodes)
        rows.append((str(number), str(network.sizes[number]), _layer_text(text, nodes), reads, computes))
    header = (text("network.layer"), text("network.units"), text("graph.kind"), text("graph.reads"),
              text("graph.computes"))
    count = len(layers)
    return [
        blocks.Paragraph(text("graph.network_intro", count=count, plural="s" if count != 1 else "")),
        blocks.Table(header, tuple(rows), ("r", "r", "l", "l", "l")),
        blocks.Paragraph(text("graph.sizes_note")),
        picture,
        blocks.Paragraph(text("graph.passes")),
    ]


def _reads(nodes: list[Node]) -> list[Quantity]:
    """What a layer reads from outside itself."""
    own = {n.output for n in nodes}
    return [q for n in nodes for q in n.inputs if q not in own]


def network_picture(derivation: Derivation, text: Text) -> blocks.Picture:
    from derive import pictures

    network = derivation.model.network
    words = {key: text.raw(f"picture.{key}") for key in ("input", "layer", "units")}
    words |= {"graph_forward": text.raw("graph.forward_word"), "graph_backward": text.raw("graph.backward_word")}
    layers = [{"layer": 0, "label": pictures.Label(f"${Q('x').latex()}$", Q("x").text()), "text": "",
               "units": network.sizes[0], "reads": []}]
    for number, nodes in _layers(derivation).items():
        out = nodes[-1].output
        layers.append({"layer": number, "label": pictures.Label(f"${out.latex()}$", out.text()),
                       "text": _layer_words(text, nodes),
                       "units": network.sizes[number], "reads": [q.layer.number for q in _reads(nodes)]})
    layout = pictures.graph_layout(layers, picture_loss(derivation.model, text), words)
    alt = text.raw("graph.picture_alt")
    return blocks.Picture(caption=text("graph.picture_caption"), alt=alt, file=PICTURE_FILE,
                          svg=pictures.svg(layout, alt) if text.fmt != "tex" else None,
                          tikz=pictures.tikz(layout) if text.fmt == "tex" else None, label="fig:network")


def _notation_extra(derivation: Derivation, text: Text) -> list[tuple[str, str]]:
    """Rows only a network of other kinds needs: its outputs and parameters, named ∂C/∂a, einsum."""
    network = derivation.model.network
    l = LayerRef.symbolic()
    rows = []
    for kind in dict.fromkeys(p.kind for node in network.layers for p in node.parameters):
        if kind not in ("W", "b"):
            rows.append((Q(kind, l).latex(), text("graph.parameter", kind=text.catalog.get("kind", {}).get(kind, kind))))
    if any(network.named_gradient(q) and q.kind == "a" for q in network.producers):
        rows.append((rf"\partial C / \partial {Q('a', l).latex()}", text("graph.gradient")))
    for node in network.layers:  # the quantities and constants of normalisation and dropout steps
        for tex, key, values in node.kind.notation_rows(node):
            row = (tex, text(key, **values))
            if row not in rows:
                rows.append(row)
    if any(r.matrix_rhs is not None and r.matrix_rhs.has(Einsum) for r in derivation.batch.results.values()):
        rows.append((r"\operatorname{einsum}", text("graph.einsum")))
    from derive.present_conv import conv_notation

    windows = conv_notation(derivation, text)  # with windows, vec is one of the convolution's rows
    taken = {symbol for symbol, _ in windows}
    return [row for row in rows if row[0] not in taken] + windows


def _forward(derivation: Derivation, text: Text) -> list:
    """Every node's rule entry by entry, as vectors, and for a minibatch: three displays."""
    sample = [derivation.sample.results[n.output] for n in derivation.model.network.layers]
    batch = [derivation.batch.results[n.output] for n in derivation.model.network.layers]
    return [
        blocks.Paragraph(text("graph.forward_intro")),
        blocks.Paragraph(text("graph.per_entry")),
        _aligned([result_equation(r, matrix=False) for r in sample]),
        blocks.Paragraph(text("graph.per_vector")),
        _aligned([result_equation(r) for r in sample]),
        blocks.Paragraph(text("graph.per_batch")),
        _aligned([result_equation(r) for r in batch]),
        *_attention_pictures(derivation, text),
    ]


def _attention_pictures(derivation: Derivation, text: Text) -> list:
    """The score matrix of the first attention layer, drawn for its own number of tokens."""
    from derive.attention_picture import attention_picture
    from derive.layers.attention import Weights
    from derive.windowsizes import size_values

    network = derivation.model.network
    node = next((n for n in network.layers if isinstance(n.kind, Weights)), None)
    if node is None:
        return []
    tokens = size_values(network)[node.out_axes[1].size]
    return [attention_picture(int(tokens), node.kind.causal, node.layer.number, text)]


def _one_route(derivation: Derivation) -> bool:
    """Every error reaches δ⁽¹⁾ through the same layers: no output is read twice (a skip connection, or
    attention's queries, keys and values of one input), and layer 1 has a pre-activation error."""
    network = derivation.model.network
    return Q("delta", 1) in derivation.sample.results and all(len(uses) == 1 for uses in network.consumers.values())


def _meaning(lesson: Lesson, derivation: Derivation, text: Text, refs: Refs) -> list:
    """What the equations say, as in the lesson, with this network's bound on δ⁽¹⁾ after the slopes'
    table where every node on the way back states its gain (paths that meet add their bounds)."""
    out = lesson_blocks.meaning_blocks(lesson, derivation, text, refs, one_route=_one_route(derivation),
                                       skip_connections=_skips(derivation))
    bound = error_bound(derivation, lesson.slopes)
    if bound is None:
        return out
    largest = lambda layer: rf"\max_j \lvert \delta^{{({layer})}}_j \rvert"  # noqa: E731
    factor = sp.latex(bound.factor, symbol_names=bound.names)
    factor = factor if bound.factor.is_Atom or bound.factor.is_Mul else rf"\left({factor}\right)"
    return out[:2] + [blocks.Paragraph(text("graph_meaning.bound")),
                      blocks.Equation(rf"{largest(1)} \le {factor} \, {largest(bound.output)}"),
                      *([blocks.Paragraph(text("graph_meaning.bound_paths"))] if _skips(derivation) else [])] + out[2:]


def _skips(derivation: Derivation) -> bool:
    """A layer reads an output from before the layer just before it: a skip connection (attention, which
    reads one output three times, has none)."""
    return any(q.layer.number < number - 1 for number, nodes in _layers(derivation).items() for q in _reads(nodes))


def _is_parameter_gradient(key: Quantity) -> bool:
    return key.is_gradient and Quantity(key.kind.removeprefix("grad_"), key.layer).is_parameter


def _named_errors(derivation: Derivation) -> list[Quantity]:
    skip = derivation.model.network.output.gradient
    return [key for key in derivation.sample.steps if key != skip and not _is_parameter_gradient(key)]


def _parameter_gradients(derivation: Derivation) -> list[Quantity]:
    return [key for key in derivation.sample.steps if _is_parameter_gradient(key)]


def _title(result: Result) -> str:
    return latex(result.matrix_lhs, matrix=True)


def _evaluation_mode(derivation: Derivation, text: Text) -> list:
    """How evaluation mode normalises: per unit over the m samples after a dense layer, per channel over
    m·h·w values after a convolution (both paragraphs when a network has both)."""
    from derive.layers.normalise import Centre

    nodes = [n for n in derivation.model.network.layers if isinstance(n.kind, Centre) and n.kind.over_samples]
    out = []
    if any(len(n.in_axes[0]) == 1 for n in nodes):
        out.append(blocks.Paragraph(text("verification_norm.evaluation_mode")))
    channel = next((n for n in nodes if len(n.in_axes[0]) > 1), None)
    if channel is not None:
        count = latex(sp.Mul(BATCH_SIZE, *[axis.size for axis in channel.in_axes[0][1:]]))
        out.append(blocks.Paragraph(text("verification_norm.evaluation_mode_channel", count=count)))
    return out


def _backward(derivation: Derivation, text: Text, refs: Refs, narrator: Narrator) -> list:
    sample = derivation.sample
    upstream = lambda step: refs.above() if step.rule == "substitute_upstream" else ("", "")  # noqa: E731
    out = [
        blocks.Paragraph(text("graph.backward_intro")),
        *([blocks.Paragraph(text("verification_norm.coupled_intro"))] if derivation.model.network.couples_samples else []),
        *_evaluation_mode(derivation, text),
        _steps(narrator, sample.steps[derivation.model.network.output.gradient], intro=text("graph.output_gradient")),
    ]
    explained_paths = False
    for key in _named_errors(derivation):
        steps = sample.steps[key]
        result = sample.results[key]
        out.append(blocks.Heading(text.math(_title(result))))
        out.append(_steps(narrator, steps, ref=upstream))
        if any(s.rule == "chain_rule_paths" for s in steps) and not explained_paths:
            out.append(blocks.Paragraph(text("graph.paths_note")))
            explained_paths = True
        out.append(blocks.Equation(result_equation(result)["latex"], boxed=True))
    return out


def _parameters(derivation: Derivation, text: Text, narrator: Narrator) -> list:
    sample = derivation.sample
    out = [blocks.Paragraph(text("graph.parameters_intro"))]
    for key in _parameter_gradients(derivation):
        result = sample.results[key]
        out += [blocks.Heading(text.math(_title(result))), _steps(narrator, sample.steps[key]),
                blocks.Equation(result_equation(result)["latex"], boxed=True)]
    return out


def _minibatch(derivation: Derivation, text: Text) -> list:
    batch = derivation.batch.results
    return [
        blocks.Paragraph(text("graph.minibatch_intro")),
        blocks.Paragraph(text("graph.minibatch_errors")),
        _aligned([result_equation(batch[k]) for k in _named_errors(derivation)]),
        blocks.Paragraph(text("graph.minibatch_parameters")),
        _aligned([result_equation(batch[k]) for k in _parameter_gradients(derivation)]),
    ]


def _update_rule(derivation: Derivation, text: Text, training: tuple | None, narrator: Narrator) -> list:
    out = [blocks.Paragraph(text("update.intro"))]
    if training is not None:
        from derive.present_training import update_blocks

        out += update_blocks(training[0], text, narrator)
    steps = [step for node in derivation.model.network.layers if node.parameters
             for step in derivation.updates[node.layer.tag()]]
    return out + [_steps(narrator, steps, intro=text("graph.update_intro"))]


def _learn(derivation: Derivation, text: Text, refs: Refs, lesson: Lesson) -> list:
    keys = _named_errors(derivation) + _parameter_gradients(derivation)
    rows = [(None, result_equation(derivation.sample.results[k])) for k in keys]
    meanings = [text("graph.learn_errors", raw={"where": refs.section("backward")}),
                text("graph.learn_gradients", raw={"where": refs.section("parameters")})]
    return lesson_blocks.learn_blocks(text, rows, meanings, lesson, table="graph", goals=False)


def _check_box(lesson: Lesson, derivation: Derivation, text: Text) -> list:
    """The reader's gradient check: at the worked example's point, or, where the document prints no
    example (images, tokens), at the same kind of point on a smaller copy of the network, whose sizes
    it names."""
    if lesson.check is None:
        return []
    if lesson.example is not None:
        return check_box_blocks(lesson.example, derivation, text, keys="graph_check", checks=lesson.check)
    separator = text.raw("refs.list_separator")
    shape = lambda size: str(size) if not isinstance(size, tuple) else f"({', '.join(map(str, size))})"  # noqa: E731
    sizes = separator.join(shape(n) for n in shrunk_sizes(derivation.model.network, lesson.point.sizes))
    own = separator.join(shape(n) for n in derivation.model.sizes)
    return check_box_blocks(lesson.point, derivation, text, keys="graph_check", checks=lesson.check,
                            intro="check_intro_copy", sizes=sizes, own=own)


def _verification_blocks(report: Report, text: Text, penalty: bool, box: list) -> list:
    """Appendix B: the reader's own check of one gradient (`box`, when the worked example has one), then
    the checks the document ran."""
    items = _verification(report, text, penalty)
    per_node = report.check("symbolic").figures.get("per_node")
    if per_node:
        from derive.notation import quantity_of
        from derive.present import _number

        symbols = {label: quantity_of(label).latex() for label in per_node}
        text.math_log.extend(symbols.values())  # uses of these symbols, for the notation table
        # Markdown-lite throughout, converted once below (a formula already converted would be escaped)
        figures = ", ".join(f"${symbols[label]}$: {_number(bound)}" for label, bound in per_node.items())
        items.insert(1, text("graph.per_node", raw={"figures": prose(figures, text.fmt) if text.fmt != "md" else figures}))
    return box + verification_blocks(items, text)


def build_graph_document(
    derivation: Derivation, report: Report, plan: CodePlan, *, command: str, fmt: str, lang: str = "en",
    training: tuple | None = None, lesson: Lesson | None = None,
) -> blocks.Document:
    """The document of any network, in one format."""
    lesson = lesson if lesson is not None else study(derivation)
    model = derivation.model
    from derive.present_conv import convolution_blocks, has_windows

    core = SECTIONS if not has_windows(derivation) else \
        SECTIONS[:SECTIONS.index("parameters") + 1] + ("convolution",) + SECTIONS[SECTIONS.index("parameters") + 1:]
    keys = section_keys(core, training, lesson)
    numbers = section_numbers(keys)
    text = Text(lang, fmt, **numbers)
    heads = section_heads(keys, text, {"learn": "section.want", "summary": "section.summary_graph"})
    refs = Refs(text, heads)
    narrator = Narrator(text)
    content = {
        "learn": lambda: [*lesson_blocks.motivation_blocks(lesson, text, refs),
                          *lesson_blocks.goal_blocks(text, lesson, ahead=True, derive="graph")],
        "summary": lambda: _learn(derivation, text, refs, lesson),
        "network": lambda: _network(derivation, text, network_picture(derivation, text), lesson, refs),
        "forward": lambda: _forward(derivation, text),
        "loss": lambda: _loss(derivation, text),
        "activations": lambda: _activations(derivation, text, numbers["backward"]),
        "method": lambda: lesson_blocks.method_blocks(text, narrator, paths=True),
        "backward": lambda: _backward(derivation, text, refs, narrator),
        "loss_choice": lambda: lesson_blocks.loss_choice_blocks(lesson, derivation, text, narrator, refs),
        "parameters": lambda: _parameters(derivation, text, narrator),
        "convolution": lambda: convolution_blocks(derivation, text),
        "meaning": lambda: _meaning(lesson, derivation, text, refs),
        "minibatch": lambda: _minibatch(derivation, text),
        "algorithm": lambda: lesson_blocks.algorithm_blocks(derivation, plan, text, refs),
        "example": lambda: lesson_blocks.example_blocks(lesson, derivation, text, refs),
        "cost": lambda: lesson_blocks.cost_blocks(lesson, text),
        "update_rule": lambda: _update_rule(derivation, text, training, narrator),
        "code": lambda: _code(plan, derivation, text),
        "notations": lambda: notation_map_blocks(text),
        "verification": lambda: _verification_blocks(report, text, model.penalty is not None,
                                                     _check_box(lesson, derivation, text)),
    }
    if training is not None:
        from derive.present_training import initialisation_blocks, optimizer_blocks

        content["optimizer"] = lambda: optimizer_blocks(training[0], model.spec, text, narrator)
        from derive.windowsizes import size_values

        content["initialisation"] = lambda: initialisation_blocks(training[1], size_values(model.network), text, narrator)
    vector = any(a.is_vector for a in model.activations)
    notation = lambda used: notation_blocks(  # noqa: E731
        text, used, _notation_extra(derivation, text) + penalty_notation(derivation, text), vector,
        {"optimizer": optimizer_notation(training, text)})
    layers = " → ".join(_layer_text(text, nodes) for nodes in _layers(derivation).values())
    file = str(model.spec.path).replace("\\", "/").rsplit("/", 1)[-1]
    # a network that couples its samples: its minibatch errors are of the summed loss m C̄ (printing.py)
    summed = {"summed_loss": "1"} if model.network.couples_samples else {}
    with words(**{"if": text.raw("formula.if"), "otherwise": text.raw("formula.otherwise"),
                   "times": text.raw("formula.times")}, **summed):
        return assemble_document(
            text, keys, heads, content, notation,
            title=text("graph.title", file=file),
            subtitle=text("graph.subtitle", layers=layers, loss=_loss_title(model, text)),
            generated=text("doc.generated", version=__version__, command=command,
                           verification_section=numbers["verification"]),
            metadata=metadata(text, text.raw("graph.title").replace("{file}", file)),
        )
