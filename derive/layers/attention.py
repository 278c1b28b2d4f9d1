"""Multi-head scaled dot-product self-attention (PyTorch's `nn.MultiheadAttention` with query = key =
value = the input), one node per step so that the engine derives every error on its own:

* projections   q[h,j,d] = Σ_c Wq[h,d,c] x[c,j] + bq[h,d]      (and k, v alike)
* scores        s[h,j,u] = (1/√d) Σ_d q[h,j,d] k[h,u,d]
* weights       α[h,j,u] = M[j,u] e^{s[h,j,u]} / Σ_u′ M[j,u′] e^{s[h,j,u′]}   (softmax over the keys u)
* mixing        o[h,j,d] = Σ_u α[h,j,u] v[h,u,d]
* output        z[f,j] = Σ_h Σ_d Wo[f,h,d] o[h,j,d] + bo[f]

A sample is a sequence stored as the network's 2-D input [features, tokens] (x[c, j]: feature c of
token j, the sample index last as everywhere), h runs over the heads, d over the width of a head, j
over the query tokens and u over the key tokens. M is the causal mask [u ≤ j] (an Iverson bracket:
the masked weights are exactly 0, which is what PyTorch's −∞ before the softmax gives); without the
mask, M = 1 and the softmax is the plain one. Nothing backward is written here: the engine
differentiates each rule; the weights step offers the softmax Jacobian in terms of its output
(α(δ − α), proved by substitution before it is used), and `attnproof` proves the readable matrix form
of the score error dS = A ⊙ (dA − rowsum(dA ⊙ A)) equal to the engine's index form.

Parameter layouts map to PyTorch one to one by a reshape (a view, C order): Wq, Wk, Wv are the three
row blocks of `in_proj_weight` (3E, E) reshaped to (H, d, E); bq, bk, bv the blocks of
`in_proj_bias` reshaped to (H, d); Wo is `out_proj.weight` reshaped to (E, H, d); bo is
`out_proj.bias`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import DeriveError
from derive.attnops import causal_mask
from derive.layers.base import LayerKind, Node, Option, entry_of, register, whole_number
from derive.notation import Axis, LayerRef, Q, Quantity, register_quantity

# the per-step quantities of an attention layer (per sample, per minibatch, and their errors)
# One letter per quantity for a sequence and for a minibatch (the minibatch adds the sample index): the
# lower-case pairs of the MLP would clash here, q and k with the unit indices, s with the sample index,
# A with the activations of a minibatch.
_STEPS = {  # kind: (LaTeX, minibatch LaTeX, code name of the minibatch array)
    "attq": ("Q", "Q", "Qh"),
    "attk": ("K", "K", "Kh"),
    "attv": ("V", "V", "Vh"),
    "score": ("S", "S", "S"),
    "attw": (r"\alpha", r"\alpha", "P"),
    "atto": ("O", "O", "O"),
}
for _kind, (_latex, _batch_latex, _code) in _STEPS.items():
    _batch = _kind.capitalize()
    register_quantity(_kind, _latex, None, 3, "sample", batch=_batch, gradient=f"grad_{_kind}")
    register_quantity(_batch, _batch_latex, _code, 4, "batch", gradient=f"grad_{_batch}")
    register_quantity(f"grad_{_kind}", _latex, None, 3, "sample", batch=f"grad_{_batch}", derivative=True)
    register_quantity(f"grad_{_batch}", _batch_latex, "d" + _code, 4, "batch", derivative=True)

_PARAMS = {"Wq": 3, "Wk": 3, "Wv": 3, "Wo": 3, "bq": 2, "bk": 2, "bv": 2, "bo": 1}
for _name, _rank in _PARAMS.items():
    # braced, as the layer and the indices follow ({W_{\mathrm{q}}}^{(1)}_{hdc}); the subscript upright, a
    # label and not an index, so W_q is a symbol of its own and not the dense layers' W
    _latex = f"{{{_name[0]}_{{\\mathrm{{{_name[1]}}}}}}}"
    register_quantity(_name, _latex, _name, _rank, "param", gradient=f"grad_{_name}")
    register_quantity(f"grad_{_name}", _latex, "d" + _name, _rank, "param")


def head_scale_symbol(node: Node) -> sp.Symbol:
    """d⁽ˡ⁾, the width of one head: the scores are divided by its square root."""
    from derive.notation import SCALAR_LATEX

    name = f"dk_{node.layer.tag()}"
    SCALAR_LATEX.setdefault(name, rf"d_{{\mathrm{{k}}}}^{{({node.layer.latex()})}}")
    return sp.Symbol(name, positive=True)


def _flag(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


@dataclass(frozen=True)
class _Part(LayerKind):
    """A step of an attention layer: it knows the layer's heads and head width."""

    heads: int = 1
    width: int = 1  # the width d of one head (E / heads)
    causal: bool = False
    names_output_error = True

    def head_axes(self) -> tuple[Axis, Axis]:
        return Axis("hd", None, self.heads), Axis("dk", None, self.width)

    def size_facts(self, node: Node):
        return {}


