"""The document of a network that is not a chain of dense layers follows the lesson's order and
checks: notation before the big picture, the reader's own gradient check at the top of appendix B
(its numbers recomputed here, the residual network's by PyTorch), and no count of slopes from the
output back to δ⁽¹⁾ where paths branch and some pass fewer of them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import sympy as sp

from derive.lesson import study
from derive.lesson.practice import STEP, central_difference, moving_weight
from derive.model import make_net_spec
from derive.run import generate
from conftest import NO_TORCH, optional_torch

ROOT = Path(__file__).resolve().parent.parent
torch = optional_torch()


def outcome_for(name: str, lang: str = "en"):
    return generate(replace(make_net_spec(str(ROOT / "examples" / f"{name}.toml"), lang=lang), formats=("md", "tex")))


@pytest.fixture(scope="module")
def residual():
    return outcome_for("residual_mlp")


@pytest.fixture(scope="module")
def cnn():
    return outcome_for("cnn_lenet_like")


def _md(outcome) -> str:
    return outcome.files["derivation.md"].decode()


def _section(md: str, start: str) -> str:
    """The text of the section whose heading starts with `start`, up to the next section."""
    return re.search(rf"^## {re.escape(start)}.*?(?=^## )", md, re.S | re.M).group(0)


def _printed(number: str) -> float:
    """'0.07201801405' or '1.794511185 \\cdot 10^{-3}' as a float."""
    match = re.fullmatch(r"(-?[0-9.]+)(?: \\cdot 10\^\{(-?\d+)\})?", number.strip())
    return float(match.group(1)) * 10.0 ** int(match.group(2) or 0)


def _box(md: str) -> dict[str, float]:
    """The box's four numbers: the two losses, their slope and the derived gradient."""
    box = _section(md, "B. ").split("Every formula of this document")[0]
    rows = re.findall(r"^(.*?) &= (.*?) \\\\$|^(\\frac\{\\partial C\}.*?) &= (.*?)$", box, re.M)
    values = [_printed(a[1] or a[3]) for a in rows]
    assert len(values) == 4, box
    return dict(zip(("up", "down", "slope", "gradient"), values))


@pytest.mark.parametrize("which", ["residual", "cnn"])
def test_notation_comes_before_the_big_picture(which, residual, cnn):
    headings = re.findall(r"^## (\d+)\. (.*)$", _md(residual if which == "residual" else cnn), re.M)
    assert headings[1:3] == [("2", "Notation"), ("3", "The big picture")]


@pytest.mark.parametrize("which", ["residual", "cnn"])
def test_every_symbol_is_defined_before_its_first_use(which, residual, cnn):
    """The notation check of the lesson on the documents as the code writes them now: every symbol in
    the notation table, in a later section's table or in its one-symbol sentence, before it is used."""
    from test_lesson import notation_problems, unused_symbols

    tex = (residual if which == "residual" else cnn).files["derivation.tex"].decode()
    assert notation_problems(tex) == [] and unused_symbols(tex) == []


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
def test_the_residual_box_prints_pytorchs_gradient_and_slope(residual):
    """The gradient of W⁽¹⁾₁₁ and the central difference, recomputed at the worked example's point by
    the network written directly in PyTorch (float64: the slope's own error at h = 10⁻⁴ is ~10⁻⁹)."""
    box = _box(_md(residual))
    point = study(residual.derivation).example.point
    value = lambda label, shape: torch.tensor([[float(point[(label, (i, j) if len(shape) == 2 else (i,))])  # noqa: E731
                                                for j in range(shape[1])] if len(shape) == 2 else
                                               float(point[(label, (i,))]) for i in range(shape[0])],
                                              dtype=torch.float64)
    W1, W2, W4 = (value(f"W_{n}", (2, 2)).requires_grad_() for n in (1, 2, 4))
    b1, b2, b4 = (value(f"b_{n}", (2,)) for n in (1, 2, 4))
    x, y = value("a_0", (2,)), value("y", (2,))

    def loss(W1):
        a1 = torch.tanh(W1 @ x + b1)
        a3 = a1 + torch.tanh(W2 @ a1 + b2)
        return (((W4 @ a3 + b4) - y) ** 2).sum() / 2

    C = loss(W1)
    C.backward()
    assert box["gradient"] == pytest.approx(float(W1.grad[0, 0]), rel=1e-9)
    nudge = torch.zeros(2, 2, dtype=torch.float64)
    nudge[0, 0] = float(STEP)
    moved = [float(loss(W1.detach() + sign * nudge).detach()) for sign in (1, -1)]
    assert box["up"] == pytest.approx(moved[0], rel=1e-9)
    assert box["down"] == pytest.approx(moved[1], rel=1e-9)
    assert box["slope"] == pytest.approx(box["gradient"], rel=1e-7)


def test_the_cnn_document_has_no_box(cnn):
    """A network with windows gets no gradient check: its 50-digit passes cost a third of `derive cnn`'s
    time budget (see `lesson.study`); nothing is printed in its place."""
    md = _md(cnn)
    assert study(cnn.derivation).check is None
    assert "Check your gradient yourself" not in md and "smaller copy of this network" not in md


