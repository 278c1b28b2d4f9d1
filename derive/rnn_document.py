"""The document of a recurrent network: the same blocks and templates as every other document
(`derive.document`), with the sections backpropagation through time needs.

Every formula shown is one the engine derived at a symbolic step (τ, r) and a symbolic number of
steps T; the prose comes from the message catalogs ([rnn] in derive/locale/*.toml). A formula that
no whole-array operation expresses (it reads the next step's error) is shown in its index form, and
the document says that the code computes it one step at a time.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from derive import __version__
from derive import document as blocks
from derive.backprop import COST_KEY, Pass
from derive.narrate import Narrator, sides
from derive.present import Refs, Text, _activations, anchor, optimizer_notation, unbroken_clauses
from derive.present_training import optimizer_blocks
from derive.printing import latex, words
from derive.rnn import RNNModel
from derive.present_notation import used_latex
from derive.rnn_state_jacobian import StateJacobian
from derive.rnn_notation import rnn_notation_blocks
from derive.rnn_picture import picture_block
from derive.timeloop import is_time_size

SECTIONS = ("network", "notation", "forward", "loss", "activations", "backward", "parameters", "jacobian", "optimizer",
            "code", "verification")
STEPS_SYMBOL = sp.Symbol("T", integer=True, positive=True)


def _with_T(expr: sp.Basic) -> sp.Basic:
    """The sizes of the time axes (t₁, t₂, … equal by construction) written as the one length T."""
    return expr.xreplace({s: STEPS_SYMBOL for s in expr.free_symbols if is_time_size(s)})


def _latex(expr: sp.Basic, matrix: bool = False) -> str:
    return latex(_with_T(expr), matrix=matrix)


def _equation(result, matrix: bool = True) -> dict:
    if matrix and result.matrix_rhs is not None:
        left, right = _latex(result.matrix_lhs, True), _latex(result.matrix_rhs, True)
    else:
        left, right = _latex(result.lhs), _latex(result.rhs)
    return {"lhs": left, "rhs": right, "latex": f"{left} = {right}"}


def _aligned(equations: list[dict]) -> blocks.Aligned:
    return blocks.Aligned(tuple(blocks.Row(e["lhs"], e["rhs"]) for e in equations))


def _is_parameter(result) -> bool:
    return isinstance(result.lhs, sp.Derivative) and result.name.startswith("grad_") and result.name != "grad_a"


def _cell(model: RNNModel) -> str:
    """The suffix of the messages that differ by cell ('' for the Elman cell, '_lstm')."""
    return "" if model.spec.cell == "rnn" else "_" + model.spec.cell


def _network(model: RNNModel, text: Text) -> list:
    spec = model.spec
    return [blocks.Paragraph(text("rnn.intro" + _cell(model), layers=spec.layers, hidden=spec.hidden, inputs=spec.inputs,
                                  units=spec.units, act=spec.act, out_act=spec.out_act)),
            blocks.Paragraph(text("rnn.output_" + spec.output)),
            picture_block(model, text),
            blocks.Paragraph(text("rnn.symbolic_step", steps=spec.steps))]


def _forward(model: RNNModel, sample: Pass, text: Text) -> list:
    rows = [_equation(sample.results[n.output], matrix=False) for n in model.network.layers]
    return [blocks.Paragraph(text("rnn.forward_intro")), _aligned(rows),
            blocks.Paragraph(text("rnn.state_zero" + _cell(model)))]


def _loss(model: RNNModel, sample: Pass, text: Text) -> list:
    cost = sample.results[COST_KEY]
    return [blocks.Paragraph(text("rnn.loss_" + model.spec.output)), blocks.Equation(f"{_latex(cost.lhs)} = {_latex(cost.rhs)}")]


def _boxed(result) -> list:
    out = [blocks.Equation(_equation(result, matrix=False)["latex"], boxed=True)]
    if result.matrix_rhs is not None:
        out.append(blocks.Equation(_equation(result)["latex"]))
    return out


def _backward(model: RNNModel, sample: Pass, text: Text, narrator: Narrator, refs: Refs) -> list:
    tex = sides(_latex)
    skip = model.network.output.gradient
    out = [blocks.Paragraph(text("rnn.backward_intro"))]
    explained = False
    for key, steps in sample.steps.items():
        result = sample.results[key]
        if _is_parameter(result) or key == skip:
            continue
        out.append(blocks.Heading(text.math(_latex(result.lhs))))
        out.append(narrator.derivation(steps, tex, ref=_above(text)))
        out += _boxed(result)
        if any(s.rule == "chain_rule_paths" for s in steps) and not explained:
            out.append(blocks.Paragraph(text("rnn.two_paths")))
            out.append(blocks.Paragraph(text("rnn.recursion")))
            explained = True
        if key.kind == "grad_cell":
            out.append(blocks.Paragraph(text("rnn.cell_path")))
        if key.kind == "grad_zr":
            out.append(blocks.Paragraph(text("rnn.reset_after")))
        if result.matrix_rhs is None:
            out.append(blocks.Paragraph(text("rnn.index_form_only", raw={"ref": refs.section("code")})))
    return out


def _above(text: Text):
    """What a substitution of an error derived earlier cites: the formula above, in this section."""
    words = text.raw("rnn.above")
    return lambda step: (words, words) if step.rule == "substitute_upstream" else ("", "")


def _activation_section(model: RNNModel, text: Text, backward: int) -> list:
    """The derivatives of the activations, proved in terms of their outputs (the MLP's section, fed
    the activations of this network)."""
    from types import SimpleNamespace

    from derive.rewrite import activation_derivative

    activations = tuple(dict.fromkeys(node.kind.activation for node in model.network.layers
                                      if getattr(node.kind, "activation", None) is not None))
    once = {}  # one node per activation and layer: an LSTM layer's three sigmoid gates are "layer 1" once
    for node in model.network.layers:
        once.setdefault((getattr(node.kind, "activation", None), node.layer.number), node)
    network = SimpleNamespace(layers=tuple(once.values()))
    stand_in = SimpleNamespace(model=SimpleNamespace(activations=activations, network=network),
                               activation_derivatives=tuple(activation_derivative(a) for a in activations))
    return _activations(stand_in, text, backward)


def _parameters(model: RNNModel, sample: Pass, text: Text, narrator: Narrator) -> list:
    tex = sides(_latex)
    out = [blocks.Paragraph(text("rnn.shared_intro"))]
    for key, steps in sample.steps.items():
        result = sample.results[key]
        if not _is_parameter(result):
            continue
        out += [blocks.Heading(text.math(_latex(result.lhs))), narrator.derivation(steps, tex), *_boxed(result)]
    return out


def _jacobian(jac, text: Text, model: RNNModel) -> list:
    """The one-step Jacobian derived from the rules, the bound over k steps, the numbers of model.py
    (for a gated cell: its self-loop and the products of its gate's values)."""
    if isinstance(jac, StateJacobian):
        return _state_jacobian(jac, text, model)
    rate = jac.gamma * jac.norm
    rows = tuple((str(k), f"{bound:.3g}", next((f"{v:.3g}" for kk, v in jac.measured if kk == k), "")) for k, bound in jac.bounds)
    return [
        blocks.Paragraph(text("rnn.jacobian_intro")),
        blocks.Equation(f"{_latex(jac.lhs)} = {_latex(jac.computed)} = {_latex(jac.rhs)}"),
        blocks.Paragraph(text("rnn.jacobian_bound", gamma=f"{jac.gamma:.3g}")),
        blocks.Paragraph(text("rnn.jacobian_numbers", hidden=model.spec.hidden, norm=f"{jac.norm:.3g}",
                              rate=f"{rate:.3g}")),
        blocks.Table((text("rnn.jacobian_k"), text("rnn.jacobian_bound_column"), text("rnn.jacobian_measured")),
                     rows, "rrr"),
        blocks.Paragraph(text("rnn.jacobian_vanishing" if rate < 1 else "rnn.jacobian_exploding")),
        blocks.Paragraph(text("rnn.clipping")),
    ]


def _state_jacobian(jac: StateJacobian, text: Text, model: RNNModel) -> list:
    """A gated cell: the blocks of the one-step Jacobian of its state, each a sum of diag(u) W terms,
    the bound from the blocks, and the numbers of model.py (the full product beside the self-loop)."""
    cell = _cell(model)
    lines = []  # a block per line, a term per line: the LSTM's ∂h/∂h is wider than the page
    for b in jac.blocks:
        terms = [_latex(u * M) for u, M in b.terms]
        lines += [blocks.Row(_latex(b.lhs), terms[0])] + [blocks.Row("", rf"\quad + {t}", relation="") for t in terms[1:]]
    norms = text.raw("rnn.state_jacobian_separator").join(text.math(rf"\lVert {_latex(base)} \rVert_2 = {v:.3g}") for base, v in jac.norms)
    rows = tuple((str(k), f"{norm:.3g}", f"{bound:.3g}", f"{loop:.3g}") for k, norm, bound, loop in jac.measured)
    k, norm, bound, loop = jac.measured[-1]
    figures = {"k": k, "norm": f"{norm:.3g}", "bound": f"{bound:.3g}", "loop": f"{loop:.3g}",
               "rate": f"{norm ** (1 / k):.3g}", "loop_rate": f"{loop ** (1 / k):.3g}",
               "step_bound": f"{jac.measured[0][2]:.3g}"}
    return [
        blocks.Paragraph(text("rnn.state_jacobian_intro" + cell)),
        blocks.Aligned(tuple(lines)),
        blocks.Paragraph(text("rnn.state_jacobian_form" + cell)),
        blocks.Paragraph(text("rnn.state_jacobian_bound" + cell)),
        blocks.Paragraph(text("rnn.state_jacobian_numbers" + cell, hidden=model.spec.hidden, norms=norms,
                              steps=jac.steps + 1)),
        blocks.Table((text("rnn.jacobian_k"), text("rnn.state_jacobian_measured" + cell),
                      text("rnn.state_jacobian_bound_column"), text("rnn.state_jacobian_loop" + cell)), rows, "rrrr"),
        blocks.Paragraph(text("rnn.state_jacobian_meaning" + cell + ("" if norm < 1 else "_growing"), **figures)),
        blocks.Paragraph(text("rnn.self_loop_meaning" + cell)),
        blocks.Paragraph(text("rnn.clipping")),
    ]


def _code(context: dict, text: Text, model: RNNModel) -> list:
    lines = []
    for block in context["backward"]:
        if block["loop"]:
            lines += ["for t in reversed(range(T)):", "    carry = truncate is None or (t + 1) % truncate != 0"]
        pad = "    " if block["loop"] else ""
        for s in block["statements"]:
            if s["guard"]:
                carry = " and carry" if s["next_step"] else ""
                lines += [f"{pad}if {s['guard']}{carry}:", f"{pad}    {s['target']} {s['op']} {s['value']}"]
            else:
                lines.append(f"{pad}{s['target']} {s['op']} {s['value']}")
    return [blocks.Paragraph(text("rnn.code_intro")), blocks.Code(tuple(lines)),
            blocks.Paragraph(text("rnn.code_layout" + _cell(model))), blocks.Paragraph(text("rnn.truncated"))]


def _verification(checks: list, text: Text) -> list:
    items = []
    for check in checks:
        items.append(text(f"rnn.check_{check.name}", **{k: str(v) for k, v in check.figures.items()}))
    return [blocks.Paragraph(text("rnn.verification_intro")), blocks.ItemList(tuple(items))]


def build_rnn_document(model: RNNModel, sample: Pass, checks: list, code: dict, *, command: str, fmt: str,
                       lang: str, jacobian=None, training=None) -> blocks.Document:
    keys = tuple(k for k in SECTIONS if (k != "jacobian" or jacobian is not None) and (k != "optimizer" or training))
    numbers = {key: n for n, key in enumerate(keys, start=1)}
    # the optimizer's prose cites the gradient of the minibatch cost: here the section of the gradients
    text = Text(lang, fmt, **numbers, **{f"section_{k}": v for k, v in numbers.items()}, minibatch=numbers["parameters"])
    narrator = Narrator(text)
    heads = {key: blocks.Section(key, numbers[key], text(f"rnn.section_{key}"),
                                 anchor(f"{numbers[key]}. {text(f'rnn.section_{key}')}"), f"sec:{key}") for key in keys}
    refs = Refs(text, heads)
    content = {
        "network": lambda: _network(model, text),
        "forward": lambda: _forward(model, sample, text),
        "loss": lambda: _loss(model, sample, text),
        "activations": lambda: _activation_section(model, text, numbers["backward"]),
        "backward": lambda: _backward(model, sample, text, narrator, refs),
        "parameters": lambda: _parameters(model, sample, text, narrator),
        "jacobian": lambda: _jacobian(jacobian, text, model),
        "optimizer": lambda: optimizer_blocks(training, model.spec, text, narrator),
        "code": lambda: _code(code, text, model),
        "verification": lambda: _verification(checks, text),
    }
    with words(**{"if": text.raw("formula.if"), "otherwise": text.raw("formula.otherwise"),
                   "times": text.raw("formula.times")}):
        built, used = {}, {}
        for key in keys:  # in order, each with the LaTeX it uses; the notation last, from what they use
            if key != "notation":
                start = len(text.math_log)
                built[key] = tuple(content[key]())
                used[key] = used_latex(built[key], text.math_log[start:], keep_labels=True)
        main, introduced = rnn_notation_blocks(text, model.spec.cell, used,
                                               {"optimizer": optimizer_notation((training,), text) if training else []})
        built["notation"] = tuple(main)
        for key, lead in introduced.items():  # the symbols a later section introduces, at its top
            built[key] = tuple(lead) + built[key]
        sections = tuple(replace(heads[key], blocks=built[key]) for key in keys)
    spec = model.spec
    title = text("rnn.title" + _cell(model))
    return blocks.Document(
        title=title,
        subtitle=_subtitle(text, text("rnn.subtitle" + _cell(model), layers=spec.layers, hidden=spec.hidden, act=spec.act,
                                      output=text.raw(f"rnn.output_word_{spec.output}"), loss=spec.loss)),
        generated=text("rnn.generated", version=__version__, command=command, section=numbers["verification"]),
        contents=text("doc.contents"),
        version=__version__,
        html_lang=text.raw("language.html_lang"),
        tag_brackets=(text.raw("language.tag_open"), text.raw("language.tag_close")),
        tex_preamble=text.raw("language.tex_preamble").strip(),
        sections=sections,
        metadata=(("pdftitle", text.raw("rnn.title" + _cell(model))),),
    )


def _subtitle(text: Text, line: str) -> str:
    """The subtitle as the title page sets it: in a language that breaks lines anywhere, only between clauses."""
    if text.fmt == "tex" and text.catalog["language"].get("tex_unbroken_clauses"):
        return unbroken_clauses(line)
    return line
