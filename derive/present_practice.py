"""The reader's own checks as document blocks: the box "check your gradient yourself" (the lesson's
appendix B, with the certificate in one sentence), the exercises at the end of the worked example,
and their answers in an appendix of their own, out of sight of the questions.

Every number comes from `lesson.practice` (the engine's formulas at the worked example's point) or
from the verification report (the script of the last exercise, run on the generated module)."""

from __future__ import annotations

import math

import sympy as sp

from derive import document as blocks
from derive.derivation import Derivation
from derive.lesson import Lesson
from derive.lesson.practice import OTHER_RATE, check_script, scaled_costs
from derive.lesson.worked_example import entries
from derive.notation import Q
from derive.present_lesson import _display_entry, _errors, _hand_check, _matrix, _number, _stated, _unchecked_unit
from derive.printing import times_sign


def _digits(value, digits: int = 10) -> str:
    """A number to `digits` significant figures, in the document's scientific form below 0.01."""
    return _number(value, digits)


def _h(step: sp.Rational) -> str:
    return f"10^{{{sp.log(step, 10)}}}"


def gradient_check_blocks(lesson: Lesson, derivation: Derivation, report, text, refs) -> list:
    """The lesson's appendix B: a central difference on one weight, with its numbers, and the
    certificate's result in one sentence."""
    checks = lesson.practice.checks if lesson.practice is not None else None
    floats = lesson.practice.floats if lesson.practice is not None and checks else None
    return check_box_blocks(lesson.example, derivation, text, checks) + _float64_blocks(checks, floats, text) + \
        _complex_step_blocks(report, checks, text, has_kink(derivation.model)) + [blocks.Paragraph(_certificate(report, text))]


def has_kink(model) -> bool:
    """Whether an activation of the network has a kink, a point where its slope jumps (the ReLU's
    z = 0), or switching points that could not be located: appendix B explains why the checks keep
    away from kinks only for such a network (review 30, item 8; elu with α = 1 has none)."""
    from derive.rewrite import activation_derivative

    return any(bool(d.kinks) or not d.kinks_located
               for d in (activation_derivative(a) for a in model.activations if not a.is_vector))


def _complex_step_blocks(report, checks, text, kinked: bool = True) -> list:
    """Why the certificate's reference derivatives are complex-step ones, and how they are taken, in
    two sentences; then, for a network with a kink (`kinked`), why neither they nor a finite difference
    may cross it, and what the checks do about it (review 27, item 6; review 30, item 8). The step and the margin are the checks' own constants. Nothing
    where the certificate is the short sentence, which names no method, or without the box's weight."""
    from derive.complex_step import STEP
    from derive.verify import KINK_MARGIN

    if not checks or not _full_certificate(report):
        return []
    power = lambda x: f"10^{{{round(math.log10(x))}}}"  # noqa: E731
    weight = _display_entry(checks[-1].weight, checks[-1].index)
    return [blocks.Paragraph(text("practice.complex_step", h=power(STEP), weight=weight)),
            *([blocks.Paragraph(text("practice.kinks", margin=power(KINK_MARGIN)))] if kinked else [])]


def _full_certificate(report) -> bool:
    symbolic, code = report.check("symbolic").figures, report.check("derivatives").figures
    return bool("digits" in symbolic and "largest_error" in code and report.check("recognition").figures.get("formulas"))


def _float64_blocks(checks, floats, text) -> list:
    """The box's slope as `model.py` gives it in float64 (`practice.float64_slopes`): good at the step
    the box recommends, spoilt by cancellation at a much smaller one. Nothing without those figures."""
    if not floats:
        return []
    weight = _display_entry(checks[-1].weight, checks[-1].index)
    good, small = floats
    return [blocks.Paragraph(text("practice.check_float64")),
            blocks.Aligned(tuple(
                blocks.Row(rf"\frac{{C({weight} + {_h(f.step)}) - C({weight} - {_h(f.step)})}}{{2 {times_sign()} {_h(f.step)}}}",
                           _digits(sp.Float(f.slope, 17)))
                for f in floats)),
            blocks.Paragraph(text("practice.check_float64_result", h_good=_h(good.step), h_small=_h(small.step),
                                  relative_good=_number(sp.Float(good.relative, 17), 2),
                                  relative_small=_number(sp.Float(small.relative, 17), 2)))]