@pytest.fixture(scope="module")
def attention():
    return outcome_for("attention_causal")


def test_the_token_box_difference_shrinks_like_the_step_squared(attention):
    """A network that prints no worked example (tokens) still gets the box, at a smaller copy: the slope
    approaches the derived gradient a hundredfold for a tenfold smaller step, which a wrong gradient
    (a difference that does not shrink) could not do; the document prints these numbers."""
    md = _md(attention)
    assert not re.search(r"^## \d+\. A worked example", md, re.M) and "smaller copy of this network" in md
    point = study(attention.derivation).point
    large, small = (central_difference(attention.derivation, point, h, moving_weight) for h in (STEP * 10, STEP))
    assert 50 < large.relative / small.relative < 200
    box = _box(md)
    assert box["gradient"] == pytest.approx(float(small.gradient), rel=1e-9)
    assert box["slope"] == pytest.approx(float(small.slope), rel=1e-9)
    assert small.relative < sp.Rational(1, 10**8)


def test_the_slope_count_is_left_out_where_paths_branch(residual, cnn):
    """Along the skip connection the error passes one tanh, not two: the sentence that counts the
    slopes from the output to δ⁽¹⁾ is not printed for the residual network; the CNN, one path, keeps it."""
    count = "From the output layer's error back to"
    assert count not in _section(_md(residual), "11. ")
    assert count in _section(_md(cnn), "12. ")


def test_the_skip_paragraph_only_where_a_layer_skips_one(residual):
    """Attention reads one output three times (queries, keys, values) but skips no layer: no paragraph
    on skip connections there; the residual network has one, citing the backward pass once."""
    from derive.present_graph import _skips
    from derive.run import build_model, derive_in_parallel

    attention = derive_in_parallel(build_model(make_net_spec(str(ROOT / "examples" / "attention_causal.toml"))))
    assert not _skips(attention) and _skips(residual.derivation)
    meaning = _section(_md(residual), "11. ")
    assert meaning.count("**Skip connections.**") == 1 and "section section" not in meaning


def _errors_at(derivation, scale_w2: float, seed: int) -> dict:
    """The residual network at width 2 and a random point (W⁽²⁾ scaled by `scale_w2`): the values of
    every named error and every weight, by the engine's own evaluation."""
    import random

    from derive.lesson.worked_example import WIDTH, stated_point
    from derive.verify_symbolic import concrete_sizes, evaluate_pass

    rng = random.Random(seed)
    point = {key: sp.Rational(rng.randint(-200, 200), 100) * (sp.Rational(scale_w2) if key[0] == "W_2" else 1)
             for key in stated_point(derivation)}
    values, _ = evaluate_pass(derivation, False, point, concrete_sizes(derivation.model, WIDTH, None))
    return values


def _largest(values: dict, label: str) -> float:
    return max(abs(float(v)) for (name, _), v in values.items() if name == label)


def _norm(values: dict, label: str) -> float:
    """The largest column sum of |W|."""
    columns: dict = {}
    for (name, (i, j)), v in ((k, v) for k, v in values.items() if k[0] == label):
        columns[j] = columns.get(j, 0.0) + abs(float(v))
    return max(columns.values())


def test_the_residual_bound_holds_and_the_chains_would_not(residual):
    """The printed bound max|δ⁽¹⁾| ≤ (‖W⁽²⁾‖₁‖W⁽⁴⁾‖₁ + ‖W⁽⁴⁾‖₁) max|δ⁽⁴⁾| (tanh: slopes at most 1) holds
    at 40 random points; the chain's ‖W⁽²⁾‖₁‖W⁽⁴⁾‖₁ max|δ⁽⁴⁾| fails where W⁽²⁾ is small, since the
    error still reaches layer 1 through the skip connection."""
    from derive.lesson.graph_bound import error_bound

    derivation = residual.derivation
    bound = error_bound(derivation, study(derivation).slopes)
    printed = _section(_md(residual), "11. ")
    assert sp.latex(bound.factor, symbol_names=bound.names) in printed
    chain_fails = 0
    for seed in range(40):
        values = _errors_at(derivation, 1 if seed % 2 else 0.01, seed)
        norms = {symbol: _norm(values, str(symbol).removeprefix("norm_")) for symbol in bound.factor.free_symbols}
        delta1, delta4 = _largest(values, "delta_1"), _largest(values, "delta_4")
        assert delta1 <= float(bound.factor.subs(norms)) * delta4 * (1 + 1e-12)
        chain = _norm(values, "W_2") * _norm(values, "W_4") * delta4
        chain_fails += delta1 > chain
    assert chain_fails >= 5


def test_no_bound_through_a_node_that_states_no_gain():
    """Dropout scales the kept errors by 1/(1 − p): a dense chain's bound would be false, so none is printed."""
    from derive.lesson.graph_bound import error_bound
    from derive.lesson.slopes import path_bound
    from derive.run import build_model, derive_in_parallel

    dropout = derive_in_parallel(build_model(make_net_spec(str(ROOT / "examples" / "dropout_mlp.toml"))))
    assert error_bound(dropout, path_bound(dropout)) is None
