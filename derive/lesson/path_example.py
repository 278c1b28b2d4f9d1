"""The sum over paths with numbers: every path from one weight of layer 1 to the loss in the worked
example's network (two units per layer), the rate of each of its edges and their product.

Nielsen ends his chapter by showing how backpropagation could have been discovered: sum the paths one
by one and notice that paths through the same unit share their whole way from it to the loss. This
module makes that visible at numbers a student can check. The rates are computed here, independently
of the backward pass: each slope by differentiating the activation (the softmax's Jacobian from its
formula for these two outputs), each output rate by differentiating the loss of one unit. The shared
parts are then compared with the errors δ⁽²⁾ and the sum of all products with ∂C/∂W⁽¹⁾ of the worked
example, which come from the derived backward pass; a mismatch is an error, never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import sympy as sp

from derive.notation import Z

MOST_PATHS = 16  # a table a student reads: 2-2-2-2 has 4 paths (8 through a softmax); deeper networks get none
AGREEMENT = sp.Float("1e-40")  # relative; the worked example's floats carry 50 digits


@dataclass(frozen=True)
class PathTerm:
    """One path, by the units it passes in layers 2 … L (and, at a softmax, the output it reaches)."""

    units: tuple[int, ...]  # counted from 1
    tail: tuple[sp.Expr, ...]  # the rates from z⁽²⁾ of its unit to the loss, loss end first
    head: tuple[sp.Expr, ...]  # W⁽²⁾_{j₂ j₁}, g′(z⁽¹⁾_{j₁}), a⁽⁰⁾_k: from the weight to z⁽²⁾
    product: sp.Expr


@dataclass(frozen=True)
class PathExample:
    weight: tuple[int, int]  # (j₁, k) of W⁽¹⁾, counted from 1
    terms: tuple[PathTerm, ...]
    shared: tuple[tuple[int, sp.Expr, sp.Expr], ...]  # (j₂, sum of the tails through it, δ⁽²⁾_{j₂} of the backward pass)
    total: sp.Expr  # the sum of every path's product
    gradient: sp.Expr  # ∂C/∂W⁽¹⁾_{j₁k} of the worked example
    vector: bool  # the output layer is a softmax: a path also picks the output it reaches
    zero: int  # how many paths have a factor 0
    silent: tuple[int, ...] = ()  # outputs (from 1) whose target is 0 and whose rate ∂C/∂a is 0, where
    # every path with a factor 0 has it there alone: the loss does not look at them (cross entropy, one-hot y)

    @property
    def counted(self) -> tuple[PathTerm, ...]:
        """The paths that do not end at a silent output: with a one-hot target and cross entropy, those
        ending at the target's output. The lesson's table shows only these (review 25, defect 9); their
        sums are checked against δ⁽²⁾ and the gradient as the whole table's are."""
        return tuple(t for t in self.terms if t.units[-1] not in self.silent)


def _slope(activation, value) -> sp.Expr:
    return sp.diff(activation.expr, Z).subs(Z, value)


def _jacobian(activation, z: list) -> list[list[sp.Expr]] | None:
    """∂a_{j'}/∂z_j of a vector output activation at these pre-activations, from its formula."""
    s = sp.symbols(f"s1:{len(z) + 1}", real=True)
    total = sum(sp.exp(v) for v in s)
    if activation.is_softmax:
        outputs = [sp.exp(v) / total for v in s]
    elif activation.is_log_softmax:
        outputs = [v - sp.log(total) for v in s]
    else:
        return None
    at = dict(zip(s, z))
    return [[sp.diff(outputs[jj], s[j]).subs(at) for j in range(len(z))] for jj in range(len(z))]


def _loss_rate(loss, a_value, y_value) -> sp.Expr:
    symbols = {s.name: s for s in loss.expr.free_symbols}
    values = {"a": a_value, "y": y_value}  # a custom loss may leave out y (`--loss a`) or even a (a constant)
    if "a" not in symbols:
        return sp.Integer(0)
    return sp.diff(loss.expr, symbols["a"]).subs({symbols[n]: v for n, v in values.items() if n in symbols})


def _agrees(left, right) -> bool:
    difference = abs(sp.N(left - right, 60))
    return difference == 0 or difference <= AGREEMENT * max(abs(sp.N(right, 60)), sp.Float(1))