def check_box_blocks(example, derivation: Derivation, text, checks, keys: str = "practice",
                     intro: str = "check_intro", **fields) -> list:
    """The box "check your gradient yourself": the weight of the central differences `checks`, computed
    once per run at the point `example` (`lesson.practice` or `lesson.check`), moved by ±h: the two
    losses, their slope and backpropagation's gradient, in the point's arithmetic, and how the
    agreement changes with a ten times larger step.
    `keys`: the catalog table of its paragraphs (the lesson's points to its exercise; another
    network's document has none), `intro` its opening's key, `fields` what that needs besides. Nothing
    when there is no point or no weight to move."""
    if not checks:
        return []
    first, last = checks[0], checks[-1]
    weight = _display_entry(first.weight, first.index)
    value = _stated(example.point[(first.weight.label, first.index)])
    arithmetic = text("example.exact") if example.exact else text("example.digits", digits=50)
    return [blocks.Paragraph(text(f"{keys}.{intro}", weight=weight, value=value, h=_h(last.step),
                                  arithmetic=arithmetic, **fields)),
            blocks.Aligned((
                blocks.Row(rf"C({weight} + {_h(last.step)})", _digits(last.up)),
                blocks.Row(rf"C({weight} - {_h(last.step)})", _digits(last.down)),
                blocks.Row(rf"\frac{{C({weight} + {_h(last.step)}) - C({weight} - {_h(last.step)})}}{{2 {times_sign()} {_h(last.step)}}}",
                           _digits(last.slope)),
                blocks.Row(r"\frac{\partial C}{\partial " + weight + "}", _digits(last.gradient)),
            )),
            blocks.Paragraph(_check_result(first, last, text, keys))]


def _check_result(first, last, text, keys: str) -> str:
    """How well slope and gradient agree at the two steps; a loss quadratic in the weight has an exact
    central difference, and then there is no ratio of the two differences to print."""
    figures = dict(relative=_number(last.relative, 2), h_large=_h(first.step), relative_large=_number(first.relative, 2))
    if last.relative == 0 and keys != "practice":  # the lesson's catalog has no such sentence
        return text(f"{keys}.check_exact", **figures)
    return text(f"{keys}.check_result", **figures,
                ratio=_times(first.relative / last.relative) if last.relative != 0 else "")


def _times(ratio) -> str:
    """How many times the larger step's difference is the smaller's, to two significant figures (100, 9.7)."""
    rounded = float(f"{float(ratio):.2g}")
    return f"{rounded:g}" if rounded < 10 else str(int(rounded))


def _certificate(report, text) -> str:
    """The certificate in one sentence: what was checked against what, and the verdict."""
    symbolic, code = report.check("symbolic").figures, report.check("derivatives").figures
    forms = report.check("recognition").figures.get("formulas")
    passed = all(c.passed for c in report.checks)
    if not _full_certificate(report):
        return text("practice.certificate_short" if passed else "practice.certificate_failed")
    loop = "" if "loop_error" not in code else text("practice.certificate_loop_equal") if code["loop_error"] == "0" \
        else text("practice.certificate_loop", loop=_power(code["loop_error"]))
    return text("practice.certificate", partials=symbolic["partials"], digits=symbolic["digits"],
                code=code["partials"], error=_power(code["largest_error"]), forms=forms,
                raw={"loop": loop, "verdict": text("practice.verdict_passed" if passed else "practice.verdict_failed")})


def _power(bound: str) -> str:
    return "0" if bound == "0" else f"10^{{{int(bound.split('e')[1])}}}"


# --------------------------------------------------------------------------------------------------
# exercises and answers


