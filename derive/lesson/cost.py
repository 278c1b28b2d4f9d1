"""Why backpropagation is fast: its multiply-adds against those of finite differences, counted.

The matrix products of the derived minibatch formulas dominate the work of a step (an n × k times
k × m product is n k m multiply-adds; entry-wise operations are of lower order). They are counted
here from the formulas themselves, with the shape of every operand, as expressions in the layer
sizes n_l and the batch size m; the document evaluates them for this network, per sample. Finite
differences need two evaluations of the loss (two forward passes) per parameter entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.backprop import parameter_axes
from derive.codegen import backward_order
from derive.derivation import Derivation
from derive.notation import BATCH_SIZE, LayerRef, Q, quantity_of, size
from derive.ops import Einsum, MatProd, Op
from derive.verify_symbolic import _is_parameter_gradient


@dataclass(frozen=True)
class Count:
    """Multiply-adds of a group of formulas: symbolic in n_l and m, and per sample for this network."""

    symbolic: sp.Expr
    value: int


@dataclass(frozen=True)
class Costs:
    forward: Count
    errors: Count  # the backward pass: every error passed down (Wᵀ δ …)
    gradients: Count  # the backward pass: every parameter gradient (δ aᵀ …)
    parameters: Count  # entries of all parameters: the finite differences need 2 losses each
    finite_differences: Count  # 2 × parameters × forward
    by_layer: str | None = None  # N as Σ_l n_l (n_{l−1} + 1), when that sum is this network's count
    kept: tuple[int, int] = (0, 0)  # a chain's input entries and units, whose x, z and a the forward pass keeps

    @property
    def stored(self) -> int:
        """Numbers per sample the forward pass keeps for the backward pass: x, and z and a of every unit."""
        inputs, units = self.kept
        return inputs + 2 * units

    @property
    def backpropagation(self) -> int:
        return self.forward.value + self.errors.value + self.gradients.value

    @property
    def saved(self) -> Count:
        """What the backward pass does not spend of twice the forward pass: it multiplies by every
        weight matrix twice (errors back, weight gradients) but for the products nobody needs, the
        error of the input (n_0 n_1 in a chain of dense layers). So backpropagation costs
        3 × forward − saved, at most three forward passes whenever `saved` is not negative."""
        backward = self.errors.symbolic + self.gradients.symbolic
        return Count(sp.expand(2 * self.forward.symbolic - backward),
                     2 * self.forward.value - self.errors.value - self.gradients.value)


def _shape(derivation: Derivation, expr: sp.Basic) -> tuple[sp.Expr, sp.Expr]:
    """Rows and columns of a matrix-form expression (a scalar is 1 × 1)."""
    if isinstance(expr, sp.Symbol):
        q = quantity_of(expr.name)
        if q is None:
            return (sp.S.One, sp.S.One)
        if q.is_parameter:
            sizes = [a.size for a in parameter_axes(derivation.model.network.owner(q), q)]
            if len(sizes) > 2:  # an attention projection (heads, width, features): an einsum's operand
                return tuple(sizes)
            return (sizes[0], sizes[1] if len(sizes) > 1 else sp.S.One)
        layer = q.layer if q.layer is not None else (LayerRef(0) if q.kind in ("x", "X") else
                                                       derivation.model.network.output.layer)
        network = derivation.model.network
        if q.kind in ("A", "Z", "X", "Delta", "grad_A"):
            base = {"X": "a", "A": "a", "Z": "z", "Delta": "z", "grad_A": "a"}[q.kind]
            try:
                axes = network.axes_of(Q(base, layer))
            except KeyError:
                axes = None
            if axes is not None and len(axes) > 1:  # channels and positions, then the samples
                return (*[a.size for a in axes], BATCH_SIZE)
        axes = _step_axes(network, q)
        if axes is not None:
            return (*[a.size for a in axes], BATCH_SIZE)
        return (size(layer), BATCH_SIZE)
    if isinstance(expr, Op):
        return tuple(expr.shape(lambda arg: _shape(derivation, arg)))
    shapes = [_shape(derivation, arg) for arg in expr.args]
    if any(len(s) > 2 for s in shapes):  # an entry-wise expression of arrays with several axes
        return max(shapes, key=len)
    rows = next((r for r, _ in shapes if r != 1), sp.S.One)
    columns = next((c for _, c in shapes if c != 1), sp.S.One)
    return (rows, columns)


def _step_axes(network, q):
    """The axes of a minibatch quantity that is the output of a step of a layer (an attention
    layer's Q, K, V, scores and weights), or of its error; None for any other."""
    from derive.notation import _BATCH, Quantity

    kind = q.kind.removeprefix("grad_")
    per_sample = next((k for k, batch in _BATCH.items() if batch == kind and not k.startswith("grad_")), None)
    if per_sample is None or q.layer is None:
        return None
    node = network.producers.get(Quantity(per_sample, q.layer))
    return None if node is None else node.out_axes


def multiply_adds(derivation: Derivation, expr: sp.Basic) -> sp.Expr:
    """The multiply-adds of the matrix products (and einsums) in one matrix-form expression."""
    total = sp.S.Zero
    for node in sp.preorder_traversal(expr):
        if isinstance(node, MatProd):
            (rows, inner), (_, columns) = (_shape(derivation, a) for a in node.args)
            total += rows * inner * columns
        elif hasattr(node, "multiply_adds"):  # a window operation (im2col, col2im …: derive.convops)
            total += node.multiply_adds(derivation.model.network)
        elif isinstance(node, Einsum):
            letters = {}
            for spec, operand in zip(node.subscripts.split("->")[0].split(","), node.operands):
                letters.update(zip(spec, _shape(derivation, operand)))
            total += sp.Mul(*letters.values())
    return total


def _count(derivation: Derivation, symbolic: sp.Expr) -> Count:
    """Per sample (m = 1), symbolic and at this network's sizes."""
    from derive.windowsizes import size_values

    sizes = size_values(derivation.model.network)
    per_sample = sp.expand(symbolic.xreplace({BATCH_SIZE: 1}))
    return Count(per_sample, int(per_sample.xreplace(sizes)))


def costs(derivation: Derivation) -> Costs:
    network = derivation.model.network
    batch = derivation.batch.results
    forward = sum((multiply_adds(derivation, batch[node.output].matrix_rhs) for node in network.layers), sp.S.Zero)
    errors = gradients = sp.S.Zero
    for key in backward_order(derivation):
        count = multiply_adds(derivation, batch[key].matrix_rhs)
        if _is_parameter_gradient(key):
            gradients += count
        else:
            errors += count
    entries = sp.S.Zero
    for node in network.layers:
        for param in node.parameters:
            entries += sp.Mul(*[a.size for a in parameter_axes(node, param)])
    forward_count = _count(derivation, forward)
    parameters = _count(derivation, entries)
    finite = Count(sp.Mul(2, PARAMETER_COUNT, forward_count.symbolic, evaluate=False),
                   2 * parameters.value * forward_count.value)
    return Costs(forward_count, _count(derivation, errors), _count(derivation, gradients), parameters, finite,
                 parameters_by_layer(derivation, parameters), kept_per_sample(derivation))


def kept_per_sample(derivation: Derivation) -> tuple[int, int]:
    """What the forward pass of a chain keeps of one sample for the backward pass: its input entries
    and its units, each unit with its pre-activation z and activation a (what the generated `forward`
    returns); (0, 0) for any other network, whose stored quantities this does not count."""
    model = derivation.model
    if not getattr(model, "is_chain", False):
        return (0, 0)
    return (int(model.sizes[0]), sum(int(n) for n in model.sizes[1:]))


PARAMETER_COUNT = sp.Symbol("N", integer=True, positive=True)  # printed in the cost table; defined above it
PARAMETER_SUM = r"N = \sum_{l=1}^{L} n_{l} (n_{l-1} + 1)"  # plain parentheses: TeX may break them


def parameters_by_layer(derivation: Derivation, parameters: Count) -> str | None:
    """The count of parameters as Σ_l n_l (n_{l−1} + 1) when that sum over the layers equals the
    counted entries (a chain of dense layers; checked, not assumed), else None."""
    model = derivation.model
    if not model.is_chain:
        return None
    layered = sum((size(LayerRef(l)) * (size(LayerRef(l - 1)) + 1) for l in range(1, model.depth + 1)), sp.S.Zero)
    return PARAMETER_SUM if sp.expand(layered - parameters.symbolic) == 0 else None


__all__ = ["Costs", "Count", "costs", "multiply_adds", "parameters_by_layer", "kept_per_sample", "PARAMETER_SUM"]
