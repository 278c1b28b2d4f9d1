"""The sections that make the derivation a lesson, shared by the MLP document (`present`) and the
document of any network (`present_graph`): what the reader will learn, how every step works, why
this loss, what the equations say, the algorithm beside its code, a worked example with numbers and
why backpropagation is fast.

Nothing here derives anything: the numbers and formulas come from `derive.lesson` (computed by the
engine), the prose from the message catalog.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import sympy as sp

from derive import document as blocks
from derive import example_picture
from derive.codegen import backward_order
from derive.derivation import Derivation
from derive.errors import ensure
from derive.lesson import Lesson
from derive.lesson.loss_choice import SATURATED, WRONG, softmax_jacobian_at_saturation
from derive.lesson.worked_example import entries
from derive.narrate import Narrator, sides
from derive.notation import LEARNING_RATE, Q, Z, Quantity, quantity_of
from derive.rewrite import exp_identity_holds, logistic_as_tanh, sigmoid_tanh_identity, stable_forms
from derive.present_functions import display_name, listed
from derive.printing import DeriveLatexPrinter, _factor_rank, current_words, latex, times_sign
from derive.slashed import slashed
from derive.verify_symbolic import _is_parameter_gradient

DECIMALS = 4  # of every number of the worked example
# of the computed numbers a hand check puts in: one more than DECIMALS, so that the result comes out to
# the printed digits; more (up to HAND_DIGITS_MOST) only where five still move its last digit
HAND_DIGITS, HAND_DIGITS_MOST = 5, 8


# --------------------------------------------------------------------------------------------------
# what you will learn


def learn_blocks(text, rows: list[tuple[str | None, dict]], meanings: list[str], lesson: Lesson,
                 table: str = "learn", instance: list[tuple[str, dict]] | None = None, vector: str = "",
                 goals: bool = True, cases: list | None = None) -> list:
    """The key equations boxed, one line of meaning each, and what the reader will be able to do
    (`table`: the catalog table of the intro, "learn" or "graph" with its learn_ keys). With an
    `instance`, `rows` are the general form (any activation g, any loss) and `instance` this network's
    BP1 and BP2; a key to the symbols follows the box (`vector`: the output is a softmax)."""
    prefix = "learn." if table == "learn" else f"{table}.learn_"
    boxed = blocks.Aligned(tuple(blocks.Row(e["lhs"], e["rhs"], tag) for tag, e in rows), boxed=True)
    if instance is not None:
        key = [blocks.Paragraph(text("learn.key", bracket=text.raw("learn.key_bracket")
                                    if any(r"\left[" in e["rhs"] for _, e in instance) else ""))] if goals else []
        head = [blocks.Paragraph(text(("learn.intro_general" if goals else "learn.summary_general") + vector)), boxed,
                *(cases or []), *key,
                *([blocks.Paragraph(text("learn.instance")),
                   blocks.Aligned(tuple(blocks.Row(e["lhs"], e["rhs"], tag) for tag, e in instance))] if instance else [])]
    else:
        head = [blocks.Paragraph(text(prefix + ("intro" if goals else "summary"))), boxed]
    out = [*head, blocks.ItemList(tuple(meanings), intro=text(prefix + "meanings"))]
    return out + (goal_blocks(text, lesson) if goals else [])


def goal_blocks(text, lesson: Lesson, ahead: bool = False, derive: str = "") -> list:
    """What the reader will be able to do; `ahead`: said before the equations are shown (`derive`:
    "graph" for a network file's document, whose errors are not the four equations)."""
    return [blocks.ItemList(tuple(
        text(f"learn.goal_{k}" + ("_inactive" if k == "meaning" and not lesson.slopes.saturates
                                  and any(b.blocks for _, b in lesson.slopes.layers) else "")
             + ("_ahead" + (f"_{derive}" if derive else "") if k == "derive" and ahead else ""), ratio=cost_ratio(lesson))
        for k in ("derive", "meaning", "hand", "code") if k != "hand" or lesson.example is not None),
        intro=text("learn.goals"))]


# --------------------------------------------------------------------------------------------------
# the big picture: why a gradient, why not finite differences


def motivation_blocks(lesson: Lesson, text, refs, opening: bool = False) -> list:
    """Why training needs the whole gradient, and why not by nudging each parameter: the counts of
    this network (its parameters, the forward passes finite differences would take, the cost of
    backpropagation in forward passes) come from `lesson.costs`. As the `opening` of a chain's
    document, one idea a paragraph, each headed by its question: what training needs, why the
    obvious way is slow, what backpropagation promises (three forward passes less the products the
    first layer's error would take, all counted) and its price in memory (the numbers kept)."""
    parameters = lesson.costs.parameters.value
    want = blocks.Paragraph(text("learn.want" if opening else "network.why", parameters=parameters,
                                 raw={"update": refs.section("update_rule"),
                                      **({"network": refs.section("network")} if opening else {})}))
    c = lesson.costs
    if opening and text.is_lesson:  # the lesson's opening says why, not how much: section `cost` counts
        return [want,  # (review 23, defect 1: no count before the forward pass is written down)
                blocks.Paragraph(text("learn.nudge_lead") + text.raw("language.sentence_separator") + text("learn.obvious")),
                blocks.Paragraph(text("learn.promise", raw={"cost": refs.section("cost")})
                                 + text.raw("language.sentence_separator") + text("learn.insight")),
                # which parts a first reading can leave (review 30, readability): only where they all are
                *([blocks.Paragraph(text("learn.guide"))]
                  if all(key in refs.sections for key in ("paths", "minibatch", "example", "code")) else [])]
    if opening and _first_layer_saves(c):
        backward = c.errors.value + c.gradients.value
        return [want,
                blocks.Paragraph(text("learn.nudge_lead") + text.raw("language.sentence_separator") + text("learn.obvious", passes=parameters + 1)),
                blocks.Paragraph(text("learn.promise", parameters=parameters, forward=c.forward.value,
                                      saved=c.saved.value, backward=backward, total=c.backpropagation,
                                      ratio=cost_ratio(lesson), raw={"cost": refs.section("cost")})),
                blocks.Paragraph(text("learn.memory", stored=c.stored, inputs=c.kept[0], units=c.kept[1],
                                      parameters=parameters))]
    nudge = text("network.nudge", passes=parameters + 1, ratio=cost_ratio(lesson), raw={"cost": refs.section("cost")})
    return [want, blocks.Paragraph(text("learn.nudge_lead") + text.raw("language.sentence_separator") + nudge if opening else nudge)]


# --------------------------------------------------------------------------------------------------
# how every step works


METHOD_MOVES = ("definition", "chain_rule", "local_derivative", "collapse", "substitution", "matrix_form")
LEAN_MOVES = ("chain_rule", "local_derivative", "matrix_form")  # the three bullets of the lesson
# the rules each move explains: from here on, the derivations name them in the margin
METHOD_RULES = {
    "definition": ("definition_delta", "definition_loss"),  # a name given where paths meet is explained where it first occurs
    "chain_rule": ("chain_rule", "chain_rule_paths"),
    "local_derivative": ("local_derivative", "differentiate"),
    "collapse": ("kronecker_collapse", "common_delta", "penalty_gradient"),
    "substitution": ("substitute_local", "substitute_upstream", "substitute_gradient"),
    "matrix_form": ("matrix_form",),
}


def method_blocks(text, narrator: Narrator, paths: bool, letters: bool = False, direct: bool = False,
                  vector: bool = True) -> list:
    """The moves every derivation repeats, each explained once; afterwards the margin names them.
    `letters`: the derivations name units by layer (j, k, i; j' another unit of layer l); `direct`
    (the lesson): a local derivative is read off its forward rule, the brackets kept only where they
    stay (the softmax, a loss compared later); `vector`: the output is a softmax (otherwise the
    brackets' example names only the compared loss, not a softmax the network does not have)."""
    moves = list(METHOD_MOVES)
    # the lesson names three: the definition is the notation's δ, the brackets come where first used
    # (the softmax's Jacobian, the loss compared), a substitution cites its source in the margin
    shown = [m for m in moves if m in LEAN_MOVES] if text.is_lesson else moves
    def key(move: str) -> str:
        lesson = (("_lesson",) if vector else ("_lesson_scalar", "_lesson")) if direct else ()
        for suffix in lesson + (("_units",) if letters else ()):
            if f"{move}{suffix}" in text.catalog["method"]:
                return f"method.{move}{suffix}"
        return f"method.{move}"
    items = [text(key(move)) for move in shown]
    if paths:
        items.insert(2, text("method.paths"))
    for move in moves:
        narrator.explain(*(f"rule.{rule}" for rule in METHOD_RULES[move]))
    if letters:  # the lesson: the intro names the sections that use the moves and says what the margin shows
        return [blocks.Paragraph(text("method.intro_units")), blocks.ItemList(tuple(items))]
    return [blocks.Paragraph(text("method.intro")), blocks.ItemList(tuple(items)),
            blocks.Paragraph(text("method.margin"))]


# --------------------------------------------------------------------------------------------------
# why this loss


def _vector(values) -> str:
    return "(" + ", ".join(latex(sp.sympify(v)) for v in values) + ")"


def _figure(value, digits: int = 4) -> str:
    """An exact number as a decimal of `digits` significant figures (exact ones keep no trailing zeros)."""
    return f"{float(value):.{digits}g}"


def _figures(values) -> str:
    return "(" + ", ".join(_figure(v) for v in values) + ")"


def loss_choice_blocks(lesson: Lesson, derivation: Derivation, text, narrator: Narrator, refs,
                       relabel=lambda steps: steps) -> list:
    """The other usual loss's output error beside this one's (`relabel`: the document's index letters),
    with the derivation of its output error from ∂C/∂a except in the lesson, which leaves it to `full`:
    it is BP1 once more, and the side-by-side display gives its result."""
    comparison = lesson.comparison
    output = derivation.model.network.producers[derivation.model.network.output]
    activation = output.kind.activation
    chosen, other = comparison.chosen, comparison.other
    titles = {e.loss.name: text.raw(f"loss_title.{e.loss.name}") for e in (chosen, other)}
    rows = [blocks.Row(latex(e.delta.matrix_lhs, matrix=True), latex(e.delta.matrix_rhs, matrix=True),
                       titles[e.loss.name]) for e in (chosen, other)]
    out = [blocks.Paragraph(text("loss_choice.intro", activation=display_name(activation),
                                 chosen=titles[chosen.loss.name], other=titles[other.loss.name]))]
    if other.steps:  # the other loss's derivation, as the engine did it (the same moves as the own loss's)
        upstream, delta = other.steps
        # the softmax's Jacobian is derived once, in BP1's general form (section output_error): from the
        # line that is that form, only the substitution of this loss and the matrix form follow
        rules, delta_intro = [step.rule for step in delta], "loss_choice.other_delta"
        if activation.is_softmax and "substitute_upstream" in rules and rules.index("substitute_upstream") > 1:
            start = rules.index("substitute_upstream") - 1
            delta = (replace(delta[start], rule="bp1_general"), *delta[start + 1:])
            delta_intro = "loss_choice.other_delta_bp1"
        above = lambda step: refs.above() if step.rule == "substitute_upstream" else ("", "")  # noqa: E731
        chains = relabel(upstream) is not upstream  # the document's own letters: one chain per display too
        # the lesson writes the one term of the loss that holds the output, and its derivative at once
        # (narrate.one_term and _direct); `full` keeps the sum, the brackets and their collapse
        out.append(narrator.derivation(relabel(list(upstream)), sides(latex), chains=chains, direct=text.is_lesson,
                                       intro=text("loss_choice.other_upstream", other=titles[other.loss.name])))
        if not text.is_lesson:
            out.append(narrator.derivation(relabel(list(delta)), sides(latex), intro=text(delta_intro), ref=above,
                                           chains=chains))
    out += [blocks.Paragraph(text("loss_choice.side_by_side", other=titles[other.loss.name])), blocks.Aligned(tuple(rows))]
    if chosen.saturated is not None and other.saturated is not None:
        largest = lambda e: max(abs(v) for v in e.saturated)  # noqa: E731
        slow, fast = (chosen, other) if largest(chosen) < largest(other) else (other, chosen)
        if 0 < largest(slow) < largest(fast):
            out.append(blocks.Paragraph(text(
                "loss_choice.saturated_near", saturated=_figures(SATURATED), target=_vector(WRONG),
                slow=titles[slow.loss.name], slow_delta=_figures(slow.saturated),
                fast=titles[fast.loss.name], fast_delta=_figures(fast.saturated),
                ratio=_figure(largest(fast) / largest(slow), 3))))
            if activation.is_softmax and slow.loss.name == "mse":  # why the saturated softmax passes little back
                jacobian = softmax_jacobian_at_saturation()
                out.append(blocks.Paragraph(text("loss_choice.small_softmax", saturated=_figures(SATURATED),
                                                 entry=_figure(max(abs(v) for v in jacobian)))))
            ratio = _cancelled_factor(derivation, slow, fast)
            if ratio is not None:
                out.append(blocks.Paragraph(text("loss_choice.cancel", factor=latex(ratio))))
            key = "loss_choice.verdict_fast" if fast is chosen else "loss_choice.verdict_slow"
            out.append(blocks.Paragraph(text(key, chosen=titles[chosen.loss.name], other=titles[other.loss.name])))
    return out


def _cancelled_factor(derivation: Derivation, slow, fast) -> sp.Expr | None:
    """The factor by which the slow loss's δ differs from the fast one's, when it is the output
    activation's slope g′ written in a: the g′ that cross entropy cancels (checked, not assumed)."""
    ratio = sp.cancel(slow.delta.rhs / fast.delta.rhs)
    if ratio.has(sp.Sum):
        return None
    activation = derivation.model.network.producers[derivation.model.network.output].kind.activation
    found = next((d for d in derivation.activation_derivatives if d.activation == activation), None)
    if found is None or found.in_terms_of_output is None:
        return None
    entry = next(iter(e for e in ratio.atoms(sp.Indexed)), None)
    if entry is None:
        return None
    from derive.notation import A

    slope = found.in_terms_of_output.xreplace({A: entry})
    if sp.cancel(ratio - slope) != 0:
        return None
    # printed with the letter of the output unit the section derives for, j (not the engine's index)
    return slope.xreplace({i: sp.Idx(sp.Symbol("j", integer=True), (i.lower, i.upper)) if isinstance(i, sp.Idx)
                           else sp.Symbol("j", integer=True) for i in entry.indices})


# --------------------------------------------------------------------------------------------------
# what the equations say


def meaning_blocks(lesson: Lesson, derivation: Derivation, text, refs, init=None, bound: bool = False,
                   one_route: bool = True, skip_connections: bool = False, example_ratio: bool = False) -> list:
    """What BP1–BP4 say about learning: the slopes, saturation, quiet units; with `init` (the
    network's Initialisation), how far its initial weights push the pre-activations into saturation;
    with `bound` (a multilayer perceptron, its weights W⁽²⁾ … W⁽ᴸ⁾), the bound on δ⁽¹⁾ written out.
    `one_route`: every error reaches δ⁽¹⁾ through the same hidden layers; where paths branch (a skip
    connection) some pass fewer slopes and the errors of the paths add, so the sentence that counts
    the slopes from the output to δ⁽¹⁾ would be false, and is left out. `skip_connections`: a layer
    reads an output from before the layer just before it, and the paragraph on them follows."""
    slopes = lesson.slopes
    seen, rows, constant = set(), [], []
    for _, bound in slopes.layers:
        if bound.activation in seen:
            continue
        seen.add(bound.activation)
        where = text("meaning.at", at=latex(bound.at)) if bound.at is not None else \
            text({1: "meaning.positive", -1: "meaning.negative", 2: "meaning.everywhere"}[bound.side]) if bound.side \
            else ""
        value = text.math(latex(bound.bound)) if bound.bound is not None else \
            text("meaning.unbounded" if bound.unbounded else "meaning.unknown")
        rows.append((text.plain(display_name(bound.activation).strip("`")), value, where))
        constant.append(bound.at is None and bool(bound.side))  # the largest slope over a whole interval (ReLU's 1)
    if text.is_lesson:  # the lesson says the largest slopes in a sentence (a table of one row is machinery)
        said = text.raw("refs.list_separator").join(
            text(("meaning.largest_constant" if flat else "meaning.largest") if where else "meaning.largest_anywhere",
                 raw={"activation": name, "slope": value, "where": where})
            for (name, value, where), flat in zip(rows, constant))
        out = [blocks.Paragraph(text("meaning.intro", raw={"slopes": said}))]
    else:
        out = [blocks.Paragraph(text("meaning.intro")),
               blocks.Table((text("meaning.activation"), text("meaning.slope"), text("meaning.where")), tuple(rows),
                            ("l", "l", "l"))]
    # one bound, from the output error to layer 1: δ⁽ᴸ⁾ already holds the output's slope, so only the
    # slopes of the hidden layers lie between them (the output's own slope is BP1's saturation)
    hidden = [b for layer, b in slopes.layers if layer < derivation.model.depth]
    if one_route and hidden and all(b.bound is not None for b in hidden):
        product = sp.Mul(*[b.bound for b in hidden])
        key = "meaning.vanish" if product < 1 else ("meaning.keep" if product == 1 else "meaning.grow")
        if product == 1 and all(_binary(b) for b in hidden):
            key = "meaning.keep_binary"  # slopes exactly 0 or 1 (relu): passed unchanged or stopped
        # one hidden layer: its largest slope named, not "¼ = ¼"
        factors = r" \cdot ".join(latex(b.bound) for b in hidden) if len(hidden) > 1 else r"\max_z g'(z)"
        figures = dict(layers=len(hidden), factors=factors, plural="s" if len(hidden) > 1 else "",
                       product=latex(product) if product.is_Rational else latex(sp.Float(product, DECIMALS)),
                       decimal=_decimal(product))
        if key == "meaning.vanish" and bound and derivation.model.is_chain:  # the bound, with this network's slopes
            out += _vanish_bound([b.bound for b in hidden], derivation.model.depth, text, refs, figures)
        else:
            out.append(blocks.Paragraph(text(key, **figures)))
    if example_ratio:  # the worked example's numbers against the bound, looked back at
        out += example_ratio_blocks(lesson, derivation, text, refs, here=True)
    # saturation only where some activation has slopes near 0 that are not exactly 0 (not for relu)
    # (a bias's gradient is its unit's error: BP3's own words in the box, not repeated here)
    # the initial weights' saturation continues the saturation paragraph (review 21: not a one-sentence paragraph)
    for key in ("saturation", "weights"):
        said = [text(f"meaning.{key}")] if key != "saturation" or slopes.saturates or not slopes.layers else []
        if key == "saturation" and slopes.saturates and init is not None:
            said += _initial_saturation(init, text, refs)
        if said:
            out.append(blocks.Paragraph(text.raw("language.sentence_separator").join(said)))
    blocking = list(dict.fromkeys(bound.activation for _, bound in slopes.layers if bound.blocks))
    if blocking:  # said of this network's own activation: "a ReLU unit", not "where g′ = 0 …, as for a relu"
        relu = all(a.spec_text == "relu" for a in blocking)
        out.insert(-1, blocks.Paragraph(text("meaning.inactive_relu" if relu else "meaning.inactive",
                                             names=text.raw("refs.list_separator").join(display_name(a) for a in blocking))))
    if slopes.layers:  # the four equations hold for any activation: it can be chosen for how it learns
        # a network whose hidden slopes are only 0 or 1, of the ReLU, is told what its own choice gives and costs,
        # not the case for the ReLU it already uses (zh review 22, item 23)
        own_relu = bool(hidden) and all(_binary(b) for b in hidden) and bool(blocking) and \
            all(a.spec_text == "relu" for a in blocking)  # the paragraph names the ReLU
        out.append(blocks.Paragraph(text("meaning.design_binary" if own_relu else "meaning.design")))
    if skip_connections:
        out.append(blocks.Paragraph(text("graph_meaning.skip", raw={"backward": refs.section("backward")})))
    return out


def example_ratio_blocks(lesson: Lesson, derivation: Derivation, text, refs, here: bool = False) -> list:
    """The worked example's ratio of the largest error of layer 1 to the output layer's, against the
    bound the slopes and the weights allow: said where the bound is derived (the section on learning),
    after the example has printed its numbers (review 30, defect 1: looked back at, not borrowed)."""
    if lesson.example is None or "example" not in refs.sections:
        return []
    example = lesson.example
    out = []
    ratio = _error_ratio(lesson, derivation)
    if ratio is not None:  # after the numbers, not quoted before them
        key = "example.ratio_binary" if binary_slopes(lesson) else "example.ratio"
        slopes, sums = _hidden_slopes(lesson, derivation), _weight_sums(derivation, example)
        fields = {}
        if slopes is not None and sums and derivation.model.is_chain:
            # the slopes bound only their own factor; the weights add theirs, ‖W‖₁ per matrix (in an
            # MLP, where BP2 is the only way back; a skip connection or a normalisation adds paths).
            # Slopes of 0 or 1 (ReLU) give the same bound with a slope factor of 1: the weights' alone
            hidden = [b.bound for layer, b in lesson.slopes.layers if layer < derivation.model.depth]
            bound = sp.Mul(*hidden, *[v for _, v in sums])
            # the bound can be reached (relu, L = 2: both errors of layer 2 add up in δ⁽¹⁾₁, ratio = ‖W⁽²⁾‖₁ = 1.3),
            # where the example's 50-digit values may differ in their last digit
            ensure(_ratio_value(lesson, derivation) <= bound * (1 + sp.Rational(1, 10**30)), "the ratio is within its bound")
            key = (f"{key}_bounded" if key == "example.ratio_binary" else
                   "example.ratio_bounded" if len(hidden) > 1 else "example.ratio_bounded_one")  # no product of one factor
            from derive.present import fill  # the sums stay Markdown-lite: converted once, with the sentence

            fields = {"factors": slopes[0], "product": slopes[1], "bound": _decimal(bound),
                      "sums": text.raw("refs.list_separator").join(
                          fill(text.raw("example.column_sum"), {"value": _decimal(v), "layer": layer}) for layer, v in sums)}
        said = text(key, ratio=ratio[0], first=ratio[1], last=ratio[2], **fields)
        if here:  # in the section that treats the slopes: it cites the example, not itself
            key = key if "binary" in key else key.replace("example.", "meaning.example_")
            said = (text("meaning.example_lead", raw={"example": refs.section("example")})
                    + text.raw("language.sentence_separator")
                    + text(key, ratio=ratio[0], first=ratio[1], last=ratio[2], **fields))
        out.append(blocks.Paragraph(said))
    return out


def _vanish_bound(slopes: list, depth: int, text, refs, figures: dict) -> list:
    """How small δ⁽¹⁾ can be made by the slopes, as the bound the worked example checks: each layer back
    multiplies the largest error by at most the largest column sum of |W| (‖W‖₁) and the largest slope,
    so max|δ⁽¹⁾| ≤ ∏ ‖W⁽ˡ⁾‖₁ · ∏ max g′ · max|δ⁽ᴸ⁾|, with this network's largest slopes put in and
    multiplied out."""
    norms = " ".join(rf"\lVert W^{{({layer})}} \rVert_1" for layer in range(2, depth + 1))
    largest = lambda layer: rf"\max_j \lvert \delta^{{({layer})}}_j \rvert"  # noqa: E731
    product = sp.Mul(*slopes)
    factor = latex(product) if product.is_Rational else _decimal(product)
    bound = (rf"{largest(1)} \le {norms} \cdot " + r" \cdot ".join(latex(b) for b in slopes)
             + rf" \cdot {largest(depth)} = {factor}\, {norms} \, {largest(depth)}")
    after = "meaning.vanish_after_example" if "example" in refs.sections else "meaning.vanish_after"
    raw = {"example": refs.section("example")} if "example" in refs.sections else {}
    return [blocks.Paragraph(text("meaning.vanish_bound", layers=figures["layers"], plural=figures["plural"])),
            blocks.Equation(bound),
            blocks.Paragraph(text(after, raw=raw, **figures))]


def _binary(bound) -> bool:
    """A slope that is exactly 0 for z < 0 and exactly its bound 1 for z > 0 (relu): no other value."""
    return bound.blocks and bound.side == 1 and bound.bound == 1


def binary_slopes(lesson: Lesson) -> bool:
    return bool(lesson.slopes.layers) and all(_binary(b) for _, b in lesson.slopes.layers)


def _decimal(value) -> str:
    """A number to DECIMALS significant digits, halves rounded up as a student rounds (1/64 = 0.01563)."""
    from decimal import ROUND_HALF_UP, Context, Decimal

    return format(Context(prec=DECIMALS, rounding=ROUND_HALF_UP).create_decimal(Decimal(str(sp.N(value, 30)))).normalize(), "f")


def _initial_saturation(init, text, refs) -> list[str]:
    """Where the initial weights raise the pre-activations' variance above 1 (an activation with
    g(0) ≠ 0), the variance they reach, computed in the initialisation section, said where saturation is."""
    from derive.present_training import offset_variance

    offset = offset_variance(init)
    if offset is None or offset[1] <= 1:
        return []
    _, final, last = offset
    return [text("meaning.initial_saturation", final=f"{final:.2g}", layer=last,
                 raw={"init": refs.section("initialisation")})]


def _error_ratio(lesson: Lesson, derivation: Derivation) -> tuple[str, str, str] | None:
    """The largest |δ| of the first layer against the output layer's, in the worked example."""
    errors = [k for k in _errors(derivation) if k.kind == "delta"]
    if len(errors) < 2 or lesson.example is None:
        return None
    last, first = errors[0], errors[-1]
    printed = {k: max(abs(_from_printed(v)) for _, v in entries(lesson.example, k)) for k in (first, last)}
    if printed[last] == 0:
        return None
    return _agreed(_ratio_value(lesson, derivation), printed[first] / printed[last]), first.latex(), last.latex()


def _agreed(exact, from_printed) -> str:
    """A computed ratio to as many significant figures (at most DECIMALS) as the exact value and the
    ratio of the printed, rounded numbers share: true, and what a reader who divides them gets. A ratio
    in a sentence drops trailing zeros (0.42, not 0.4200: review 23, zh item 6); tables keep four digits."""
    for digits in range(DECIMALS, 1, -1):
        if _rounded(exact, digits) == _rounded(from_printed, digits):
            return _without_trailing_zeros(_number(exact, digits))
    return _without_trailing_zeros(_number(exact, 1))


def _without_trailing_zeros(number: str) -> str:
    """0.4200 → 0.42, 1.000 → 1; a number in scientific form or without a decimal point as it is."""
    return number.rstrip("0").rstrip(".") if "." in number and "10^" not in number else number


def _hidden_slopes(lesson: Lesson, derivation: Derivation) -> tuple[str, str] | None:
    """The slope bounds of the hidden layers and their product (1/4 · 1/4, 1/16), when all are known."""
    hidden = [b for layer, b in lesson.slopes.layers if layer < derivation.model.depth]
    if not hidden or any(b.bound is None for b in hidden):
        return None
    product = sp.Mul(*[b.bound for b in hidden])
    return r" \cdot ".join(latex(b.bound) for b in hidden), latex(product) if product.is_Rational else _decimal(product)


def _ratio_value(lesson: Lesson, derivation: Derivation) -> sp.Expr:
    """The exact ratio `_error_ratio` prints: largest |δ| of the first layer over the output layer's."""
    errors = [k for k in _errors(derivation) if k.kind == "delta"]
    size = [max(abs(v) for _, v in entries(lesson.example, k)) for k in (errors[-1], errors[0])]
    return size[0] / size[1]


def _weight_sums(derivation: Derivation, example) -> list[tuple[int, sp.Expr]]:
    """For each weight matrix BP2 passes the error back through (layers 2 … L), its largest column sum
    of |W| in the example: error k of layer l - 1 is g'(z_k) Σ_j W_jk δ_j, so these sums bound how far
    the weights can multiply the largest error (‖W‖₁, the induced norm for the largest entry)."""
    sums = []
    for node in derivation.model.network.layers:
        if node.layer.number < 2:
            continue
        for p in (p for p in node.parameters if p.kind == "W"):
            columns: dict = {}
            for (row, column), value in entries(example, p):
                columns[column] = columns.get(column, 0) + abs(value)
            sums.append((node.layer.number, max(columns.values())))
    return sums


def _errors(derivation: Derivation) -> list[Quantity]:
    """The named errors of the backward pass, from the output down (∂C/∂a⁽ᴸ⁾ excluded)."""
    return [k for k in backward_order(derivation) if not _is_parameter_gradient(k)]


# --------------------------------------------------------------------------------------------------
# the algorithm beside its code


def update_blocks(derivation: Derivation, text, refs) -> list:
    """The lesson's update, the algorithm's last step, displayed once here (review 23, defect 2): every
    parameter moves against the minibatch gradient, the engine's substituted update rule; the worked
    example and the training section refer to it."""
    key = "l" if "l" in derivation.updates else str(derivation.model.depth)
    steps = derivation.updates[key]  # each parameter: θ ← θ − η ∂C̄/∂θ, then = θ − (η/m) … (its substitution)
    results = [(step.lhs, after.rhs) for step, after in zip(steps, steps[1:])
               if step.rule == "gradient_descent" and after.rule != "gradient_descent"]
    return [blocks.Paragraph(text("algorithm.update_step", raw={"training": refs.section("update_rule")})),
            blocks.Aligned(tuple(blocks.Row(latex(lhs, matrix=True), latex(rhs, matrix=True), relation=r"\leftarrow")
                                 for lhs, rhs in results))]


def algorithm_blocks(derivation: Derivation, plan, text, refs) -> list:
    """Each line of `forward` and `gradients` of model.py beside the formula it was printed from, with
    the proof that the code's tanh form is the sigmoid (the lesson states it)."""
    batch = derivation.batch.results
    network = derivation.model.network
    formulas = [batch[node.output] for node in network.layers] + [batch[key] for key in backward_order(derivation)]
    code = list(plan.forward) + list(plan.backward)
    rows, texs = [], []
    softmax = {node.output: node.layer.number for node in network.layers
               if getattr(getattr(node.kind, "activation", None), "is_softmax", False)}
    outputs = [node.output for node in network.layers] + [None] * len(code)
    coded = tanh_coded(derivation)
    for n, (result, line, output) in enumerate(zip(formulas, code, outputs), start=1):
        # a sigmoid the code writes as ½ tanh(Z/2) + ½ keeps its own form here, 1/(1 + e^{-Z}): the Code column
        # has the tanh, and the note below the tables says they are one function (defect 9 of review 30)
        tex = f"{latex(result.matrix_lhs, matrix=True)} = {latex(result.matrix_rhs, matrix=True)}"
        if output in softmax:  # entry by entry, as a student writes it (the matrix form needs 1 1ᵀ)
            k = softmax[output]
            tex = rf"A^{{({k})}}_{{jr}} = e^{{Z^{{({k})}}_{{jr}}}} \Big/ \sum_{{j'}} e^{{Z^{{({k})}}_{{j'r}}}}"
        if text.fmt == "tex":  # ∂C̄/∂W⁽ˡ⁾ = (1/m) D⁽ˡ⁾ …: a displayed fraction made every row three lines high, and
            tex = slashed(tex)  # the 15 steps broke over two pages (zh review 26 §4); the other formats keep \frac
        rows.append((str(n), text.math(tex, display=True), _code(text, line)))  # a sum full size in the PDF
        texs.append(tex)
    header = (text("algorithm.line"), text("algorithm.formula"), text("algorithm.code"))
    forward = len(plan.forward)
    # the code's sigmoid is the same function in its tanh form (proved by sigmoid_tanh_identity)
    tanh = bool(coded) and any("np.tanh((1/2)*" in line.value for line in code)
    steps = [str(n) for n, output in enumerate(outputs, start=1) if output in coded]
    return _loop(derivation, text, refs) + [
        blocks.Paragraph(text("algorithm.intro", forward=forward, backward=len(plan.backward))),
        # two tables, each kept on one page: a table of 15 steps broke across two pages of the PDF
        blocks.Table(header, tuple(rows[:forward]), ("r", "l", "l"), code=True),
        blocks.Paragraph(text("algorithm.backward_table")),
        blocks.Table(header, tuple(rows[forward:]), ("r", "l", "l"), code=True),
        # what follows the table's last line, before the aside on the sigmoid's tanh form
        *([] if text.is_lesson else [
            blocks.Paragraph(text("algorithm.update", raw={"optimizer": refs.section("optimizer")}
                                  if "optimizer" in refs.sections else {"optimizer": refs.section("update_rule")}))]),
        # where the code's lines differ from their formulas (the bias broadcast, the sigmoid's tanh form): one paragraph
        *_code_notes(_broadcasting(texs, code, text)
                     + ([text("algorithm.tanh_one" if text.is_lesson and len(steps) == 1 else "algorithm.tanh", form=code_sigmoid_tex(),
                              steps=listed(steps, text),
                              raw={"activations": refs.section("activations"), "code": refs.section("code")})]
                        if tanh else []), text),
        *([tanh_steps()] if tanh and not text.is_lesson else []),
        # the lesson's last step, after the notes on the table's lines
        *(update_blocks(derivation, text, refs) if text.is_lesson else []),
    ]


def _code_notes(notes: list[str], text) -> list:
    """The remarks on how the code writes a formula, as one paragraph (two one-sentence paragraphs on the
    same table read as a list: zh review 21); none when there is nothing to remark."""
    return [blocks.Paragraph(text.raw("language.sentence_separator").join(notes))] if notes else []


BIAS_ADDED = re.compile(r"^\((W(\d+)) @ (A\d+)\) \+ (b\2)$")  # Z1 = (W1 @ A0) + b1: the bias added by broadcasting


def _broadcasting(formulas: list[str], code: list, text) -> list[str]:
    """One sentence on the first step whose formula spreads the bias over the samples (b 1ᵀ) while its
    code adds the column b as it is: NumPy's broadcasting does what 1ᵀ writes."""
    for step, (formula, line) in enumerate(zip(formulas, code), start=1):
        found = BIAS_ADDED.match(line.value.split(" = ", 1)[-1]) if r"\mathbf{1}^{\top}" in formula else None
        if found:
            weight, layer, read, bias = found.groups()
            return [text("algorithm.broadcast", step=step, layer=layer, bias=bias, product=f"{weight} @ {read}")]
    return []


def codes_sigmoid_as_tanh(expr: sp.Expr) -> bool:
    """Whether model.py writes a sigmoid inside this activation as tanh(z/2)/2 + 1/2 (the stable form
    `rewrite.stable_forms` gives the code): the sigmoid itself, and SiLU's factor. Its formula then
    differs from its line of code, so the lesson proves the two equal before the table of section 16."""
    z = next((s for s in expr.free_symbols if s.name == "z"), None) if expr is not None else None
    return z is not None and stable_forms(expr.subs(z, Z)).has(logistic_as_tanh(-Z)) and not expr.subs(z, Z).has(sp.tanh(Z / 2))


def tanh_coded(derivation: Derivation) -> dict:
    """The layers whose activation model.py computes with a sigmoid in its tanh form, each with the
    expression its line of code prints (`codegen.code_forms`), where that expression is the layer's
    formula once its tanh form is put back as the sigmoid (`sigmoid_tanh_identity` proves the two
    equal; SiLU's Z · σ(Z) is not rational in e^{Z/2}, so the rest is compared exactly, in w = e^{-Z});
    empty where no sigmoid is so coded."""
    network = derivation.model.network
    layers = [node for node in network.layers if codes_sigmoid_as_tanh(getattr(getattr(node.kind, "activation", None), "expr", None))]
    if not layers or not _tanh_form_proved():
        return {}
    from derive.codegen import code_forms

    forms, batch = code_forms(derivation), derivation.batch.results
    out = {}
    for node in layers:
        form, formula = forms[node.output], batch[node.output].matrix_rhs
        z = next(iter(formula.free_symbols), None) if len(formula.free_symbols) == 1 else None
        if z is None or not form.has(logistic_as_tanh(-z)):
            continue
        w = sp.Symbol("w", positive=True)
        difference = form.xreplace({logistic_as_tanh(-z): 1 / (1 + sp.exp(-z))}) - formula
        if sp.cancel(difference.subs(sp.exp(-z), w)) == 0:
            out[node.output] = form
    return out


def tanh_proof(derivation: Derivation, plan, text) -> list:
    """Appendix A of the lesson: why the code's ½ tanh(z/2) + ½ is the sigmoid, in two lines (section 6
    states it in one sentence; the proof in the main line was a digression: review 25, defect 1)."""
    if not (text.is_lesson and tanh_coded(derivation)
            and any("np.tanh((1/2)*" in line.value for line in (*plan.forward, *plan.backward))):
        return []
    return [blocks.Paragraph(text("code_lesson.tanh_proof", form=code_sigmoid_tex())), tanh_steps()]


@lru_cache(maxsize=None)
def code_sigmoid_tex() -> str:
    """The sigmoid as model.py writes it, ½ tanh(½ z) + ½, printed term by term as the table of the
    algorithm prints its rows (SymPy's default, tanh(z/2)/2 + 1/2, would not read as the code does)."""
    return DeriveLatexPrinter(settings={"long_frac_ratio": 0}).doprint(logistic_as_tanh(-Z))


@lru_cache(maxsize=None)
def tanh_steps() -> blocks.Aligned:
    """The two lines that show σ(z) = tanh(z/2)/2 + 1/2, each checked exactly (rational in e^{z/2})."""
    e = sp.exp(-Z)
    tanh_half = sp.tanh(Z / 2)
    rows = [(tanh_half, (1 - e) / (1 + e)), ((1 + tanh_half) / 2, 1 / (1 + e))]
    # the code's form is the second line's left side (the sentence prints it as the code has it)
    if sp.expand(logistic_as_tanh(-Z) - rows[1][0]) != 0 or not all(exp_identity_holds(lhs, rhs, Z) for lhs, rhs in rows):
        raise AssertionError("the steps of the sigmoid's tanh form do not hold")
    one, e_tex = r"1", r"e^{-z}"
    return blocks.Aligned((
        blocks.Row(r"\tanh\frac{z}{2}", rf"\frac{{{one} - {e_tex}}}{{{one} + {e_tex}}}"),
        blocks.Row(r"\frac{1}{2}\Bigl(1 + \tanh\frac{z}{2}\Bigr)",
                   rf"\frac{{1}}{{2}} \cdot \frac{{(1 + {e_tex}) + (1 - {e_tex})}}{{1 + {e_tex}}} = \frac{{1}}{{1 + {e_tex}}}")))


@lru_cache(maxsize=None)
def _tanh_form_proved() -> bool:
    """σ(z) = tanh(z/2)/2 + 1/2, proved once per run (every format prints the same sentence)."""
    return sigmoid_tanh_identity()[2]


def _loop(derivation: Derivation, text, refs) -> list:
    """The algorithm for any depth, as a loop over the layers (a chain of dense layers only: a
    network file's graph has no single recursion to loop over)."""
    if not derivation.model.is_chain:
        return []
    hidden = derivation.model.depth > 1  # one weight layer: no error is passed back
    bp2 = "" if not hidden else refs.equation("eq:bp2", "recursion") if derivation.general is not None \
        else refs.section("recursion")
    where = {"bp1": refs.equation("eq:bp1", "output_error"), "bp2": bp2, "bp34": refs.section("parameters")}
    from derive.lesson.general import general_forms  # the steps cite the general BP1/BP2, as section 1 does

    forms = general_forms(derivation)
    if forms is not None and hidden and forms.hidden is not None and derivation.general is not None:
        where |= {"bp1": refs.equation("eq:bp1-general", "output_error"),
                  "bp2": refs.equation("eq:bp2-general", "recursion")}
    keys = ("input", "forward", "output") + (("backward",) if hidden else ()) + ("gradients",)
    steps = [text(f"algorithm.step_{k}", raw=where) for k in keys]
    order = [blocks.Paragraph(text("algorithm.step_order"))] if hidden else []  # the table interleaves them
    return [blocks.ItemList(tuple(steps), intro=text("algorithm.loop")), *order]


def _code(text, line) -> str:
    """One line of code as a table cell; in print, see `tex_code`."""
    from derive.present import prose

    code = f"{line.target} = {line.value}"
    return tex_code(code) if text.fmt == "tex" else prose(f"`{code}`", text.fmt)


def tex_code(code: str) -> str:
    """A line of Python for a table cell in LaTeX that may wrap only where Python itself continues a
    line, inside brackets: at a space there, or after a product's `*`. A space outside brackets is
    tied, so the line never wraps mid-expression at the top level (`A1 = … +` / `1/2`) and a wrapped
    line copied from the PDF still runs."""
    from derive.present import tex_escape

    out, depth = [], 0
    for n, ch in enumerate(code):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == " ":
            out.append(" " if depth > 0 else "~")
        elif ch == "*" and depth > 0 and "*" not in (code[n - 1:n], code[n + 1:n + 2]):
            out.append(r"*\allowbreak{}")
        else:
            out.append(tex_escape(ch))
    return r"\texttt{" + re.sub(r"-(?=-)", "-{}", "".join(out)) + "}"  # -- stays two hyphens, as in tex_escape


# --------------------------------------------------------------------------------------------------
# a worked example


def _rounded(value, digits: int = DECIMALS):
    """A computed value to `digits` significant figures (halves rounded up, as a student rounds): the
    number the document prints, from which a reader's own arithmetic starts."""
    from decimal import ROUND_HALF_UP, Context, Decimal

    exact = Decimal(str(sp.N(value, 30)))
    return Decimal(0) if exact == 0 else Context(prec=digits, rounding=ROUND_HALF_UP).create_decimal(exact)


def _number(value, digits: int = DECIMALS) -> str:
    """A computed value to four significant figures, in LaTeX: 0.6900, -0.1240, and below 0.01 in
    scientific form, 1.795 \\cdot 10^{-3}, so that a small gradient keeps its four digits too."""
    rounded = _rounded(value, digits)
    if rounded == 0:
        return "0"
    exponent = rounded.adjusted()
    if exponent < -2:
        return rf"{rounded.scaleb(-exponent):f} {times_sign()} 10^{{{exponent}}}"
    return f"{rounded:f}"


def _from_printed(value, digits: int = DECIMALS) -> sp.Rational:
    """The printed (rounded) value as an exact number, for quantities a reader computes from it."""
    return sp.Rational(str(_rounded(value, digits)))


def _stated(value) -> str:
    """A stated value as it was given: 0.5, -0.4, 1."""
    return f"{float(value):g}"


class _Named(DeriveLatexPrinter):
    """Prints a formula whose entries are stand-ins (`names`: symbol → LaTeX), keeping the order the
    document printer gives the entries they stand for (`originals`). With `numbers`, products get a
    dot and negative numbers parentheses, so that (0.6225 − 1) · 0.6225 reads unambiguously."""

    def __init__(self, names: dict, originals: dict, numbers: bool = False):
        super().__init__()
        self.names, self.originals = names, originals
        if numbers:
            self.product_separator = r" \cdot "

    def _print_Symbol(self, expr, style="plain"):
        if expr in self.names:
            name = self.names[expr]
            return rf"\left({name}\right)" if name.startswith("-") else name
        return super()._print_Symbol(expr, style=style)

    def _factor_order(self, factors: list) -> list:
        return sorted(factors, key=lambda f: _factor_rank(f.xreplace(self.originals)))


def _matrix(values: list[tuple[tuple[int, ...], sp.Expr]], number=_number) -> str:
    """A column vector (written as a transposed row, to keep to one line) or a matrix of numbers."""
    if all(len(idx) == 1 for idx, _ in values):
        return r"\begin{pmatrix} " + " & ".join(number(v) for _, v in values) + r" \end{pmatrix}^{\top}"
    rows = sorted({idx[0] for idx, _ in values})
    lines = [" & ".join(number(v) for idx, v in values if idx[0] == r) for r in rows]
    return r"\begin{pmatrix} " + r" \\ ".join(lines) + r" \end{pmatrix}"


def _display_entry(quantity: Quantity, indices: tuple[int, ...]) -> str:
    """An entry counted from 1, as a reader numbers units: a^{(3)}_{1}, W^{(3)}_{12}."""
    numbers = [str(i + 1) for i in indices]
    return quantity.latex_entry(("," if any(len(n) > 1 for n in numbers) else "").join(numbers))


def _row(quantity: Quantity, example, table: str = "values", gradient: bool = False) -> blocks.Row:
    lhs = latex(sp.Derivative(sp.Symbol("C"), quantity.symbol)) if gradient else quantity.latex()
    if quantity.kind in ("grad_a",):
        lhs = latex(quantity.symbol)
    return blocks.Row(lhs, _matrix(entries(example, quantity, table)))


def _checked_unit(example, key: Quantity) -> int:
    """The unit whose error is checked by hand: the first whose error is not 0 (an inactive relu unit's
    check would only multiply by 0), else the first."""
    return next((idx[0] for idx, v in entries(example, key) if v != 0), 0)


def _passed_unchanged(derivation: Derivation, example, checked: list[Quantity]) -> dict | None:
    """The hand-checked hidden unit, when its activation's slope there is exactly 1 (an active relu
    unit): layer, unit (from 1), its pre-activation as 'z^{(2)}_{2} = 0.4600' and the layer whose
    errors it sums; None when no checked unit is such a unit."""
    slopes = {node.layer.number: node.kind.activation for node in derivation.model.network.layers
              if getattr(node.kind, "activation", None) is not None and not node.kind.activation.is_vector}
    for key in checked:
        layer = key.layer.number if key.layer is not None else None
        if key.kind != "delta" or layer not in slopes or layer == derivation.model.depth:
            continue
        unit = _checked_unit(example, key)
        z = dict(entries(example, Q("z", key.layer))).get((unit,))
        if z is not None and sp.diff(slopes[layer].expr, Z).subs(Z, z) == 1:
            return {"layer": layer, "unit": unit + 1, "next": layer + 1,
                    "z": f"{_display_entry(Q('z', key.layer), (unit,))} = {_number(z)}"}
    return None


def _unchecked_unit(example, key: Quantity) -> int:
    """The first unit the text does not check by hand: an exercise asks for it."""
    return next(idx[0] for idx, _ in entries(example, key) if idx[0] != _checked_unit(example, key))


# the hand checks of the last derivation a document was built for: (derivation, example, {slot: check})
_HAND_CHECKS: list = [None, None, {}]


def _hand_check(derivation: Derivation, example, key: Quantity, unit: int | None = None,
                digits: int | None = None) -> tuple[blocks.Aligned, str, str, int] | None:
    """`_computed_hand_check`, once per derivation: every format prints the same check (computed
    again, it took a third of the LaTeX document's worked example). Only the last derivation's checks
    are kept, so a process that derives many networks holds none of the others."""
    if _HAND_CHECKS[0] is not derivation or _HAND_CHECKS[1] is not example:
        _HAND_CHECKS[:] = [derivation, example, {}]
    slot = (key, unit, digits, current_words())  # a piecewise formula prints the document language's "if"
    if slot not in _HAND_CHECKS[2]:
        _HAND_CHECKS[2][slot] = _computed_hand_check(derivation, example, key, unit, digits or HAND_DIGITS)
    return _HAND_CHECKS[2][slot]


def _computed_hand_check(derivation: Derivation, example, key: Quantity, unit: int | None = None,
                         fewest: int = HAND_DIGITS) -> tuple[blocks.Aligned, str, str, int] | None:
    """δ of one unit of a layer, by default the first active one (the first whose error is not 0: an
    inactive relu unit's check would only multiply by 0): its formula, the formula with the numbers in,
    and what those numbers give; also that result and the exact value, both as printed, and the
    significant figures of the computed numbers put in. Those carry `fewest` figures, or more
    where needed, so that a reader who multiplies them out gets the printed value (review 22, defect
    9: with four, the sigmoid's δ⁽²⁾₁ came out 7.653·10⁻³ against 7.652·10⁻³)."""
    result = derivation.sample.results[key]
    if len(result.free) != 1:
        return None
    (q,) = result.free
    unit = _checked_unit(example, key) if unit is None else unit
    expanded = result.rhs.xreplace({q: sp.Integer(unit)}).xreplace(example.sizes).doit()
    stand_in, originals, names, values, stated = {}, {}, {}, {}, set()
    for n, entry in enumerate(sorted(expanded.atoms(sp.Indexed), key=sp.default_sort_key)):
        quantity = quantity_of(str(entry.base.label))
        indices = tuple(int(i) for i in entry.indices)
        value = example.values.get((str(entry.base.label), indices))
        if quantity is None or value is None:
            return None
        symbol = stand_in[entry] = sp.Symbol(f"entry{n:03d}")  # named, so that the order is the same every run
        originals[symbol] = entry
        names[symbol] = _display_entry(quantity, indices)
        values[symbol] = value
        if (str(entry.base.label), indices) in example.point:
            stated.add(symbol)
    formula = expanded.xreplace(stand_in)
    value = example.values[(key.label, (unit,))]
    for digits in range(fewest, HAND_DIGITS_MOST + 1):
        numbers = {s: _stated(v) if s in stated else _number(v, digits) for s, v in values.items()}
        printed = {s: sp.nsimplify(v) if s in stated else _from_printed(v, digits) for s, v in values.items()}
        by_hand = formula.xreplace(printed)  # what a reader gets from the numbers as printed
        if _number(by_hand) == _number(value):
            break
    return (blocks.Aligned((blocks.Row(_display_entry(key, (unit,)), _Named(names, originals).doprint(formula)),
                            blocks.Row("", _Named(numbers, originals, numbers=True).doprint(formula)),
                            blocks.Row("", _number(by_hand)))), _number(by_hand), _number(value), digits)


def _inactive_units(derivation: Derivation, example, errors: list[Quantity]) -> list[tuple[int, int, str, bool]]:
    """The units whose error is exactly 0 because their activation's slope is 0 there (a relu at
    z < 0): layer, unit (from 1), pre-activation as 'z^{(2)}_{1} = -0.1800', and whether its
    activation is 0 too."""
    found = []
    slopes = {node.layer.number: node.kind.activation for node in derivation.model.network.layers
              if getattr(node.kind, "activation", None) is not None and not node.kind.activation.is_vector}
    for key in errors:
        if key.kind != "delta" or key.layer.number not in slopes:
            continue
        z_values = dict(entries(example, Q("z", key.layer)))
        derivative = sp.diff(slopes[key.layer.number].expr, Z)
        for idx, value in entries(example, key):
            z = z_values.get(idx)
            if value == 0 and z is not None and z < 0 and derivative.subs(Z, z) == 0:
                silent = slopes[key.layer.number].expr.subs(Z, z) == 0  # its activation is 0 as well
                found.append((key.layer.number, idx[0] + 1, f"{_display_entry(Q('z', key.layer), idx)} = {_number(z)}", silent))
    return found


def _updated(example, parameters) -> blocks.Aligned:
    """Every parameter after the worked example's step, θ ← its updated matrix."""
    return blocks.Aligned(tuple(blocks.Row(p.latex(), _matrix(entries(example, p, "updated")), relation=r"\leftarrow")
                                for p in parameters))


def _zero_parts(example, parameters, inactive, text, columns: bool) -> dict[str, str]:
    """The parts of the gradients an inactive unit leaves at 0, named by layer and number: row j of
    dC/dW(l) and entry j of dC/db(l), and (`columns`: its activation is 0 as well) column j of
    dC/dW(l+1); each checked against the example's gradients, so that the sentence cannot claim a
    zero the numbers below do not show."""
    def gradient(kind, layer):
        found = [p for p in parameters if p.kind == kind and p.layer.number == layer]
        return dict(entries(example, found[0], "gradients")) if found else None
    rows, cols = [], []
    for layer, unit, _, silent in inactive:
        weights, biases = gradient("W", layer), gradient("b", layer)
        ensure(weights is not None and all(v == 0 for idx, v in weights.items() if idx[0] == unit - 1), "the named row is 0")
        ensure(biases is not None and all(v == 0 for idx, v in biases.items() if idx[0] == unit - 1), "the named entry is 0")
        rows.append(text("example.zero_row", layer=layer, unit=unit))
        if columns and silent:
            after = gradient("W", layer + 1)
            ensure(after is not None and all(v == 0 for idx, v in after.items() if idx[1] == unit - 1), "the named column is 0")
            cols.append(text("example.zero_column", layer=layer + 1, unit=unit))
    join = text.raw("refs.list_separator").join
    return {"rows": join(rows), "columns": join(cols)}


def figure_reference(text, label: str) -> str:
    """"Figure 2" in prose: LaTeX's \\ref, tied to its word; Markdown and HTML get the number from
    `number_pictures`."""
    from derive.present import _tie

    figure = text("refs.figure", raw={"number": rf"\ref{{{label}}}"})
    return _tie(figure) if text.fmt == "tex" else figure


def example_blocks(lesson: Lesson, derivation: Derivation, text, refs, exercise: bool = True,
                   update: bool = True, ratio: bool = True) -> list:
    """The worked example (`exercise`: end the hand checks with a "your turn"; the MLP document poses
    its exercises in a section of their own, with the answers in an appendix; `update`: end with the
    step of gradient descent, which the MLP document takes after the algorithm has given the update,
    `example_update_blocks`; `ratio`: the ratio of the errors against its bound here, which the MLP
    document says in its section on learning instead, `example_ratio_blocks`)."""
    example = lesson.example
    network = derivation.model.network
    arithmetic = text("example.exact") if example.exact else text("example.digits", digits=50)
    sizes = text.raw("refs.list_separator").join("2" for _ in derivation.model.sizes)
    own = text.raw("refs.list_separator").join(str(n) for n in derivation.model.sizes)
    shrunk = any(n != 2 for n in derivation.model.sizes)  # a copy of this network with two units per layer
    out = [blocks.Paragraph(text("example.intro_shrunk" if shrunk else "example.intro", sizes=sizes, own=own,
                                 arithmetic=arithmetic)),
           blocks.Aligned((blocks.Row("x", _matrix(entries(example, Q("a", 0)), _stated)),
                           blocks.Row("y", _matrix(entries(example, Q("y")), _stated))))]
    drawn = example_picture.picture_block(lesson, derivation, text)
    if drawn is not None:  # the network with its numbers (review 23, defect 10), cited by its number
        out += [blocks.Paragraph(text("example.figure_intro", raw={"figure": figure_reference(text, drawn.label)})), drawn]
    parameters = [p for node in network.layers for p in node.parameters]
    out += [blocks.Paragraph(text("example.parameters")),
            blocks.Aligned(tuple(blocks.Row(p.latex(), _matrix(entries(example, p), _stated)) for p in parameters))]
    forward = [node.output for node in network.layers]
    loss_row = blocks.Row("C", _number(example.loss))
    out += [blocks.Paragraph(text("example.forward")),
            blocks.Aligned(tuple(_row(q, example) for q in forward) + (loss_row,))]
    errors = _errors(derivation)
    out += [blocks.Paragraph(text("example.backward")),
            blocks.Aligned(tuple(_row(q, example) for q in errors))]
    if ratio and "meaning" in refs.sections:
        out += example_ratio_blocks(lesson, derivation, text, refs)
    deltas = [key for key in errors if key.kind == "delta"][:2]
    checks = [(key, c) for key, c in ((key, _hand_check(derivation, example, key)) for key in deltas) if c]
    digits = max((c[3] for _, c in checks), default=HAND_DIGITS)  # one precision for all the checks
    checks = [(key, _hand_check(derivation, example, key, digits=digits)) for key, _ in checks]
    if checks:
        out.append(blocks.Paragraph(text("example.hand", digits=digits)))
        for key, (display, by_hand, exact, _) in checks:
            out.append(display)
            if by_hand != exact:  # even HAND_DIGITS_MOST figures move the last digit: said, not hidden
                out.append(blocks.Paragraph(text("example.rounding", by_hand=by_hand, exact=exact)))
        inactive = _inactive_units(derivation, example, errors)
        passed = _passed_unchanged(derivation, example, [key for key, _ in checks]) if inactive else None
        if passed is not None:  # the checked hidden unit is active: its error went back through it
            out.append(blocks.Paragraph(text("example.active", **passed)))
        if inactive and "meaning" in refs.sections:
            units = text.raw("example.unit_separator").join(
                text("example.unit", layer=layer, unit=unit, z=z) for layer, unit, z, _ in inactive)
            key = "example.inactive_silent" if all(silent for *_, silent in inactive) else "example.inactive"
            named = {}
            if text.raw("language.name_zero_rows"):  # the zero rows and columns by their numbers (zh issue 13)
                named = _zero_parts(example, parameters, inactive, text, columns=key.endswith("_silent"))
                key += "_named"
            out.append(blocks.Paragraph(text(key, units=units, **named)))
        if exercise:
            first_units = all(_checked_unit(example, key) == 0 for key, _ in checks)
            out.append(blocks.Paragraph(text("example.exercise" if first_units else "example.exercise_other")))
    out += [blocks.Paragraph(text("example.gradients")),
            blocks.Aligned(tuple(blocks.Row(latex(sp.Derivative(sp.Symbol("C"), p.symbol)), _matrix(entries(example, p, "gradients")))
                                 for p in parameters))]
    return out + (_update_step(lesson, derivation, text, refs) if update else [])


def example_update_blocks(lesson: Lesson, derivation: Derivation, text, refs) -> list:
    """The worked example, continued after the algorithm's last step: its update with numbers (one
    weight by hand, every parameter after the step, the loss after it)."""
    return [blocks.Paragraph(text("example.continued", raw={"example": refs.section("example")})),
            *_update_step(lesson, derivation, text, refs)]


def _update_step(lesson: Lesson, derivation: Derivation, text, refs) -> list:
    """One step of gradient descent on the worked example, and the loss after it."""
    example = lesson.example
    parameters = [p for node in derivation.model.network.layers for p in node.parameters]
    out = []
    rate = f"{float(example.learning_rate):g}"
    changed = "fall" if example.loss_after < example.loss else "rise"
    eta = latex(LEARNING_RATE)
    rule = tuple(blocks.Row(q, rf"{q} - {eta} \frac{{\partial C}}{{\partial {q}}}", relation=r"\leftarrow")
                 for q in ("W^{(l)}", "b^{(l)}"))  # a display: inline, the rule broke at its minus
    if text.is_lesson:  # the update is displayed once, as the algorithm's last step (review 23, defect 2)
        # one entry worked by hand, then every parameter after the step, as `full` prints them (review 27, item 1)
        first = parameters[0]
        idx, stated = entries(example, first)[0]
        gradient = dict(entries(example, first, "gradients"))[idx]
        after = dict(entries(example, first, "updated"))[idx]
        shown = _number(gradient)
        by_hand = (rf"{_stated(stated)} - {_stated(example.learning_rate)} \cdot "
                   + (rf"\left({shown}\right)" if shown.startswith("-") else shown) + f" = {_number(after)}")
        out += [blocks.Paragraph(text("example.update_back", rate=rate, eta=eta, weight=_display_entry(first, idx),
                                      raw={"algorithm": refs.section("algorithm")})),
                blocks.Aligned((blocks.Row(_display_entry(first, idx), by_hand, relation=r"\leftarrow"),)),
                blocks.Paragraph(text("example.updated_all")),
                _updated(example, parameters)]
    else:
        out += [blocks.Paragraph(text("example.update", raw={"update": refs.section("update_rule")})),
                blocks.Aligned(rule)]
    if not text.is_lesson:  # every updated parameter (the lesson has printed them with its update, above)
        out += [blocks.Paragraph(text("example.rate", rate=rate, eta=eta)),
                _updated(example, parameters)]
    return out + [blocks.Paragraph(text(f"example.{changed}", before=_number(example.loss),
                                        after=_number(example.loss_after), rate=rate, eta=eta))]


# --------------------------------------------------------------------------------------------------
# why backpropagation is fast


def cost_blocks(lesson: Lesson, text) -> list:
    c = lesson.costs
    rows = []
    for key, count in (("forward", c.forward), ("errors", c.errors), ("gradients", c.gradients)):
        rows.append((text(f"cost.{key}"), text.math(_breakable(latex(count.symbolic))), str(count.value)))
    rows.append((text("cost.backpropagation"), "", str(c.backpropagation)))
    rows.append((text("cost.finite_differences"), text.math(_breakable(latex(c.finite_differences.symbolic))),
                 str(c.finite_differences.value)))
    header = (text("cost.part"), text("cost.formula"), text("cost.value"))
    backward = c.errors.value + c.gradients.value
    return [
        blocks.Paragraph(text("cost.intro", parameters=c.parameters.value)),
        blocks.Paragraph(text("cost.parameters_chain", sum=c.by_layer, value=c.parameters.value) if c.by_layer
                         else text("cost.parameters_count", value=c.parameters.value)),
        # the labels wrap ragged right in a wider first column; the formulas, printed with plain
        # parentheses, may wrap after a + (a \left( … \right) pair never breaks, and ran into the figures)
        blocks.Table(header, tuple(rows), (r">{\raggedright\arraybackslash}p{0.34\textwidth}",
                                           r">{\raggedright\arraybackslash}p{0.47\textwidth}", "r")),
        blocks.Paragraph(text("cost.result", forward=c.forward.value, backward=backward,
                              passes=c.parameters.value + 1, one_sided=(c.parameters.value + 1) * c.forward.value,
                              backward_ratio=f"{backward / c.forward.value:.2g}" if c.forward.value else "0",
                              total=c.backpropagation, total_ratio=cost_ratio(lesson), finite=c.finite_differences.value,
                              ratio=f"{c.finite_differences.value / c.backpropagation:.0f}" if c.backpropagation else "0",
                              parameters=c.parameters.value)),
        # a chain of dense layers: why at most three forward passes, with the products the first
        # layer saves (its error is never passed back to the input), counted from the formulas
        *([blocks.Paragraph(text("cost.bound", forward=c.forward.value, saved=c.saved.value, total=c.backpropagation,
                                 raw={"saved_formula": latex(c.saved.symbolic)})),
           blocks.Paragraph(text("cost.note_chain"))] if _first_layer_saves(c) else [blocks.Paragraph(text("cost.note"))]),
        # the lesson's section 1 promises without counting; its price in memory is counted here with the rest
        *([blocks.Paragraph(text("cost.memory", stored=c.stored, inputs=c.kept[0], units=c.kept[1],
                                 parameters=c.parameters.value))] if text.is_lesson and c.kept[1] else []),
    ]


def _first_layer_saves(costs) -> bool:
    """A chain of dense layers whose backward pass is twice the forward pass less the products of
    the first layer's weights (the counts checked, not assumed): then backpropagation costs three
    forward passes less the first layer's share of the weights."""
    if costs.by_layer is None or not costs.kept[1]:
        return False
    first = sp.Symbol("n_0", integer=True, positive=True) * sp.Symbol("n_1", integer=True, positive=True)
    return {str(f) for f in sp.Mul.make_args(costs.saved.symbolic)} == {str(f) for f in sp.Mul.make_args(first)}


def _breakable(tex: str) -> str:
    """A product of sums with plain parentheses, which TeX may break inside (after a +) in a table cell."""
    return tex.replace(r"\left(", "(").replace(r"\right)", ")")


def cost_ratio(lesson: Lesson) -> str:
    c = lesson.costs
    return f"{c.backpropagation / c.forward.value:.1f}" if c.forward.value else "1"


__all__ = ["motivation_blocks", "learn_blocks", "method_blocks", "loss_choice_blocks", "meaning_blocks", "algorithm_blocks",
           "example_blocks", "cost_blocks", "cost_ratio", "tex_code"]