def exercises(lesson: Lesson, derivation: Derivation, report) -> list[tuple[str, dict, object]]:
    """(catalog key, its fields, the answer's data) for each exercise this document can pose."""
    example, out = lesson.example, []
    if example is None:
        return out
    errors = [q for q in _errors(derivation) if q.kind == "delta"][:2]
    if errors and _hand_check(derivation, example, errors[0], _unchecked_unit(example, errors[0])) is not None:
        named = {name: q.latex_entry(str(_unchecked_unit(example, q) + 1)) for name, q in zip(("first", "second"), errors)}
        out.append(("hand" if len(errors) > 1 else "hand_one", named, errors))
    params = [p for node in derivation.model.network.layers for p in node.parameters]
    last_weight = next((p for p in reversed(params) if p.rank >= 2), None)
    entry = None if last_weight is None else changing_entry(example, last_weight.label)
    if entry is not None:
        out.append(("rate", {"rate": f"{float(OTHER_RATE):g}", "weight": _display_entry(last_weight, entry),
                             "entry": entry}, last_weight))
    if lesson.comparison is not None:
        out.append(("other_loss", {}, lesson.comparison))
    if lesson.costs is not None and derivation.model.is_chain:
        out.append(("wider", {}, lesson.costs))
    if "exercise" in report.check("derivatives").figures:
        out.append(("script", {}, report.check("derivatives").figures["exercise"]))
    checks = lesson.practice
    diagonal = checks.diagonal if checks is not None else None
    if diagonal is not None:
        out.append(("diagonal", {"layer": str(derivation.model.depth - 1)}, diagonal))
    jacobian = getattr(checks, "jacobian", None)
    if jacobian is not None:  # a softmax output: BP1 is Jᵀ ∂C/∂a, not a diagonal matrix
        out.append(("jacobian", {"layer": str(derivation.model.depth)}, jacobian))
    batch = checks.minibatch if checks is not None else None
    if batch is not None:
        second = batch[0]
        out.append(("minibatch", {"x": _inline_vector(entries(second, Q("a", 0)), _stated),
                                  "y": _inline_vector(entries(second, Q("y")), _stated),
                                  "layer": str(derivation.model.depth)}, batch))
    if derivation.model.is_chain:  # two conceptual exercises, as Nielsen poses them: answered in symbols
        out += [("activation", {}, None), ("linear", {}, None)]
    return out


def _inline_vector(values: list, number=_number) -> str:
    """A column vector in a sentence, as a transposed tuple (−0.5, 1)ᵀ: a pmatrix in a line of prose
    raised its ᵀ above the line and stood alone at the start of the next one (zh issue 13, PDF)."""
    return r"\left(" + r",\ ".join(number(v) for _, v in values) + r"\right)^{\top}"


def changing_entry(example, label: str) -> tuple | None:
    """The first entry (in row-major order) of a parameter whose gradient at the worked example is
    not 0: a step moves it, so asking for its new value teaches something. An entry that leaves an
    inactive unit (ReLU at z < 0) has gradient 0 and would come back unchanged."""
    indices = sorted(idx for (name, idx), grad in example.gradients.items() if name == label and grad != 0)
    return indices[0] if indices else None


def exercise_blocks(lesson: Lesson, derivation: Derivation, report, text, titles: dict) -> list:
    """The exercises, in a section of their own after everything they need has been taught (review 30,
    defect 11: none says "read … first"); their answers are in the appendix."""
    posed = exercises(lesson, derivation, report)
    if not posed:
        return []
    items = tuple(text(f"practice.exercise_{key}", number=n, **_fields(key, fields, data, derivation, text, titles))
                  for n, (key, fields, data) in enumerate(posed, start=1))
    return [blocks.Paragraph(text("practice.exercises_intro")), blocks.ItemList(items)]


def _fields(key, fields, data, derivation, text, titles) -> dict:
    if key == "other_loss":
        return {"other": titles[data.other.loss.name]}
    if key == "wider":
        return {"sizes": text.raw("refs.list_separator").join(str(2 * n) for n in derivation.model.sizes)}
    return {name: value for name, value in fields.items() if name != "entry"}  # the entry's index is not printed