def _chain_layers(model) -> list | None:
    """The activation of each layer, where the network is dense layers each followed by its activation
    (the path of a dropout mask or a normalisation is not this table's)."""
    kinds = [type(node.kind).__name__ for node in model.network.layers]
    if kinds[0::2] != ["Dense"] * model.depth or len(kinds) != 2 * model.depth:
        return None
    return [node.kind.activation for node in model.network.layers[1::2]]


def _weight(example, width: int) -> tuple[int, int]:
    """W⁽¹⁾₁₁, or where its gradient is 0 (an inactive unit of layer 1) the first weight with one."""
    for j1, k in product(range(width), repeat=2):
        if example.gradients[("W_1", (j1, k))] != 0:
            return j1, k
    return 0, 0


def path_example(derivation, example) -> PathExample | None:
    """The paths of the worked example, or None where the network is not a plain chain, has a
    penalty (its gradient is not a sum over paths), or has more paths than a table should hold."""
    model = derivation.model
    activations = _chain_layers(model) if example is not None and model.penalty is None else None
    if activations is None or model.depth < 2:
        return None
    L, width = model.depth, 2
    vector = activations[-1].is_vector
    if width ** (L - 1 + vector) > MOST_PATHS or any(a.is_vector for a in activations[:-1]):
        return None
    values = example.values
    stated = example.point  # the weights and the input as given (exact), the rest as computed
    v = lambda label, *idx: stated.get((label, idx), values[(label, idx)])  # noqa: E731
    jacobian = _jacobian(activations[-1], [v(f"z_{L}", j) for j in range(width)]) if vector else None
    if vector and jacobian is None:
        return None
    loss_rates = [_loss_rate(model.loss, v(f"a_{L}", j), v("y", j)) for j in range(width)]
    j1, k = _weight(example, width)
    head_common = (_slope(activations[0], v("z_1", j1)), v("a_0", k))
    terms = []
    for units in product(range(width), repeat=L - 1 + vector):
        hidden = units[:L - 1]  # j₂ … j_L
        if vector:
            out, last = units[-1], hidden[-1]
            tail = [loss_rates[out], jacobian[out][last]]
        else:
            last = hidden[-1]
            tail = [loss_rates[last], _slope(activations[-1], v(f"z_{L}", last))]
        for l in range(L - 1, 1, -1):  # layers L-1 … 2: the weight into layer l+1, then layer l's slope
            tail += [v(f"W_{l + 1}", hidden[l - 1], hidden[l - 2]), _slope(activations[l - 1], v(f"z_{l}", hidden[l - 2]))]
        head = (v("W_2", hidden[0], j1), *head_common)
        terms.append(PathTerm(tuple(u + 1 for u in units), tuple(tail), head, sp.Mul(*tail, *head)))
    shared = []
    for j2 in range(width):
        through = sum((sp.Mul(*t.tail) for t in terms if t.units[0] == j2 + 1), sp.S.Zero)
        error = v("delta_2", j2)
        if not _agrees(through, error):
            raise AssertionError(f"the paths through unit {j2 + 1} of layer 2 do not add up to its error")
        shared.append((j2 + 1, through, error))
    total = sum((t.product for t in terms), sp.S.Zero)
    gradient = example.gradients[("W_1", (j1, k))]
    if not _agrees(total, gradient):
        raise AssertionError("the sum over paths is not the gradient of the backward pass")
    zero = sum(1 for t in terms if any(f == 0 for f in (*t.tail, *t.head)))
    silent = tuple(j + 1 for j in range(width) if loss_rates[j] == 0 and v("y", j) == 0)
    alone = all(t.tail[0] == 0 and t.units[-1] in silent and all(f != 0 for f in (*t.tail[1:], *t.head))
                for t in terms if any(f == 0 for f in (*t.tail, *t.head)))
    found = PathExample((j1 + 1, k + 1), tuple(terms), tuple(shared), total, gradient, vector, zero,
                        silent if zero and alone else ())
    for j2, _through, error in found.shared:  # the rows the lesson keeps add up to the same, or nothing is printed
        if not _agrees(sum((sp.Mul(*t.tail) for t in found.counted if t.units[0] == j2), sp.S.Zero), error):
            raise AssertionError(f"the counted paths through unit {j2} of layer 2 do not add up to its error")
    if not _agrees(sum((t.product for t in found.counted), sp.S.Zero), gradient):
        raise AssertionError("the sum over the counted paths is not the gradient of the backward pass")
    return found


__all__ = ["PathExample", "PathTerm", "path_example", "MOST_PATHS"]
