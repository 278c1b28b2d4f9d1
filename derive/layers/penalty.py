"""Weight penalties (--l2 λ₂, --l1 λ₁, --penalise-bias): the cost term R, a local rule over each
parameter's own entries, derived like everything else.

Unlike the node kinds of this package, the penalty reads no activation: it adds to the cost a sum
over the entries of every weight (a parameter of rank ≥ 2: W, a projection P, a kernel) and, with
--penalise-bias, of every vector parameter. Its gradient is added to each covered parameter's.

The penalty is R = Σ_l R⁽ˡ⁾ with R⁽ˡ⁾ = Σ_i Σ_j ((λ₂/2) (W⁽ˡ⁾_ij)² + λ₁ |W⁽ˡ⁾_ij|) (and the same
over b⁽ˡ⁾ when biases are penalised). Normalisation, stated once and used by the documents, the
generated code and every check:

* the loss of one sample is C = Σ_i ℓ(a_i, y_i) + R;
* the cost of a minibatch is the mean of the C_s, C̄ = (1/m) Σ_s Σ_i ℓ + R: the penalty is counted
  once per minibatch, whatever its size m, so λ means the same for every batch size.

R does not depend on any pre-activation, so the errors δ are unchanged; each penalised parameter's
gradient gains the term ∂R/∂θ, which SymPy computes here from the index-level penalty
(λ₂ θ and λ₁ sign(θ), with sign(0) = 0 at the kink of |θ|).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sympy as sp

from derive.indexing import collapse
from derive.notation import (
    BATCH_COST,
    BATCH_DATA_COST,
    COST,
    DATA_COST,
    L1_STRENGTH,
    L2_STRENGTH,
    LAYER_PENALTY,
    PENALTY,
    LayerRef,
    Q,
    Quantity,
    index,
)


class Total(sp.Function):
    """The sum of all entries of an array (generated code: np.sum)."""

    nargs = 1


def rational(text: str) -> sp.Rational:
    numerator, denominator = Decimal(text).as_integer_ratio()
    return sp.Rational(numerator, denominator)


@dataclass(frozen=True)
class Penalty:
    l2: sp.Rational | None
    l1: sp.Rational | None
    biases: bool = False

    @staticmethod
    def from_spec(spec) -> Penalty | None:
        if spec.l2 is None and spec.l1 is None:
            return None
        return Penalty(None if spec.l2 is None else rational(spec.l2),
                       None if spec.l1 is None else rational(spec.l1), spec.penalise_bias)

    @property
    def strengths(self) -> dict[sp.Symbol, sp.Rational]:
        """The value of each strength symbol the formulas use."""
        out = {}
        if self.l2 is not None:
            out[L2_STRENGTH] = self.l2
        if self.l1 is not None:
            out[L1_STRENGTH] = self.l1
        return out

    @property
    def has_l1(self) -> bool:
        return self.l1 is not None

    def covers(self, param: Quantity) -> bool:
        """Weights (parameters of rank ≥ 2) always; vectors (biases) with --penalise-bias."""
        return param.rank >= 2 or self.biases

    def term(self, entry: sp.Expr) -> sp.Expr:
        """The penalty of one parameter entry."""
        out = sp.S.Zero
        if self.l2 is not None:
            out += L2_STRENGTH / 2 * entry**2
        if self.l1 is not None:
            out += L1_STRENGTH * sp.Abs(entry)
        return out

    def layer_penalty(self, layer: LayerRef, parameters: list[tuple[Quantity, tuple[LayerRef, ...]]] | None = None
                      ) -> sp.Expr:
        """R⁽ˡ⁾ at index level over the covered parameters of a node (each with the layers its axes run
        over); by default a dense layer's: (λ₂/2) Σ_i Σ_j W_ij² + λ₁ Σ_i Σ_j |W_ij| (and over b_i)."""
        if parameters is None:
            parameters = [(Q("W", layer), (layer, layer.shifted(-1))), (Q("b", layer), (layer,))]
        out = sp.S.Zero
        for strength, scale, power in ((self.l2, L2_STRENGTH / 2, lambda x: x**2), (self.l1, L1_STRENGTH, sp.Abs)):
            if strength is None:
                continue
            for param, axes in parameters:
                if not self.covers(param):
                    continue
                indices = [index(name, ref) for name, ref in zip("ijkl", axes)]
                limits = [(i, i.lower, i.upper) for i in reversed(indices)]
                out += scale * sp.Sum(power(param.base[tuple(indices)]), *limits)
        return out

    def total(self) -> sp.Expr:
        """R = Σ_l R⁽ˡ⁾ (for the documents; l runs over the weight layers)."""
        l = sp.Idx(sp.Symbol("l", integer=True), (1, sp.Symbol("L", integer=True, positive=True)))
        return sp.Sum(LAYER_PENALTY, (l, 1, l.upper))

    def value_expression(self, parameters: list[Quantity]) -> sp.Expr:
        """R in matrix form over the given parameters of the network, for the generated loss."""
        out = sp.S.Zero
        for param in parameters:
            if self.covers(param):
                out += self.term_matrix(param.symbol)
        return out

    def term_matrix(self, array: sp.Symbol) -> sp.Expr:
        out = sp.S.Zero
        if self.l2 is not None:
            out += L2_STRENGTH / 2 * Total(array**2)
        if self.l1 is not None:
            out += L1_STRENGTH * Total(sp.Abs(array))
        return out


def gradient_steps(penalty: Penalty, param: Quantity, target: sp.Indexed, data_steps: list, data_value: sp.Expr,
                   batch: bool, step_type, parameters: list | None = None) -> tuple[list, sp.Expr]:
    """∂C/∂θ = ∂C_data/∂θ + ∂R/∂θ: the data steps (already derived through the layer's outputs) and
    the penalty's own derivative, differentiated by SymPy from R⁽ˡ⁾ and collapsed.

    `step_type` is backprop.Step (passed in so that this module does not import the chain rule).
    """
    total, data = (BATCH_COST, BATCH_DATA_COST) if batch else (COST, DATA_COST)
    lhs, data_lhs, penalty_lhs = (sp.Derivative(c, target) for c in (total, data, PENALTY))
    steps = [step_type(lhs, data_lhs + penalty_lhs, "penalty_split")]
    steps += [_relabel(step, lhs, data_lhs, step_type) for step in data_steps]
    layer_penalty = penalty.layer_penalty(param.layer, parameters)
    steps.append(step_type(penalty_lhs, sp.Derivative(layer_penalty, target), "penalty_definition"))
    raw = sp.diff(layer_penalty, target)
    steps.append(step_type(penalty_lhs, raw, "differentiate"))
    value = collapse(raw)
    steps.append(step_type(penalty_lhs, value, "penalty_gradient_l1" if penalty.has_l1 else "penalty_gradient"))
    result = data_value + value
    steps.append(step_type(lhs, result, "add_penalty"))
    return steps, result


def _relabel(step, lhs: sp.Expr, data_lhs: sp.Expr, step_type):
    """The chain-rule steps concern the data part of the cost: write ∂C_data/∂θ on their left."""
    return step_type(data_lhs if step.lhs == lhs else step.lhs, step.rhs, step.rule, step.matrix)