def answer_blocks(lesson: Lesson, derivation: Derivation, report, text, titles: dict) -> list:
    """Appendix D: the answers, in the order of the exercises, each computed."""
    example = lesson.example
    out = [blocks.Paragraph(text("practice.answers_intro"))]
    for n, (key, fields, data) in enumerate(exercises(lesson, derivation, report), start=1):
        head = text("practice.answer_head", number=n)
        if key in ("hand", "hand_one"):
            for q in data:
                display, *_ = _hand_check(derivation, example, q, _unchecked_unit(example, q))
                out += [blocks.Paragraph(head + text("practice.answer_hand") if q is data[0] else text("practice.answer_next")),
                        display]
        elif key == "rate":
            updated, after = lesson.practice.other
            value = updated[(data.label, fields["entry"])]
            out.append(blocks.Paragraph(head + text("practice.answer_rate", weight=fields["weight"], value=_number(value),
                                                    rate=fields["rate"], before=_number(example.loss),
                                                    after=_number(after))))
        elif key == "other_loss":
            from derive.lesson.loss_choice import evaluate_error

            values = evaluate_error(derivation, data.other.delta, example)
            out.append(blocks.Paragraph(head + text("practice.answer_other_loss", other=titles[data.other.loss.name],
                                                    delta=_inline_vector([((k,), v) for k, v in enumerate(values)]),
                                                    own=_inline_vector(_own_output_error(derivation, example)))))
        elif key == "wider":
            from derive.windowsizes import size_values

            wider, backprop, parameters, finite = scaled_costs(data, size_values(derivation.model.network))
            out.append(blocks.Paragraph(head + text("practice.answer_wider", backprop=backprop, parameters=parameters,
                                                    finite=finite, ratio=_ratio(finite, backprop, text))))
        elif key == "minibatch":
            second, D, A, gradient = data
            layer = derivation.model.depth
            # each sample's own gradient, BP4 on its column (zh review 29, D-8: the exercise asks to
            # check the mean, so the answer shows what is averaged), the first the worked example's
            errors, inputs = dict(D), dict(A)
            units, reads = sorted({j for j, _ in errors}), sorted({k for k, _ in inputs})
            own = tuple(blocks.Row(rf"\frac{{\partial C_{{{r + 1}}}}}{{\partial W^{{({layer})}}}}",
                                   _matrix([((j, k), errors[(j, r)] * inputs[(k, r)]) for j in units for k in reads]))
                        for r in range(2))
            out += [blocks.Paragraph(head + text("practice.answer_minibatch", layer=layer)),
                    blocks.Aligned((blocks.Row(rf"D^{{({layer})}}", _matrix(D)),
                                    blocks.Row(rf"A^{{({layer - 1})}}", _matrix(A)),
                                    *own,
                                    blocks.Row(rf"\frac{{\partial \bar{{C}}}}{{\partial W^{{({layer})}}}}",
                                               rf"\frac{{1}}{{2}} D^{{({layer})}} \left(A^{{({layer - 1})}}\right)^{{\top}} = {_matrix(gradient)}"))),
                    blocks.Paragraph(text("practice.answer_minibatch_mean"))]
        elif key == "diagonal":
            out += _diagonal_answer(derivation, data, head, text)
        elif key == "jacobian":
            out += _jacobian_answer(derivation, data, head, text)
        elif key in ("activation", "linear"):  # general statements in the document's notation
            out.append(blocks.Paragraph(head + text(f"practice.answer_{key}")))
        elif key == "script":
            out += [blocks.Paragraph(head + text("practice.answer_script")),
                    blocks.Code(tuple(check_script(derivation.model).split("\n"))),
                    blocks.Paragraph(text("practice.answer_script_prints", printed=data))]
    return out


def _diag(layer) -> str:
    """diag(g′(z⁽ˡ⁾)), Nielsen's Σ′: the slopes of a layer as a diagonal matrix."""
    return rf"\operatorname{{diag}}\left(g'\left(z^{{({layer})}}\right)\right)"


def _weights_t(layer) -> str:
    return rf"\left(W^{{({layer})}}\right)^{{\top}}"