@dataclass(frozen=True)
class Projection(_Part):
    """q[h,j,d] = Σ_c W[h,d,c] x[c,j] + b[h,d]: one of the three input projections."""

    which: str = "q"

    @property
    def name(self) -> str:  # type: ignore[override]
        return "attention_" + self.which

    @property
    def output_kind(self) -> str:  # type: ignore[override]
        return "att" + self.which

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        if self.which != "q":
            return []
        l = LayerRef.symbolic()
        return [(",\\ ".join(Q(k, l).latex() for k in ("attq", "attk", "attv")), "attention_notation.qkv", {})]

    def output_axes(self, node: Node, input_axes):
        heads, width = self.head_axes()
        return (heads, Axis("w", node.layer), width)

    def size_facts(self, node: Node):
        own, read = Axis("w", node.layer).size, node.in_axes[0][1].size
        return {own: read} if own != read else {}

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return Q("W" + self.which, node.layer), Q("b" + self.which, node.layer)

    def parameter_axes(self, node: Node, param: Quantity):
        heads, width = self.head_axes()
        return (heads, width, node.in_axes[0][0]) if param.kind.startswith("W") else (heads, width)

    def identically_zero_gradients(self, node: Node) -> tuple[Quantity, ...]:
        """The key bias adds q_j · b_k to every score of query j alike, and the softmax over the keys
        ignores a shift common to all keys: its gradient is 0 whatever the input."""
        return (Q("bk", node.layer),) if self.which == "k" else ()

    def weights(self, node: Node):
        return {Q("W" + self.which, node.layer): node.inputs[0]}

    def fans(self, node: Node) -> tuple[sp.Expr, sp.Expr]:
        """Fan-in E (the features of a token), fan-out H·d = E (the width of q, k or v)."""
        return node.in_axes[0][0].size, sp.Integer(self.heads * self.width)

    def entry(self, node: Node, unit, sample):
        h, j, d = unit
        c = node.in_axes[0][0].index("c")
        W, b = (p.base for p in self.parameters(node))
        return sp.Sum(W[h, d, c] * entry_of(node.inputs[0], (c, j), sample), (c, c.lower, c.upper)) + b[h, d]


