"""Plain data about the network's functions for the documents: each activation (its definition, SymPy's
derivative, the readable or branch-by-branch form, the kinks and their conventions, parameters and
named constants), the loss (its derivative, kink conventions, targets) and the penalty.

Like `present`, nothing here derives anything: it prints what `rewrite`, `nonsmooth` and
`layers.penalty` computed and takes prose from the message catalog.
"""

from __future__ import annotations

import sympy as sp

from derive.catalog.constants import named_constants
from derive.catalog.params import number_text
from derive.derivation import Derivation
from derive.nonsmooth import conventions_used
from derive.notation import A, BATCH_DATA_COST, DATA_COST, L1_STRENGTH, L2_STRENGTH, LAYER_PENALTY, PENALTY, LayerRef
from derive.printing import latex

_G = sp.Function("g")(sp.Symbol("z"))
_G_PRIME = sp.Derivative(_G, sp.Symbol("z"))


def equation(lhs: sp.Basic, rhs: sp.Basic) -> dict:
    left, right = latex(lhs), latex(rhs)
    return {"lhs": left, "rhs": right, "latex": f"{left} = {right}"}


# the names textbooks print for activations whose command-line name is an identifier (relu); the same
# in every language, and used wherever a document names the function: prose, tables, headings, pictures
PROSE_NAMES = {"relu": "ReLU", "leaky_relu": "Leaky ReLU", "elu": "ELU", "selu": "SELU", "gelu": "GELU",
               "gelu_tanh": "GELU (tanh)", "silu": "SiLU"}


def display_name(entry) -> str:
    """How documents name an activation or loss in prose: 'ReLU', 'Leaky ReLU:0.2' (the parameter as
    the command line gives it), or the user's text as code."""
    return f"`{entry.source}`" if entry.is_custom else prose_name(entry.spec_text)


def prose_name(spec_text: str) -> str:
    """A catalog activation's command-line text as documents print it: relu → ReLU, leaky_relu:0.2 →
    Leaky ReLU:0.2; any other text unchanged."""
    name, colon, parameters = spec_text.partition(":")
    return PROSE_NAMES.get(name, name) + colon + parameters


def _layers_text(layers: list[int], text) -> str:
    """1, 2 and 3 (the separators from the language's catalog)."""
    return listed([str(layer) for layer in layers], text)


def listed(items: list[str], text) -> str:
    """'a, b and c' with the separators from the language's catalog."""
    head = text.raw("refs.list_separator").join(items[:-1])
    return head + (text.raw("refs.list_last") if len(items) > 1 else "") + items[-1]


def _piece_text(lower, upper, text) -> str:
    if lower is None and upper is None:
        return text("kinks.piece_all")
    if lower is None:
        return text("kinks.piece_below", upper=latex(upper))
    if upper is None:
        return text("kinks.piece_above", lower=latex(lower))
    return text("kinks.piece_between", lower=latex(lower), upper=latex(upper))


def activation_notes(d, text) -> list[str]:
    """Custom source, parameters, named constants: the facts that precede the derivative (the layers
    that use the function are said in its heading, `layers_used`)."""
    act = d.activation
    notes = []
    if act.is_custom:
        notes.append(text("custom.note", source=act.source))
    if act.parameter_text:
        notes.append(text("kinks.parameters", values=act.parameter_text))
    constants = named_constants(act.expr)
    if constants:
        values = ", ".join(f"${latex(c)} = {c.decimal}$ ({c.description})" for c in constants)
        notes.append(text("kinks.constants", values=values))
    return notes


def layers_used(text, layers: list[int]) -> str:
    """'used in layers 1, 2 and 3': said in the activation's run-in heading, beside its title, so that it
    does not stand as a paragraph of its own."""
    return text("kinks.layers", plural="s" if len(layers) > 1 else "", layers=_layers_text(layers, text))


def activation_extras(d, text) -> dict:
    """The branch-by-branch form, the smooth pieces, the kinks and the conventions for one activation."""
    out = {"branches": None, "pieces": [], "kinks": [], "conventions": []}
    if d.branch_form is not None:
        out["branches"] = equation(_G_PRIME, d.branch_form)
    if d.pieces and (len(d.pieces) > 1 or d.kinks):
        out["pieces_intro"] = text("kinks.intro")
        out["pieces"] = [
            {"where": _piece_text(lower, upper, text), **equation(_G_PRIME, form)} for lower, upper, form in d.pieces
        ]
    for kink in d.kinks:
        out["kinks"].append(text("kinks.kink", point=latex(kink.point), left=latex(kink.left), right=latex(kink.right),
                                 used=latex(kink.used)))
    if not d.kinks_located:
        out["kinks"].append(text("kinks.not_located"))
    out["conventions"] = [text(f"kinks.{key}") for key in d.conventions]
    return out