def _diagonal_answer(derivation: Derivation, data, head: str, text) -> list:
    """BP1 and BP2 with diag(g′(z)) for ⊙, the two put into each other down to layer 1, and BP2 for
    the layer below the output with the worked example's numbers (`lesson.practice.diagonal_check`)."""
    depth = derivation.model.depth
    slopes, weights, errors, product = data

    upstream = r"\frac{\partial C}{\partial a^{(L)}}"
    general = blocks.Aligned((
        blocks.Row(r"\delta^{(L)}", rf"\operatorname{{diag}}\left(g'\left(z^{{(L)}}\right)\right) {upstream}"),
        blocks.Row(r"\delta^{(l)}", r"\operatorname{diag}\left(g'\left(z^{(l)}\right)\right) "
                                     r"\left(W^{(l+1)}\right)^{\top} \delta^{(l+1)}")))
    chain = " ".join(f"{_diag(l)} {_weights_t(l + 1)}" for l in range(1, depth))
    nested = blocks.Aligned((blocks.Row(r"\delta^{(1)}", f"{chain} {_diag(depth)} \\frac{{\\partial C}}{{\\partial a^{{({depth})}}}}"),))
    diagonal = [((i, j), v if i == j else sp.Integer(0)) for (i,), v in slopes for (j,), _ in slopes]
    transposed = [((k, i), w) for (i, k), w in weights]
    numbers = blocks.Aligned((blocks.Row(
        rf"{_diag(depth - 1)} {_weights_t(depth)} \delta^{{({depth})}}",
        " ".join((_matrix(diagonal, _five), _matrix(transposed, _stated), _matrix(errors, _five)))),
        blocks.Row("", _matrix(product)),
        blocks.Row("", rf"\delta^{{({depth - 1})}}")))
    return [blocks.Paragraph(head + text("practice.answer_diagonal")), general,
            blocks.Paragraph(text("practice.answer_diagonal_nested")), nested,
            blocks.Paragraph(text("practice.answer_diagonal_numbers", layer=depth - 1)), numbers]


def _jacobian_answer(derivation: Derivation, data, head: str, text) -> list:
    """BP2 with diag(g′(z)) for ⊙, BP1 as Jᵀ ∂C/∂a with J = diag(a) − a aᵀ, the equations put into each
    other down to layer 1, and BP1 with the worked example's numbers (`lesson.practice.jacobian_check`)."""
    depth = derivation.model.depth
    _, jacobian, upstream, product = data

    upstream_symbol = rf"\frac{{\partial C}}{{\partial a^{{({depth})}}}}"
    general = blocks.Aligned((
        blocks.Row(rf"\delta^{{({depth})}}", rf"J^{{\top}} {upstream_symbol}, \quad "
                                             rf"J = \operatorname{{diag}}\left(a^{{({depth})}}\right) - a^{{({depth})}} \left(a^{{({depth})}}\right)^{{\top}}"),
        blocks.Row(r"\delta^{(l)}", r"\operatorname{diag}\left(g'\left(z^{(l)}\right)\right) "
                                     r"\left(W^{(l+1)}\right)^{\top} \delta^{(l+1)}")))
    chain = " ".join(f"{_diag(l)} {_weights_t(l + 1)}" for l in range(1, depth))
    nested = blocks.Aligned((blocks.Row(r"\delta^{(1)}", rf"{chain} J^{{\top}} {upstream_symbol}"),))
    transposed = [((j, i), v) for (i, j), v in jacobian]
    numbers = blocks.Aligned((blocks.Row(rf"J^{{\top}} {upstream_symbol}",
                                         " ".join((_matrix(transposed, _five), _matrix(upstream, _five)))),
                              blocks.Row("", _matrix(product)),
                              blocks.Row("", rf"\delta^{{({depth})}}")))
    return [blocks.Paragraph(head + text("practice.answer_jacobian")), general,
            blocks.Paragraph(text("practice.answer_diagonal_nested")), nested,
            blocks.Paragraph(text("practice.answer_jacobian_numbers", layer=depth)), numbers]


def _five(value) -> str:
    return _number(value, 5)


def _ratio(finite: int, backprop: int, text) -> str:
    """finite / backprop as printed: the whole number when it is one, else "about 200 (199.5)", the
    exact ratio to one decimal (to four figures 2323.6 read 2324, the rounded number again)."""
    if finite % backprop == 0:
        return text("practice.times_exact", ratio=str(finite // backprop))
    return text("practice.about", rounded=f"{finite / backprop:.0f}", ratio=f"{finite / backprop:.1f}")  # 2323.6, not a second 2324


def _own_output_error(derivation: Derivation, example):
    network = derivation.model.network
    output = network.producers[network.output]
    return entries(example, Q("delta", output.layer))


__all__ = ["gradient_check_blocks", "check_box_blocks", "exercise_blocks", "answer_blocks", "exercises"]