@dataclass(frozen=True)
class Scores(_Part):
    """s[h,j,u] = (1/√d) Σ_d q[h,j,d] k[h,u,d]."""

    name = "attention_scores"
    output_kind = "score"
    inputs = 2

    def output_axes(self, node: Node, input_axes):
        heads, _ = self.head_axes()
        return (heads, Axis("w", node.layer), Axis("wk", node.layer))

    constant_comment = "the width d_k of one attention head: the scores are divided by its square root"

    def constants(self, node: Node):
        return {head_scale_symbol(node): sp.Integer(self.width)}

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        from derive.printing import latex

        l = LayerRef.symbolic()
        return [(Q("score", l).latex(), "attention_notation.scores", {}),
                (latex(head_scale_symbol(node)), "attention_notation.width", {"d": self.width, "heads": self.heads})]

    def size_facts(self, node: Node):
        return {Axis("wk", node.layer).size: Axis("w", node.layer).size}

    def entry(self, node: Node, unit, sample):
        h, j, u = unit
        _, width = self.head_axes()
        e = width.index("d")  # the scores' own indices are h, j, u
        q, k = (entry_of(node.inputs[n], (h, j if n == 0 else u, e), sample) for n in (0, 1))
        return sp.Sum(q * k, (e, e.lower, e.upper)) / sp.sqrt(head_scale_symbol(node))


@dataclass(frozen=True)
class Weights(_Part):
    """α[h,j,u] = M[j,u] e^{s[h,j,u]} / Σ_u′ M[j,u′] e^{s[h,j,u′]}: the softmax over the keys."""

    name = "attention_softmax"
    output_kind = "attw"

    def output_axes(self, node: Node, input_axes):
        return tuple(Axis(a.role, node.layer, a.extent) for a in input_axes[0])

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        l = LayerRef.symbolic()
        rows = [(Q("attw", l).latex(), "attention_notation.weights", {})]
        if self.causal:
            rows.append((r"\mathcal{M}", "attention_notation.mask", {}))
        return rows + [(r"\operatorname{softmax}_{\text{keys}}", "attention_notation.softmax", {}),
                       (r"\operatorname{rowsum}", "attention_notation.rowsum", {})]

    def mask(self, j, u) -> sp.Expr:
        return causal_mask(j, u) if self.causal else sp.S.One

    def normaliser(self, node: Node, h, j, sample) -> sp.Expr:
        w = node.in_axes[0][2].index("w")
        return sp.Sum(self.mask(j, w) * sp.exp(entry_of(node.inputs[0], (h, j, w), sample)), (w, w.lower, w.upper))

    def entry(self, node: Node, unit, sample):
        h, j, u = unit
        return self.mask(j, u) * sp.exp(entry_of(node.inputs[0], unit, sample)) / self.normaliser(node, h, j, sample)

    def readable(self, node: Node, expr: sp.Expr, sample):
        from derive.layers.attnproof import jacobian_in_terms_of_output

        rewritten = jacobian_in_terms_of_output(node, expr, sample)
        return None if rewritten is None else (rewritten, "attention_softmax_output")

    def proved_steps(self, node: Node, network, result, batch: bool) -> dict:
        from derive.layers.attnproof import score_error_steps

        steps = score_error_steps(node, result, batch)
        return {node.inputs[0].gradient: steps} if steps else {}


@dataclass(frozen=True)
class Mixing(_Part):
    """o[h,j,d] = Σ_u α[h,j,u] v[h,u,d]."""

    name = "attention_mixing"
    output_kind = "atto"
    inputs = 2

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        l = LayerRef.symbolic()
        return [(Q("atto", l).latex(), "attention_notation.mixed", {}),
                ("h,\\ u,\\ v,\\ w,\\ d,\\ c,\\ f", "attention_notation.indices", {})]

    def output_axes(self, node: Node, input_axes):
        heads, width = self.head_axes()
        return (heads, Axis("w", node.layer), width)

    def entry(self, node: Node, unit, sample):
        h, j, d = unit
        w = node.in_axes[0][2].index("w")
        return sp.Sum(entry_of(node.inputs[0], (h, j, w), sample) * entry_of(node.inputs[1], (h, w, d), sample),
                      (w, w.lower, w.upper))