def loss_extras(derivation: Derivation, text) -> dict:
    """The loss's derivative as SymPy computes it, its kink conventions, targets and the penalty."""
    model = derivation.model
    loss = model.loss
    derivative = sp.diff(loss.expr, A)
    out = {
        "notes": [],
        "penalty": None,
        "conventions": False,  # whether the derivative switches between pieces at a point the notes fix
    }
    if loss.is_custom:
        out["notes"].append(text("custom.loss_note", source=loss.source))
        out["notes"].append(text(f"custom.targets_{loss.target}") if loss.target in ("real", "unit") else "")
    if loss.parameter_text:
        out["notes"].append(text("kinks.parameters", values=loss.parameter_text))
    keys = conventions_used(derivative)
    if keys:
        conventions = " ".join(text(f"kinks.{k}") for k in keys)  # already in the format: inserted raw
        out["notes"].append(text("loss_extra.conventions", raw={"conventions": conventions}))
        out["conventions"] = True
    out["notes"] = [n for n in out["notes"] if n]
    if model.penalty is not None:
        out["penalty"] = penalty_data(derivation, text)
    return out


def penalty_data(derivation: Derivation, text) -> dict:
    penalty = derivation.model.penalty
    strengths = text.raw("refs.list_separator").join(f"${latex(s)} = {number_text(v)}$"
                                                     for s, v in penalty.strengths.items())
    what = text("loss_extra.weights_biases" if penalty.biases else "loss_extra.weights")
    return {
        "intro": text("loss_extra.penalty", raw={"what": what}, strengths=strengths),
        "total": equation(PENALTY, penalty.total()),
        "layer_intro": text("loss_extra.penalty_layer"),
        "layer": equation(LAYER_PENALTY, penalty.layer_penalty(LayerRef.symbolic())),
        "batch": text("loss_extra.penalty_batch"),
    }


def penalty_notation(derivation: Derivation, text) -> list[tuple[str, str]]:
    """Extra rows of the notation table when the loss carries a penalty."""
    penalty = derivation.model.penalty
    if penalty is None:
        return []
    rows = [(latex(PENALTY), text("regularisation.notation_R")),
            (f"{latex(DATA_COST)}, {latex(BATCH_DATA_COST)}", text("regularisation.notation_data"))]
    for symbol, option in ((L2_STRENGTH, "--l2"), (L1_STRENGTH, "--l1")):
        if symbol in penalty.strengths:
            rows.append((latex(symbol), text("regularisation.notation_lambda", option=option)))
    return rows


def code_notes(derivation: Derivation, plan, text) -> tuple[list[str], list[str]]:
    """Which stable forms the generated code uses (phrases, decided by what its printed lines
    contain), and sentences about its constants."""
    lines = " ".join([a.value for a in plan.forward] + [a.value for a in plan.backward] + [plan.loss_value])
    checks = [
        ("np.logaddexp(0.0" in lines and not any(a.name == "sigmoid" for a in derivation.model.activations),
         "code_extra.stable_softplus"),
        ("np.expm1" in lines, "code_extra.stable_expm1"),
        ("np.where" in lines and ("np.minimum" in lines or "np.maximum" in lines), "code_extra.stable_clamp"),
        ("_erf(" in lines, "code_extra.stable_erf"),
        ("np.logaddexp(0.0, -2*np.abs(" in lines, "code_extra.stable_logcosh"),
        ("np.exp(" in lines and "np.logaddexp" in lines and not any(a.name == "sigmoid" for a in derivation.model.activations),
         "code_extra.stable_exp"),
        ("_xlogx(" in lines, "code_extra.stable_xlogx"),
        (any(a.is_log_softmax for a in derivation.model.activations), "code_extra.stable_log_softmax"),
    ]
    phrases = [text(key) for present, key in checks if present]
    sentences = []
    if derivation.model.penalty is not None:
        sentences.append(text("regularisation.code", names="`, `".join(c.target for c in plan.constants)))
    return phrases, sentences


def derivative_json(d) -> dict:
    """What the JSON adds to an activation derivative: branch form, pieces, kinks and conventions."""
    return {
        "branch_form": None if d.branch_form is None else sp.srepr(d.branch_form),
        "branch_proofs": list(d.branch_proofs),
        "used_in_formulas": sp.srepr(d.used),
        "conventions": list(d.conventions),
        "kinks": [{"point": sp.srepr(k.point), "left": sp.srepr(k.left), "right": sp.srepr(k.right),
                   "used": sp.srepr(k.used)} for k in d.kinks],
        "kinks_located": d.kinks_located,
    }


def function_json(derivation: Derivation) -> dict:
    """The activations per layer, the loss and the penalty, as entries with their SymPy expressions."""
    model = derivation.model

    def activation(a):
        return {"name": a.name, "spec": a.spec_text, "kind": a.kind, "user_written": a.is_custom,
                "g": None if a.expr is None else sp.srepr(a.expr), "parameters": a.parameter_text or None}

    loss = model.loss
    penalty = model.penalty
    return {
        "activations": [activation(a) for a in model.activations],
        "loss": {"name": loss.name, "spec": loss.spec_text, "user_written": loss.is_custom,
                 "l": sp.srepr(loss.expr), "dl_da": sp.srepr(sp.diff(loss.expr, A)), "targets": loss.target,
                 "parameters": loss.parameter_text or None},
        "penalty": None if penalty is None else {
            "l2": None if penalty.l2 is None else str(penalty.l2),
            "l1": None if penalty.l1 is None else str(penalty.l1),
            "biases": penalty.biases,
            "normalisation": "C = sum_i l(a_i, y_i) + R per sample; Cbar = mean over the minibatch of the data "
                             "terms + R (the penalty is counted once per minibatch)",
            "layer_penalty": sp.srepr(penalty.layer_penalty(LayerRef.symbolic())),
        },
    }
