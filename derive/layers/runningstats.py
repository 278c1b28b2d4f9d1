"""Evaluation mode of the statistics over the minibatch (batch normalisation): running statistics.

While training, PyTorch's batch_norm keeps for every unit a running mean and a running variance,
running = (1 − momentum)·running + momentum·(statistic of the minibatch), momentum 0.1, the
variance unbiased (divided by m − 1); in evaluation mode it normalises with them. This module gives,
for each step over the minibatch, the statistic it keeps, its output in evaluation mode and the code
of the batch statistic; `derive.codegen_running` prints the functions of the generated module.
"""

from __future__ import annotations

import sympy as sp

from derive.layers.base import Node
from derive.layers.normalise import EPSILON, Centre
from derive.notation import Q, Quantity, register_quantity

register_quantity("running_mean", r"\bar{\mu}", "running_mean", 1, "param")
register_quantity("running_var", r"\bar{\sigma}^{2}", "running_var", 1, "param")
MOMENTUM = sp.Rational(1, 10)  # PyTorch's default momentum of the running statistics


def running_statistic(node: Node) -> Quantity | None:
    """The running statistic a step over the minibatch keeps for evaluation: the centring its mean,
    the scaling its variance; None for a step over the features (no evaluation mode of its own)."""
    if not getattr(node.kind, "over_samples", False):
        return None
    return Q("running_mean" if isinstance(node.kind, Centre) else "running_var", node.layer)


def evaluation_form(node: Node) -> sp.Expr | None:
    """The node's output in evaluation mode as a matrix-form expression: the running statistic in
    place of the batch's (stated, not derived: evaluation computes no gradient)."""
    from derive.matrixform import ColBroadcast

    stat = running_statistic(node)
    if stat is None:
        return None
    x = node.input(True).symbol
    if isinstance(node.kind, Centre):
        return x - ColBroadcast(stat.symbol)
    return x * ColBroadcast(1 / sp.sqrt(stat.symbol + EPSILON))


def batch_statistic_code(node: Node, printer) -> str:
    """NumPy code of the batch statistic a training step folds into the running one: the mean of
    the centring's input; the variance from the scaling's input (already centred), unbiased
    (divided by m − 1, or per channel by m·h·w − 1) as PyTorch keeps it."""
    x = printer._print(node.input(True).symbol)
    if len(node.in_axes[0]) > 1:  # per channel of a convolution: over the positions and the samples
        axes = tuple(range(1, len(node.in_axes[0]) + 1))
        if isinstance(node.kind, Centre):
            return f"{x}.mean(axis={axes}, keepdims=True)"
        return f"({x} ** 2).sum(axis={axes}, keepdims=True) / ({x}.size // {x}.shape[0] - 1)"
    if isinstance(node.kind, Centre):
        return f"{x}.mean(axis=1, keepdims=True)"
    return f"({x} ** 2).sum(axis=1, keepdims=True) / (m - 1)"