@dataclass(frozen=True)
class OutProjection(_Part):
    """z[f,j] = Σ_h Σ_d Wo[f,h,d] o[h,j,d] + bo[f]: the heads joined and projected back to E features."""

    features: Axis | None = None  # the feature axis of the layer's input (E, as many as the output has)
    name = "attention_output"
    output_kind = "z"
    names_output_error = False

    def output_axes(self, node: Node, input_axes):
        return (Axis("c", node.layer), Axis("w", node.layer))

    def size_facts(self, node: Node):
        own = Axis("c", node.layer).size
        return {own: self.features.size} if own != self.features.size else {}

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return Q("Wo", node.layer), Q("bo", node.layer)

    def parameter_axes(self, node: Node, param: Quantity):
        heads, width = self.head_axes()
        return (Axis("c", node.layer), heads, width) if param.kind == "Wo" else (Axis("c", node.layer),)

    def weights(self, node: Node):
        return {Q("Wo", node.layer): node.inputs[0]}

    def fans(self, node: Node) -> tuple[sp.Expr, sp.Expr]:
        """Fan-in H·d (the heads joined), fan-out E."""
        return sp.Integer(self.heads * self.width), self.features.size

    def entry(self, node: Node, unit, sample):
        f, j = unit
        heads, width = self.head_axes()
        g, e = heads.index("h"), width.index("d")  # the output's own indices are f, j
        term = Q("Wo", node.layer).base[f, g, e] * entry_of(node.inputs[0], (g, j, e), sample)
        return sp.Sum(term, (g, g.lower, g.upper), (e, e.lower, e.upper)) + Q("bo", node.layer).base[f]


@register
@dataclass(frozen=True)
class Attention(LayerKind):
    """Multi-head self-attention over a sequence [features, tokens]; its output has the input's shape."""

    heads: int = 1
    causal: bool = False
    features: int = 0  # E, the features of each token (set by `fit`)

    name = "attention"
    output_kind = "z"
    summary = ("z = Wo · softmax(M ⊙ (Wq x)ᵀ(Wk x)/√d) (Wv x) per head, over a sequence [features, tokens]; "
               "options: heads, causal, activation")
    options = {"heads": Option("a whole number of heads from 1 to 64 that divides the features", whole_number(1, 64),
                               required=False),
               "causal": Option("true or false", _flag, required=False)}

    @classmethod
    def build(cls, values: dict) -> Attention:
        return cls(values.get("heads", 1), values.get("causal", False))

    def fit(self, input_units: tuple) -> Attention:
        shape = input_units[0]
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise DeriveError(f"attention reads a sequence [features, tokens], not the shape "
                              f"{list(shape) if isinstance(shape, tuple) else shape}; give the network "
                              f"input = [features, tokens]")
        if shape[0] % self.heads:
            raise DeriveError(f"{self.heads} heads do not divide the {shape[0]} features of each token")
        return Attention(self.heads, self.causal, shape[0])

    def output_axes(self, node: Node, input_axes):
        return (Axis("c", node.layer), Axis("w", node.layer))

    def output_shape(self, node: Node, input_shapes):
        return input_shapes[0]

    def parts(self, node: Node) -> tuple[Node, ...]:
        common = dict(heads=self.heads, width=self.features // self.heads, causal=self.causal)
        x, l = node.inputs[0], node.layer
        proj = [Node(Projection(**common, which=w), l, (x,), node.in_axes) for w in "qkv"]
        scores = Node(Scores(**common), l, (proj[0].output, proj[1].output), (proj[0].out_axes, proj[1].out_axes))
        weights = Node(Weights(**common), l, (scores.output,), (scores.out_axes,))
        mixing = Node(Mixing(**common), l, (weights.output, proj[2].output), (weights.out_axes, proj[2].out_axes))
        out = Node(OutProjection(**common, features=node.in_axes[0][0]), l, (mixing.output,), (mixing.out_axes,))
        return (*proj, scores, weights, mixing, out)


__all__ = ["Attention", "Projection", "Scores", "Weights", "Mixing", "OutProjection", "causal_mask",
           "head_scale_symbol"]
