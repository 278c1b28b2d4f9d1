"""Why this loss: the output error of the chosen loss beside the error of its usual alternative.

For a sigmoid or softmax output, mean squared error and cross entropy lead to different output
errors: with squared error δ keeps the factor g′(z), which is nearly 0 when the output saturates, so
a unit that is confidently wrong learns slowly; with cross entropy that factor cancels. Both errors
are derived here by the engine itself (the loss node's gradient, then the chain rule through the
output node, exactly as for the document's own loss) and evaluated at a saturated, wrong output, so
the reader sees the slowdown as a number, not as a claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.backprop import Result, gradient_through, loss_gradient, named_gradient
from derive.catalog import Loss
from derive.catalog.losses import resolve_loss
from derive.derivation import Derivation
from derive.indexing import assume_sizes
from derive.layers import Node
from derive.layers.loss import LossKind
from derive.matrixform import evaluate_index_form
from derive.notation import Q, size

# output activation → the loss pairs a lesson compares (the chosen one is either of them)
PAIRS = {"sigmoid": ("mse", "bce"), "softmax": ("mse", "ce")}
# the saturated, wrong output where the two errors are compared: the output says (0.99, 0.01), the
# target (0, 1); near (1, 0) rather than at it, where cross entropy is infinite and y/a divides by 0
SATURATED, WRONG = (sp.Rational(99, 100), sp.Rational(1, 100)), (0, 1)


@dataclass(frozen=True)
class LossError:
    """One loss: δ⁽ᴸ⁾ in index and matrix form, and δ at the saturated, wrong output (None when the
    formula needs z, not only a and y)."""

    loss: Loss
    delta: Result
    saturated: tuple[sp.Expr, ...] | None
    steps: tuple = ()  # how the engine derived δ⁽ᴸ⁾ for the other loss (the chosen one's are in its section)


@dataclass(frozen=True)
class LossComparison:
    chosen: LossError
    other: LossError


def alternative(derivation: Derivation) -> str | None:
    """The loss to compare with, or None when the output activation and the loss are not such a pair."""
    model = derivation.model
    output = model.network.producers[model.network.output]
    activation = getattr(output.kind, "activation", None)
    if activation is None or activation.name not in PAIRS or model.loss.is_custom:
        return None
    pair = PAIRS[activation.name]
    if model.loss.name not in pair:
        return None
    return pair[1] if model.loss.name == pair[0] else pair[0]


def _output_error(derivation: Derivation, loss: Loss) -> tuple[Result, tuple]:
    """δ⁽ᴸ⁾ for another loss on the same output node: the loss's gradient, then the chain rule; the
    result and every step, as for the document's own loss."""
    network = derivation.model.network
    output = network.producers[network.output]
    node = Node(LossKind(loss), network.loss_node.layer, network.loss_node.inputs)
    with assume_sizes(network.size_facts):
        upstream, flow, _ = loss_gradient(node, False)
        steps, value, lhs = gradient_through([(output, 0, flow)], False, named=True,
                                             probability_targets=loss.target == "probability")
        result = named_gradient(output.inputs[0], steps, value, lhs, False)
        return result, (tuple(upstream), tuple(steps))


def _saturated(derivation: Derivation, delta: Result) -> tuple[sp.Expr, ...] | None:
    """δ at a = (0.99, 0.01), y = (0, 1), two output units: a unit that is confidently wrong."""
    output = derivation.model.network.output
    a, y = output.label, Q("y").label
    names = {str(e.base.label) for e in delta.rhs.atoms(sp.Indexed)}
    if not names <= {a, y}:
        return None
    values = {(a, (k,)): sp.Rational(v) for k, v in enumerate(SATURATED)}
    values |= {(y, (k,)): sp.Integer(v) for k, v in enumerate(WRONG)}
    env = {size(output.layer): len(SATURATED)}
    (q,) = delta.free
    return tuple(evaluate_index_form(delta.rhs, values, {**env, q: k}) for k in range(len(SATURATED)))


def compare_losses(derivation: Derivation) -> LossComparison | None:
    other = alternative(derivation)
    if other is None:
        return None
    model = derivation.model
    own = derivation.sample.results[model.network.producers[model.network.output].inputs[0].gradient]
    other_loss = resolve_loss(other)
    alt, steps = _output_error(derivation, other_loss)
    return LossComparison(LossError(model.loss, own, _saturated(derivation, own)),
                          LossError(other_loss, alt, _saturated(derivation, alt), steps))


def evaluate_error(derivation: Derivation, delta: Result, example) -> tuple[sp.Expr, ...]:
    """δ⁽ᴸ⁾ of a loss at the worked example's output and target, entry by entry."""
    output = derivation.model.network.output
    (q,) = delta.free
    count = sum(1 for (label, _) in example.values if label == output.label)
    return tuple(evaluate_index_form(delta.rhs, example.values, {**example.sizes, q: k}) for k in range(count))


def softmax_jacobian_at_saturation() -> sp.Matrix:
    """J = diag(a) − a aᵀ at the saturated output: how little a softmax there lets through."""
    a = sp.Matrix(SATURATED)
    return sp.diag(*SATURATED) - a * a.T


__all__ = ["LossComparison", "LossError", "compare_losses", "alternative", "softmax_jacobian_at_saturation",
           "SATURATED", "WRONG", "evaluate_error"]
