"""The steps every normalisation is made of, one node each, so that the engine derives every path
on its own (over the features of a sample; with `over_samples`, over the samples of the minibatch,
for batch normalisation, where no per-sample form exists):

* centring      x̃ᵢ = xᵢ − μ,               μ = (1/n) Σₖ xₖ                 (the mean)
* scaling       x̂ᵢ = x̃ᵢ / σ̂,              σ̂ = √((1/n) Σₖ x̃ₖ² + ε)         (the variance, or mean square)
* scale, shift  zᵢ = γᵢ x̂ᵢ + βᵢ            (learnable γ, β; RMSNorm has no β)

Layer normalisation is the three in a row; RMSNorm is the last two read straight from x. The local
derivative of the centring is [i = q] − 1/n: its second term is the path through the mean. That of
the scaling is [i = q]/σ̂ − x̃ᵢ x̃_q/(n σ̂³): its second term is the path through the variance. The
scaling offers the readable form ([i = q] − x̂ᵢ x̂_q / n)/σ̂, in terms of its own output, proved equal
here (`scaling_in_terms_of_output`) before it is used.

ε is a named constant (PyTorch's default 10⁻⁵), shown as ε in every formula; every evaluation asks
for its value at the precision it needs, like π. The compact three-term form of the input error is
proved in `normcompact`, the running statistics of evaluation mode are in `runningstats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.core.numbers import NumberSymbol
from sympy.core.singleton import Singleton

from derive.layers.base import LayerKind, Node, entry_of
from derive.notation import BATCH_SIZE, Axis, LayerRef, Q, Quantity, register_quantity, sample_index, size

# the centred input x̃, the normalised x̂, the scale γ and the shift β, with their errors (x̃, not u: u is
# an attention layer's key token, and a transformer block has both)
register_quantity("centred", r"\tilde{x}", None, 1, "sample", batch="Centred", gradient="grad_centred")
register_quantity("Centred", r"\tilde{X}", "U", 2, "batch", gradient="grad_Centred")
register_quantity("grad_centred", r"\tilde{x}", None, 1, "sample", batch="grad_Centred", derivative=True)
register_quantity("grad_Centred", r"\tilde{X}", "dU", 2, "batch", derivative=True)
register_quantity("xhat", r"\hat{x}", None, 1, "sample", batch="Xhat", gradient="grad_xhat")
register_quantity("Xhat", r"\hat{X}", "Xhat", 2, "batch", gradient="grad_Xhat")
register_quantity("grad_xhat", r"\hat{x}", None, 1, "sample", batch="grad_Xhat", derivative=True)
register_quantity("grad_Xhat", r"\hat{X}", "dXhat", 2, "batch", derivative=True)
register_quantity("gamma", r"\gamma", "gamma", 1, "param", gradient="grad_gamma")
register_quantity("grad_gamma", r"\gamma", "dgamma", 1, "param")
register_quantity("beta", r"\beta", "beta", 1, "param", gradient="grad_beta")
register_quantity("grad_beta", r"\beta", "dbeta", 1, "param")


class NormEpsilon(NumberSymbol, metaclass=Singleton):
    """ε = 10⁻⁵ under the square root of a normalisation (PyTorch's default)."""

    is_real = True
    is_positive = True
    is_number = True
    __slots__ = ()
    decimal = "0.00001"
    description = "added to the variance before the square root (PyTorch's default)"

    def _as_mpf_val(self, prec):
        return mpmath.mpf(self.decimal, prec=prec + 10)._mpf_

    def approximation_interval(self, number_cls):
        return None

    def _latex(self, printer):
        return r"\epsilon"

    def _sympystr(self, printer):
        return "epsilon"

    def _numpycode(self, printer):
        return "1e-05"

    _pythoncode = _numpycode


EPSILON = sp.S.NormEpsilon


def vector_input(kind: str, input_units: tuple, sequences: bool = False) -> None:
    """A normalisation or dropout layer reads a vector of units (with `sequences`, also a sequence
    [features, tokens], normalised over the features of each token): refuse any other shape in one
    line (the network file's layer is named by the caller)."""
    if sequences and isinstance(input_units[0], tuple) and len(input_units[0]) == 2:
        return
    if any(isinstance(u, tuple) for u in input_units):
        from derive.errors import DeriveError

        if sequences:
            raise DeriveError(f"{kind} reads a vector of units or a sequence [features, tokens], but its input has "
                              f"the shape {list(input_units[0])}; put it after a dense or a linear layer")
        raise DeriveError(f"{kind} reads a vector of units, but its input has the shape {list(input_units[0])}; "
                          f"put it after a dense layer")


def same_axes(node: Node, input_axes) -> tuple[Axis, ...]:
    return tuple(Axis(axis.role, node.layer, axis.extent) for axis in input_axes[0])


@dataclass(frozen=True)
class _Step(LayerKind):
    """A step of a normalisation: it keeps the shape of what it reads, and its error gets a name."""

    names_output_error = True

    def output_axes(self, node: Node, input_axes):
        return same_axes(node, input_axes)

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        if len(node.in_axes[0]) > 1:  # a sequence: axis by axis
            return {own.size: read.size for own, read in zip(node.out_axes, node.in_axes[0]) if own.size != read.size}
        own, read = size(node.layer), size(node.inputs[0].layer)
        return {own: read} if own != read else {}


def features_mean(node: Node, sample: sp.Idx | None, k: int = 0, square: bool = False, rest: tuple = ()) -> sp.Expr:
    """(1/n) Σₖ xₖ (or xₖ²) over the features of input k of the node; for a sequence, over the
    features of the token whose indices are `rest`."""
    r = node.in_axes[k][0].index("k") if rest else node.in_index("k", k)
    x = entry_of(node.inputs[k], (r, *rest) if rest else r, sample)
    return sp.Sum(x**2 if square else x, (r, r.lower, r.upper)) / (r.upper + 1)


def _rest(unit) -> tuple:
    """The indices of an entry after its feature index (a token's), or () for a vector."""
    return tuple(unit[1:]) if isinstance(unit, tuple) else ()


class NoSampleForm(ValueError):
    """A statistic over the minibatch asked for one sample alone: it has no per-sample form."""


# the indices a per-channel statistic sums over: the rows and columns (u, v of a convolution's input),
# and the samples, primed, so that none is an index of the entry, of a derivative's target or of a
# chain-rule sum
POSITION_LETTERS = ("u'", "v'")
PRIMED_SAMPLE = "s'"


def batch_mean(node: Node, unit, sample: sp.Idx | None, square: bool = False) -> sp.Expr:
    """(1/m) Σₜ x_{unit, t} (or its square) over the samples of the minibatch: it couples them. For a
    unit (c, i, j) of a convolution's output, the mean of channel c over the samples and every position,
    (1/(m h w)) Σ_s′ Σ_u′ Σ_v′ x_{c u′ v′ s′}, as PyTorch's BatchNorm2d."""
    if sample is None:
        raise NoSampleForm(f"{node.output.label} is computed from every sample of the minibatch")
    if not isinstance(unit, tuple):
        t = sample_index("v")  # never the sample index of the entry (s, or t inside a chain-rule sum)
        x = entry_of(node.inputs[0], unit, t)
        return sp.Sum(x**2 if square else x, (t, t.lower, t.upper)) / BATCH_SIZE
    t = sample_index(PRIMED_SAMPLE)
    positions = [axis.index(letter) for axis, letter in zip(node.in_axes[0][1:], POSITION_LETTERS)]
    x = entry_of(node.inputs[0], (unit[0], *positions), t)
    count = BATCH_SIZE * sp.Mul(*[p.upper + 1 for p in positions])
    return sp.Sum(x**2 if square else x, *[(p, p.lower, p.upper) for p in positions], (t, t.lower, t.upper)) / count


@dataclass(frozen=True)
class Centre(_Step):
    """x̃ᵢ = xᵢ − (1/n) Σₖ xₖ."""

    over_samples: bool = False  # the mean of each unit over the minibatch (batch normalisation)

    name = "centre"
    output_kind = "centred"
    names_input_error = True  # the compact form of the input error is stated after it

    @property
    def couples_samples(self) -> bool:
        return self.over_samples

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        mean = batch_mean(node, unit, sample) if self.over_samples else features_mean(node, sample, rest=_rest(unit))
        return entry_of(node.inputs[0], unit, sample) - mean

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        l = LayerRef.symbolic()
        if self.over_samples and len(node.in_axes[0]) > 1:  # per channel of a convolution
            return [(f"{Q('centred', l).latex()},\\ {Q('Centred', l).latex()}", "norm_notation.channel_centred", {}),
                    (r"\mu,\ \bar{\mu}", "norm_notation.channel_mean", {}),
                    (r"\sigma^{2},\ \bar{\sigma}^{2}", "norm_notation.channel_variance", {})]
        rows = [(f"{Q('centred', l).latex()},\\ {Q('Centred', l).latex()}",
                 "norm_notation.batch_centred" if self.over_samples else "norm_notation.centred", {})]
        if self.over_samples:
            rows += [(r"\mu,\ \bar{\mu}", "norm_notation.batch_mean", {}),
                     (r"\sigma^{2},\ \bar{\sigma}^{2}", "norm_notation.batch_variance", {}),
                     ("v", "norm_notation.batch_index", {})]
        return rows

    def proved_steps(self, node: Node, network, result, batch: bool) -> dict:
        from derive.layers.normcompact import compact_steps  # it builds on the steps of this module

        steps = compact_steps(node, network, result, batch)
        return {node.inputs[0].gradient: steps} if steps else {}


def biases_removed_by_batch_means(network) -> tuple[Quantity, ...]:
    """The biases whose gradient is 0 by structure: a batch normalisation that reads a layer's
    pre-activation directly subtracts the mean over the samples (and, per channel, the positions), along
    which that layer's bias b (per unit, or per channel of a convolution) is constant, so b cancels."""
    producers = {node.output: node for node in network.layers}
    removed = []
    for node in network.layers:
        if isinstance(node.kind, Centre) and node.kind.over_samples and node.inputs[0] in producers:
            removed += [p for p in producers[node.inputs[0]].parameters if p.kind == "b"]
    return tuple(removed)


def root_mean_square(node: Node, sample: sp.Idx | None, unit: sp.Idx | None = None) -> sp.Expr:
    """σ̂ = √((1/n) Σₖ uₖ² + ε) of the input of a scaling node (over the minibatch: of the unit's
    row, √((1/m) Σₜ u_{unit,t}² + ε))."""
    if node.kind.over_samples:
        return sp.sqrt(batch_mean(node, unit, sample, square=True) + EPSILON)
    return sp.sqrt(features_mean(node, sample, square=True, rest=_rest(unit)) + EPSILON)


@dataclass(frozen=True)
class Scale(_Step):
    """x̂ᵢ = x̃ᵢ / √((1/n) Σₖ x̃ₖ² + ε)."""

    over_samples: bool = False  # the mean square of each unit over the minibatch (batch normalisation)

    name = "rms_scale"
    output_kind = "xhat"

    @property
    def couples_samples(self) -> bool:
        return self.over_samples

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        return entry_of(node.inputs[0], unit, sample) / root_mean_square(node, sample, unit)

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        l = LayerRef.symbolic()
        channel = self.over_samples and len(node.in_axes[0]) > 1
        return [(f"{Q('xhat', l).latex()},\\ {Q('Xhat', l).latex()}",
                 "norm_notation.channel_normalised" if channel else
                 "norm_notation.batch_normalised" if self.over_samples else "norm_notation.normalised", {}),
                (r"\epsilon", "norm_notation.epsilon", {})]

    def readable(self, node: Node, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        rewritten = scaling_in_terms_of_output(node, expr, sample)
        return None if rewritten is None else (rewritten, "normalise_output")


def scaling_in_terms_of_output(node: Node, expr: sp.Expr, sample: sp.Idx | None) -> sp.Expr | None:
    """The local derivative ∂x̂ᵢ/∂x̃_q = [i = q]/σ̂ − x̃ᵢ x̃_q/(n σ̂³) written as ([i = q] − x̂ᵢ x̂_q/n)/σ̂:
    each x̃ⱼ/σ̂ is the output x̂ⱼ. The rewrite is used only when putting x̂ⱼ = x̃ⱼ/σ̂ back gives the
    engine's expression again (the difference expands to 0); otherwise None."""
    u = node.input(sample is not None).base
    xhat = node.out(sample is not None).base
    axis = 1 if node.kind.over_samples else 0  # the index the statistics run over
    brackets = [f for f in sp.Mul.make_args(expr) if isinstance(f, sp.KroneckerDelta)]  # [s = t] per minibatch
    if brackets:
        inner = scaling_in_terms_of_output(node, sp.Mul(*[f for f in sp.Mul.make_args(expr) if f not in brackets]),
                                           sample)
        return None if inner is None else sp.Mul(*brackets) * inner
    entries = sorted({e for e in expr.atoms(sp.Indexed) if e.base == u and not _summed(expr, e)},
                     key=sp.default_sort_key)
    if len(entries) != 2:
        return None
    first, second = entries
    n = BATCH_SIZE if axis else node.in_axes[0][0].size
    sequence = len(node.in_axes[0]) > 1
    unit = (tuple(first.indices[:len(node.in_axes[0])]) if sequence else first.indices[0])
    sigma = root_mean_square(node, first.indices[1] if axis else sample, unit)
    if sequence and any(a != b for a, b in zip(first.indices[1:], second.indices[1:])):
        return None
    if axis and first.indices[0] != second.indices[0]:
        return None
    delta = sp.KroneckerDelta(first.indices[axis], second.indices[axis])
    candidate = (delta - xhat[first.indices] * xhat[second.indices] / n) / sigma
    back = candidate.xreplace({xhat[first.indices]: first / sigma, xhat[second.indices]: second / sigma})
    if sp.expand(back - expr) != 0:
        return None
    return candidate


def _summed(expr: sp.Expr, entry: sp.Indexed) -> bool:
    """The entry occurs only inside a sum over one of its indices (σ̂'s Σₖ uₖ²)."""
    for s in expr.atoms(sp.Sum):
        if s.has(entry) and any(lim[0] in entry.indices for lim in s.limits):
            outside = expr.xreplace({s: sp.Dummy()})
            if not outside.has(entry):
                return True
    return False


@dataclass(frozen=True)
class Affine(_Step):
    """zᵢ = γᵢ x̂ᵢ + βᵢ (or γᵢ x̂ᵢ with no shift): the layer's output, which an activation may take."""

    shift: bool = True

    name = "scale_shift"
    output_kind = "z"  # an activation may follow, as after a dense layer
    names_output_error = False

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        gamma = Q("gamma", node.layer)
        return (gamma, Q("beta", node.layer)) if self.shift else (gamma,)

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[LayerRef, ...]:
        return (node.out_axes[0],) if len(node.out_axes) > 1 else (node.layer,)

    def initial_value(self, node: Node, param: Quantity) -> int:
        return 1 if param.kind == "gamma" else 0

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        feature = unit[0] if isinstance(unit, tuple) else unit  # a sequence: one γ, β per feature, shared by the tokens
        out = Q("gamma", node.layer).base[feature] * entry_of(node.inputs[0], unit, sample)
        return out + Q("beta", node.layer).base[feature] if self.shift else out


def chain_of(node: Node, steps: tuple[LayerKind, ...]) -> tuple[Node, ...]:
    """The nodes of a normalisation layer: each step reads the output of the one before."""
    out, read = [], node.inputs
    for kind in steps:
        part = Node(kind, node.layer, read, (node.in_axes[0] if not out else out[-1].out_axes,))
        out.append(part)
        read = (part.output,)
    return tuple(out)


__all__ = ["biases_removed_by_batch_means", "Centre", "Scale", "Affine", "EPSILON", "NoSampleForm", "chain_of",
           "root_mean_square", "features_mean", "batch_mean", "same_axes"]

