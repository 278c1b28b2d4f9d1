"""The document of a network that is not a chain of dense layers (`derive net`): its graph, each
node's forward rule, the backward pass node by node (where paths meet, their sum), the gradient of
every parameter, and the loss, activation, training, code and verification sections it shares with
the MLP document (`present`). Built from the same blocks (`derive.document`) for every format.

Nothing here names a layer kind: a kind's words come from the message catalog's `[kind]` table, or
from the kind's own `name` when the catalog has none (a kind added outside the package).
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from derive import __version__
from derive import document as blocks
from derive.backprop import COST_KEY, Result
from derive.codegen import CodePlan
from derive.derivation import Derivation
from derive.layers import Node
from derive.notation import BATCH_COST, LayerRef, Q, Quantity
from derive.ops import Einsum
from derive.present import (
    PICTURE_FILE,
    Refs,
    TEX_SECTION_LABELS,
    Text,
    _activations,
    _aligned,
    _code,
    _loss,
    _steps,
    _verification,
    anchor,
    equation,
    prose,
    result_equation,
)
from derive.present_functions import display_name, penalty_notation
from derive.printing import latex
from derive.verify import Report

SECTIONS = ("network", "notation", "forward", "loss", "activations", "backward", "parameters", "minibatch",
            "update_rule", "summary", "code", "verification")
TRAINING_SECTIONS = ("optimizer", "initialisation")


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


def _network(derivation: Derivation, text: Text, picture: blocks.Picture) -> list:
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
    layout = pictures.graph_layout(layers, derivation.model.loss.name, words)
    alt = text.raw("graph.picture_alt")
    return blocks.Picture(caption=text("graph.picture_caption"), alt=alt, file=PICTURE_FILE,
                          svg=pictures.svg(layout, alt) if text.fmt != "tex" else None,
                          tikz=pictures.tikz(layout) if text.fmt == "tex" else None, label="fig:network")


def _notation(derivation: Derivation, text: Text) -> list:
    network = derivation.model.network
    l = LayerRef.symbolic()
    rows = [(text.math("x"), text("notation.x")), (text.math("y"), text("notation.y"))]
    kinds = list(dict.fromkeys(node.output.kind for node in network.layers))
    for kind in kinds:
        rows.append((text.math(Q(kind, l).latex()), text("notation.z") if kind == "z" else text("graph.output")))
    for kind in dict.fromkeys(p.kind for node in network.layers for p in node.parameters):
        meaning = text("notation." + kind) if kind in ("W", "b") else text(
            "graph.parameter", kind=text.catalog.get("kind", {}).get(kind, kind))
        rows.append((text.math(Q(kind, l).latex()), meaning))
    rows += [(text.math("C"), text("notation.C")), (text.math(latex(BATCH_COST)), text("notation.Cbar"))]
    if "z" in kinds:
        rows.append((text.math(Q("delta", l).latex()), text("notation.delta")))
    if any(network.named_gradient(q) and q.kind == "a" for q in network.producers):
        rows.append((text.math(rf"\partial C / \partial {Q('a', l).latex()}"), text("graph.gradient")))
    rows += [(text.math(r"\delta_{iq}"), text("notation.kronecker")), (text.math(r"\odot"), text("notation.hadamard")),
             (text.math(r"\mathbf{1}"), text("notation.ones"))]
    if any(r.matrix_rhs is not None and r.matrix_rhs.has(Einsum) for r in derivation.batch.results.values()):
        rows.append((text.math(r"\operatorname{einsum}"), text("graph.einsum")))
    rows.append((text.math(r"\eta"), text("notation.eta")))
    rows += [(text.math(symbol), meaning) for symbol, meaning in penalty_notation(derivation, text)]
    return [
        blocks.Paragraph(text("graph.notation_intro")),
        blocks.Table((text("notation.symbol"), text("notation.meaning")), tuple(rows), ("l", r"p{0.7\textwidth}"),
                     long=True),
    ]


def _forward(derivation: Derivation, text: Text) -> list:
    out = [blocks.Paragraph(text("graph.forward_intro"))]
    for number, nodes in _layers(derivation).items():
        sample = [derivation.sample.results[n.output] for n in nodes]
        batch = [derivation.batch.results[n.output] for n in nodes]
        out += [
            blocks.Heading(text("graph.layer_heading", layer=number), text=text("graph.per_sample")),
            _aligned([result_equation(r, matrix=False) for r in sample] + [result_equation(r) for r in sample]),
            blocks.Paragraph(text("graph.per_batch")),
            _aligned([result_equation(r) for r in batch]),
        ]
    return out


def _is_parameter_gradient(key: Quantity) -> bool:
    return key.is_gradient and Quantity(key.kind.removeprefix("grad_"), key.layer).is_parameter


def _named_errors(derivation: Derivation) -> list[Quantity]:
    skip = derivation.model.network.output.gradient
    return [key for key in derivation.sample.steps if key != skip and not _is_parameter_gradient(key)]


def _parameter_gradients(derivation: Derivation) -> list[Quantity]:
    return [key for key in derivation.sample.steps if _is_parameter_gradient(key)]


def _title(result: Result) -> str:
    return latex(result.matrix_lhs, matrix=True)


def _backward(derivation: Derivation, text: Text, refs: Refs) -> list:
    sample = derivation.sample
    upstream = lambda step: refs.section("backward") if step.rule == "substitute_upstream" else ""  # noqa: E731
    out = [
        blocks.Paragraph(text("graph.backward_intro")),
        blocks.Derivation(_steps(sample.steps[derivation.model.network.output.gradient], text),
                          intro=text("graph.output_gradient")),
    ]
    for key in _named_errors(derivation):
        steps = sample.steps[key]
        result = sample.results[key]
        out.append(blocks.Heading(text.math(_title(result))))
        out.append(blocks.Derivation(_steps(steps, text, ref=upstream)))
        if any(s.rule == "chain_rule_paths" for s in steps):
            out.append(blocks.Paragraph(text("graph.paths_note")))
        out.append(blocks.Equation(result_equation(result)["latex"], boxed=True))
    return out


def _parameters(derivation: Derivation, text: Text) -> list:
    sample = derivation.sample
    out = [blocks.Paragraph(text("graph.parameters_intro"))]
    for key in _parameter_gradients(derivation):
        result = sample.results[key]
        out += [blocks.Heading(text.math(_title(result))), blocks.Derivation(_steps(sample.steps[key], text)),
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


def _update_rule(derivation: Derivation, text: Text, training: tuple | None) -> list:
    out = [blocks.Paragraph(text("update.intro"))]
    if training is not None:
        from derive.present_training import update_blocks

        out += update_blocks(training[0], text)
    out.append(blocks.Paragraph(text("graph.update_intro")))
    for node in derivation.model.network.layers:
        if node.parameters:
            out.append(blocks.Derivation(_steps(derivation.updates[node.layer.tag()], text)))
    return out


def _summary(derivation: Derivation, text: Text) -> list:
    out = [blocks.Paragraph(text("graph.summary_intro"))]
    for key, p in (("summary.sample", derivation.sample), ("summary.batch", derivation.batch)):
        keys = _named_errors(derivation) + _parameter_gradients(derivation)
        out += [blocks.Heading(text(key)), _aligned([result_equation(p.results[k]) for k in keys], boxed=True)]
    return out


def _verification_blocks(report: Report, text: Text, penalty: bool) -> list:
    items = _verification(report, text, penalty)
    per_node = report.check("symbolic").figures.get("per_node")
    if per_node:
        from derive.notation import quantity_of
        from derive.present import _number

        figures = ", ".join(f"{text.math(quantity_of(label).latex())}: {_number(bound)}" for label, bound in per_node.items())
        items.insert(1, text("graph.per_node", raw={"figures": prose(figures, text.fmt) if text.fmt != "md" else figures}))
    return [blocks.Paragraph(text("verification.intro")), blocks.ItemList(tuple(items))]


def build_graph_document(
    derivation: Derivation, report: Report, plan: CodePlan, *, command: str, fmt: str, lang: str = "en",
    training: tuple | None = None,
) -> blocks.Document:
    """The document of any network, in one format."""
    model = derivation.model
    keys = list(SECTIONS)
    if training is not None:
        after = keys.index("update_rule") + 1
        keys[after:after] = TRAINING_SECTIONS
    numbers = {key: n + 1 for n, key in enumerate(keys)}
    text = Text(lang, fmt, **numbers)
    heads = {}
    for key in keys:
        title = text(f"section.{key}")
        heads[key] = blocks.Section(key, numbers[key], title, anchor(f"{numbers[key]}. {title}"),
                                    "sec:" + TEX_SECTION_LABELS.get(key, key))
    refs = Refs(text, heads)
    content = {
        "network": lambda: _network(derivation, text, network_picture(derivation, text)),
        "notation": lambda: _notation(derivation, text),
        "forward": lambda: _forward(derivation, text),
        "loss": lambda: _loss(derivation, text),
        "activations": lambda: _activations(derivation, text, numbers["backward"]),
        "backward": lambda: _backward(derivation, text, refs),
        "parameters": lambda: _parameters(derivation, text),
        "minibatch": lambda: _minibatch(derivation, text),
        "update_rule": lambda: _update_rule(derivation, text, training),
        "summary": lambda: _summary(derivation, text),
        "code": lambda: _code(plan, derivation, text),
        "verification": lambda: _verification_blocks(report, text, model.penalty is not None),
    }
    if training is not None:
        from derive.present_training import initialisation_blocks, optimizer_blocks

        content["optimizer"] = lambda: optimizer_blocks(training[0], model.spec, text)
        content["initialisation"] = lambda: initialisation_blocks(training[1], model.sizes, text)
    layers = " → ".join(_layer_text(text, nodes) for nodes in _layers(derivation).values())
    loss_title = (text.raw(f"loss_title.{model.loss.name}") if model.loss.name in text.catalog.get("loss_title", {})
                  else model.loss.title) if not model.loss.is_custom else display_name(model.loss)
    file = str(model.spec.path).replace("\\", "/").rsplit("/", 1)[-1]
    return blocks.Document(
        title=text("graph.title", file=file),
        subtitle=text("graph.subtitle", layers=layers, loss=loss_title),
        generated=text("doc.generated", version=__version__, command=command,
                       verification_section=numbers["verification"]),
        contents=text("doc.contents"),
        version=__version__,
        html_lang=text.raw("language.html_lang"),
        tex_preamble=text.raw("language.tex_preamble").strip(),
        sections=tuple(replace(heads[key], blocks=tuple(content[key]())) for key in keys),
    )
